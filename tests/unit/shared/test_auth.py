import asyncio
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from shared.auth import ApiKeyInterceptor, ensure_key_file, key_table, peer_address, read_key
from shared.config import ConfigError
from shared.keys import SCOPES, FailedAttempts, KeyTable, parse_keys
from tests.support import make_settings


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "api-key"
    first = ensure_key_file(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key_file(path) == first


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), RECSYS_API_KEYS="k" * 20 + "," + "j" * 20)
    assert [key.secret for key in key_table(settings).in_force()] == ["k" * 20, "j" * 20]
    assert read_key(settings) == "k" * 20
    assert not settings.api_key_file.exists()


def test_local_default_shares_the_key_file_between_server_and_client(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path))
    (key,) = key_table(settings).in_force()
    assert read_key(settings) == key.secret and key.scopes == frozenset(SCOPES)


def test_the_body_of_a_call_refused_for_its_key_is_never_parsed() -> None:
    parsed: list[bytes] = []

    def deserialize(data: bytes) -> bytes:
        parsed.append(data)
        return data

    async def behaviour(request: object, context: object) -> None:
        raise AssertionError("a refused call never reaches the method")

    method = grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=deserialize)

    async def continuation(details: object) -> grpc.RpcMethodHandler:
        return method

    interceptor = ApiKeyInterceptor(KeyTable.of(["the-one-key-0123456789"], None, 0))
    details = SimpleNamespace(
        method="/recsys.gateway.v1.GatewayService/RecordFeedback", invocation_metadata=()
    )
    refused = asyncio.run(interceptor.intercept_service(continuation, details))
    assert refused is not method and refused.request_deserializer(b"\x00" * 100_000) is None
    assert parsed == []
    details.invocation_metadata = (("authorization", "Bearer the-one-key-0123456789"),)
    assert asyncio.run(interceptor.intercept_service(continuation, details)) is method


def test_a_keys_file_gives_each_key_its_scopes_and_rate_and_names_a_bad_line() -> None:
    keys = parse_keys(
        "# shop keys\n"
        "recommend-only-0123456789 scopes=recommend rate=5\n"
        "\n"
        "everything-0123456789  # every scope, the default rate\n",
        default_rate=100,
    )
    assert [(k.secret, sorted(k.scopes), k.rate) for k in keys] == [
        ("recommend-only-0123456789", ["recommend"], 5.0),
        ("everything-0123456789", sorted(SCOPES), 100.0),
    ]
    assert keys[0].allows("recommend") and not keys[0].allows("feedback")
    for bad, message in [
        ("short scopes=push", "line 1: a key must have at least 16 characters"),
        ("long-enough-0123456789 scopes=everything", "line 1: unknown scopes"),
        ("long-enough-0123456789 rate=-1", "line 1: rate must be"),
        ("long-enough-0123456789 limit=3", "line 1: 'limit=3' is neither"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_keys(bad, 100)


def test_the_keys_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("first-key-0123456789\n")
    now = [0.0]
    table = KeyTable.of([], path, 10, clock=lambda: now[0])
    assert table.find("first-key-0123456789") is not None
    path.write_text("second-key-0123456789 scopes=push\n")
    os.utime(path, ns=(1, 1))
    now[0] = 2.0
    assert table.find("first-key-0123456789") is None
    assert table.find("second-key-0123456789").scopes == frozenset({"push"})
    path.write_text("not a key file=\n")
    os.utime(path, ns=(2, 2))
    now[0] = 4.0
    assert table.find("second-key-0123456789") is not None  # a broken file keeps the keys in force
    with pytest.raises(ConfigError, match="API keys file"):
        key_table(make_settings(str(tmp_path), RECSYS_API_KEYS_FILE=str(path)))


def test_a_keys_rate_is_a_token_bucket() -> None:
    now = [0.0]
    table = KeyTable.of([], None, 0, clock=lambda: now[0])
    (key,) = parse_keys("bucket-key-0123456789 rate=2", 0)
    assert [table.take(key) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    now[0] = 0.5
    assert table.take(key) == 0.0 and table.take(key) == pytest.approx(0.5)
    (free,) = parse_keys("free-key-0123456789 rate=0", 0)
    assert all(table.take(free) == 0.0 for _ in range(1000))


def test_failed_attempts_hold_back_an_address_for_the_rest_of_its_window() -> None:
    now = [0.0]
    failed = FailedAttempts(limit=3, window_s=10.0, tracked=2, clock=lambda: now[0])
    assert [failed.record("ipv4:10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert failed.record("ipv4:10.0.0.1") == 10.0  # the 4th within the window
    assert failed.record("ipv4:10.0.0.2") == 0.0  # another address counts on its own
    now[0] = 10.5  # the first three have left the window; the 4th is still in it
    assert failed.record("ipv4:10.0.0.1") == 0.0
    failed.record("ipv4:10.0.0.3")  # a third address: the least recently seen is forgotten
    assert "ipv4:10.0.0.2" not in failed._seen and len(failed._seen) == 2
    assert peer_address("ipv4:10.0.0.7:53211") == "ipv4:10.0.0.7"
    assert peer_address("ipv6:[::1]:53211") == "ipv6:[::1]"
