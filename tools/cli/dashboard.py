"""`recsys dashboard-check`: every panel of the Grafana dashboard asked of a real Prometheus that
scrapes a running suite under a short, mixed load; prints which panels draw data and whether the
alert rules load, and writes docs/results/dashboard.*."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.progress import console, errors
from shared.config import MODEL_SERVER, SERVICES, Settings
from shared.tls import channel_credentials
from tools.cli.bench_load import SHOPPER_EVENTS, SUITE_READY_S, trained
from tools.cli.common import settings
from tools.cli.scratch import copy_state, keys_file, scratch_variables, sqlite_only
from tools.cli.supervisor import Suite, SuiteError, free_port, free_ports_env
from tools.importers import online_retail
from tools.observability.panels import ALERTS, DASHBOARD, PanelResult, dashboard_panels, evaluate_panels
from tools.observability.prometheus import SCRAPE_INTERVAL_S, Prometheus, PrometheusError
from tools.observability.traffic import Traffic, drive
from tools.provenance import commit

TARGETS_UP_S = 30.0
# After the load: two scrapes and a rule evaluation, so the last calls are in every series.
SETTLE_S = 3 * SCRAPE_INTERVAL_S


def dashboard_check(
    prometheus: Annotated[
        str, typer.Option(help="The Prometheus binary (Debian: apt-get install prometheus).")
    ] = "prometheus",
    seconds: Annotated[float, typer.Option(help="How long the mixed load runs.")] = 60.0,
    rate: Annotated[float, typer.Option(help="Steady Recommends per second beside the other calls.")] = 5.0,
    out: Annotated[
        Path | None, typer.Option(help="Write dashboard.md and dashboard.json into this folder.")
    ] = None,
) -> None:
    """Start a throwaway suite on a copy of the trained local state (`make run` once first) and a
    real Prometheus scraping every process each second with the alert rules loaded; drive SECONDS
    of Recommends, clicks, purchases, carts, new shoppers and a push campaign's first shoppers;
    then ask Prometheus every query of k8s/components/observability/config/recsys-dashboard.json.
    Exits 1 when a panel draws nothing or a rule does not load."""
    base = settings()
    if not trained(base):
        errors.print(f"[red]no trained models in {base.model_dir}[/red]: run `make run` once, then stop it")
        raise typer.Exit(1)
    elsewhere = sqlite_only(base)
    if elsewhere:
        errors.print(
            f"[red]{', '.join(elsewhere)} keep their state outside SQLite[/red]: the check runs on a copy "
            "of the local SQLite state; unset RECSYS_DATABASE_URL and RECSYS_<SERVICE>_DATABASE_URL"
        )
        raise typer.Exit(2)
    home = Path(tempfile.mkdtemp(prefix="recsys-dashboard-"))
    started = time.monotonic()
    try:
        report = _run(base, home, prometheus, seconds, rate)
    except (SuiteError, PrometheusError) as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - started)
    report["command"] = f"recsys dashboard-check --seconds {seconds:g} --rate {rate:g}"
    _print(report)
    console.print(f"reproduce: {report['command']}  (or: make dashboard-check)")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "dashboard.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "dashboard.md").write_text(_markdown(report))
        console.print(f"written: {out / 'dashboard.md'}, {out / 'dashboard.json'}")
    if not report["all_panels_have_data"] or not report["all_rules_healthy"]:
        raise typer.Exit(1)


def _run(base: Settings, home: Path, binary: str, seconds: float, rate: float) -> dict[str, Any]:
    copy_state(base, home)
    keys = keys_file(home)
    ports = free_ports_env()
    variables = scratch_variables(home, ports)
    config = base.overriding(**variables)
    users = sorted({e.user_id for e in online_retail.read_events(online_retail.DEFAULT_PATH, SHOPPER_EVENTS)})
    suite = Suite(config)
    suite.start(variables)
    try:
        console.print(f"suite on a copy of {base.home} in {home}; waiting for every process")
        suite.wait_ready(timeout=SUITE_READY_S, only=(MODEL_SERVER, *SERVICES))
        targets = {name: int(ports[f"RECSYS_{name.upper()}_METRICS_PORT"]) for name in suite.names}
        with Prometheus(binary, free_port(), targets, ALERTS) as server:
            _wait_targets_up(server)
            console.print(
                f"Prometheus {server.version()} scraping {len(targets)} processes; {seconds:g}s of load"
            )
            traffic = asyncio.run(
                drive(
                    config.addresses["gateway"],
                    channel_credentials(config, "trainer"),
                    keys["admin"],
                    users,
                    seconds,
                    rate,
                )
            )
            time.sleep(SETTLE_S)
            panels = evaluate_panels(server, dashboard_panels())
            rules = server.rules()
            version = server.version()
    finally:
        suite.stop()
    return _report(panels, rules, traffic, version)


def _wait_targets_up(server: Prometheus) -> None:
    deadline = time.monotonic() + TARGETS_UP_S
    while True:
        up = server.targets_up()
        if up and all(up.values()):
            return
        if time.monotonic() > deadline:
            down = sorted(name for name, ok in up.items() if not ok)
            raise SuiteError(
                f"Prometheus could not scrape {', '.join(down) or 'any target'} within {TARGETS_UP_S:g}s"
            )
        time.sleep(SCRAPE_INTERVAL_S)


def _report(
    panels: list[PanelResult], rules: list[dict[str, Any]], traffic: Traffic, version: str
) -> dict[str, Any]:
    return {
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "prometheus": version,
        "dashboard": str(DASHBOARD.relative_to(DASHBOARD.parents[4])),
        "traffic": dict(traffic.sent),
        "failed_calls": dict(traffic.failed),
        "panels": [
            {
                "id": result.panel.id,
                "title": result.panel.title,
                "has_data": result.has_data,
                "queries": [
                    {
                        "expr": query.expr,
                        "series": query.series,
                        "finite": query.finite,
                        "sample": query.sample,
                        "error": query.error,
                    }
                    for query in result.queries
                ],
            }
            for result in panels
        ],
        "rules": [
            {"name": rule["name"], "health": rule["health"], "error": rule.get("lastError", "")}
            for rule in rules
        ],
        "all_panels_have_data": all(result.has_data for result in panels),
        "all_rules_healthy": bool(rules) and all(rule["health"] == "ok" for rule in rules),
    }


def _print(report: dict[str, Any]) -> None:
    table = Table(title="dashboard panels against a live Prometheus", title_justify="left")
    for column in ("id", "panel", "series per query", "a value drawn", "data"):
        table.add_column(column)
    for panel in report["panels"]:
        queries = panel["queries"]
        table.add_row(
            str(panel["id"]),
            panel["title"],
            " / ".join(str(q["series"]) for q in queries),
            queries[0]["sample"] or queries[0]["error"][:60],
            "yes" if panel["has_data"] else "[red]no[/red]",
        )
    console.print(table)
    unhealthy = [rule for rule in report["rules"] if rule["health"] != "ok"]
    console.print(
        f"alert rules loaded: {len(report['rules'])}, unhealthy: {len(unhealthy)}"
        + "".join(f"\n  {rule['name']}: {rule['error']}" for rule in unhealthy)
    )
    console.print(f"traffic: {report['traffic']}; failed calls: {report['failed_calls'] or 'none'}")


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The Grafana dashboard against a live Prometheus",
        "",
        f"Command: `{report['command']}` (`make dashboard-check`) · commit {report['commit']} · "
        f"{report['date']} · {report['cpus']} CPUs · Prometheus {report['prometheus']} · "
        f"{report['seconds']} s",
        "",
        f"Every query of `{report['dashboard']}`, asked of a Prometheus that scraped each process of a "
        "throwaway suite every second during the load below.",
        "",
        "| id | panel | series per query | a value drawn | data |",
        "|---|---|---|---|---|",
    ]
    for panel in report["panels"]:
        queries = panel["queries"]
        series = " / ".join(str(q["series"]) for q in queries)
        sample = queries[0]["sample"].replace("|", "\\|") or queries[0]["error"]
        drawn = "yes" if panel["has_data"] else "**no**"
        lines.append(f"| {panel['id']} | {panel['title']} | {series} | `{sample}` | {drawn} |")
    unhealthy = [rule for rule in report["rules"] if rule["health"] != "ok"]
    lines += [
        "",
        f"Alert rules loaded from `alerts.yaml`: {len(report['rules'])}, unhealthy: {len(unhealthy)}.",
        "",
        "Load: " + ", ".join(f"{kind} {n:,}" for kind, n in report["traffic"].items()) + ".",
        f"Failed calls: {report['failed_calls'] or 'none'}.",
        "",
    ]
    return "\n".join(lines)
