import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from shared.telemetry import JsonFormatter, tracer_provider


def test_log_lines_are_json_and_carry_the_trace_id() -> None:
    tracer = TracerProvider().get_tracer("test")
    formatter = JsonFormatter("profile")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.fields = {"method": "/a/B"}
    with tracer.start_as_current_span("work") as span:
        line = json.loads(formatter.format(record))
    assert line["message"] == "hello world"
    assert line["service"] == "profile"
    assert line["method"] == "/a/B"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    outside = json.loads(formatter.format(record))
    assert "trace_id" not in outside


def test_the_sampler_follows_opentelemetrys_standard_variables(monkeypatch) -> None:
    """What the Kubernetes overlays set: keep a trace when the caller's was kept, else one in ten."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    provider = tracer_provider("gateway", "")
    try:
        assert provider.sampler.get_description().startswith("ParentBased{root:TraceIdRatioBased{0.1}")
    finally:
        provider.shutdown()
    monkeypatch.delenv("OTEL_TRACES_SAMPLER")
    assert (
        tracer_provider("gateway", "")
        .sampler.get_description()
        .startswith("ParentBased{root:AlwaysOnSampler")
    )
