"""`recsys dashboard-check`: every panel of the Grafana dashboard asked of a real Prometheus that
scrapes a running suite under a short, mixed load; prints which panels draw data and whether the
alert rules load, and writes docs/results/dashboard.*."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.progress import console, errors
from shared.config import Settings
from shared.tls import channel_credentials
from tools.cli.scratch import copyable_state, scratch_suite
from tools.cli.supervisor import SuiteError, free_port
from tools.observability.panels import ALERTS, DASHBOARD, PanelResult, dashboard_panels, evaluate_panels
from tools.observability.prometheus import SCRAPE_INTERVAL_S, Prometheus, PrometheusError
from tools.observability.traffic import Traffic, drive
from tools.provenance import commit, write_result

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
    """Drive a throwaway suite scraped by a real Prometheus and check that every dashboard panel
    draws and every alert rule loads.

    Start a throwaway suite on a copy of the trained local state (`make run` once first) and a
    real Prometheus scraping every process each second with the alert rules loaded; drive SECONDS
    of Recommends, clicks, purchases, carts, new shoppers and a push campaign's first shoppers;
    then ask Prometheus every query of k8s/components/observability/config/recsys-dashboard.json.
    Exits 1 when a panel draws nothing or a rule does not load."""
    base = copyable_state("the check")
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
        table, data = write_result(out, "dashboard", report, _markdown(report))
        console.print(f"written: {table}, {data}")
    if not report["all_panels_have_data"] or not report["all_rules_healthy"]:
        raise typer.Exit(1)


def _run(base: Settings, home: Path, binary: str, seconds: float, rate: float) -> dict[str, Any]:
    with scratch_suite(base, home, "suite") as scratch:
        ports, config = scratch.ports, scratch.config
        targets = {name: int(ports[f"RECSYS_{name.upper()}_METRICS_PORT"]) for name in scratch.suite.names}
        with Prometheus(binary, free_port(), targets, ALERTS) as server:
            _wait_targets_up(server)
            console.print(
                f"Prometheus {server.version()} scraping {len(targets)} processes; {seconds:g}s of load"
            )
            traffic = asyncio.run(
                drive(
                    config.addresses["gateway"],
                    channel_credentials(config, "trainer"),
                    scratch.keys["admin"],
                    scratch.users,
                    seconds,
                    rate,
                )
            )
            time.sleep(SETTLE_S)
            panels = evaluate_panels(server, dashboard_panels())
            rules = server.rules()
            version = server.version()
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
