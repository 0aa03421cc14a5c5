"""The Grafana dashboard only queries metrics that the services really export."""

import json
import re

from prometheus_client import REGISTRY

import shared.metrics  # noqa: F401 - registers the metrics
from tests.k8s.manifests import K8S_DIR

DASHBOARD = K8S_DIR / "components" / "observability" / "config" / "recsys-dashboard.json"


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _exported_names() -> set[str]:
    """Series names of every registered metric family, by its type's suffixes."""
    return {
        family.name + suffix for family in REGISTRY.collect() for suffix in SUFFIXES.get(family.type, ("",))
    }


def test_every_dashboard_query_uses_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 8
    exported = _exported_names()
    used = {name for expr in exprs for name in re.findall(r"\brecsys_[a-z_]+", expr)}
    assert used, "the dashboard queries no recsys metric"
    missing = used - exported
    assert missing == set()
