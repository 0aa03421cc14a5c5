"""`recsys bench-rpc`: what one hop between the suite's processes costs, apart from the work."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.progress import console
from tools.bench.rpc_stack import VariantCost, measure
from tools.provenance import commit, provenance_line, write_result


def bench_rpc(
    calls: Annotated[int, typer.Option(min=100, help="Calls per variant and round.")] = 3000,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds; each variant's figure is its median.")] = 5,
    concurrency: Annotated[int, typer.Option(min=1, help="Calls in flight at once.")] = 4,
    out: Annotated[Path | None, typer.Option(help="Write rpc-stack.md and rpc-stack.json here.")] = None,
) -> None:
    """What one hop between the suite's processes costs apart from the work: CPU per call of bare
    gRPC against the suite's server stack and client channel, in plaintext and with mutual TLS.

    Three servers in processes of their own answer Rank with an empty reply: one on bare gRPC, two
    on the suite's stack (tracing, access log, metrics, authorization, drain, error mapping), in
    plaintext and with mutual TLS. This process calls each in turn, bare gRPC through a bare
    channel, the others through the suite's client channel (retries, deadline, tracing), and reads
    both sides' CPU time. Needs nothing trained; about a minute with the defaults.
    """
    command = f"recsys bench-rpc --calls {calls} --rounds {rounds} --concurrency {concurrency}"
    console.print(f"{rounds} rounds of {calls:,} calls per variant, {concurrency} in flight")
    costs = measure(calls, rounds, concurrency)
    report = {
        "command": command,
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "variants": [_row(cost, costs[0]) for cost in costs],
    }
    table = Table(title="CPU milliseconds per call (medians over the rounds)")
    for column in ("variant", "caller", "server", "both", "x bare", "wall ms"):
        table.add_column(column)
    for row in report["variants"]:
        table.add_row(
            row["variant"],
            f"{row['client_ms']:.3f}",
            f"{row['server_ms']:.3f}",
            f"{row['total_ms']:.3f}",
            f"{row['times_bare']:.2f}",
            f"{row['wall_ms']:.3f}",
        )
    console.print(table)
    console.print(f"reproduce: {command}  (or: make bench-rpc)")
    if out is not None:
        written = write_result(out, "rpc-stack", report, _markdown(report))
        console.print(f"written: {written[0]}, {written[1]}")


def _row(cost: VariantCost, bare: VariantCost) -> dict[str, Any]:
    return {
        "variant": cost.name,
        "client_ms": round(cost.client_ms, 3),
        "server_ms": round(cost.server_ms, 3),
        "total_ms": round(cost.total_ms, 3),
        "times_bare": round(cost.total_ms / bare.total_ms, 2),
        "wall_ms": round(cost.wall_ms, 3),
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# One hop: bare gRPC against the suite's server stack and client channel",
        "",
        provenance_line(report),
        "",
        "An empty Rank answered by a server in a process of its own; CPU milliseconds per call of the",
        "caller and of the server, the median over the rounds, the variants taken in turn in each round.",
        "",
        "| variant | caller | server | both | x bare | wall ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['variant']} | {row['client_ms']:.3f} | {row['server_ms']:.3f} | {row['total_ms']:.3f} | "
        f"{row['times_bare']:.2f} | {row['wall_ms']:.3f} |"
        for row in report["variants"]
    ]
    return "\n".join(lines) + "\n"
