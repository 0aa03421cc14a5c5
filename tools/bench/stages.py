"""What the suite's Prometheus endpoints say of a phase: the gateway's time per Recommend stage (its
histogram), and how often the candidates service reused a generated list (its counter)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

STAGE_HISTOGRAM = "recsys_gateway_stage_seconds"
GENERATED_LISTS = "recsys_candidates_generated_lists"


Totals = dict[str, tuple[float, float]]


def _families(metrics_port: int) -> list:
    """The endpoint's metric families; none when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            return list(text_string_to_metric_families(reply.read().decode()))
    except OSError:
        return []


def stage_totals(metrics_port: int) -> Totals:
    """(seconds, calls) waited on each stage so far; empty when the endpoint does not answer."""
    totals: dict[str, list[float]] = {}
    for family in _families(metrics_port):
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


def generated_totals(metrics_port: int) -> dict[str, float]:
    """The candidates service's generated lists so far by outcome (reused, asked)."""
    return {
        sample.labels["outcome"]: sample.value
        for family in _families(metrics_port)
        if family.name == GENERATED_LISTS
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def reused_share(before: dict[str, float], after: dict[str, float]) -> float | None:
    """The share of the generated lists reused between two readings (None: no list was needed)."""
    reused = after.get("reused", 0.0) - before.get("reused", 0.0)
    asked = after.get("asked", 0.0) - before.get("asked", 0.0)
    return reused / (reused + asked) if reused + asked > 0 else None
