import asyncio
import stat
from pathlib import Path
from types import SimpleNamespace

import grpc

from shared.auth import ApiKeyInterceptor, ensure_key_file, read_key, server_keys
from tests.support import make_settings


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "api-key"
    first = ensure_key_file(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key_file(path) == first


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), RECSYS_API_KEYS="k" * 20 + "," + "j" * 20)
    assert server_keys(settings) == ("k" * 20, "j" * 20)
    assert read_key(settings) == "k" * 20
    assert not settings.api_key_file.exists()


def test_local_default_shares_the_key_file_between_server_and_client(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path))
    (key,) = server_keys(settings)
    assert read_key(settings) == key


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

    interceptor = ApiKeyInterceptor(["the-one-key-0123456789"])
    details = SimpleNamespace(
        method="/recsys.gateway.v1.GatewayService/RecordFeedback", invocation_metadata=()
    )
    refused = asyncio.run(interceptor.intercept_service(continuation, details))
    assert refused is not method and refused.request_deserializer(b"\x00" * 100_000) is None
    assert parsed == []
    details.invocation_metadata = (("authorization", "Bearer the-one-key-0123456789"),)
    assert asyncio.run(interceptor.intercept_service(continuation, details)) is method
