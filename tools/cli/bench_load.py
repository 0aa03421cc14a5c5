"""`recsys bench-load`: the suite and a null pipeline of the same shape under one load generator."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ml.artifacts import CANDIDATE_GAN
from pipelines.progress import console, errors
from shared.auth import bearer_metadata, ensure_key_file, read_key
from shared.config import MODEL_SERVER, SERVICES, Settings
from shared.models import latest_version
from tools.bench.cpu import cpu_snapshot, cpu_used
from tools.bench.load import Caller, PhaseResult, closed_loop, open_loop
from tools.bench.null_pipeline import null_pipeline
from tools.bench.stages import generated_totals, reused_share, stage_ms, stage_totals
from tools.cli.common import settings
from tools.cli.supervisor import Suite, SuiteError, free_ports_env
from tools.importers import online_retail
from tools.provenance import commit, provenance_line, write_result

SUITE = "suite"
NULL = "null pipeline"
WARM_UP_CALLS = 100
SUITE_READY_S = 300.0
SHOPPER_EVENTS = 50_000  # the shoppers asked for: every buyer in the first lines of the demo data


def trained(config: Settings) -> bool:
    """Whether every served model and the candidate GAN have a version under the home."""
    from pipelines import train as pipeline  # here: `recsys --help` does not load the model code

    models = [pipeline.TRAINERS[name].model for name in pipeline.SERVED]
    return latest_version(config.model_dir, CANDIDATE_GAN) is not None and all(
        (config.model_dir / model).exists() for model in models
    )


Run = Callable[[Caller, PhaseResult], Awaitable[None]]


class Targets:
    """The suite and the null pipeline, with the processes whose CPU time each phase reads."""

    def __init__(
        self,
        suite: Suite,
        suite_address: str,
        metrics_ports: dict[str, int],
        null_address: str,
        null_pids: list[int],
    ):
        self.suite_pids = {name: process.pid for name, process in suite.processes.items()}
        self.suite_credentials = suite.credentials
        self.null_pids = {f"null {n}": pid for n, pid in enumerate(null_pids)}
        self.addresses = {SUITE: suite_address, NULL: null_address}
        self.metrics_ports = metrics_ports

    async def phase(
        self, callers: dict[str, Caller], name: str, offered: float | None, run: Run
    ) -> list[PhaseResult]:
        results = []
        for target, caller in callers.items():
            pids = self.suite_pids if target == SUITE else self.null_pids
            result = PhaseResult(target, name, offered)
            cpu_before = cpu_snapshot(pids)
            suite = target == SUITE
            stages_before = stage_totals(self.metrics_ports["gateway"]) if suite else {}
            generated_before = generated_totals(self.metrics_ports["candidates"]) if suite else {}
            await run(caller, result)
            result.cpu_s = cpu_used(cpu_before, cpu_snapshot(pids))
            if suite:
                result.stage_ms = stage_ms(stages_before, stage_totals(self.metrics_ports["gateway"]))
                result.reused_share = reused_share(
                    generated_before, generated_totals(self.metrics_ports["candidates"])
                )
            results.append(result)
            console.print(
                f"{target:>13} · {name:>13}: {result.achieved_rps:7.1f} rps, p50 {result.p50:7.1f} ms, "
                f"p99 {result.quantile(0.99):7.1f} ms, errors {sum(result.errors.values())}, "
                f"degraded {result.degraded_share:.1%}"
            )
        return results


async def _drive(
    targets: Targets,
    key: str,
    users: list[str],
    count: int,
    sequential: int,
    rates: list[float],
    duration_s: float,
) -> list[PhaseResult]:
    callers = {
        SUITE: Caller(
            targets.addresses[SUITE], bearer_metadata(key), users, count, targets.suite_credentials
        ),
        NULL: Caller(targets.addresses[NULL], (), users, count),
    }
    try:
        for caller in callers.values():  # warm-up: connections, caches, database pages
            await closed_loop(caller, PhaseResult("warm-up", "warm-up", None), WARM_UP_CALLS)
        results = await targets.phase(
            callers, SEQUENTIAL, None, lambda caller, result: closed_loop(caller, result, sequential)
        )
        for rate in rates:
            results += await targets.phase(
                callers,
                f"{rate:g} rps",
                rate,
                lambda caller, result, rate=rate: open_loop(caller, result, rate, duration_s),
            )
        return results
    finally:
        for caller in callers.values():
            await caller.close()


def _best(results: list[PhaseResult], target: str) -> PhaseResult:
    """The target's phase with the most undegraded answers per second."""
    return max((r for r in results if r.target == target), key=lambda r: r.goodput_rps)


SEQUENTIAL = "concurrency 1"


def _cpu_per_call(results: list[PhaseResult], target: str, phase: str = "") -> dict[str, float]:
    """CPU milliseconds per answered call of each process, over the target's `phase` (every phase
    when empty: calls that failed under overload cost CPU too, charged to those answered)."""
    mine = [r for r in results if r.target == target and (not phase or r.phase == phase)]
    calls = max(sum(r.answered for r in mine), 1)
    names = mine[0].cpu_s
    return {name: 1000 * sum(r.cpu_s[name] for r in mine) / calls for name in names}


def _markdown(report: dict[str, object], results: list[PhaseResult]) -> str:
    lines = [
        "# Load: the suite beside a null pipeline of the same shape",
        "",
        provenance_line(
            report,
            f"{report['duration_s']} s per open-loop phase",
            f"{report['shoppers']} shoppers, Recommend(count={report['count']})",
        ),
        "",
        "| target | phase | answered rps | undegraded rps | p50 ms | p99 ms | p99.9 ms | errors | degraded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.target} | {r.phase} | {r.achieved_rps:.1f} | {r.goodput_rps:.1f} | {r.p50:.1f} | "
            f"{r.quantile(0.99):.1f} | "
            f"{r.quantile(0.999):.1f} | {r.errors_text} | {r.degraded_share:.1%} |"
        )
    lines += [
        "",
        "Best throughput of undegraded answers (goodput), suite / null pipeline: "
        f"**{report['best_ratio']:.3f}**",
        "",
    ]
    lines += [
        "CPU milliseconds per Recommend of each process: at concurrency 1, and per answered call over",
        "every phase (calls that failed under overload cost CPU too)",
        "",
        "| process | at concurrency 1 | every phase |",
        "|---|---|---|",
    ]
    for target in (SUITE, NULL):
        sequential, overall = _cpu_per_call(results, target, SEQUENTIAL), _cpu_per_call(results, target)
        for name, ms in sequential.items():
            lines.append(f"| {target}: {name} | {ms:.2f} | {overall[name]:.2f} |")
        lines.append(f"| {target}: total | {sum(sequential.values()):.2f} | {sum(overall.values()):.2f} |")
    stages = sorted({stage for r in results for stage in r.stage_ms})
    lines += [
        "",
        "The suite's gateway: mean ms waited per stage call; and the share of the generator's lists the",
        "candidates service reused for a history asked before (the load repeats its shoppers, with no",
        "new events between their calls)",
        "",
    ]
    lines += [
        "| phase | " + " | ".join(stages) + " | generated lists reused |",
        "|---|" + "---|" * (len(stages) + 1),
    ]
    for r in results:
        if r.target == SUITE:
            waits = " | ".join(f"{r.stage_ms.get(s, 0):.2f}" for s in stages)
            reused = "-" if r.reused_share is None else f"{r.reused_share:.0%}"
            lines.append(f"| {r.phase} | {waits} | {reused} |")
    return "\n".join(lines) + "\n"


def _print(results: list[PhaseResult]) -> None:
    table = Table(title="Recommend under load", title_justify="left")
    for column in (
        "target",
        "phase",
        "rps",
        "undegraded rps",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "degraded",
    ):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.target,
            r.phase,
            f"{r.achieved_rps:.1f}",
            f"{r.goodput_rps:.1f}",
            f"{r.p50:.1f}",
            f"{r.quantile(0.99):.1f}",
            f"{r.quantile(0.999):.1f}",
            r.errors_text,
            f"{r.degraded_share:.1%}",
        )
    console.print(table)
    for target in (SUITE, NULL):
        per_call = _cpu_per_call(results, target, SEQUENTIAL)
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in per_call.items())
        console.print(
            f"CPU ms per Recommend at concurrency 1, {target}: {sum(per_call.values()):.1f} ({parts})"
        )


def bench_load(
    duration: Annotated[float, typer.Option(help="Seconds of each open-loop phase.")] = 10.0,
    rates: Annotated[
        str, typer.Option(help="Offered rates of the open-loop phases, requests/s.")
    ] = "50,100,200,400,800",
    sequential: Annotated[int, typer.Option(help="Calls of the concurrency-1 phase.")] = 300,
    count: Annotated[int, typer.Option(help="Items per Recommend.")] = 10,
    shoppers: Annotated[
        int,
        typer.Option(
            min=0,
            help="How many of the demo data's shoppers the load asks for, in turn (0: every one, 1,373). "
            "Fewer means each is asked again sooner, with no new events between: what reuse per "
            "shopper saves shows from the first phase.",
        ),
    ] = 0,
    out: Annotated[Path | None, typer.Option(help="Write load.md and load.json into this folder.")] = None,
) -> None:
    """The whole suite and a null pipeline of the same shape under one load generator: throughput,
    latency percentiles and CPU milliseconds per Recommend of every process.

    It starts the suite (demo data, candidate GAN, learned ranker, bandit) and a null pipeline of the
    same shape (a gateway calling four stages in turn, 4 KB replies, no work), each on free ports,
    driven by one generator: concurrency 1, then each offered rate open-loop (calls due at a constant
    rate, latency counted from when each was due). Prints achieved rps, p50/p99/p99.9, errors by
    code and the degraded share of each phase, the ratio of best throughputs, the CPU milliseconds
    per Recommend of every process and the gateway's time per stage.

    Needs the trained models of RECSYS_HOME (`make run` trains them on first start); a suite already
    running there keeps running, and the benchmark's own suite shares its state.
    """
    offered = [float(rate) for rate in rates.split(",") if rate.strip()]
    base = settings()
    if not trained(base):
        errors.print(
            f"[red]no trained models in {base.model_dir}[/red]: run `make run` once (it imports the demo "
            "data and trains every model, the candidate GAN included), then stop it"
        )
        raise typer.Exit(1)
    ports = free_ports_env()
    config = base.overriding(**ports, RECSYS_CANDIDATES_GAN="1")
    ensure_key_file(config.api_key_file)
    users = sorted({e.user_id for e in online_retail.read_events(online_retail.DEFAULT_PATH, SHOPPER_EVENTS)})
    users = users[:shoppers] if shoppers > 0 else users
    suite = Suite(config)
    suite.start(ports)
    try:
        suite.wait_ready(timeout=SUITE_READY_S, only=(MODEL_SERVER, *SERVICES))
        with null_pipeline() as (null_address, null_processes):
            targets = Targets(
                suite,
                config.addresses["gateway"],
                config.metrics_ports,
                null_address,
                [p.pid for p in null_processes],
            )
            results = asyncio.run(
                _drive(targets, read_key(config), users, count, sequential, offered, duration)
            )
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        suite.stop()
    _print(results)
    ratio = _best(results, SUITE).goodput_rps / max(_best(results, NULL).goodput_rps, 1e-9)
    console.print(f"best throughput of undegraded answers, suite / null pipeline: {ratio:.3f}")
    command = (
        f"recsys bench-load --duration {duration:g} --rates {rates} --sequential {sequential} --count {count}"
        + (f" --shoppers {shoppers}" if shoppers > 0 else "")
    )
    console.print(f"reproduce: {command}  (or: make bench-load)")
    if out is not None:
        report = {
            "command": command,
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "duration_s": duration,
            "shoppers": len(users),
            "count": count,
            "best_ratio": ratio,
            "cpu_ms_per_call_at_concurrency_1": {
                t: _cpu_per_call(results, t, SEQUENTIAL) for t in (SUITE, NULL)
            },
            "cpu_ms_per_answered_call": {t: _cpu_per_call(results, t) for t in (SUITE, NULL)},
            "phases": [r.summary() for r in results],
        }
        table, data = write_result(out, "load", report, _markdown(report, results))
        console.print(f"written: {table}, {data}")
