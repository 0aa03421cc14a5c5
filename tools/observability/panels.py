"""The Grafana dashboard's panels and what their queries return from a real Prometheus."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tools.observability.prometheus import Prometheus, PrometheusError

OBSERVABILITY = Path(__file__).resolve().parents[2] / "k8s" / "components" / "observability" / "config"
DASHBOARD = OBSERVABILITY / "recsys-dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yaml"


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    exprs: tuple[str, ...]


@dataclass(frozen=True)
class QueryResult:
    expr: str
    series: int  # how many series the query returned
    finite: int  # of which hold a number (a ratio of two zero rates is NaN: no data to draw)
    sample: str  # the series of the largest value, for the reader: its labels and value
    error: str = ""

    @property
    def has_data(self) -> bool:
        return self.finite > 0 and not self.error


@dataclass(frozen=True)
class PanelResult:
    panel: Panel
    queries: tuple[QueryResult, ...]

    @property
    def has_data(self) -> bool:
        """Every query of the panel draws at least one line."""
        return all(query.has_data for query in self.queries)


def dashboard_panels(path: Path = DASHBOARD) -> list[Panel]:
    dashboard = json.loads(path.read_text())
    return [
        Panel(panel["id"], panel["title"], tuple(target["expr"] for target in panel["targets"]))
        for panel in dashboard["panels"]
    ]


def evaluate(prometheus: Prometheus, expr: str) -> QueryResult:
    try:
        series = prometheus.query(expr)
    except PrometheusError as error:
        return QueryResult(expr, 0, 0, "", str(error))
    finite = [one for one in series if math.isfinite(one.value)]
    shown = max(finite, key=lambda one: one.value) if finite else (series[0] if series else None)
    sample = ""
    if shown is not None:
        labels = ", ".join(
            f"{k}={v}" for k, v in sorted(shown.labels.items()) if k not in {"instance", "job"}
        )
        sample = f"{{{labels}}} {shown.value:.4g}"
    return QueryResult(expr, len(series), len(finite), sample)


def evaluate_panels(prometheus: Prometheus, panels: list[Panel]) -> list[PanelResult]:
    return [PanelResult(panel, tuple(evaluate(prometheus, expr) for expr in panel.exprs)) for panel in panels]
