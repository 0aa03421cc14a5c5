"""Who may call which internal method: the caller's identity is the common name of the client
certificate it presented over mutual TLS (shared/tls.py).

A method absent from the table is refused to everyone; health checks and reflection are open to
any caller holding a certificate of the suite. The request body of a refused call is never parsed.
The same table is the contract the Kubernetes component issues certificates for
(k8s/components/mtls): one Certificate per identity, its common name the identity.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from shared.config import MODEL_SERVER, SERVICES
from shared.errors import PermissionDenied, Unauthenticated
from shared.interceptors import abort_with, rebuild_handler

# The offline tools (import, training, evaluation): the trainer Job and CronJob, the recsys CLI.
TRAINER = "trainer"
IDENTITIES: tuple[str, ...] = (*SERVICES, MODEL_SERVER, TRAINER)
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_PROFILE = "/recsys.profile.v1.ProfileService/"
_ITEMS = "/recsys.items.v1.ItemsService/"
_PREDICTION = "/tensorflow.serving.PredictionService/"
_MODELS = "/tensorflow.serving.ModelService/"

ALLOWED: Mapping[str, frozenset[str]] = {
    method: frozenset(callers)
    for method, callers in {
        _PROFILE + "RecordEvents": ("gateway", TRAINER),  # feedback; the importers
        _PROFILE + "GetProfile": ("gateway", TRAINER),  # operators reading a shopper
        _PROFILE + "GetHistory": (TRAINER,),
        _PROFILE + "ListUsers": ("gateway", TRAINER),  # push campaigns; operators
        _PROFILE + "ExportEvents": (TRAINER,),
        _PROFILE + "ListPendingRewards": ("gateway",),
        _PROFILE + "AckRewards": ("gateway",),
        _ITEMS + "UpsertItems": (TRAINER,),
        _ITEMS + "GetItems": ("gateway", "candidates", "profile", TRAINER),
        _ITEMS + "Popular": ("gateway",),  # the gateway's own fallback; candidates loads the model
        _ITEMS + "SimilarItems": ("candidates",),
        _ITEMS + "Related": ("candidates",),
        _ITEMS + "RelatedToItems": ("candidates",),
        _ITEMS + "ExportItems": ("gateway", TRAINER),  # promotion plans read category prices; snapshots
        _ITEMS + "ListUnavailable": ("candidates",),  # its availability filter
        "/recsys.candidates.v1.CandidatesService/Generate": ("gateway",),
        "/recsys.ranking.v1.RankingService/Rank": ("gateway",),
        "/recsys.ranking.v1.RankingService/GetServing": (TRAINER,),  # operators (grpcurl)
        "/recsys.policy.v1.PolicyService/Select": ("gateway",),
        "/recsys.policy.v1.PolicyService/Reward": ("gateway",),
        _PREDICTION + "Predict": ("candidates",),
        _PREDICTION + "GetModelMetadata": ("candidates",),
        _MODELS + "GetModelStatus": ("candidates", TRAINER),  # `recsys status` shows the served version
    }.items()
}


def caller_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The common name of the client certificate the peer presented, if any."""
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else None


def refusal(method: str, identity: str | None) -> PermissionDenied | Unauthenticated | None:
    """Why `identity` may not call `method`, or None when it may."""
    if method.startswith(OPEN_SERVICES):
        return None
    if identity is None:
        return Unauthenticated(f"{method} needs a client certificate of the suite (mutual TLS)")
    if identity not in ALLOWED.get(method, frozenset()):
        return PermissionDenied(f"the identity {identity!r} may not call {method}")
    return None


async def _parsed(raw: AsyncIterator[bytes], parse: Callable[[bytes], Any]) -> AsyncIterator[Any]:
    async for data in raw:
        yield parse(data)


def _guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """The handler with its request bytes parsed only after the caller's identity is allowed."""
    inner = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    parse = handler.request_deserializer or _raw
    streaming_requests = bool(handler.stream_unary or handler.stream_stream)

    async def check(context: grpc.aio.ServicerContext) -> None:
        error = refusal(method, caller_identity(context))
        if error is not None:
            await abort_with(context, error)

    def request_of(raw: Any) -> Any:
        return _parsed(raw, parse) if streaming_requests else parse(raw)

    if inspect.isasyncgenfunction(inner):

        async def stream(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await check(context)
            async for response in inner(request_of(raw), context):
                yield response

        return rebuild_handler(handler, stream, request_deserializer=_raw)

    # Unary responses, and streaming ones written with `await context.write()`.
    async def awaited(raw: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(context)
        return await inner(request_of(raw), context)

    return rebuild_handler(handler, awaited, request_deserializer=_raw)


def _raw(data: bytes) -> bytes:
    return data


class IdentityInterceptor(grpc.aio.ServerInterceptor):
    """Authorizes every call by the caller's certificate identity (ALLOWED) before its body is
    parsed: UNAUTHENTICATED without a certificate, PERMISSION_DENIED for an identity the method does
    not name."""

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        return _guarded(handler, method)
