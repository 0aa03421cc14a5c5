"""`recsys promo`: coupons and activity invitations within a budget, aimed by uplift."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ml.promotions.allocate import LIKELY_BUYERS_BASELINE, UPLIFT
from ml.promotions.uplift import MODEL
from pipelines.progress import console, errors, progress_bar
from recsys.gateway.v1 import gateway_pb2
from services.gateway.settings import read_gateway_settings
from shared.auth import bearer_metadata, read_key
from shared.clients import SuiteClients
from shared.config import load_section
from tools.cli.common import settings, with_clients
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


PLAN_DEADLINE_S = 3600.0  # a plan reads every eligible shopper's profile before it streams
FIELDS = ("user_id", "offer_id", "sent", "propensity", "expected_incremental_margin", "committed", "reason")


def _start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text) if text else datetime.now(UTC)
    except ValueError:
        errors.print(
            f"[red]--start {text!r} is not an ISO date or time (e.g. 2026-12-14 or 2026-12-14T09:00)[/red]"
        )
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@promo_app.command("plan")
def plan(
    offers: Annotated[
        list[str],
        typer.Option(
            "--offer",
            help="An offer's item id (repeatable): a coupon or an activity of the promotion catalog.",
        ),
    ],
    budget: Annotated[
        float,
        typer.Option(
            help="The most the plan may commit (each sent coupon's max_discount, each activity's cost)."
        ),
    ],
    plan_id: Annotated[
        str,
        typer.Option("--plan-id", help="Rerun with the same id to read the same plan again. Default: new."),
    ] = "",
    cap: Annotated[int, typer.Option(help="Most offers per shopper (1-10).")] = 1,
    start: Annotated[
        str, typer.Option(help="When the offers become valid (ISO date or time, UTC; default now).")
    ] = "",
    days: Annotated[float, typer.Option(help="How long they stay valid.", min=0.01)] = 7.0,
    segment: Annotated[str, typer.Option(help="Only this segment's shoppers; empty: everyone.")] = "",
    out: Annotated[Path, typer.Option(help="Where to write the decisions (CSV).")] = Path("promotions.csv"),
) -> None:
    """Ask the gateway which shoppers receive which offers within the budget, and write the decisions.

    Every recipient of an offer gets the offer's own terms; shoppers who opted out of pushes are
    never chosen; a random share of shoppers is held out (sent = false) so that uplift can be learned.
    """
    config = settings()
    key = read_key(config)
    opens = _start(start)
    request = gateway_pb2.PlanPromotionsRequest(
        plan_id=plan_id or f"promo-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        offer_ids=offers,
        budget=budget,
        per_shopper_cap=cap,
        segment=segment,
    )
    request.window_start.FromDatetime(opens)
    request.window_end.FromDatetime(opens + timedelta(days=days))

    async def ask(clients: SuiteClients) -> list[gateway_pb2.PlanPromotionsResponse]:
        stream = clients.gateway.PlanPromotions(
            request, metadata=bearer_metadata(key), timeout=PLAN_DEADLINE_S
        )
        return [decision async for decision in stream]

    with console.status("deciding the plan (reading every eligible shopper's profile)"):
        decisions = with_clients(ask, config)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for d in decisions:
            writer.writerow([getattr(d, name) for name in FIELDS])
    _print_plan(request.plan_id, decisions, budget)
    console.print(f"decisions written to {out}")
    console.print(
        f"read it again: recsys promo plan --plan-id {request.plan_id} "
        + " ".join(f"--offer {o}" for o in offers)
        + f" --budget {budget:g} --cap {cap} --start {opens.isoformat()} --days {days:g}"
        + (f" --segment '{segment}'" if segment else "")
    )


def _print_plan(plan_id: str, decisions: list[gateway_pb2.PlanPromotionsResponse], budget: float) -> None:
    if not decisions:
        console.print(f"plan {plan_id}: no shopper is worth an offer within the budget")
        return
    first = decisions[0]
    sent = Counter(d.offer_id for d in decisions if d.sent)
    held = Counter(d.offer_id for d in decisions if not d.sent)
    table = Table(
        title=f"plan {plan_id} ({first.policy}{', replayed' if first.replayed else ''}): "
        f"committed {decisions[-1].committed:,.2f} of {budget:,.2f}",
        title_justify="left",
    )
    for column in ("offer", "sent", "held out", "expected incremental margin"):
        table.add_column(column, justify="left" if column == "offer" else "right")
    for offer in sorted(set(sent) | set(held)):
        margin = sum(d.expected_incremental_margin for d in decisions if d.sent and d.offer_id == offer)
        table.add_row(offer, str(sent[offer]), str(held[offer]), f"{margin:,.2f}")
    console.print(table)
    for d in [d for d in decisions if d.sent][:3]:
        console.print(f"  {d.user_id} <- {d.offer_id}: {d.reason}")


@promo_app.command("train")
def train() -> None:
    """Learn uplift from the logged plans whose window has ended, and publish the model if, on logs
    it was not fitted on, the offers it would send earn a positive incremental margin.

    Snapshots events and catalog through the APIs (an outcome is a purchase in the offer's category
    during its window) and reads the decisions from the gateway. Until a model is published, plans
    are randomized trials.
    """
    from pipelines.promotions import train_uplift  # here: the other promo commands need no training code
    from pipelines.train import export_snapshot

    config = settings()
    key = read_key(config)
    margin_rate = load_section(config, read_gateway_settings).promotions.margin_rate

    async def gather(clients: SuiteClients) -> tuple:
        snapshot = await export_snapshot(clients, config.snapshot_dir)
        stream = clients.gateway.ExportPromotionDecisions(
            gateway_pb2.ExportPromotionDecisionsRequest(),
            metadata=bearer_metadata(key),
            timeout=PLAN_DEADLINE_S,
        )
        return snapshot, [decision async for decision in stream]

    snapshot, decisions = with_clients(gather, config)
    report = train_uplift(decisions, snapshot, config.model_dir, margin_rate, config.model_versions_kept)
    console.print(
        f"{report.decisions:,} logged decisions of ended plans: {report.sent:,} sent "
        f"({report.bought_sent:,} bought in the window), {report.decisions - report.sent:,} held out "
        f"({report.bought_held_out:,} bought)"
    )
    if report.estimate is not None:
        e = report.estimate
        console.print(
            f"off-policy, cross-fitted: the offers the new model would send earn {e.value:+.3f} per offer "
            f"[{e.low:+.3f}, {e.high:+.3f}] over {e.pairs:,} logged pairs"
        )
    if report.version is not None:
        console.print(f"published {MODEL} version {report.version}: the next plans aim by uplift")
    else:
        console.print(report.reason)


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
