"""Fixtures of the gateway tests: one simulated suite for the package."""

import grpc
import pytest

from recsys.gateway.v1 import gateway_pb2_grpc
from shared.auth import bearer_metadata, read_key
from tests.unit.gateway.suite import running_suite


@pytest.fixture(scope="package")
def suite(tmp_path_factory):
    with running_suite(tmp_path_factory.mktemp("home")) as started:
        yield started


@pytest.fixture
def gateway(suite):
    settings, servers = suite
    with grpc.insecure_channel(servers["gateway"].address) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel), bearer_metadata(read_key(settings))
