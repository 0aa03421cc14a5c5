"""Prometheus metrics: every RPC of every service, plus the gateway's per-stage facts.

Each process serves them over HTTP on its metrics port (RECSYS_METRICS_PORT or
RECSYS_<SERVICE>_METRICS_PORT; 0 turns the endpoint off).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from shared.interceptors import TimedCall, wrap_handler

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

RPC_HANDLED = Counter(
    "recsys_grpc_server_handled_total", "RPCs completed, by status code.", ["service", "method", "code"]
)
RPC_SECONDS = Histogram(
    "recsys_grpc_server_handling_seconds",
    "Time to handle an RPC.",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "recsys_gateway_stage_seconds",
    "Time the gateway waited on each Recommend stage.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
STAGE_DEGRADED = Counter(
    "recsys_gateway_degraded_total", "Recommend stages that failed or were late.", ["stage"]
)
RECOMMENDED_ITEMS = Counter(
    "recsys_recommended_items_total",
    "Items served, by policy and ranking model version.",
    ["policy", "ranking_version", "surface"],
)
REWARDS = Counter(
    "recsys_feedback_rewards_total",
    "Feedback events credited to a served slate, by policy.",
    ["policy", "event_type"],
)
FEEDBACK_EVENTS = Counter(
    "recsys_feedback_events_total",
    "Feedback events by outcome (accepted, duplicate, rejected).",
    ["outcome"],
)
PUSHES = Counter(
    "recsys_pushes_total",
    "Push outcomes: planned, by template and language, or skipped (template and language empty).",
    ["outcome", "template", "language"],
)


class _Measured(TimedCall):
    def __init__(self, service: str, method: str, context: grpc.aio.ServicerContext) -> None:
        super().__init__(method, context)
        self.service = service

    def finish(self, status: str, seconds: float) -> None:
        RPC_HANDLED.labels(self.service, self.method, status).inc()
        RPC_SECONDS.labels(self.service, self.method).observe(seconds)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC under the service's name."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        return wrap_handler(
            handler,
            handler_call_details.method,
            lambda method, context: _Measured(self.service, method, context),
        )


def serve_metrics(port: int, host: str) -> None:
    """Starts the /metrics HTTP endpoint in a background thread (no-op for port 0)."""
    if port:
        start_http_server(port, addr=host)
