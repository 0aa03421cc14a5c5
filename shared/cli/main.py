"""`recsys`: run, fill, train and query the suite from one command line."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import itertools
import json
import os
import signal
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Annotated, TypeVar

import grpc
import typer
from rich.table import Table

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.auth import bearer_metadata, ensure_key_file, read_key
from shared.cli import training
from shared.cli.bench import measure
from shared.cli.progress import console
from shared.cli.supervisor import Suite, SuiteError, check_health, free_ports_env
from shared.clients import SuiteClients
from shared.config import SERVICES, ConfigError, Settings, load_settings
from shared.db import Store
from shared.evaluation import protocols
from shared.evaluation.report import ModelResult, Report
from shared.evaluation.run import CURVE_KS, score
from shared.evaluation.run import baselines as run_baselines
from shared.evaluation.served import load_training_part, served_rankings
from shared.importers import generic_csv, movielens, online_retail, retailrocket
from shared.importers.loader import Checkpoint, ImportSummary, load

app = typer.Typer(
    help="Personalized recommendations as gRPC microservices. "
    "Configuration comes from RECSYS_* environment variables (state under RECSYS_HOME, default ./var).",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Load data into a running suite.", no_args_is_help=True)
import_app = typer.Typer(help="Import a data set through the gRPC APIs.", no_args_is_help=True)
data_app.add_typer(import_app, name="import")
app.add_typer(data_app, name="data")

DEMO_CUSTOMERS = ("17850", "13047", "12583")
DEMO_MARKER = "demo-online-retail.imported"
CLI_DEADLINE_S = 10.0
T = TypeVar("T")


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


def with_clients(work: Callable[[SuiteClients], Awaitable[T]], config: Settings) -> T:
    """Runs `work` with fresh clients; a failed call becomes a one-line error and exit code 1."""

    async def run() -> T:
        clients = SuiteClients(config.addresses, CLI_DEADLINE_S)
        try:
            return await work(clients)
        finally:
            await clients.close()

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        console.print(f"[red]{error.code().name}[/red]: {error.details()}")
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            console.print("Is the suite running? Start it with `recsys up` and check `recsys status`.")
        raise typer.Exit(1) from error


def print_recommendations(response: gateway_pb2.RecommendResponse, user_id: str) -> None:
    table = Table(title=f"Recommendations for {user_id}", title_justify="left")
    for column in ("#", "item", "title", "score", "source", "reason", "propensity"):
        table.add_column(column)
    for rank, item in enumerate(response.items, start=1):
        table.add_row(
            str(rank),
            item.item_id,
            item.title,
            f"{item.score:.4f}",
            item.source,
            item.reason,
            f"{item.propensity:.2f}",
        )
    console.print(table)
    versions = ", ".join(f"{v.name}:{v.version}" for v in response.model_versions) or "none"
    console.print(
        f"request {response.request_id} · policy {response.policy} · models {versions}"
        + (" · cold start" if response.cold_start else "")
        + (
            f" · [yellow]degraded: {', '.join(response.degraded_stages)}[/yellow]"
            if response.degraded_stages
            else ""
        )
    )


async def _recommend(
    clients: SuiteClients, key: str, user_id: str, count: int, surface: str
) -> gateway_pb2.RecommendResponse:
    return await clients.gateway.Recommend(
        gateway_pb2.RecommendRequest(user_id=user_id, count=count, surface=surface),
        metadata=bearer_metadata(key),
    )


@app.command()
def recommend(
    user_id: Annotated[str, typer.Argument(help="The shopper's id, e.g. 17850.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many items (1-100).")] = 10,
    surface: Annotated[str, typer.Option(help="home, product, cart or push.")] = "home",
) -> None:
    """Ask the gateway for recommendations and print them with titles and reasons."""
    config = settings()
    key = read_key(config)
    response = with_clients(lambda c: _recommend(c, key, user_id, count, surface), config)
    print_recommendations(response, user_id)


EVENT_TYPES = {
    name.removeprefix("EVENT_TYPE_").lower(): value for name, value in common_pb2.EventType.items() if value
}


@app.command()
def feedback(
    user_id: Annotated[str, typer.Argument(help="The shopper's id.")],
    item_id: Annotated[str, typer.Argument(help="The item's id.")],
    event_type: Annotated[str, typer.Option("--type", help=f"One of {', '.join(EVENT_TYPES)}.")] = "click",
    event_id: Annotated[str, typer.Option(help="Unique event id (default: generated).")] = "",
    request_id: Annotated[str, typer.Option(help="The Recommend request that showed the item.")] = "",
    quantity: Annotated[int, typer.Option(help="Units bought or carted.")] = 0,
    price: Annotated[float, typer.Option(help="Unit price paid.")] = 0.0,
    rating: Annotated[int, typer.Option(help="Review rating 1-5.")] = 0,
    text: Annotated[str, typer.Option(help="Review text.")] = "",
) -> None:
    """Send one shopper event through the gateway (stored durably, rewarded to the policy)."""
    if event_type not in EVENT_TYPES:
        console.print(f"[red]--type must be one of {', '.join(EVENT_TYPES)}[/red]")
        raise typer.Exit(2)
    config = settings()
    key = read_key(config)
    event = common_pb2.Event(
        event_id=event_id or f"cli:{time.time_ns()}",
        user_id=user_id,
        item_id=item_id,
        type=EVENT_TYPES[event_type],
        request_id=request_id,
        quantity=quantity,
        price=price,  # type: ignore[arg-type]
        rating=rating,
        text=text,
    )
    response = with_clients(
        lambda c: c.gateway.RecordFeedback(
            gateway_pb2.RecordFeedbackRequest(events=[event]), metadata=bearer_metadata(key)
        ),
        config,
    )
    summary = response.summary
    console.print(
        f"event {event.event_id}: accepted {summary.accepted}, duplicates {summary.duplicates}, "
        f"rejected {len(summary.rejected)}, rewards forwarded {response.rewards_forwarded}"
    )
    for rejection in summary.rejected:
        console.print(f"[red]rejected[/red]: {rejection.reason}")
    if summary.rejected:
        raise typer.Exit(1)


@app.command()
def status() -> None:
    """Show the health of every service; exit code 1 unless all are SERVING."""
    config = settings()
    table = Table(title="recsys services", title_justify="left")
    for column in ("service", "address", "health"):
        table.add_column(column)
    healthy = True
    for name in SERVICES:
        state = check_health(config.addresses[name])
        healthy &= state == "SERVING"
        colour = "green" if state == "SERVING" else "red"
        table.add_row(name, config.addresses[name], f"[{colour}]{state}[/{colour}]")
    console.print(table)
    if not healthy:
        raise typer.Exit(1)


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
        console.print(f"[red]{error}[/red]")
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
        console.print(f"[red]{path}/events.csv not found[/red]")
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
        console.print(f"[red]no events file at {events_path}[/red]")
        raise typer.Exit(2)
    columns = _mapping(mapping, events_path)
    problems: Counter[str] = Counter()
    try:
        catalog = (
            generic_csv.read_items(items, {f: f for f in generic_csv.ITEM_FIELDS if f in _header(items)})
            if items
            else []
        )
        events = generic_csv.read_events(events_path, columns, default_type, problems)
        first = next(events, None)
    except generic_csv.MappingError as error:
        console.print(f"[red]{error}[/red]")
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


def _header(path: Path) -> list[str]:
    with generic_csv._open(path) as handle:
        return next(csv.reader(handle), [])


def _mapping(option: str, events_path: Path) -> dict[str, str]:
    """The mapping from the option (JSON or a file); else the columns named like the fields."""
    if option:
        text = Path(option).read_text() if Path(option).is_file() else option
        try:
            return dict(json.loads(text))
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            console.print(f"[red]--mapping is not a JSON object of field -> column: {error}[/red]")
            raise typer.Exit(2) from error
    header = _header(events_path)
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
    import resource

    from shared.cli.progress import progress_bar
    from shared.synth.writer import synthesize

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


async def _wait_for_versions(
    clients: SuiteClients, key: str, user_id: str, wanted: dict[str, int], timeout: float
) -> bool:
    """True once a Recommend answer reports every wanted model at its new version or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = await _recommend(clients, key, user_id, 1, "home")
            seen = {v.name: v.version for v in response.model_versions}
            if all(seen.get(name, 0) >= version for name, version in wanted.items()):
                return True
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.25)
    return False


def run_training(config: Settings, names: list[str]) -> None:
    async def work(clients: SuiteClients) -> None:
        snapshot = await training.export_snapshot(clients, config.snapshot_dir)
        console.print(
            f"snapshot {snapshot.folder}: {snapshot.event_count} events, "
            f"{len(snapshot.catalog_item_ids)} items"
        )
        published = await asyncio.to_thread(training.fit_and_publish, snapshot, config.model_dir, names)
        for name, (version, seconds) in published.items():
            console.print(f"published {name} version {version} ({seconds:.1f}s)")
        if snapshot.event_count == 0:
            return
        wanted = {name: version for name, (version, _) in published.items()}
        user_id = str(snapshot.user_ids[0])
        if await _wait_for_versions(clients, read_key(config), user_id, wanted, 4 * config.model_poll_s + 10):
            console.print("the running services now serve the new versions")
        else:
            console.print("[yellow]the gateway does not report the new versions yet[/yellow]")

    with_clients(work, config)


def _stores() -> dict[str, type[Store]]:
    from services.gateway.store import GatewayStore
    from services.items.store import ItemsStore
    from services.policy.store import PolicyStore
    from services.profile.store import ProfileStore

    return {store.service: store for store in (GatewayStore, ProfileStore, ItemsStore, PolicyStore)}


@app.command()
def migrate(
    service: Annotated[str, typer.Argument(help="all, or one of: gateway, profile, items, policy.")] = "all",
) -> None:
    """Bring each service's tables to the newest schema (services also do this when they start)."""
    config = settings()
    stores = _stores()
    if service != "all" and service not in stores:
        console.print(f"[red]{service!r} has no tables; choose all or {', '.join(stores)}[/red]")
        raise typer.Exit(2)
    for name, store_class in stores.items():
        if service in ("all", name):
            store = store_class(config.database_url(name))
            try:
                store.migrate()
            finally:
                store.close()
            console.print(f"{name}: tables up to date")


@app.command()
def train(
    model: Annotated[str, typer.Argument(help=f"all, or one of: {', '.join(training.TRAINERS)}.")] = "all",
) -> None:
    """Snapshot events and catalog through the APIs, fit models, publish new versions."""
    if model != "all" and model not in training.TRAINERS:
        console.print(f"[red]unknown model {model!r}; choose all or {', '.join(training.TRAINERS)}[/red]")
        raise typer.Exit(2)
    run_training(settings(), list(training.TRAINERS) if model == "all" else [model])


def _ensure_demo_data(config: Settings) -> None:
    """Imports the bundled data once per home and trains when a model is missing."""
    marker = config.home / DEMO_MARKER
    if not marker.exists():
        console.print("importing the bundled Online Retail data (first start only)")
        path = online_retail.DEFAULT_PATH
        _run_import(
            config,
            online_retail.read_items(path),
            online_retail.read_events(path),
            online_retail.count_lines(path),
            Checkpoint(None),
        )
        marker.write_text("imported\n")
    if any(not (config.model_dir / name).exists() for name in training.TRAINERS):
        run_training(config, list(training.TRAINERS))


def _serve_demo(config: Settings) -> None:
    _ensure_demo_data(config)
    key = read_key(config)
    for user_id in DEMO_CUSTOMERS:
        response = with_clients(lambda c, u=user_id: _recommend(c, key, u, 5, "home"), config)
        print_recommendations(response, user_id)


@app.command()
def up(
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Import the bundled data and print sample recommendations (default: RECSYS_DEMO, on).",
        ),
    ] = None,
) -> None:
    """Start every service as a local process, wait until all are healthy, serve until Ctrl-C."""
    config = settings()
    ensure_key_file(config.api_key_file)
    suite = Suite(config)
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT may be ignored when started in the background
        signal.signal(signum, _interrupt)
    started = time.perf_counter()
    failed = False
    try:
        suite.start()
        suite.wait_ready()
        table = Table(title=f"recsys is up ({time.perf_counter() - started:.1f}s)", title_justify="left")
        table.add_column("service")
        table.add_column("address")
        for name in SERVICES:
            table.add_row(name, config.addresses[name])
        console.print(table)
        console.print(f"state in {config.home} · logs in {config.log_dir} · API key in {config.api_key_file}")
        if config.demo if demo is None else demo:
            _serve_demo(config)
        console.print("serving; press Ctrl-C to stop")
        failed = _watch(suite)
    except SuiteError as error:
        console.print(f"[red]{error}[/red]")
        failed = True
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        codes = suite.stop()
        console.print("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    if failed:
        raise typer.Exit(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(suite: Suite) -> bool:
    """Waits until Ctrl-C (returns False) or until a service exits on its own (returns True)."""
    while True:
        exited = [name for name, process in suite.processes.items() if process.poll() is not None]
        if exited:
            console.print(f"[red]{', '.join(exited)} exited; see {suite.settings.log_dir}[/red]")
            return True
        time.sleep(0.5)


@app.command()
def bench(
    calls: Annotated[int, typer.Option(help="Sequential calls per measurement.")] = 1000,
    count: Annotated[int, typer.Option(help="Items per Recommend.")] = 10,
) -> None:
    """Recommend latency p50/p99 over sequential calls, beside a plain gRPC round trip.

    Uses the running suite if the gateway answers; otherwise starts one on
    RECSYS_HOME with the demo data and stops it afterwards.
    """
    config = settings()
    suite = None
    if check_health(config.addresses["gateway"]) != "SERVING":
        ensure_key_file(config.api_key_file)
        suite = Suite(config)
        suite.start()
    try:
        if suite is not None:
            suite.wait_ready()
            _ensure_demo_data(config)
        users = sorted(
            {event.user_id for event in online_retail.read_events(online_retail.DEFAULT_PATH, 50_000)}
        )
        results = measure(config.addresses["gateway"], read_key(config), users, calls, count)
    except SuiteError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        if suite is not None:
            suite.stop()
    table = Table(
        title=f"latency over {calls} sequential calls, {len(users)} customers", title_justify="left"
    )
    for column in ("call", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.name,
            f"{result.p50:.2f}",
            f"{result.p99:.2f}",
            f"{statistics.fmean(result.samples_ms):.2f}",
        )
    console.print(table)
    floor, recommend = results
    console.print(f"Recommend p50 is {recommend.p50 / floor.p50:.1f}x the bare gRPC round trip")
    console.print(f"reproduce: recsys bench --calls {calls} --count {count}  (or: make bench)")


@app.command("eval")
def evaluate(
    protocol: Annotated[str, typer.Option(help="retail-temporal, random-holdout or leave-last-out.")] = (
        "retail-temporal"
    ),
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines", help="Most popular, item-kNN and EASE, tuned on a validation split."
        ),
    ] = True,
    served: Annotated[
        bool,
        typer.Option(
            "--served",
            help="Also evaluate the served pipeline: a fresh suite on free ports learns the "
            "training part through its APIs, then every test user is asked over gRPC.",
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for results.md, results.json, curves.png.")] = None,
) -> None:
    """Offline evaluation on the bundled Online Retail data, with baselines measured in the same run."""
    if protocol not in protocols.PROTOCOLS:
        console.print(f"[red]unknown protocol {protocol!r}; choose {', '.join(protocols.PROTOCOLS)}[/red]")
        raise typer.Exit(2)
    if not (baselines or served):
        console.print("[red]nothing to evaluate: pass --baselines and/or --served[/red]")
        raise typer.Exit(2)
    config = settings()
    data = protocols.Interactions.from_online_retail(online_retail.DEFAULT_PATH)
    split = protocols.PROTOCOLS[protocol](data)
    console.print(f"{protocol}: {split.stats}")
    results = run_baselines(split, console.print) if baselines else []
    if served:
        results.append(_evaluate_served(config, split))
    command = (
        "recsys eval --protocol "
        + protocol
        + ("" if baselines else " --no-baselines")
        + (" --served" if served else "")
    )
    report = Report(protocol, split.stats, results, command)
    folder = out or config.home / "eval" / f"{protocol}-{time.strftime('%Y%m%dT%H%M%S')}"
    paths = report.write(folder)
    console.print(report.markdown())
    console.print("written: " + ", ".join(str(p) for p in paths.values()))


def _evaluate_served(config: Settings, split: protocols.Split) -> ModelResult:
    home = config.home / "eval-suite" / time.strftime("%Y%m%dT%H%M%S")
    env = {**free_ports_env(), "RECSYS_HOME": str(home), "RECSYS_DEMO": "0", "RECSYS_MODEL_POLL_S": "0.5"}
    suite_config = load_settings({**os.environ, **env})
    ensure_key_file(suite_config.api_key_file)
    suite = Suite(suite_config)
    suite.start(env)
    try:
        suite.wait_ready()
        stored = with_clients(
            lambda c: load_training_part(c, split, online_retail.DEFAULT_PATH), suite_config
        )
        console.print(f"served suite in {home}: {stored} training purchases loaded through the APIs")
        run_training(suite_config, list(training.TRAINERS))
        started = time.perf_counter()
        rankings, latencies = with_clients(
            lambda c: served_rankings(c, read_key(suite_config), split, max(CURVE_KS)), suite_config
        )
        seconds = time.perf_counter() - started
    finally:
        suite.stop()
    p50 = statistics.median(latencies) if latencies else float("nan")
    console.print(f"served: {len(rankings)} users in {seconds:.1f}s, Recommend p50 {p50:.1f} ms")
    return score("served pipeline (gRPC)", rankings, split, {}, seconds)
