"""Admission control for Recommend: a bounded number in flight, the rest refused at once.

Past the suite's capacity a queue only grows: every call waits behind work that finishes after
its caller has given up, and the suite ends up answering almost nobody. Refusing what is over the
limit at once keeps the admitted calls fast and tells the others when to come back.

The limit is kept in two places. `Admission.admit()`, around the handler, is exact. Before it,
`EarlyRefusal` runs first of all interceptors: while the gateway is already full it answers
RESOURCE_EXHAUSTED before tracing, the access log, the key check or reading the request, so that
at 4x capacity a refusal costs the busy event loop almost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from shared import metrics
from shared.errors import ResourceExhausted
from shared.interceptors import abort_with

RETRY_AFTER_S = 0.05
SERVICE = "gateway"


class Admission:
    """At most `limit` calls at a time on one event loop (no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    @property
    def full(self) -> bool:
        return self.in_flight >= self.limit

    def refusal(self) -> ResourceExhausted:
        return ResourceExhausted(
            f"the gateway is answering its limit of {self.limit} Recommend calls "
            "(RECSYS_RECOMMEND_CONCURRENCY); retry shortly",
            RETRY_AFTER_S,
        )

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.full:
            raise self.refusal()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


class EarlyRefusal(grpc.aio.ServerInterceptor):
    """The first interceptor: the admitted methods' calls that arrive while `admission` is full are
    refused unread (counted in the RPC metrics like any other answer); all else goes on."""

    def __init__(self, admission: Admission, methods: Collection[str]) -> None:
        self.admission = admission
        self.methods = frozenset(methods)

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self.methods or not self.admission.full:
            return await continuation(handler_call_details)
        error = self.admission.refusal()

        async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> None:
            metrics.RPC_HANDLED.labels(SERVICE, method, error.code.name).inc()
            await abort_with(context, error)

        # Declared request-streaming so that the server hands the call over before its message
        # arrives: the refusal never waits for, or reads, the request's bytes.
        return grpc.stream_unary_rpc_method_handler(refuse)
