"""`recsys signals`: how much each kind of event counts in the portrait, learned per shop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.progress import console
from tools.cli.seeded import markdown_rows, run_seeds, seeded_report, seeds_table
from tools.evaluation.event_weights import run_seed
from tools.provenance import write_result

signals_app = typer.Typer(
    help="Event weights: how much a view, like, share or purchase says about what a shopper buys next.",
    no_args_is_help=True,
)
COLUMNS = (
    ("learned weights", "learned_ndcg"),
    ("default weights", "default_ndcg"),
    ("default weights, likes and shares left out", "without_likes_and_shares_ndcg"),
)


@signals_app.callback()
def signals() -> None:
    """Event weights: how much a view, like, share or purchase says about what a shopper buys next."""


@signals_app.command()
def evaluate(
    seeds: Annotated[int, typer.Option(help="Simulated shops (seeds 0..N-1).", min=1)] = 3,
    shoppers: Annotated[int, typer.Option(help="Shoppers per shop.", min=500)] = 3000,
    out: Annotated[
        Path | None, typer.Option(help="Write event-weights.json and .md here (e.g. docs/results).")
    ] = None,
) -> None:
    """Per simulated shop: learn the portrait's event weights as `recsys train event-weights` does
    and print, for shoppers held out of the learning, the NDCG of the categories they bought after
    the time cut, ordered by the learned weights, the defaults, and the defaults without likes and
    shares; with the learned weights and whether training would publish them."""
    results = run_seeds(seeds, lambda seed: run_seed(seed, shoppers))
    report = seeded_report(f"recsys signals evaluate --seeds {seeds} --shoppers {shoppers}", results, COLUMNS)
    title = f"NDCG of the categories held-out shoppers bought next, {seeds} seeds"
    table = seeds_table(title, "weights", "mean NDCG", report, COLUMNS, 4)
    console.print(table)
    for r in results:
        console.print(
            f"seed {r.seed}: gain of the learned weights [{r.gain_low:+.4f}, {r.gain_high:+.4f}], "
            f"{'published' if r.published else 'not published'}; weights {r.weights}"
        )
    console.print(f"reproduce: {report['command']}")
    if out is not None:
        table_path, data = write_result(out, "event-weights", report, _markdown(report))
        console.print(f"written: {table_path}, {data}")


def _markdown(report: dict[str, Any]) -> str:
    rows = markdown_rows(report, COLUMNS, 4)
    seeds = [
        f"| {r['seed']} | {r['held_out_shoppers']} | [{r['gain_low']:+.4f}, {r['gain_high']:+.4f}] | "
        f"{'yes' if r['published'] else 'no'} | "
        + ", ".join(f"{kind} {weight:g}" for kind, weight in r["weights"].items())
        + " |"
        for r in report["per_seed"]
    ]
    return "\n".join(
        [
            f"# Event weights on simulated shops ({len(report['seeds'])} seeds)",
            "",
            "NDCG of the categories that held-out shoppers bought after the time cut, each shopper's "
            "touched categories ordered by the weighted sum of their events:",
            "",
            "| weights | mean NDCG | per seed |",
            "| --- | --- | --- |",
            *rows,
            "",
            "| seed | held-out shoppers | gain, 95% interval | published | learned weights |",
            "| --- | --- | --- | --- | --- |",
            *seeds,
            "",
            f"Reproduce: `{report['command']}`  ",
            f"commit: {report['commit']}, seeds: {', '.join(map(str, report['seeds']))}",
            "",
        ]
    )
