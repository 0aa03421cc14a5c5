"""Progress bars and tables on stderr/stdout, shared by the CLI commands."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Tables wider than a pipe's default 80 columns keep titles and reasons readable in logs.
console = Console(width=None if Console().is_terminal else 140)
# What went wrong goes to stderr, so that a command's output stays clean when piped.
errors = Console(stderr=True, soft_wrap=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
