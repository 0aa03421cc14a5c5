"""Spans and metrics for every database statement and pooled connection of an engine.

One client span per statement (`db.system.name`, `db.operation.name`,
`db.query.text` without parameter values, as OpenTelemetry's database semantic
conventions name them), its duration in `recsys_db_query_seconds`, and the
connections checked out of the pool in `recsys_db_connections_in_use`.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Gauge, Histogram
from sqlalchemy import Engine, event

QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0)
QUERY_SECONDS = Histogram(
    "recsys_db_query_seconds",
    "Time of each database statement.",
    ["system", "operation"],
    buckets=QUERY_BUCKETS,
)
CONNECTIONS_IN_USE = Gauge(
    "recsys_db_connections_in_use", "Connections checked out of the pool (saturation).", ["system"]
)
tracer = trace.get_tracer(__name__)
_STARTED = "recsys_statement"


def _operation(statement: str) -> str:
    words = statement.lstrip().split(None, 1)
    return words[0].upper() if words else ""


def instrument(engine: Engine) -> None:
    system = engine.dialect.name
    in_use = CONNECTIONS_IN_USE.labels(system)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        operation = _operation(statement)
        span = tracer.start_span(
            f"{operation} {system}".strip(),
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": system, "db.operation.name": operation, "db.query.text": statement},
        )
        conn.info.setdefault(_STARTED, []).append((span, time.perf_counter(), operation))

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        span, started, operation = conn.info[_STARTED].pop()
        QUERY_SECONDS.labels(system, operation).observe(time.perf_counter() - started)
        span.end()

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        pending = context.connection.info.get(_STARTED) if context.connection is not None else None
        if pending:
            span, started, operation = pending.pop()
            QUERY_SECONDS.labels(system, operation).observe(time.perf_counter() - started)
            span.set_status(Status(StatusCode.ERROR, type(context.original_exception).__name__))
            span.end()

    @event.listens_for(engine, "checkout")
    def _checkout(*_: Any) -> None:
        in_use.inc()

    @event.listens_for(engine, "checkin")
    def _checkin(*_: Any) -> None:
        in_use.dec()
