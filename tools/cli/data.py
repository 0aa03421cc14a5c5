"""`recsys data`: importers and the shopper simulator."""

from __future__ import annotations

import hashlib
import itertools
import json
import resource
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from pipelines.progress import console, errors, progress_bar
from shared.config import Settings
from tools.cli.common import settings, with_clients
from tools.importers import generic_csv, movielens, online_retail, retailrocket
from tools.importers.loader import Checkpoint, ImportSummary, load
from tools.synth.writer import synthesize

data_app = typer.Typer(help="Load data into a running suite, or synthesize some.", no_args_is_help=True)
import_app = typer.Typer(help="Import a data set through the gRPC APIs.", no_args_is_help=True)
data_app.add_typer(import_app, name="import")


def _checkpoint(config: Settings, source: str, path: Path, restart: bool) -> Checkpoint:
    """Where an import of `path` records its progress; --restart starts from the first event."""
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    checkpoint = Checkpoint(config.home / "imports" / f"{source}-{key}.json")
    if restart:
        checkpoint.save(0)
    elif checkpoint.done:
        console.print(f"resuming after {checkpoint.done:,} acknowledged events (--restart to start over)")
    return checkpoint


def _run_import(
    config: Settings,
    items: list,
    events: Iterable,
    total: int | None,
    checkpoint: Checkpoint,
    problems: Counter[str] | None = None,
) -> None:
    summary = with_clients(lambda c: load(c, items, events, total, checkpoint), config)
    summary.rejected.update(problems or {})
    print_import_summary(summary)


RESTART = Annotated[bool, typer.Option("--restart", help="Ignore the checkpoint of an earlier run.")]


@import_app.command("online-retail")
def import_online_retail(
    path: Annotated[Path, typer.Option(help="Folder with items.csv and interactions.csv.gz.")] = (
        online_retail.DEFAULT_PATH
    ),
    limit: Annotated[int | None, typer.Option(help="Import only the first N purchase lines.")] = None,
    restart: RESTART = False,
) -> None:
    """Load the UCI Online Retail catalog and purchases (idempotent: a second run changes nothing)."""
    config = settings()
    total = online_retail.count_lines(path)
    _run_import(
        config,
        online_retail.read_items(path),
        online_retail.read_events(path, limit),
        min(total, limit) if limit is not None else total,
        _checkpoint(config, "online-retail", path, restart),
    )


@import_app.command("movielens")
def import_movielens(
    path: Annotated[
        Path,
        typer.Argument(
            help="Folder with u.data + u.item, ratings.dat + movies.dat, or ratings.csv + movies.csv."
        ),
    ],
    restart: RESTART = False,
) -> None:
    """Load MovieLens movies (content items) and ratings (review events with their rating)."""
    config = settings()
    try:
        items = movielens.read_items(path)
        events = movielens.read_events(path)
        first = next(events, None)
    except movielens.FormatError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    stream = itertools.chain([first] if first else [], events)
    _run_import(config, items, stream, None, _checkpoint(config, "movielens", path, restart))


@import_app.command("retailrocket")
def import_retailrocket(
    path: Annotated[
        Path, typer.Argument(help="Folder with events.csv, item_properties*.csv, category_tree.csv.")
    ],
    restart: RESTART = False,
) -> None:
    """Load RetailRocket items (category path, availability) and view / cart / transaction events."""
    config = settings()
    if not (path / "events.csv").exists():
        errors.print(f"[red]{path}/events.csv not found[/red]")
        raise typer.Exit(2)
    _run_import(
        config,
        retailrocket.read_items(path),
        retailrocket.read_events(path),
        None,
        _checkpoint(config, "retailrocket", path, restart),
    )


@import_app.command("csv")
def import_csv(
    path: Annotated[
        Path,
        typer.Argument(
            help="An events CSV (.csv or .csv.gz), or a folder holding "
            "events.csv[.gz] and optionally items.csv (e.g. from `data synth`)."
        ),
    ],
    mapping: Annotated[
        str,
        typer.Option(
            help="JSON object field -> column, or a file holding one; "
            f"fields: {', '.join(generic_csv.EVENT_FIELDS)}."
        ),
    ] = "",
    items: Annotated[
        Path | None,
        typer.Option(
            help=f"Items CSV with columns named after the item fields: {', '.join(generic_csv.ITEM_FIELDS)}."
        ),
    ] = None,
    default_type: Annotated[str, typer.Option(help="Event type for rows without one, e.g. purchase.")] = "",
    restart: RESTART = False,
) -> None:
    """Load events (and items) from any CSV with a column mapping."""
    config = settings()
    events_path = path
    if path.is_dir():
        events_path = next((p for p in (path / "events.csv", path / "events.csv.gz") if p.exists()), path)
        items = items or (path / "items.csv" if (path / "items.csv").exists() else None)
    if not events_path.is_file():
        errors.print(f"[red]no events file at {events_path}[/red]")
        raise typer.Exit(2)
    columns = columns_of(mapping, events_path)
    problems: Counter[str] = Counter()
    try:
        catalog = generic_csv.read_named_items(items) if items else []
        events = generic_csv.read_events(events_path, columns, default_type, problems)
        first = next(events, None)
    except generic_csv.MappingError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    stream = itertools.chain([first] if first else [], events)
    _run_import(
        config,
        catalog,
        stream,
        generic_csv.count_rows(events_path),
        _checkpoint(config, "csv", events_path, restart),
        problems,
    )


def columns_of(option: str, events_path: Path) -> dict[str, str]:
    """The mapping from the option (JSON or a file); else the columns named like the fields."""
    if option:
        text = Path(option).read_text() if Path(option).is_file() else option
        try:
            return dict(json.loads(text))
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            errors.print(f"[red]--mapping is not a JSON object of field -> column: {error}[/red]")
            raise typer.Exit(2) from error
    header = generic_csv.header(events_path)
    return {name: name for name in generic_csv.EVENT_FIELDS if name in header}


@data_app.command("synth")
def synth(
    out: Annotated[
        Path, typer.Option(help="Folder for items.csv, events.csv.gz, dirt.csv.gz, truth.json.")
    ] = (Path("var/synth")),
    shoppers: Annotated[int, typer.Option(help="How many shoppers.")] = 10_000,
    items: Annotated[int, typer.Option(help="How many items (products, content, promotions).")] = 2_000,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 30,
    seed: Annotated[int, typer.Option(help="Everything follows from the seed.")] = 7,
    dirt: Annotated[float, typer.Option(help="Share of events followed by an injected bad record.")] = 0.0,
) -> None:
    """Generate a synthetic shop and its shoppers' sessions (streamed: memory does not grow with shoppers)."""
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("shoppers", total=shoppers)
        summary = synthesize(out, shoppers, items, days, seed, dirt, lambda n: progress.advance(task, n))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(
        f"{summary.events:,} events from {shoppers:,} shoppers over {items:,} items in {seconds:.1f}s "
        f"({shoppers / seconds:,.0f} shoppers/s, {summary.events / seconds:,.0f} events/s), "
        f"peak memory {peak_mb:,.0f} MB"
    )
    if summary.dirt:
        console.print("injected: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.dirt.items())))
    console.print(f"written to {out}; load it with: recsys data import csv {out}")


def print_import_summary(summary: ImportSummary) -> None:
    console.print(
        f"items: {summary.items_inserted} new, {summary.items_updated} updated, "
        f"{summary.items_unchanged} unchanged · events: {summary.events_accepted} stored, "
        f"{summary.events_duplicate} already present, {summary.events_skipped} skipped (checkpoint) · "
        f"fixed: {sum(summary.fixed.values())} · "
        f"dropped: {sum(summary.rejected.values())}"
    )
    if summary.events_seconds:
        rate = summary.events_sent / summary.events_seconds
        console.print(
            f"  {summary.events_sent:,} events sent in {summary.events_seconds:.1f}s ({rate:,.0f} events/s)"
        )
    for reason, count in summary.fixed.most_common():
        console.print(f"  fixed {count}: {reason}")
    for reason, count in summary.rejected.most_common():
        console.print(f"  dropped to quarantine {count}: {reason}")


def import_demo(config: Settings) -> None:
    """The bundled Online Retail set, as `recsys up` loads it on first start."""
    path = online_retail.DEFAULT_PATH
    _run_import(
        config,
        online_retail.read_items(path),
        online_retail.read_events(path),
        online_retail.count_lines(path),
        Checkpoint(None),
    )
