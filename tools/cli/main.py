"""`recsys`: run, fill, train and query the suite from one command line."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import grpc
import typer
from rich.markup import escape
from rich.table import Table

from ml.artifacts import CANDIDATE_GAN, POPULARITY, RANKER, SERVING, PopularityModel, ServingConfig
from pipelines.progress import console, errors
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.auth import bearer_metadata, ensure_key_file, read_key
from shared.authz import IDENTITIES
from shared.config import MODEL_SERVER, SERVICES, Settings
from shared.models import latest_version
from shared.models import versions as model_versions
from tools.certs import ensure_certificates
from tools.cli.bench_load import bench_load
from tools.cli.chaos import chaos
from tools.cli.common import (
    CLI_DEADLINE_S,
    ask_recommend,
    credentials,
    print_recommendations,
    settings,
    with_clients,
)
from tools.cli.dashboard import dashboard_check
from tools.cli.data import data_app, import_demo
from tools.cli.evaluate import evaluate
from tools.cli.policy import policy_app
from tools.cli.push import push_app
from tools.cli.supervisor import Suite, SuiteError, check_health, free_port
from tools.importers import online_retail

if TYPE_CHECKING:
    from shared.db import Store

app = typer.Typer(
    help="Personalized recommendations as gRPC microservices. "
    "Configuration comes from RECSYS_* environment variables (state under RECSYS_HOME: by default "
    "the checkout's var/, else ~/.local/share/recsys).",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks never print local variables: they may hold API keys or database URLs.
    pretty_exceptions_show_locals=False,
)

DEMO_CUSTOMERS = ("17850", "13047", "12583")
DEMO_MARKER = "demo-online-retail.imported"
RANK_CANDIDATES = 500
# Where `recsys up` logs the candidate GAN's first training, under the log folder.
GAN_TRAINING_LOG = "train-candidates.log"


@app.command()
def recommend(
    user_id: Annotated[str, typer.Argument(help="The shopper's id, e.g. 17850.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many items (1-100).")] = 10,
    surface: Annotated[str, typer.Option(help="home, product, cart or push.")] = "home",
    segment: Annotated[
        str, typer.Option(help="The shopper's segment, e.g. a country: a new shopper gets its favourites.")
    ] = "",
    context: Annotated[
        list[str] | None,
        typer.Option(
            help="An item the shopper is looking at (repeatable): a new shopper gets related items."
        ),
    ] = None,
) -> None:
    """Ask the gateway for recommendations and print them with titles and reasons."""
    config = settings()
    key = read_key(config)
    response = with_clients(
        lambda c: ask_recommend(c, key, user_id, count, surface, segment, context or []), config
    )
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
        errors.print(f"[red]--type must be one of {', '.join(EVENT_TYPES)}[/red]")
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
        errors.print(f"[red]rejected[/red]: {rejection.reason}")
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
    presented = credentials(config)
    for name in (*SERVICES, MODEL_SERVER):
        state = check_health(config.addresses[name], credentials=presented)
        if name == MODEL_SERVER and state == "UNREACHABLE" and not config.candidate_gan:
            table.add_row(name, config.addresses[name], "not running (optional: serves the candidate GAN)")
            continue
        if name == MODEL_SERVER and state == "NOT_SERVING":
            table.add_row(
                name,
                config.addresses[name],
                f"waiting for a first {CANDIDATE_GAN} version (candidates serve without it)",
            )
            continue
        healthy &= state == "SERVING"
        colour = "green" if state == "SERVING" else "red"
        shown = f"[{colour}]{state}[/{colour}]"
        if name == MODEL_SERVER and state == "SERVING":
            shown += f", {CANDIDATE_GAN} {_served_gan_version(config)}"
        table.add_row(name, config.addresses[name], shown)
    console.print(table)
    if not healthy:
        raise typer.Exit(1)


def _served_gan_version(config: Settings) -> str:
    """The candidate GAN version the model server (or TF Serving) has AVAILABLE, as text."""

    from services.candidates.tfserving import ModelServerClient

    async def ask() -> int | None:
        client = ModelServerClient(
            config.addresses[MODEL_SERVER], CANDIDATE_GAN, CLI_DEADLINE_S, credentials=credentials(config)
        )
        try:
            return await client.available_version()
        finally:
            await client.close()

    try:
        version = asyncio.run(ask())
    except grpc.aio.AioRpcError as error:
        return f"unknown ({error.code().name})"
    return "not loaded yet" if version is None else f"version {version}"


@app.command()
def models() -> None:
    """The published models with their latest versions, those refused on validation, and the serving
    configuration training chose, with the validation table behind it."""
    from pipelines import train as pipeline
    from pipelines.report import print_report

    config = settings()
    table = Table(title=f"models under {config.model_dir}", title_justify="left")
    for column in ("model", "latest version", "versions", "refused on validation"):
        table.add_column(column, justify="left" if column == "model" else "right")
    refused_dir = config.model_dir / pipeline.REFUSED
    names = (
        sorted(p.name for p in config.model_dir.iterdir() if p.is_dir()) if config.model_dir.is_dir() else []
    )
    for name in (n for n in names if n != pipeline.REFUSED):
        published = model_versions(config.model_dir, name)
        refused = model_versions(refused_dir, name)
        table.add_row(name, str(published[-1]) if published else "-", str(len(published)), str(len(refused)))
    console.print(table)
    version = latest_version(config.model_dir, SERVING)
    if version is None:
        console.print("no serving configuration yet: the defaults are served until `recsys train` has run")
        return
    chosen = ServingConfig.load(config.model_dir / SERVING / str(version))
    console.print(f"serving configuration version {version}:")
    print_report(chosen.report)


def _stores() -> dict[str, type[Store]]:
    from services.gateway.store import GatewayStore
    from services.items.store import ItemsStore
    from services.policy.store import PolicyStore
    from services.profile.store import ProfileStore

    return {store.service: store for store in (GatewayStore, ProfileStore, ItemsStore, PolicyStore)}


@app.command()
def certs(
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write them (default: RECSYS_TLS_DIR, else RECSYS_HOME/tls)."),
    ] = None,
    hosts: Annotated[
        list[str] | None,
        typer.Option("--host", help="A further DNS name or IP every certificate answers to (repeatable)."),
    ] = None,
) -> None:
    """Issue the suite's mutual-TLS certificates: a local CA and one certificate per identity (each
    service, the model server, and `trainer` for the offline tools), as `recsys up` does. Kept
    ones are reused until 30 days before they expire."""
    config = settings()
    target = (folder or config.tls_dir).expanduser().absolute()
    issued = ensure_certificates(target, hosts=hosts or ())
    table = Table(title=f"certificates under {target}", title_justify="left")
    table.add_column("identity")
    table.add_column("state")
    for identity in IDENTITIES:
        table.add_row(identity, "issued" if identity in issued else "kept")
    console.print(table)


@app.command()
def migrate(
    service: Annotated[str, typer.Argument(help="all, or one of: gateway, profile, items, policy.")] = "all",
) -> None:
    """Bring each service's tables to the newest schema (services also do this when they start,
    unless RECSYS_MIGRATE_ON_START=0); concurrent runs on PostgreSQL wait for each other."""
    config = settings()
    stores = _stores()
    if service != "all" and service not in stores:
        errors.print(f"[red]{service!r} has no tables; choose all or {', '.join(stores)}[/red]")
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
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="all (the default), served (what the pipeline uses today), or model names "
            "(`recsys models` lists them; an unknown name gets the list)."
        ),
    ] = None,
) -> None:
    """Snapshot events and catalog through the APIs (once), fit the models, publish new versions."""
    # imported here, not at the top: `recsys --help` stays fast (training pulls in the model code)
    from pipelines import train as pipeline
    from tools.cli import training

    wanted = models or ["all"]
    unknown = [m for m in wanted if m not in ("all", "served", *pipeline.TRAINERS)]
    if unknown:
        errors.print(
            f"[red]unknown model(s) {', '.join(unknown)}; choose all, served or "
            f"{', '.join(pipeline.TRAINERS)}[/red]"
        )
        raise typer.Exit(2)
    groups = {"all": list(pipeline.TRAINERS), "served": pipeline.SERVED}
    names = list(dict.fromkeys(name for m in wanted for name in groups.get(m, [m])))
    # The ranker learns from the candidates the suite will serve: with the GAN's when it is used.
    training.run_training(_with_gan(settings(), True if "candidates" in names else None), names)


def _ensure_demo_data(config: Settings) -> None:
    """Imports the bundled data once per home and trains when a model is missing."""
    from pipelines import train as pipeline
    from tools.cli import training

    marker = config.home / DEMO_MARKER
    if not marker.exists():
        console.print("importing the bundled Online Retail data (first start only)")
        import_demo(config)
        marker.write_text("imported\n")
    if any(not (config.model_dir / pipeline.TRAINERS[name].model).exists() for name in pipeline.SERVED):
        training.run_training(config, pipeline.SERVED)


def _serve_demo(config: Settings) -> None:
    _ensure_demo_data(config)
    key = read_key(config)
    for user_id in DEMO_CUSTOMERS:
        response = with_clients(lambda c, u=user_id: ask_recommend(c, key, u, 5, "home"), config)
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
    gan: Annotated[
        bool | None,
        typer.Option(
            "--gan/--no-gan",
            help="Serve the candidate GAN through the local model server (default: on with the demo "
            "data, which trains it in the background on first start; otherwise on when "
            "RECSYS_CANDIDATES_GAN is set or `recsys train candidates` has published a version).",
        ),
    ] = None,
) -> None:
    """Start every service as a local process, wait until all are healthy, serve until Ctrl-C."""
    base = settings()
    with_demo = base.demo if demo is None else demo
    config = _with_gan(base, gan if gan is not None else (True if with_demo else None))
    ensure_key_file(config.api_key_file)
    suite = Suite(config)
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT may be ignored when started in the background
        signal.signal(signum, _interrupt)
    started = time.perf_counter()
    failed = False
    trainer: subprocess.Popen[bytes] | None = None
    try:
        suite.start()
        # The model server becomes ready with its first GAN version; the suite serves without it.
        suite.wait_ready(only=SERVICES)
        table = Table(title=f"recsys is up ({time.perf_counter() - started:.1f}s)", title_justify="left")
        table.add_column("service")
        table.add_column("address")
        for name in suite.names:
            table.add_row(name, config.addresses[name])
        console.print(table)
        console.print(f"state in {config.home} · logs in {config.log_dir} · API key in {config.api_key_file}")
        if with_demo:
            _serve_demo(config)
        if config.candidate_gan and latest_version(config.model_dir, CANDIDATE_GAN) is None:
            trainer = _train_gan_in_background(config)
        console.print("serving; press Ctrl-C to stop")
        _watch(suite, trainer)
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        failed = True
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        if trainer is not None and trainer.poll() is None:
            trainer.terminate()
            trainer.wait(timeout=30)
        codes = suite.stop()
        console.print("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    if failed:
        raise typer.Exit(1)


def _train_gan_in_background(config: Settings) -> subprocess.Popen[bytes]:
    """`recsys train candidates` as a child process: the model server serves the GAN once it is
    published, and candidates starts asking it, without a restart."""
    log = config.log_dir / GAN_TRAINING_LOG
    console.print(
        f"training the candidate GAN in the background (minutes on CPU; {log}); it is served as soon "
        "as it is published, and `recsys status` shows its version"
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "train", "candidates"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RECSYS_HOME": str(config.home), "RECSYS_CANDIDATES_GAN": "1"},
            start_new_session=True,
        )


def _with_gan(config: Settings, wanted: bool | None) -> Settings:
    """The settings with the GAN on when asked, or by default when it is configured or trained."""
    if wanted is None:
        wanted = config.candidate_gan or latest_version(config.model_dir, CANDIDATE_GAN) is not None
    return config.overriding(RECSYS_CANDIDATES_GAN="1" if wanted else "0")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(suite: Suite, trainer: subprocess.Popen[bytes] | None) -> None:
    """Serves until Ctrl-C: a service that exits is restarted with backoff (said, with the end of
    its log); says once how the background training ended."""
    while True:
        suite.supervise(lambda message: errors.print(f"[yellow]{escape(message)}[/yellow]"))
        if trainer is not None and trainer.poll() is not None:
            if trainer.returncode == 0:
                console.print("candidate GAN published: the model server serves it now")
            else:
                errors.print(
                    f"[red]candidate GAN training failed (exit code {trainer.returncode}); see "
                    f"{suite.settings.log_dir / GAN_TRAINING_LOG}; the suite serves without it[/red]"
                )
            trainer = None
        time.sleep(0.5)


def _print_latencies(title: str, results: list) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("call", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column)
    for result in results:
        mean = statistics.fmean(result.samples_ms)
        table.add_row(result.name, f"{result.p50:.2f}", f"{result.p99:.2f}", f"{mean:.2f}")
    console.print(table)


@contextmanager
def _service_on_free_port(config: Settings, service: str, env: dict[str, str]) -> Iterator[str]:
    """Runs one more process of `service` on a free port (no metrics endpoint) until the block ends:
    a private copy on the loopback interface, measured without TLS."""
    port = free_port()
    overrides = {
        "RECSYS_HOME": str(config.home),
        "RECSYS_TLS": "off",
        f"RECSYS_{service.upper()}_PORT": str(port),
        f"RECSYS_{service.upper()}_METRICS_PORT": "0",
        **env,
    }
    config.log_dir.mkdir(parents=True, exist_ok=True)
    with (config.log_dir / f"{service}-bench.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env={**os.environ, **overrides},
            stdout=log,
            stderr=log,
        )
        try:
            address = f"127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while check_health(address) != "SERVING":
                if server.poll() is not None or time.monotonic() > deadline:
                    errors.print(f"[red]{service} did not come up; see {log.name}[/red]")
                    raise typer.Exit(1)
                time.sleep(0.5)
            yield address
        finally:
            server.terminate()
            server.wait(timeout=30)


def _bench_model_server(config: Settings, folder: Path, calls: int) -> list:
    """Starts a local model server for the newest candidate_gan and times Predict."""
    from tools.cli.bench import measure_predict

    with _service_on_free_port(config, MODEL_SERVER, {"RECSYS_MODELSERVER_MODELS": CANDIDATE_GAN}) as address:
        results = measure_predict(folder, address, calls)
    _print_latencies(f"candidate_gan Predict over {calls} sequential calls (history of 20 items)", results)
    return results


def _bench_rank(config: Settings, histories: list[list[str]], calls: int, candidates: int) -> None:
    """Rank with the learned ranker beside the co-occurrence baseline: same requests, fresh processes."""
    from tools.cli.bench import measure_rank, rank_requests

    popularity = latest_version(config.model_dir, POPULARITY)
    if latest_version(config.model_dir, RANKER) is None or popularity is None:
        console.print("no ranker model yet: `recsys train ranking` adds the Rank measurement")
        return
    items = PopularityModel.load(config.model_dir / POPULARITY / str(popularity)).item_ids.tolist()
    requests = rank_requests(histories, items, calls, candidates)
    with (
        _service_on_free_port(config, "ranking", {"RECSYS_RANKER": "learned"}) as learned,
        _service_on_free_port(config, "ranking", {"RECSYS_RANKER": "baseline"}) as baseline,
    ):
        results = measure_rank(
            {"Rank, co-occurrence baseline": baseline, "Rank, learned ranker (in process)": learned}, requests
        )
    _print_latencies(
        f"Rank over {calls} sequential calls, {len(requests[0].candidates)} candidates each", results
    )
    console.print(f"learned Rank p50 is {results[1].p50 / results[0].p50:.1f}x the baseline's")


def _histories(events: Iterable[common_pb2.Event]) -> list[list[str]]:
    """Each customer's distinct items, most recent first."""
    found: dict[str, dict[str, None]] = {}
    for event in events:
        found.setdefault(event.user_id, {}).pop(event.item_id, None)
        found[event.user_id][event.item_id] = None
    return [list(reversed(items)) for items in found.values()]


@app.command()
def bench(
    calls: Annotated[int, typer.Option(help="Sequential calls per measurement.")] = 1000,
    count: Annotated[int, typer.Option(help="Items per Recommend.")] = 10,
) -> None:
    """Recommend latency p50/p99 over sequential calls, beside a plain gRPC round trip; Rank with
    500 candidates, learned ranker beside the co-occurrence baseline; with a trained candidate_gan,
    also Predict through the local model server beside the in-process call.

    Uses the running suite if the gateway answers; otherwise starts one on
    RECSYS_HOME with the demo data (and the GAN once trained) and stops it afterwards.
    """
    from tools.cli.bench import measure

    config = _with_gan(settings(), None)
    if config.tls:
        ensure_certificates(config.tls_dir)
    presented = credentials(config)
    suite = None
    if check_health(config.addresses["gateway"], credentials=presented) != "SERVING":
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
        results = measure(config.addresses["gateway"], read_key(config), users, calls, count, presented)
        histories = _histories(online_retail.read_events(online_retail.DEFAULT_PATH, 50_000))
        answer = with_clients(lambda c: ask_recommend(c, read_key(config), users[0], count, "home"), config)
        uses_gan = any(v.name == CANDIDATE_GAN for v in answer.model_versions)
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        if suite is not None:
            suite.stop()
    pipeline = "with the candidate GAN" if uses_gan else "without the candidate GAN"
    _print_latencies(f"latency over {calls} sequential calls, {len(users)} customers, {pipeline}", results)
    floor, recommend = results
    console.print(f"Recommend p50 is {recommend.p50 / floor.p50:.1f}x the bare gRPC round trip")
    _bench_rank(config, histories, calls, RANK_CANDIDATES)
    version = latest_version(config.model_dir, CANDIDATE_GAN)
    if version is not None:
        local, served = _bench_model_server(config, config.model_dir / CANDIDATE_GAN / str(version), calls)
        console.print(
            f"Predict p50 through the model server is {served.p50 / local.p50:.1f}x the in-process call"
        )
    else:
        console.print("no candidate_gan model yet: `recsys train candidates` adds the Predict measurement")
    console.print(f"reproduce: recsys bench --calls {calls} --count {count}  (or: make bench)")


app.add_typer(data_app, name="data")
app.add_typer(policy_app, name="policy")
app.add_typer(push_app, name="push")
app.command("eval")(evaluate)
app.command("bench-load")(bench_load)
app.command("chaos")(chaos)
app.command("dashboard-check")(dashboard_check)


def run() -> None:
    """The `recsys` command. Failures of the environment (a missing or unreadable file, a database
    that does not answer) are one line on stderr and exit code 1; anything else is a bug and keeps
    its traceback."""
    try:
        app(prog_name="recsys")
    except Exception as error:
        if not isinstance(error, OSError) and not _database_unreachable(error):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        errors.print(f"recsys: {first_line}", style="red", markup=False, highlight=False)
        raise SystemExit(1) from None


def _database_unreachable(error: Exception) -> bool:
    """SQLAlchemy's OperationalError, without importing SQLAlchemy for commands that never load it."""
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(error, exc.OperationalError)
