"""The Grafana dashboard and the alerting rules only query metrics that the services really export."""

import json
import platform
import re
import tomllib

import yaml
from prometheus_client import REGISTRY

import shared.db_telemetry
import shared.metrics
import shared.sources
from shared.version import VERSION
from tests.k8s.manifests import K8S_DIR

CONFIG = K8S_DIR / "components" / "observability" / "config"
DASHBOARD = CONFIG / "recsys-dashboard.json"
ALERTS = CONFIG / "alerts.yaml"


SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
}


def _exported_names() -> set[str]:
    """Series names of every registered metric family, by its type's suffixes."""
    return {
        family.name + suffix for family in REGISTRY.collect() for suffix in SUFFIXES.get(family.type, ("",))
    }


def _unknown_metrics(exprs: list[str]) -> set[str]:
    used = {name for expr in exprs for name in re.findall(r"\brecsys_[a-z_]+", expr)}
    assert used, "no recsys metric is queried"
    return used - _exported_names()


def test_every_dashboard_query_uses_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 8
    assert _unknown_metrics(exprs) == set()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_alert_uses_an_exported_metric_and_says_what_is_wrong() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert {"RecsysErrorRatioHigh", "RecsysRecommendSlow", "RecsysModelStale"} <= {r["alert"] for r in rules}
    assert _unknown_metrics([rule["expr"] for rule in rules]) == set()
    assert all(rule["annotations"]["summary"] and rule["labels"]["severity"] for rule in rules)


def test_counters_exist_at_zero_before_anything_happens() -> None:
    shared.metrics.announce("gateway")
    for stage in shared.metrics.STAGES:
        assert REGISTRY.get_sample_value("recsys_gateway_degraded_total", {"stage": stage}) is not None
    shared.metrics.announce("candidates")
    for source in shared.sources.ALL:
        assert REGISTRY.get_sample_value("recsys_candidates_source_degraded_total", {"source": source}) == 0
        assert REGISTRY.get_sample_value("recsys_candidates_source_items_total", {"source": source}) == 0
    for outcome in ("reused", "asked"):
        labels = {"outcome": outcome}
        assert REGISTRY.get_sample_value("recsys_candidates_generated_lists_total", labels) is not None
    python = platform.python_version()
    assert REGISTRY.get_sample_value("recsys_build_info", {"version": VERSION, "python": python}) == 1.0


def test_the_version_is_the_packages() -> None:
    pyproject = tomllib.loads((K8S_DIR.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == VERSION
