"""API keys: `authorization: Bearer <key>` metadata checked on the public entry.

Keys come from RECSYS_API_KEYS (a Kubernetes Secret) or, in the local default,
from `<home>/api-key`, generated with mode 0600 on first start.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import grpc

from shared.config import Settings
from shared.interceptors import rebuild_handler

# Services every caller may use without a key: probes and grpcurl discovery.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def ensure_key_file(path: Path) -> str:
    """Returns the key stored at `path`, creating it (mode 0600) when absent."""
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def read_key(settings: Settings) -> str:
    """The key a local client should send: the first configured key, else the key file."""
    if settings.api_keys:
        return settings.api_keys[0]
    if not settings.api_key_file.exists():
        raise FileNotFoundError(
            f"no API key: {settings.api_key_file} does not exist yet; start the suite "
            "with `recsys up` (it creates the key) or set RECSYS_API_KEYS"
        )
    return settings.api_key_file.read_text().strip()


def server_keys(settings: Settings) -> tuple[str, ...]:
    """The keys the gateway accepts."""
    return settings.api_keys or (ensure_key_file(settings.api_key_file),)


def bearer_metadata(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def _deny(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None

    async def abort(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def abort_stream(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # streaming responses need an async generator (the tracing interceptor iterates it)

    streaming = handler.unary_stream or handler.stream_stream
    # The body of a call refused for its credentials is never parsed: parsing megabytes for a caller
    # without a key would let anyone spend the gateway's memory.
    return rebuild_handler(handler, abort_stream if streaming else abort, request_deserializer=_unread)


def _unread(data: bytes) -> None:
    return None


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid bearer key with UNAUTHENTICATED."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode() for key in keys]

    def _valid(self, presented: str) -> bool:
        candidate = presented.encode()
        return any(hmac.compare_digest(candidate, key) for key in self._keys)

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler_call_details.method.startswith(OPEN_SERVICES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        header = metadata.get("authorization", "")
        if not header:
            return _deny(handler, "missing `authorization: Bearer <api key>` metadata")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not self._valid(presented.strip()):
            return _deny(handler, "invalid API key")
        return handler
