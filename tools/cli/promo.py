"""`recsys promo`: coupons and activity invitations within a budget, aimed by uplift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ml.promotions.allocate import LIKELY_BUYERS_BASELINE, UPLIFT
from pipelines.progress import console, progress_bar
from tools.evaluation.promotions import CEILING, COMPARED, Setup, run_seed, summarize
from tools.provenance import commit, write_result

promo_app = typer.Typer(
    help="Promotions: which shoppers receive which coupon or activity, within a budget.", no_args_is_help=True
)


@promo_app.callback()
def promo() -> None:
    """Promotions: which shoppers receive which coupon or activity, within a budget."""


@promo_app.command()
def simulate(
    seeds: Annotated[int, typer.Option(help="Simulated shops (seeds 0..N-1).", min=1)] = 3,
    shoppers: Annotated[int, typer.Option(help="Shoppers per shop.", min=500)] = 10_000,
    budget: Annotated[float, typer.Option(help="The budget of the compared plans.", min=1.0)] = 2000.0,
    trial_budget: Annotated[
        float,
        typer.Option(help="The budget of the first, randomized plan the uplift model learns from.", min=1.0),
    ] = 20_000.0,
    out: Annotated[
        Path | None, typer.Option(help="Write promotions.json and .md here (e.g. docs/results).")
    ] = None,
) -> None:
    """Compare allocations at one budget on simulated shoppers, scored by the simulator's truth.

    Per seed: a randomized first plan (random pairs, half held out) whose outcomes the uplift model
    learns from; then, at --budget under the same rules, random pairs and "most likely buyers"
    (baselines) beside the uplift allocation as the product runs it, and the same allocation given
    the truth's own chances (the ceiling). Prints the incremental margin
    per unit of budget with 95 % intervals, and checks the off-policy estimate against the truth.
    """
    setup = Setup(shoppers=shoppers, budget=budget, trial_budget=trial_budget)
    results = []
    with progress_bar() as bar:
        task = bar.add_task("simulated shops", total=seeds)
        for seed in range(seeds):
            results.append(run_seed(seed, setup))
            bar.advance(task)
    summary = summarize(results, budget)
    command = (
        f"recsys promo simulate --seeds {seeds} --shoppers {shoppers} --budget {budget:g} "
        f"--trial-budget {trial_budget:g}"
    )
    report: dict[str, Any] = {
        "command": command,
        "commit": commit(),
        "seeds": list(range(seeds)),
        "setup": setup.__dict__,
        "allocations": summary,
        "off_policy": [r.off_policy | {"seed": r.seed} for r in results],
        "within_budget": all(r.spent[p] <= budget + 1e-6 for r in results for p in (*COMPARED, CEILING)),
    }
    _print(report)
    if out is not None:
        table, data = write_result(out, "promotions", report, _markdown(report))
        console.print(f"written: {table}, {data}")


def _rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, figures in report["allocations"].items():
        rows.append(
            (
                name,
                f"{figures['margin_per_budget_unit']:+.4f} [{figures['low']:+.4f}, {figures['high']:+.4f}]",
                f"{figures['offers_sent']:.0f}",
                f"{figures['budget_spent']:.1f}",
            )
        )
    return rows


def _verdict(report: dict[str, Any]) -> str:
    uplift, likely = report["allocations"][UPLIFT], report["allocations"][LIKELY_BUYERS_BASELINE]
    apart = uplift["low"] > likely["high"]
    gap = uplift["margin_per_budget_unit"] - likely["margin_per_budget_unit"]
    return (
        f"uplift minus most likely buyers: {gap:+.4f} per budget unit; "
        f"intervals {'do not overlap' if apart else 'overlap'}"
    )


def _print(report: dict[str, Any]) -> None:
    table = Table(
        title=f"incremental margin per unit of budget, {len(report['seeds'])} seeds (95 % interval)",
        title_justify="left",
    )
    for column in ("allocation", "margin per budget unit", "offers sent", "budget spent"):
        table.add_column(column, justify="left" if column == "allocation" else "right")
    for row in _rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(_verdict(report))
    for check in report["off_policy"]:
        console.print(
            f"seed {check['seed']}: uplift policy per offer, off-policy estimate {check['estimated']:+.3f} "
            f"[{check['low']:+.3f}, {check['high']:+.3f}] vs truth {check['true']:+.3f} "
            f"({check['pairs']} logged pairs)"
        )
    console.print(f"every plan within its budget: {report['within_budget']}")
    console.print(f"reproduce: {report['command']}")


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Promotion allocation on simulated shoppers ({len(report['seeds'])} seeds)",
        "",
        f"`{report['command']}` at commit {report['commit']}, seeds {report['seeds']}.",
        "",
        "| allocation | incremental margin per budget unit (95 % interval) | offers sent | budget spent |",
        "|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in _rows(report)),
        "",
        _verdict(report) + ".",
        "",
        "Off-policy check (uplift policy's incremental margin per offer on the trial's pairs, cross-fitted):",
        "",
        "| seed | estimated | 95 % interval | truth | logged pairs |",
        "|---|---|---|---|---|",
        *(
            f"| {c['seed']} | {c['estimated']:+.3f} | [{c['low']:+.3f}, {c['high']:+.3f}] "
            f"| {c['true']:+.3f} | {c['pairs']} |"
            for c in report["off_policy"]
        ),
        "",
    ]
    return "\n".join(lines)
