"""`recsys bench-scale`: a simulated shop of any size imported, trained and served on PostgreSQL,
with the time and peak memory of every step."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from pipelines.progress import console, errors
from shared.auth import bearer_metadata, ensure_key_file, read_key
from tools.bench.load import Caller, PhaseResult, open_loop
from tools.bench.steps import Step, peak_rss_mb, run_step
from tools.cli.common import settings
from tools.cli.supervisor import Suite, SuiteError, free_ports_env
from tools.provenance import commit, provenance_line, write_result

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SUITE_READY_S = 1800.0  # loading a large catalog's models takes a while
SERVED_SHOPPERS = 2000  # the shoppers the serving step asks for, the first in the events file
DEMO_LOAD = Path("docs/results/load.json")


def _schema_url(database: str, schema: str) -> str:
    """The database URL with every connection's search path set to `schema`."""
    joiner = "&" if "?" in database else "?"
    return f"{database}{joiner}options=-csearch_path%3D{schema}"


def _schema(database: str, schema: str, create: bool) -> None:
    engine = sa.create_engine(database)
    with engine.begin() as connection:
        if create:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        else:
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def _shoppers(events: Path, count: int) -> list[str]:
    """The first `count` distinct shoppers of the synthesized events (read until found)."""
    found: dict[str, None] = {}
    with gzip.open(events, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            found.setdefault(row["user_id"], None)
            if len(found) >= count:
                break
    return list(found)


def _demo_p99(rate: float) -> float | None:
    """The suite's p99 at `rate` in the committed demo load run, if there is one."""
    if not DEMO_LOAD.exists():
        return None
    phases = json.loads(DEMO_LOAD.read_text())["phases"]
    wanted = f"{rate:g} rps"
    return next((p["p99_ms"] for p in phases if p["target"] == "suite" and p["phase"] == wanted), None)


async def _serve(suite: Suite, users: list[str], rate: float, duration: float) -> PhaseResult:
    config = suite.settings
    metadata = bearer_metadata(read_key(config))
    caller = Caller(config.addresses["gateway"], metadata, users, 10, suite.credentials)
    try:
        warm = PhaseResult("warm-up", "warm-up", None)
        await open_loop(caller, warm, min(rate, 20.0), 5.0)
        result = PhaseResult("suite", f"{rate:g} rps", rate)
        await open_loop(caller, result, rate, duration)
        return result
    finally:
        await caller.close()


def _start(ports: dict[str, str], variables: dict[str, str]) -> tuple[Suite, float]:
    """The suite started and ready, with the seconds that took (loading every published model)."""
    started = time.monotonic()
    suite = Suite(settings().overriding(**ports, **variables))
    suite.start({**ports, **variables})
    try:
        suite.wait_ready(timeout=SUITE_READY_S, only=suite.names)
    except SuiteError:
        suite.stop()
        raise
    return suite, time.monotonic() - started


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _markdown(report: dict) -> str:
    lines = [
        "# Scale: a simulated shop imported, trained and served on PostgreSQL",
        "",
        provenance_line(report),
        "",
        f"{report['shoppers']:,} shoppers x {report['items']:,} items x {report['days']} days (seed "
        f"{report['seed']}): {report['events']:,} events, training budget {report['train_minutes']} minutes",
        "",
        "| step | wall time | peak memory of the step's process |",
        "|---|---|---|",
    ]
    for step in report["steps"]:
        memory = f"{step['peak_mb'] / 1024:.2f} GB" if step["peak_mb"] else "—"
        failed = "" if step["returncode"] == 0 else f" (exit code {step['returncode']})"
        lines.append(f"| {step['name']}{failed} | {_duration(step['seconds'])} | {memory} |")
    serving = report.get("serving")
    if serving:
        demo = report.get("demo_p99_ms")
        lines += [
            "",
            f"Serving, open loop at {serving['offered_rps']:g} rps for {report['duration_s']:g} s "
            f"({report['served_shoppers']:,} of the shoppers, Recommend(count=10)): answered "
            f"{serving['achieved_rps']:.1f} rps, p50 {serving['p50_ms']:.1f} ms, "
            f"p99 {serving['p99_ms']:.1f} ms, "
            f"errors {serving['errors'] or 0}, degraded {serving['degraded_share']:.1%}"
            + (f"; the demo data's p99 at the same rate: {demo:.1f} ms ({DEMO_LOAD})" if demo else ""),
        ]
    lines += ["", "Peak memory of each service process over the whole run:", ""]
    lines += ["| process | peak memory |", "|---|---|"]
    for name, mb in report["services_peak_mb"].items():
        lines.append(f"| {name} | {mb:,.0f} MB |")
    return "\n".join(lines) + "\n"


def bench_scale(
    shoppers: Annotated[int, typer.Option(help="Simulated shoppers.")] = 1_000_000,
    items: Annotated[int, typer.Option(help="Simulated items.")] = 100_000,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 30,
    seed: Annotated[int, typer.Option(help="The simulator's seed.")] = 7,
    rate: Annotated[
        float, typer.Option(help="Offered Recommend rate of the serving step, requests/s.")
    ] = 200.0,
    duration: Annotated[float, typer.Option(help="Seconds of the serving step.")] = 60.0,
    train_minutes: Annotated[int, typer.Option(help="RECSYS_TRAIN_MAX_MINUTES of the training step.")] = 60,
    database: Annotated[
        str, typer.Option(help="PostgreSQL database; the run works in a schema of its own and drops it.")
    ] = DEFAULT_DATABASE,
    work: Annotated[Path, typer.Option(help="Folder for the data, models and logs of the run.")] = Path(
        "var/scale"
    ),
    keep: Annotated[bool, typer.Option(help="Keep the run's schema and folder afterwards.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write scale.md and scale.json into this folder.")] = None,
) -> None:
    """A simulated shop imported the documented way into a fresh suite on PostgreSQL, trained with
    `recsys train all`, then served at a constant offered rate; prints each step's wall time and
    peak memory, and every service's.

    Steps: `recsys data synth`, `recsys up` (no models yet), `recsys data import csv`, `recsys train
    all` (within --train-minutes), the suite restarted with every model and the candidate GAN, and
    --duration seconds of Recommend at --rate. The defaults are the million-shopper run (about 40
    million events: hours on 2 cores); smaller shops show the same steps. Not part of `make test`.
    """
    work = work.resolve()
    if work.exists() and any(work.iterdir()):
        errors.print(f"[red]{work} is not empty[/red]: remove it or pass another --work folder")
        raise typer.Exit(2)
    home, data = work / "home", work / "data"
    home.mkdir(parents=True)
    schema = f"bench_scale_{int(time.time())}"
    _schema(database, schema, create=True)
    ports = free_ports_env()
    variables = {
        "RECSYS_HOME": str(home),
        "RECSYS_DEMO": "0",
        "RECSYS_DATABASE_URL": _schema_url(database, schema),
        "RECSYS_TRAIN_MAX_MINUTES": str(train_minutes),
    }
    env = {**os.environ, **ports, **variables}
    ensure_key_file(settings().overriding(**ports, **variables).api_key_file)
    recsys = [str(Path(sys.executable).with_name("recsys"))]  # the command of this environment
    steps: list[Step] = []
    services_peak: dict[str, float] = {}
    serving: PhaseResult | None = None

    def note(step: Step) -> Step:
        steps.append(step)
        console.print(f"[bold]{step.name}[/bold]: {_duration(step.seconds)}, peak {step.peak_mb:,.0f} MB")
        return step

    def remember_peaks(suite: Suite) -> None:
        for name, process in suite.processes.items():
            services_peak[name] = max(services_peak.get(name, 0.0), peak_rss_mb(process.pid))

    try:
        synth = [*recsys, "data", "synth", "--shoppers", str(shoppers), "--items", str(items)]
        synth += ["--days", str(days), "--seed", str(seed), "--out", str(data)]
        if note(run_step("synthesize", synth, env)).ok:
            suite, _ = _start(ports, variables)
            try:
                imported = note(run_step("import", [*recsys, "data", "import", "csv", str(data)], env))
                remember_peaks(suite)
                trained = imported.ok and note(run_step("train all", [*recsys, "train", "all"], env)).ok
                remember_peaks(suite)
            finally:
                suite.stop()
            if trained:
                suite, seconds = _start(ports, {**variables, "RECSYS_CANDIDATES_GAN": "1"})
                note(Step("start with every model", seconds, 0.0, 0))
                try:
                    users = _shoppers(data / "events.csv.gz", SERVED_SHOPPERS)
                    serving = asyncio.run(_serve(suite, users, rate, duration))
                    remember_peaks(suite)
                finally:
                    suite.stop()
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        truth = json.loads((data / "truth.json").read_text()) if (data / "truth.json").exists() else {}
        if not keep:
            _schema(database, schema, create=False)
            shutil.rmtree(work, ignore_errors=True)
    command = (
        f"recsys bench-scale --shoppers {shoppers} --items {items} --days {days} --seed {seed} "
        f"--rate {rate:g} --duration {duration:g} --train-minutes {train_minutes}"
    )
    report = {
        "command": command,
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "shoppers": shoppers,
        "items": items,
        "days": days,
        "seed": seed,
        "events": truth.get("events", 0),
        "train_minutes": train_minutes,
        "duration_s": duration,
        "steps": [step.summary() for step in steps],
        "serving": serving.summary() if serving else None,
        "served_shoppers": min(shoppers, SERVED_SHOPPERS),
        "demo_p99_ms": _demo_p99(rate),
        "services_peak_mb": {name: round(mb, 1) for name, mb in services_peak.items()},
    }
    console.print(_markdown(report))
    console.print(f"reproduce: {command}  (or: make bench-scale)")
    if out is not None:
        table, data_file = write_result(out, "scale", report, _markdown(report))
        console.print(f"written: {table}, {data_file}")
    if not all(step.ok for step in steps) or serving is None:
        raise typer.Exit(1)
