"""API keys: `authorization: Bearer <key>` metadata checked on the public entry, with the key's
scopes and rate (shared/keys.py).

Keys come from RECSYS_API_KEYS (a Kubernetes Secret), a keys file, or, in the local default,
from `<home>/api-key`, generated with mode 0600 on first start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from shared.authz import OPEN_SERVICES
from shared.config import ConfigError, Settings
from shared.errors import PermissionDenied, ResourceExhausted, ServiceError, Unauthenticated
from shared.interceptors import abort_with, rebuild_handler
from shared.keys import METHOD_SCOPES, FailedAttempts, KeyFileError, KeyTable


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


def key_table(settings: Settings) -> KeyTable:
    """The keys the gateway accepts: RECSYS_API_KEYS, and the keys file (RECSYS_API_KEYS_FILE, or
    the generated local key file when neither is set). ConfigError when the file cannot be read."""
    file = settings.api_keys_file
    if file is None and not settings.api_keys:
        ensure_key_file(settings.api_key_file)
        file = settings.api_key_file
    try:
        return KeyTable.of(settings.api_keys, file, settings.api_key_rate)
    except (KeyFileError, OSError) as error:
        raise ConfigError([f"API keys file {file}: {error}"]) from error


def bearer_metadata(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def _deny(
    handler: grpc.RpcMethodHandler | None,
    error: ServiceError,
    instead: Callable[[grpc.aio.ServicerContext], ServiceError | None] = lambda context: None,
) -> grpc.RpcMethodHandler | None:
    """A handler that refuses the call with `error`, or with what `instead` says once it sees the
    call's context (its peer)."""
    if handler is None:
        return None

    async def abort(request: object, context: grpc.aio.ServicerContext) -> None:
        await abort_with(context, instead(context) or error)

    async def abort_stream(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        await abort(request, context)
        yield  # streaming responses need an async generator (the tracing interceptor iterates it)

    streaming = handler.unary_stream or handler.stream_stream
    # The body of a refused call is never parsed: parsing megabytes for a caller without a key
    # would let anyone spend the gateway's memory.
    return rebuild_handler(handler, abort_stream if streaming else abort, request_deserializer=_unread)


def _unread(data: bytes) -> None:
    return None


def peer_address(peer: str) -> str:
    """`ipv4:10.0.0.7:53211` -> `ipv4:10.0.0.7`; `ipv6:[::1]:53211` -> `ipv6:[::1]`."""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call's key before its body is read: UNAUTHENTICATED without a valid key,
    PERMISSION_DENIED when the key lacks the method's scope, RESOURCE_EXHAUSTED (with the seconds
    to wait) over the key's rate."""

    def __init__(self, keys: KeyTable, failed: FailedAttempts | None = None) -> None:
        self.keys = keys
        self.failed = failed or FailedAttempts()

    def _throttle(self, context: grpc.aio.ServicerContext) -> ServiceError | None:
        """Counts a keyless call from its caller's address; too many of them: wait."""
        wait = self.failed.record(peer_address(context.peer()))
        if wait <= 0:
            return None
        return ResourceExhausted("too many calls without a valid API key from this address", wait)

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if method.startswith(OPEN_SERVICES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        header = metadata.get("authorization", "")
        if not header:
            missing = Unauthenticated("missing `authorization: Bearer <api key>` metadata")
            return _deny(handler, missing, self._throttle)
        scheme, _, presented = header.partition(" ")
        key = self.keys.find(presented.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            return _deny(handler, Unauthenticated("invalid API key"), self._throttle)
        scope = METHOD_SCOPES.get(method.rsplit("/", 1)[-1], "admin")
        if not key.allows(scope):
            return _deny(handler, PermissionDenied(f"this API key lacks the {scope!r} scope {method} needs"))
        wait = self.keys.take(key)
        if wait > 0:
            over = ResourceExhausted(f"this API key is over its rate of {key.rate:g} calls/s", wait)
            return _deny(handler, over)
        return handler
