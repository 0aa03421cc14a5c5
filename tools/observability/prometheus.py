"""A real Prometheus server scraping a local suite, and its HTTP query API.

The binary is Prometheus itself (Debian's `prometheus` package, or any release's): the
dashboard check asks it exactly the PromQL the Grafana dashboard asks in a cluster, over
series scraped from the running services, and loads the alert rules as the cluster does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

READY_TIMEOUT_S = 30.0
SCRAPE_INTERVAL_S = 1.0


class PrometheusError(RuntimeError):
    """The Prometheus binary is missing, did not start, or refused a query; the message says which."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


def scrape_config(targets: Mapping[str, int], rules: Path) -> dict[str, Any]:
    """One scrape job over every service's metrics port on the loopback, each target labelled `app`
    with its service's name, as the cluster's pod relabelling labels them (k8s/components/observability)."""
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S:g}s",
        },
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "recsys",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"app": name}}
                    for name, port in sorted(targets.items())
                ],
            }
        ],
    }


class Prometheus:
    """Runs `binary` on `port` with a fresh data folder until the context exits."""

    def __init__(self, binary: str, port: int, targets: Mapping[str, int], rules: Path) -> None:
        found = shutil.which(binary)
        if found is None:
            raise PrometheusError(
                f"no Prometheus binary {binary!r} on PATH: install one (Debian: apt-get install "
                "prometheus; or a release from prometheus.io) and pass --prometheus PATH"
            )
        self.binary = found
        self.address = f"http://127.0.0.1:{port}"
        self.folder = Path(tempfile.mkdtemp(prefix="recsys-prometheus-"))
        shutil.copy(rules, self.folder / "alerts.yaml")
        config = scrape_config(targets, self.folder / "alerts.yaml")
        # JSON is YAML: no YAML library is needed in the images that ship this tool.
        (self.folder / "prometheus.yaml").write_text(json.dumps(config, indent=2))
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.folder / 'prometheus.yaml'}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                tail = (self.folder / "prometheus.log").read_text(errors="replace")[-2000:]
                raise PrometheusError(f"Prometheus did not become ready:\n{tail}")
            time.sleep(0.2)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def _get(self, path: str, **params: str) -> Any:
        url = f"{self.address}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('error', answer)}")
        return answer["data"]

    def version(self) -> str:
        return str(self._get("/api/v1/status/buildinfo")["version"])

    def query(self, expr: str) -> list[Series]:
        """The instant vector (or scalar) `expr` evaluates to now."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [Series({}, float(data["result"][1]))]
        return [Series(item["metric"], float(item["value"][1])) for item in data["result"]]

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its name, health and last error."""
        groups = self._get("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def targets_up(self) -> dict[str, bool]:
        """Each scraped target's `app` label and whether its last scrape succeeded."""
        active = self._get("/api/v1/targets")["activeTargets"]
        return {
            target["labels"].get("app", target["scrapeUrl"]): target["health"] == "up" for target in active
        }
