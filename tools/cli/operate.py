"""`recsys status`, `models`, `certs`, `migrate` and `train`: what an operator runs beside the suite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import grpc
import typer
from rich.table import Table

from ml.artifacts import CANDIDATE_GAN, SERVING, ServingConfig
from pipelines.progress import console, errors
from shared.authz import IDENTITIES
from shared.config import MODEL_SERVER, SERVICES, Settings
from shared.models import latest_version
from shared.models import versions as model_versions
from tools.certs import ensure_certificates
from tools.cli.common import CLI_DEADLINE_S, credentials, settings
from tools.cli.supervisor import check_health
from tools.cli.up import with_gan

if TYPE_CHECKING:
    from shared.db import Store


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


def train(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="all (the default), served (what the pipeline uses today), or model names "
            "(`recsys models` lists them; an unknown name gets the list)."
        ),
    ] = None,
) -> None:
    """Snapshot events and catalog through the APIs (once), fit the models, publish new versions.

    The run keeps to RECSYS_TRAIN_MAX_MINUTES (10 by default, the export included; 0: no budget):
    the GAN, the user VAE and the ranker's networks stop at their deadline with their best and say
    so; a run that fits is never cut.
    """
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
    training.run_training(with_gan(settings(), True if "candidates" in names else None), names)
