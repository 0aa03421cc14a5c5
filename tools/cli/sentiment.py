"""`recsys sentiment`: the review sentiment classifier, measured on simulated reviews."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.progress import console
from tools.cli.seeded import markdown_rows, run_seeds, seeded_report, seeds_table
from tools.evaluation.sentiment import run_seed
from tools.provenance import write_result

sentiment_app = typer.Typer(
    help="Review sentiment: a text classifier taught by ratings, scored against true satisfaction.",
    no_args_is_help=True,
)
COLUMNS = (
    ("classifier (taught by ratings)", "classifier_auc"),
    ("opinion-word count (baseline)", "word_count_baseline_auc"),
    ("the rating itself (reference)", "rating_auc"),
)


@sentiment_app.callback()
def sentiment() -> None:
    """Review sentiment: a text classifier taught by ratings, scored against true satisfaction."""


@sentiment_app.command()
def evaluate(
    seeds: Annotated[int, typer.Option(help="Simulated shops (seeds 0..N-1).", min=1)] = 3,
    shoppers: Annotated[int, typer.Option(help="Shoppers per shop.", min=500)] = 6000,
    out: Annotated[
        Path | None, typer.Option(help="Write sentiment.json and .md here (e.g. docs/results).")
    ] = None,
) -> None:
    """Per simulated shop: learn from half of the shoppers' reviews and ratings, score the other
    half's texts, and print the AUC against the simulator's true satisfaction (above or below the
    median review's) beside the opinion-word count baseline and the rating itself."""
    results = run_seeds(seeds, lambda seed: run_seed(seed, shoppers))
    report = seeded_report(
        f"recsys sentiment evaluate --seeds {seeds} --shoppers {shoppers}", results, COLUMNS
    )
    title = f"AUC against true satisfaction, {seeds} seeds"
    table = seeds_table(title, "scorer", "mean AUC", report, COLUMNS, 3)
    console.print(table)
    console.print(f"reproduce: {report['command']}")
    if out is not None:
        table_path, data = write_result(out, "sentiment", report, _markdown(report))
        console.print(f"written: {table_path}, {data}")


def _markdown(report: dict[str, Any]) -> str:
    rows = markdown_rows(report, COLUMNS, 3)
    return "\n".join(
        [
            f"# Review sentiment on simulated reviews ({len(report['seeds'])} seeds)",
            "",
            f"`{report['command']}` at commit {report['commit']}, seeds {report['seeds']}.",
            "",
            "| scorer | mean AUC | per seed |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )
