"""`make chaos` fuzzes 10,000 requests over a trained suite; here a small deterministic version over
the in-process suite: every RPC, fuzzed messages and damaged encodings, never INTERNAL or UNKNOWN."""

from __future__ import annotations

import pytest

from shared.auth import read_key
from shared.authz import IDENTITIES
from tests.unit.gateway.suite import running_suite
from tools.chaos.fuzz import fuzzed_requests
from tools.chaos.probes import every_rpc, fuzz

FUZZED_CALLS = 540  # twenty per RPC


@pytest.fixture(scope="module")
def fuzzed_suite(tmp_path_factory):
    """A suite of its own: fuzzed writes (random items and events) must not reach the other tests'."""
    with running_suite(tmp_path_factory.mktemp("fuzzed")) as started:
        yield started


def test_fuzzed_requests_to_every_rpc_get_clear_statuses(fuzzed_suite) -> None:
    settings, servers = fuzzed_suite
    addresses = {name: server.address for name, server in servers.items()}
    report = fuzz(addresses, dict.fromkeys(IDENTITIES), read_key(settings), FUZZED_CALLS, 7, False)
    assert report.calls == FUZZED_CALLS
    assert report.failures == []
    assert sum(report.codes.values()) == FUZZED_CALLS
    assert report.codes["INVALID_ARGUMENT"] > FUZZED_CALLS / 10  # the fuzzer does reach the checks
    assert all(server.running.ready.is_set() for server in servers.values())


def test_the_fuzzer_builds_every_rpcs_messages_and_damaged_ones() -> None:
    import itertools
    import random

    kinds = set()
    for rpc in every_rpc(with_model_server=True):
        payloads = list(itertools.islice(fuzzed_requests(rpc.input_type, random.Random(1)), 40))
        kinds |= {payload.kind for payload in payloads}
        assert any(payload.payload for payload in payloads), rpc.path
    assert kinds == {"built", "truncated", "flipped", "random"}
