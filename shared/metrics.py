"""Prometheus metrics: every RPC of every service, plus the gateway's per-stage facts.

Each process serves them over HTTP on its metrics port (RECSYS_METRICS_PORT or
RECSYS_<SERVICE>_METRICS_PORT; 0 turns the endpoint off).
"""

from __future__ import annotations

import asyncio
import platform
import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
from prometheus_client import Counter, Gauge, Histogram, Info, make_wsgi_app

from shared import sources
from shared.interceptors import TimedCall, wrap_handler
from shared.version import VERSION

# Up to 5 s for unary calls; the long tail to 30 minutes for streams (exports, campaigns).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 120.0, 600.0, 1800.0,
)  # fmt: skip
# The Recommend stages the gateway waits on (and may degrade); their series exist from the start.
STAGES = ("profile", "items", "candidates", "ranking", "policy")
# How often the event loop's lag is sampled.
LOOP_LAG_PERIOD_S = 1.0

BUILD = Info("recsys_build", "The running build: package version and Python.")
IN_FLIGHT = Gauge("recsys_grpc_server_in_flight", "RPCs being handled now.", ["service"])
LOOP_LAG = Gauge(
    "recsys_event_loop_lag_seconds", "How late the event loop ran a timer, at the last sample.", ["service"]
)
# Per process (the scrape's pod labels say which service); a version is its publish time in seconds.
MODEL_VERSION = Gauge("recsys_model_version", "The version of each model this process serves.", ["model"])
MODEL_LOADED = Gauge(
    "recsys_model_loaded_timestamp_seconds", "When this process last switched to a new version.", ["model"]
)

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
HELD_ITEMS = Counter(
    "recsys_gateway_catalog_items_total",
    "Catalog items Recommend needed, by whether the gateway held them (held) or asked the catalog (asked).",
    ["outcome"],
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
    "Feedback events credited to a served slate, by policy and the ranking model version behind it.",
    ["policy", "ranking_version", "event_type"],
)
REWARDS_PENDING = Gauge(
    "recsys_rewards_pending",
    "Rewards stored with their events but not yet delivered to the policy, at the relay's last look.",
)
FEEDBACK_EVENTS = Counter(
    "recsys_feedback_events_total",
    "Feedback events by outcome (accepted, duplicate, rejected).",
    ["outcome"],
)
CANDIDATE_SOURCE_ITEMS = Counter(
    "recsys_candidates_source_items_total",
    "Candidates served, by the source that found them.",
    ["source"],
)
CANDIDATE_SOURCE_DEGRADED = Counter(
    "recsys_candidates_source_degraded_total",
    "Generate calls answered without a source (failed, late, or its model missing).",
    ["source"],
)
GENERATED_LISTS = Counter(
    "recsys_candidates_generated_lists_total",
    "The generator's lists by whether they were reused for a history asked lately (reused) or "
    "asked of the model server (asked).",
    ["outcome"],
)
COLD_STARTS = Counter(
    "recsys_gateway_cold_start_total",
    "Recommend answers for shoppers without purchases (popular, segment and context items).",
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

    async def __aenter__(self) -> None:
        IN_FLIGHT.labels(self.service).inc()
        await super().__aenter__()

    def finish(self, status: str, seconds: float) -> None:
        IN_FLIGHT.labels(self.service).dec()
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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds
        return None


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def http_app(serving: Callable[[], bool]) -> Callable:
    """/metrics for Prometheus; /healthz for Kubernetes probes: 200 while the gRPC health status is
    SERVING, else 503. Kubernetes' own gRPC probes cannot speak TLS, so with mTLS on they come here."""
    metrics_app = make_wsgi_app()

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            up = serving()
            start_response("200 OK" if up else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"SERVING\n" if up else b"NOT_SERVING\n"]
        return metrics_app(environ, start_response)

    return app


def serve_metrics(port: int, host: str, serving: Callable[[], bool]) -> None:
    """Starts the HTTP endpoint (/metrics, /healthz) in a background thread (no-op for port 0)."""
    if not port:
        return
    server = make_server(host, port, http_app(serving), _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()


def announce(service: str) -> None:
    """Series that must exist before anything happens: the build, in-flight at 0, for the gateway
    each stage's degradations and each feedback outcome at 0, and for the candidates service each
    source's items and degradations and the generated lists' outcomes at 0 (a rate needs a first
    sample)."""
    BUILD.info({"version": VERSION, "python": platform.python_version()})
    IN_FLIGHT.labels(service)
    if service == "gateway":
        for stage in STAGES:
            STAGE_DEGRADED.labels(stage)
        for outcome in ("accepted", "duplicate", "rejected"):
            FEEDBACK_EVENTS.labels(outcome)
    if service == "candidates":
        for source in sources.ALL:
            CANDIDATE_SOURCE_ITEMS.labels(source)
            CANDIDATE_SOURCE_DEGRADED.labels(source)
        for outcome in ("reused", "asked"):
            GENERATED_LISTS.labels(outcome)


def model_loaded(model: str, version: int) -> None:
    MODEL_VERSION.labels(model).set(version)
    MODEL_LOADED.labels(model).set(time.time())


async def watch_loop_lag(service: str, period_s: float = LOOP_LAG_PERIOD_S) -> None:
    """Samples how late a timer fires: a saturated event loop shows here before latency does."""
    gauge = LOOP_LAG.labels(service)
    while True:
        started = time.perf_counter()
        await asyncio.sleep(period_s)
        gauge.set(max(0.0, time.perf_counter() - started - period_s))
