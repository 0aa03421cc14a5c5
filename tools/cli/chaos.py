"""`recsys chaos`: the suite under faults, fuzzing, overload and wrong credentials, on a copy of the
trained local state; prints each invariant beside its target and writes docs/results/chaos.*."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.progress import console, errors
from shared.authz import IDENTITIES
from shared.config import Settings
from shared.tls import channel_credentials
from tools.chaos import faults
from tools.chaos.load import OK, SteadyLoad
from tools.chaos.overload import overload
from tools.chaos.probes import fuzz, key_matrix, tls_matrix
from tools.cli.bench_load import SUITE_READY_S
from tools.cli.scratch import copyable_state, scratch_suite
from tools.cli.supervisor import Suite, SuiteError, check_health
from tools.provenance import commit, provenance_line, write_result

SETTLE_S = 5.0
REWARDS_WAIT_S = 90.0
RSS_GROWTH_MB = 50.0
# Fuzzed requests sent before the RSS baseline is read: the first requests a process answers after
# its restart load what it loads lazily (60 MB in profile, the same on every run), which is not
# growth that more requests would repeat.
WARM_UP_CALLS = 1_000
# As the Kubernetes base runs it: a lost gateway is a lost replica, and the clients go to the other.
GATEWAY_REPLICAS = 2


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _sqlite_ids(home: Path, service: str, query: str) -> Counter[str]:
    with sqlite3.connect(home / "db" / f"{service}.sqlite") as connection:
        return Counter(row[0] for row in connection.execute(query))


async def _faults_under_load(suite: Suite, load: SteadyLoad, fault_s: float, outage_s: float) -> list[str]:
    """The steady phase, kill -9 and a hang of every process in turn, then the policy's outage."""
    stop_load, stop_supervising = asyncio.Event(), asyncio.Event()
    supervision = faults.Supervision(suite)
    running = [
        asyncio.create_task(load.run(stop_load)),
        asyncio.create_task(supervision.run(stop_supervising)),
    ]
    plan = [("steady", None)]
    for name in suite.names:
        plan += [
            (f"kill -9 {name}", lambda n=name: faults.kill(suite, n, fault_s)),
            (f"hang {name}", lambda n=name: faults.hang(suite, n, fault_s)),
        ]
    plan.append((f"policy down {outage_s:g}s", lambda: faults.outage(supervision, "policy", outage_s)))
    try:
        for phase, fault in plan:
            console.print(f"  {phase}")
            load.phase = phase
            await (fault() if fault else asyncio.sleep(fault_s))
            await _ready_again(suite, phase)
            await asyncio.sleep(SETTLE_S)  # the answers of the recovery count to the fault's phase
    finally:
        stop_load.set()
        await running[0]
        stop_supervising.set()
        await running[1]
    return supervision.said


async def _ready_again(suite: Suite, phase: str) -> None:
    """Until every process answers SERVING again (the supervisor restarts what exited meanwhile)."""
    deadline = time.monotonic() + SUITE_READY_S
    for name in suite.names:
        address = suite.address(name)
        while await asyncio.to_thread(check_health, address, 1.0, "", suite.credentials) != "SERVING":
            if time.monotonic() > deadline:
                raise SuiteError(f"after {phase}: {name} not SERVING within {SUITE_READY_S:g}s")
            await asyncio.sleep(0.2)


def _phase_rows(load: SteadyLoad, deadline_ms: float) -> list[dict[str, Any]]:
    rows = []
    for phase, answers in load.ledger.by_phase().items():
        within = [a for a in answers if a.code == OK and a.latency_ms <= deadline_ms]
        rows.append(
            {
                "phase": phase,
                "calls": len(answers),
                "ok_within_deadline": len(within) / max(1, len(answers)),
                "degraded": sum(a.degraded for a in within) / max(1, len(within)),
                "p99_ms": round(statistics.quantiles([a.latency_ms for a in answers], n=100)[98], 1)
                if len(answers) > 1
                else 0.0,
                "errors": dict(Counter(a.code for a in answers if a.code != OK)),
            }
        )
    return rows


def chaos(
    rate: Annotated[float, typer.Option(help="Recommends per second of the steady load.")] = 10.0,
    deadline_ms: Annotated[float, typer.Option(help="The clients' deadline per Recommend.")] = 300.0,
    fault_s: Annotated[float, typer.Option(help="How long each kill or hang lasts.")] = 10.0,
    outage_s: Annotated[float, typer.Option(help="How long the policy service stays down.")] = 120.0,
    fuzz_calls: Annotated[int, typer.Option(help="Fuzzed requests over every RPC.")] = 10_000,
    overload_factor: Annotated[float, typer.Option(help="Offered load as a multiple of capacity.")] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of the fuzzer.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write chaos.md and chaos.json into this folder.")] = None,
) -> None:
    """Kill, hang, fuzz and overload the suite under steady load; print each invariant beside its target.

    Under steady load, kill -9 and SIGSTOP each process in turn and keep the policy down for
    OUTAGE_S; resend unacknowledged feedback; then fuzz every RPC, refuse every wrong certificate
    and key, and offer OVERLOAD_FACTOR x capacity. Prints each invariant beside its target.

    Runs on a copy of RECSYS_HOME's trained state (`make run` once first), on free ports, with
    the candidate GAN; nothing of the real state is touched. About 9 minutes with the defaults.
    """
    base = copyable_state("chaos")
    home = Path(tempfile.mkdtemp(prefix="recsys-chaos-"))
    started = time.monotonic()
    try:
        report = _run(base, home, rate, deadline_ms, fault_s, outage_s, fuzz_calls, overload_factor, seed)
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - started)
    report["command"] = (
        f"recsys chaos --rate {rate:g} --deadline-ms {deadline_ms:g} --fault-s {fault_s:g} "
        f"--outage-s {outage_s:g} --fuzz-calls {fuzz_calls} --overload-factor {overload_factor:g} "
        f"--seed {seed}"
    )
    _print(report)
    console.print(f"reproduce: {report['command']}  (or: make chaos)")
    if out is not None:
        table, data = write_result(out, "chaos", report, _markdown(report))
        console.print(f"written: {table}, {data}")


def _run(
    base: Settings,
    home: Path,
    rate: float,
    deadline_ms: float,
    fault_s: float,
    outage_s: float,
    fuzz_calls: int,
    overload_factor: float,
    seed: int,
) -> dict[str, Any]:
    with scratch_suite(base, home, "chaos suite", GATEWAY_REPLICAS) as scratch:
        suite, config, keys, users = scratch.suite, scratch.config, scratch.keys, scratch.users
        credentials = {identity: channel_credentials(config, identity) for identity in IDENTITIES}
        load = SteadyLoad(
            suite.gateway_addresses,
            credentials["trainer"],
            keys["admin"],
            users,
            rate,
            deadline_ms / 1000,
        )
        console.print("faults under steady load:")
        said = asyncio.run(_faults_under_load(suite, load, fault_s, outage_s))
        report: dict[str, Any] = {
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "deadline_ms": deadline_ms,
            "phases": _phase_rows(load, deadline_ms),
            "restarts": dict(suite.restarts),
            "gateway_replicas": GATEWAY_REPLICAS,
            "hedged": load.recommend_calls.hedges if load.recommend_calls else 0,
            "failed_over": load.recommend_calls.failovers if load.recommend_calls else 0,
            "supervisor_said": len(said),
        }
        report |= _deliveries(home, load)
        console.print(f"fuzzing {fuzz_calls:,} requests over every RPC (after {WARM_UP_CALLS:,} to warm up)")
        warm_up = fuzz(
            config.addresses, credentials, keys["admin"], WARM_UP_CALLS, seed + 1, with_model_server=True
        )
        pids = {name: suite.processes[name].pid for name in suite.names}
        rss_before = {name: _rss_mb(pid) for name, pid in pids.items()}
        fuzzed = fuzz(config.addresses, credentials, keys["admin"], fuzz_calls, seed, with_model_server=True)
        fuzzed.codes.update(warm_up.codes)
        fuzzed.failures[:0] = warm_up.failures
        fuzzed.calls += warm_up.calls
        crashed = sorted(name for name in suite.names if suite.processes[name].poll() is not None)
        report["fuzz"] = {
            "calls": fuzzed.calls,
            "codes": dict(fuzzed.codes),
            "internal_or_unknown": fuzzed.failures[:20],
            "crashed": crashed,
            "rss_growth_mb": {
                name: round(_rss_mb(pid) - rss_before[name], 1)
                for name, pid in pids.items()
                if name not in crashed
            },
        }
        suite.wait_ready(timeout=SUITE_READY_S, only=suite.names)
        ca = (config.tls_dir / "trainer" / "ca.crt").read_bytes()
        report["tls_matrix"] = dict(tls_matrix(config.addresses, ca, credentials, home / "rogue", True))
        report["key_matrix"] = dict(key_matrix(config.addresses["gateway"], credentials["trainer"], keys))
        console.print(f"overload: {overload_factor:g}x capacity")
        result = asyncio.run(
            overload(
                suite.gateway_addresses,
                credentials["trainer"],
                keys["admin"],
                users,
                overload_factor,
                10.0,
                2.0,
            )
        )
        report["overload"] = {
            "capacity_rps": round(result.capacity.goodput_rps, 1),
            "offered_rps": round(result.offered_rps, 1),
            "goodput_rps": round(result.overload.goodput_rps, 1),
            "goodput_share": round(result.overload.goodput_rps / max(result.capacity.goodput_rps, 1e-9), 3),
            "codes": dict(result.overload.codes),
            "refusal_p50_ms": round(result.overload.refusal_quantile(0.5), 2),
            "refusal_p99_ms": round(result.overload.refusal_quantile(0.99), 2),
            "wakeup_p50_ms": result.wakeup.p50_ms,
            "wakeup_p99_ms": result.wakeup.p99_ms,
            "floor_refused": result.floor.codes.get("RESOURCE_EXHAUSTED", 0),
            "floor_p50_ms": round(result.floor.refusal_quantile(0.5), 2),
            "floor_p99_ms": round(result.floor.refusal_quantile(0.99), 2),
        }
        return report


def _deliveries(home: Path, load: SteadyLoad) -> dict[str, Any]:
    """Acknowledged events against the stored ones, and acknowledged rewards against what the policy
    recorded (waiting for the relay to deliver what an outage held back)."""
    stored = _sqlite_ids(home, "profile", "SELECT event_id FROM profile_events WHERE event_id LIKE 'chaos-%'")
    acknowledged = load.ledger.acknowledged
    deadline = time.monotonic() + REWARDS_WAIT_S
    while True:
        recorded = _sqlite_ids(
            home, "policy", "SELECT event_id FROM policy_rewards WHERE event_id LIKE 'chaos-%'"
        )
        missing = load.ledger.rewards - set(recorded)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    return {
        "events": {
            "acknowledged": len(acknowledged),
            "lost": len(acknowledged - set(stored)),
            "duplicated": sum(1 for count in stored.values() if count > 1),
            "feedback_retries": dict(load.ledger.feedback_failures),
        },
        "rewards": {
            "acknowledged": len(load.ledger.rewards),
            "lost": len(missing),
            "double_counted": sum(1 for count in recorded.values() if count > 1),
        },
    }


def invariants(report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(invariant, target, measured, met) for each line of the issue's table."""
    faulted = [row for row in report["phases"] if row["phase"].startswith(("kill", "hang"))]
    calls = sum(row["calls"] for row in faulted)
    within = sum(row["ok_within_deadline"] * row["calls"] for row in faulted) / max(1, calls)
    worst = min(faulted, key=lambda row: row["ok_within_deadline"]) if faulted else {"phase": "-"}
    events, rewards, fuzzed, over = report["events"], report["rewards"], report["fuzz"], report["overload"]
    bad_codes = fuzzed["codes"].get("INTERNAL", 0) + fuzzed["codes"].get("UNKNOWN", 0)
    growth = (
        max(fuzzed["rss_growth_mb"].items(), key=lambda item: item[1])
        if fuzzed["rss_growth_mb"]
        else ("-", 0)
    )
    return [
        (
            f"Recommends OK within {report['deadline_ms']:g} ms while one process is killed or hung",
            ">= 99.9%",
            f"{within:.2%} of {calls:,} (worst: {worst['phase']})",
            within >= 0.999,
        ),
        (
            "acknowledged events lost / duplicated",
            "0 / 0",
            f"{events['lost']} / {events['duplicated']} of {events['acknowledged']:,}",
            events["lost"] == 0 and events["duplicated"] == 0,
        ),
        (
            "acknowledged rewards lost / double-counted (policy outage included)",
            "0 / 0",
            f"{rewards['lost']} / {rewards['double_counted']} of {rewards['acknowledged']:,}",
            rewards["lost"] == 0 and rewards["double_counted"] == 0,
        ),
        (
            "fuzzed requests: processes crashed, INTERNAL or UNKNOWN answers",
            "0, 0",
            f"{len(fuzzed['crashed'])}, {bad_codes} of {fuzzed['calls']:,}",
            not fuzzed["crashed"] and bad_codes == 0,
        ),
        (
            f"RSS growth per process while fuzzing (after {WARM_UP_CALLS:,} fuzzed requests to warm up)",
            f"< {RSS_GROWTH_MB:g} MB",
            f"{growth[1]:.1f} MB ({growth[0]})",
            growth[1] < RSS_GROWTH_MB,
        ),
        (
            f"goodput at {over['offered_rps']:g} rps offered (capacity {over['capacity_rps']:g})",
            ">= 80% of capacity",
            f"{over['goodput_share']:.0%}",
            over["goodput_share"] >= 0.8,
        ),
        (
            "excess refused with RESOURCE_EXHAUSTED within",
            "< 5 ms",
            f"p50 {over['refusal_p50_ms']:g} ms, p99 {over['refusal_p99_ms']:g} ms "
            f"({over['codes'].get('RESOURCE_EXHAUSTED', 0):,} refused; meanwhile a bare timer in a process "
            f"of its own woke p50 {over['wakeup_p50_ms']:g} ms, p99 {over['wakeup_p99_ms']:g} ms late, "
            f"and a server that does nothing but refuse, called by the same client, took p50 "
            f"{over['floor_p50_ms']:g} ms, p99 {over['floor_p99_ms']:g} ms "
            f"({over['floor_refused']:,} calls))",
            over["codes"].get("RESOURCE_EXHAUSTED", 0) > 0 and over["refusal_p99_ms"] < 5,
        ),
        (
            "internal calls let through without a certificate of an allowed identity",
            "0",
            f"{report['tls_matrix'].get('allowed', 0)} of "
            f"{report['tls_matrix'].get('allowed', 0) + report['tls_matrix'].get('refused', 0):,}",
            report["tls_matrix"].get("allowed", 0) == 0,
        ),
        (
            "successful calls in the key matrix (none, wrong, other scope, over quota)",
            "0",
            ", ".join(f"{case} {count}" for case, count in report["key_matrix"].items()),
            sum(report["key_matrix"].values()) == 0,
        ),
    ]


def _print(report: dict[str, Any]) -> None:
    phases = Table(title="Recommend under faults", title_justify="left")
    for column in (
        "phase",
        "calls",
        f"OK within {report['deadline_ms']:g} ms",
        "degraded",
        "p99 ms",
        "errors",
    ):
        phases.add_column(column)
    for row in report["phases"]:
        errors_text = ", ".join(f"{code} {n}" for code, n in sorted(row["errors"].items())) or "-"
        phases.add_row(
            row["phase"],
            str(row["calls"]),
            f"{row['ok_within_deadline']:.1%}",
            f"{row['degraded']:.1%}",
            f"{row['p99_ms']:g}",
            errors_text,
        )
    console.print(phases)
    table = Table(title="Invariants", title_justify="left")
    for column in ("invariant", "target", "measured", "met"):
        table.add_column(column)
    for invariant, target, measured, met in invariants(report):
        table.add_row(invariant, target, measured, "[green]yes[/green]" if met else "[red]no[/red]")
    console.print(table)
    for method, code, payload in _bugs(report):
        errors.print(
            f"[red]{method} answered {code}[/red] to {payload} (hex; the service's log has the traceback)"
        )


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Chaos: the suite under faults, fuzzing, overload and wrong credentials",
        "",
        provenance_line(report, f"{report['seconds']} s"),
        "",
        "| invariant | target | measured | met |",
        "|---|---|---|---|",
        *(f"| {i} | {t} | {m} | {'yes' if ok else '**no**'} |" for i, t, m, ok in invariants(report)),
        "",
        f"| phase | calls | OK within {report['deadline_ms']:g} ms | degraded | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["phases"]:
        errors_text = ", ".join(f"{code} {n}" for code, n in sorted(row["errors"].items())) or "-"
        lines.append(
            f"| {row['phase']} | {row['calls']} | {row['ok_within_deadline']:.1%} | {row['degraded']:.1%} | "
            f"{row['p99_ms']:g} | {errors_text} |"
        )
    fuzz_codes = ", ".join(f"{code} {n}" for code, n in sorted(report["fuzz"]["codes"].items()))
    lines += [
        "",
        f"Fuzzed answers by code: {fuzz_codes}.",
        f"Restarts by the supervisor: {report['restarts']}.",
        f"The gateway ran as {report['gateway_replicas']} processes; the load's client (shared/replicas.py) "
        f"hedged {report['hedged']} Recommends to the other replica and failed over {report['failed_over']}.",
        "",
    ]
    lines += [f"- {method} answered {code} to `{payload}` (hex)" for method, code, payload in _bugs(report)]
    return "\n".join(lines)


def _bugs(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The fuzzed calls answered INTERNAL or UNKNOWN (the first 20): method, code, request bytes."""
    return [(method, code, payload) for method, code, payload in report["fuzz"]["internal_or_unknown"]]
