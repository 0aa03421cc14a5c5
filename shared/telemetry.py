"""OpenTelemetry and logging, set up once per process.

Spans: one per RPC on both sides (gRPC instrumentation), trace context carried
in metadata across every hop, resource attribute `service.name`. Export over
OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set. Logs: one JSON object per
line on stderr, carrying the current trace id.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with the active trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def tracer_provider(service: str, otlp_endpoint: str) -> TracerProvider:
    """The service's TracerProvider: exports over OTLP when an endpoint is given; samples as
    OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG say (every trace when unset)."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"recsys-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider


def setup_tracing(service: str, otlp_endpoint: str) -> TracerProvider:
    """Installs the service's TracerProvider as the global one."""
    provider = tracer_provider(service, otlp_endpoint)
    trace.set_tracer_provider(provider)
    return provider


def server_interceptor() -> grpc.aio.ServerInterceptor:
    """Spans for every RPC except health probes (noise, and Watch streams by context.write)."""
    return aio_server_interceptor(filter_=filters.negate(filters.service_prefix("grpc.health")))


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return aio_client_interceptors()
