"""What every recsys command needs: settings, clients, and printing recommendations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc
import typer
from rich.table import Table

from pipelines.progress import console, errors
from recsys.gateway.v1 import gateway_pb2
from shared.auth import bearer_metadata
from shared.authz import TRAINER
from shared.clients import SuiteClients
from shared.config import ConfigError, EnvReader, Settings, load_section, load_settings
from shared.tls import channel_credentials

if TYPE_CHECKING:
    from pipelines.settings import TrainingSettings

CLI_DEADLINE_S = 10.0
T = TypeVar("T")
S = TypeVar("S")


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


def section(config: Settings, read: Callable[[EnvReader], S]) -> S:
    """One settings section of `config`'s variables; a bad one is a one-line error and exit code 2."""
    try:
        return load_section(config, read)
    except ConfigError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


def training(config: Settings) -> TrainingSettings:
    from pipelines.settings import read_training_settings  # here: `recsys --help` skips the model code

    return section(config, read_training_settings)


def credentials(config: Settings) -> grpc.ChannelCredentials | None:
    """The trainer identity's mTLS credentials (None with RECSYS_TLS=off); a missing certificate is
    a one-line error and exit code 2."""
    try:
        return channel_credentials(config, TRAINER)
    except ConfigError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


def with_clients(work: Callable[[SuiteClients], Awaitable[T]], config: Settings) -> T:
    """Runs `work` with fresh clients; a failed call becomes a one-line error and exit code 1."""
    presented = credentials(config)

    async def run() -> T:
        clients = SuiteClients(config.addresses, CLI_DEADLINE_S, presented)
        try:
            return await work(clients)
        finally:
            await clients.close()

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        errors.print(f"[red]{error.code().name}[/red]: {error.details()}")
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            errors.print("Is the suite running? Start it with `recsys up` and check `recsys status`.")
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


async def ask_recommend(
    clients: SuiteClients,
    key: str,
    user_id: str,
    count: int,
    surface: str,
    segment: str = "",
    context: Sequence[str] = (),
) -> gateway_pb2.RecommendResponse:
    return await clients.gateway.Recommend(
        gateway_pb2.RecommendRequest(
            user_id=user_id, count=count, surface=surface, segment=segment, context_item_ids=context
        ),
        metadata=bearer_metadata(key),
    )
