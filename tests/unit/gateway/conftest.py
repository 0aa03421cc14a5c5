"""Fixtures of the gateway tests: one simulated suite for the package."""

import asyncio

import grpc
import pytest

from recsys.gateway.v1 import gateway_pb2_grpc
from shared.auth import bearer_metadata, read_key
from tests.support import ServerThread, make_settings, suite_env
from tests.unit.gateway.suite import BUILDERS, fill_suite


@pytest.fixture(scope="package")
def suite(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    # a generous stage deadline: a push needs the ranking stage to answer, even on a loaded machine;
    # no minimum confidence: the bandit's random slate may hold none of the few confident items of
    # this tiny shop (the minimum has its own test)
    env = suite_env(RECSYS_STAGE_DEADLINE_MS="5000", RECSYS_PUSH_MIN_CONFIDENCE="0")
    settings = make_settings(str(home), **env)
    servers = {name: ServerThread(build, settings, settings.ports[name]) for name, build in BUILDERS.items()}
    asyncio.run(fill_suite(settings))
    for name in ("items", "candidates", "ranking"):
        servers[name].run(servers[name].running.app.startup())  # load the models published above
    yield settings, servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def gateway(suite):
    settings, servers = suite
    with grpc.insecure_channel(servers["gateway"].address) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel), bearer_metadata(read_key(settings))
