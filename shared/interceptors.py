"""Server interceptors shared by every service: access log and error mapping.

A grpc.aio interceptor returns a handler; `wrap_handler` rebuilds one with the
same kind (unary or streaming on either side) around a wrapped behaviour, so
each interceptor only says what it does around one call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from shared.errors import InvalidArgument, MessageTooLarge, ServiceError
from shared.limits import request_bytes

log = logging.getLogger("recsys.access")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


def rebuild_handler(
    handler: grpc.RpcMethodHandler,
    behaviour: Behaviour,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as `handler` that runs `behaviour`."""
    kwargs = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(behaviour, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(behaviour, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(behaviour, **kwargs)
    return grpc.stream_stream_rpc_method_handler(behaviour, **kwargs)


def wrap_handler(
    handler: grpc.RpcMethodHandler | None,
    method: str,
    around: Callable[[str, grpc.aio.ServicerContext], Any],
) -> grpc.RpcMethodHandler | None:
    """Wraps every call of `handler` in the async context manager `around(method, context)`."""
    if handler is None:
        return None
    inner = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    if inspect.isasyncgenfunction(inner):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with around(method, context):
                async for response in inner(request, context):
                    yield response

        return rebuild_handler(handler, streaming)

    # Unary responses, and streaming ones written with `await context.write()`.
    async def awaited(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(method, context):
            return await inner(request, context)

    return rebuild_handler(handler, awaited)


class TimedCall:
    """Around one call: times it and hands its final status name to `finish`."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.context = context
        self.started = 0.0

    async def __aenter__(self) -> None:
        self.started = time.perf_counter()

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        code = self.context.code()
        if code is None and isinstance(exc, asyncio.CancelledError | GeneratorExit):
            code = grpc.StatusCode.CANCELLED  # the caller went away (a stream it stopped reading)
        elif code is None:
            code = grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
        status = code.name if isinstance(code, grpc.StatusCode) else str(code)
        self.finish(status, time.perf_counter() - self.started)

    def finish(self, status: str, seconds: float) -> None:
        raise NotImplementedError


class _AccessLog(TimedCall):
    """Logs method, status, duration and trace id of one call."""

    def finish(self, status: str, seconds: float) -> None:
        fields = {"method": self.method, "status": status, "duration_ms": round(seconds * 1000, 3)}
        log.info("%s %s", self.method, status, extra={"fields": fields})


# The trailer that carries a google.rpc.Status with the error's details (gRPC's rich error model).
STATUS_DETAILS = "grpc-status-details-bin"


async def abort_with(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    """Ends the call with the error's status, its google.rpc details in the trailer."""
    details = ((STATUS_DETAILS, error.status().SerializeToString()),)
    await context.abort(error.code, error.message, trailing_metadata=details)


class _ErrorMapping:
    """Turns ServiceError into its status and any other exception into INTERNAL."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, grpc.aio.AbortError) or not isinstance(exc, Exception):
            return False
        if isinstance(exc, ServiceError):
            await abort_with(self.context, exc)
        log.exception("unexpected error in %s", self.method, exc_info=exc)
        await self.context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        return False


class AccessLogInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        return wrap_handler(handler, handler_call_details.method, _AccessLog)


class _Refused:
    """Stands for request bytes that are not parsed: over the method's size limit, or malformed."""

    def __init__(self, error: ServiceError) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None, limit: int) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        if len(data) > limit:
            return _Refused(
                MessageTooLarge(f"the request has {len(data):,} bytes; this method takes {limit:,}")
            )
        try:
            return deserializer(data)
        except DecodeError as error:
            return _Refused(InvalidArgument(f"the request is not a valid protobuf message: {error}"))

    return deserialize


def _checked(request: Any) -> Any:
    if isinstance(request, _Refused):
        raise request.error
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _checked(request)


def _screen_requests(handler: grpc.RpcMethodHandler | None, method: str) -> grpc.RpcMethodHandler | None:
    """Malformed request bytes become INVALID_ARGUMENT instead of the framework's UNKNOWN; a request
    over the method's size limit, RESOURCE_EXHAUSTED, unparsed."""
    if handler is None or handler.request_deserializer is None:
        return handler
    inner = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    streaming_requests = bool(handler.stream_unary or handler.stream_stream)
    limit = request_bytes(method)

    def request_of(request: Any) -> Any:
        return _checked_stream(request) if streaming_requests else _checked(request)

    if inspect.isasyncgenfunction(inner):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for response in inner(request_of(request), context):
                yield response

        return rebuild_handler(handler, streaming, _tolerant(handler.request_deserializer, limit))

    async def awaited(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await inner(request_of(request), context)

    return rebuild_handler(handler, awaited, _tolerant(handler.request_deserializer, limit))


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = _screen_requests(await continuation(handler_call_details), handler_call_details.method)
        return wrap_handler(handler, handler_call_details.method, _ErrorMapping)


class DrainInterceptor(grpc.aio.ServerInterceptor):
    """Ends response streams cleanly once `draining` is set (the process is shutting down): after
    the message being sent, the stream ends with UNAVAILABLE, how many messages it carried and how
    to resume (every streaming method is idempotent: call again; a push campaign resumes by its
    campaign_id), logged as INFO, instead of being cut when the grace period runs out."""

    def __init__(self, draining: asyncio.Event) -> None:
        self.draining = draining

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        inner = handler and (handler.unary_stream or handler.stream_stream)
        if not inspect.isasyncgenfunction(inner):  # unary, or a stream written with context.write
            return handler
        method = handler_call_details.method
        draining = self.draining

        async def drained(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            sent = 0
            async for response in inner(request, context):
                yield response
                sent += 1
                if draining.is_set():
                    log.info("%s: stream ended by shutdown after %d messages", method, sent)
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        f"the server is shutting down; the stream ended after {sent} messages: call "
                        "again to resume (idempotent; a push campaign resumes by its campaign_id)",
                    )

        return rebuild_handler(handler, drained)
