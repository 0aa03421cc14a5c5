"""The gateway's time per Recommend stage, from its Prometheus histogram."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

STAGE_HISTOGRAM = "recsys_gateway_stage_seconds"


Totals = dict[str, tuple[float, float]]


def stage_totals(metrics_port: int) -> Totals:
    """(seconds, calls) waited on each stage so far; empty when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != STAGE_HISTOGRAM:
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name.endswith("_sum"):
                totals.setdefault(stage, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_count"):
                totals.setdefault(stage, [0.0, 0.0])[1] = sample.value
    return {stage: (seconds, calls) for stage, (seconds, calls) in totals.items()}


def stage_ms(before: Totals, after: Totals) -> dict[str, float]:
    """The mean milliseconds per call of each stage between two readings."""
    means = {}
    for stage, (seconds, calls) in after.items():
        seconds_before, calls_before = before.get(stage, (0.0, 0.0))
        if calls > calls_before:
            means[stage] = 1000 * (seconds - seconds_before) / (calls - calls_before)
    return means
