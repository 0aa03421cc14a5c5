"""`recsys sentiment`: the review sentiment classifier, measured on simulated reviews."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.progress import console, progress_bar
from tools.evaluation.sentiment import run_seed
from tools.provenance import commit, write_result

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
    results = []
    with progress_bar() as bar:
        task = bar.add_task("simulated shops", total=seeds)
        for seed in range(seeds):
            results.append(run_seed(seed, shoppers))
            bar.advance(task)
    report: dict[str, Any] = {
        "command": f"recsys sentiment evaluate --seeds {seeds} --shoppers {shoppers}",
        "commit": commit(),
        "seeds": list(range(seeds)),
        "per_seed": [r.__dict__ for r in results],
        "mean": {key: statistics.fmean(getattr(r, key) for r in results) for _, key in COLUMNS},
    }
    table = Table(title=f"AUC against true satisfaction, {seeds} seeds", title_justify="left")
    table.add_column("scorer")
    table.add_column("mean AUC", justify="right")
    table.add_column("per seed", justify="right")
    for name, key in COLUMNS:
        per_seed = ", ".join(f"{getattr(r, key):.3f}" for r in results)
        table.add_row(name, f"{report['mean'][key]:.3f}", per_seed)
    console.print(table)
    console.print(f"reproduce: {report['command']}")
    if out is not None:
        table_path, data = write_result(out, "sentiment", report, _markdown(report))
        console.print(f"written: {table_path}, {data}")


def _markdown(report: dict[str, Any]) -> str:
    rows = [
        f"| {name} | {report['mean'][key]:.3f} | "
        + ", ".join(f"{r[key]:.3f}" for r in report["per_seed"])
        + " |"
        for name, key in COLUMNS
    ]
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
