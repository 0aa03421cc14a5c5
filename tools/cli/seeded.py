"""The shape every per-seed evaluation command shares: run the seeds with a progress bar, then a
report of each column's mean and per-seed values, as a terminal table and as markdown rows."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rich.table import Table

from pipelines.progress import progress_bar
from tools.provenance import commit

Result = TypeVar("Result")
Columns = Sequence[tuple[str, str]]  # (row name, result attribute)


def run_seeds(seeds: int, run: Callable[[int], Result]) -> list[Result]:
    """`run(seed)` for seeds 0..seeds-1, one simulated shop each."""
    results = []
    with progress_bar() as bar:
        task = bar.add_task("simulated shops", total=seeds)
        for seed in range(seeds):
            results.append(run(seed))
            bar.advance(task)
    return results


def seeded_report(command: str, results: Sequence[Any], columns: Columns) -> dict[str, Any]:
    """The result file's content: command, commit, seeds, every seed's result and each column's mean."""
    return {
        "command": command,
        "commit": commit(),
        "seeds": list(range(len(results))),
        "per_seed": [r.__dict__ for r in results],
        "mean": {key: statistics.fmean(getattr(r, key) for r in results) for _, key in columns},
    }


def seeds_table(
    title: str, what: str, figure: str, report: dict[str, Any], columns: Columns, digits: int
) -> Table:
    """Each column's mean and per-seed values, one row each."""
    table = Table(title=title, title_justify="left")
    table.add_column(what)
    table.add_column(figure, justify="right")
    table.add_column("per seed", justify="right")
    for name, key in columns:
        per_seed = ", ".join(f"{r[key]:.{digits}f}" for r in report["per_seed"])
        table.add_row(name, f"{report['mean'][key]:.{digits}f}", per_seed)
    return table


def markdown_rows(report: dict[str, Any], columns: Columns, digits: int) -> list[str]:
    """`| name | mean | per seed |` for each column."""
    return [
        f"| {name} | {report['mean'][key]:.{digits}f} | "
        + ", ".join(f"{r[key]:.{digits}f}" for r in report["per_seed"])
        + " |"
        for name, key in columns
    ]
