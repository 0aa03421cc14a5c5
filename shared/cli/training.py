"""`recsys train`: export a snapshot through the services' streaming RPCs, fit, publish.

Training never reads another service's tables; it reads what ExportEvents and
ExportItems stream. Each fitted model is published as a new version under
`<home>/models/<name>/<version>/`, which the running services pick up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import typer

from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from services.candidates.train import fit_cooccurrence
from services.items.train import fit_popularity
from services.profile.vae import USER_VAE
from shared.artifacts import CANDIDATE_GAN, COOCCURRENCE, POPULARITY, RANKER
from shared.auth import read_key
from shared.cli.common import ask_recommend, with_clients
from shared.cli.progress import console, progress_bar
from shared.clients import SuiteClients
from shared.config import Settings
from shared.models import publish
from shared.snapshot import Snapshot, SnapshotWriter
from shared.text_encoder import ITEM_EMBEDDINGS

EXPORT_DEADLINE_S = 1800.0


@dataclass(frozen=True)
class Trainer:
    """Fits one model from a snapshot; the result has a `save(folder)` method (None: nothing to publish).

    `served` models are the ones the running pipeline uses today: they are
    trained by `recsys up`, and the training command waits until the gateway
    reports the new versions of those that shape a Recommend answer
    (`in_recommend`).
    """

    model: str
    fit: Callable[[Snapshot, Settings], object | None]
    served: bool = True
    in_recommend: bool = True


def _fit_candidate_gan(snapshot: Snapshot, settings: Settings) -> object:
    from services.candidates.gan import GanConfig  # TensorFlow loads only when needed
    from services.candidates.gan_train import fit_gan

    config = GanConfig(mixed_precision=settings.gan_mixed_precision)
    with progress_bar() as progress:
        tasks = {
            "validation": progress.add_task("candidate GAN, choosing the epochs", total=config.max_epochs),
            "refit": progress.add_task("candidate GAN, refit on every purchase", total=None),
        }

        def on_epoch(stage: str, epoch: int, d_loss: float, g_loss: float, recall: float | None) -> None:
            quality = "" if recall is None else f"val recall@20 {recall:.4f}, "
            progress.update(
                tasks[stage],
                completed=epoch,
                description=f"candidate GAN {stage} ({quality}D {d_loss:.3f}, G {g_loss:.3f})",
            )

        trained = fit_gan(snapshot, config, on_epoch=on_epoch)
    console.print(
        f"candidate GAN: best epoch {trained.epochs}, validation recall@20 {trained.validation_recall:.4f}, "
        f"{trained.seconds_per_epoch:.2f}s per epoch on {trained.replicas} replica(s)"
        + (", mixed precision" if config.mixed_precision else "")
    )
    return trained


def _fit_ranker(snapshot: Snapshot, settings: Settings) -> object | None:
    from services.ranking.model import RankerConfig  # TensorFlow loads only when needed
    from services.ranking.train import fit_ranker, training_lists

    generator = "the GAN, " if settings.candidate_gan else ""
    console.print(
        f"ranker: fitting the candidate sources ({generator}item-kNN, popular) and the learned views "
        "(text encoder, user VAE, graph embeddings) before the time cut, then the views on everything"
    )
    fit_generator = (
        (lambda earlier: _fit_candidate_gan(earlier, settings)) if settings.candidate_gan else None
    )
    from services.ranking.features import GROUPS

    unknown = sorted(set(settings.ranker_left_out) - set(GROUPS))
    if unknown:
        console.print(
            f"[red]RECSYS_RANKER_LEFT_OUT names unknown feature groups {unknown}; "
            f"known: {', '.join(GROUPS)}[/red]"
        )
        raise typer.Exit(2)
    lists, vocabulary = training_lists(snapshot, settings, fit_generator)
    config = RankerConfig(removed=settings.ranker_left_out, seed=settings.ranker_seed)
    if config.removed:
        console.print(f"ranker: leaving out the feature groups {', '.join(config.removed)}")
    with progress_bar() as progress:
        task = progress.add_task("ranker", total=config.max_epochs)

        def on_epoch(epoch: int, loss: float, quality: float) -> None:
            progress.update(
                task, completed=epoch, description=f"ranker (loss {loss:.3f}, val NDCG@20 {quality:.4f})"
            )

        try:
            trained = fit_ranker(snapshot, settings, lists, vocabulary, config, on_epoch)
        except ValueError as error:
            console.print(
                f"[yellow]ranker not trained: {error}; ranking keeps the co-occurrence baseline[/yellow]"
            )
            return None
    console.print(
        f"ranker: {trained.lists} training lists, best epoch {trained.epochs}, validation NDCG@20 "
        f"{trained.validation_ndcg:.4f} (candidate order {trained.candidate_ndcg:.4f})"
    )
    return trained


def _fit_text_encoder(snapshot: Snapshot, settings: Settings) -> object:
    from services.items.text_train import TextEncoderConfig, fit_text_encoder  # loads TensorFlow

    users, items = snapshot.interactions()
    order = np.argsort(snapshot.interaction_times(), kind="stable")
    config = TextEncoderConfig()
    with progress_bar() as progress:
        task = progress.add_task("item text encoder", total=config.epochs)
        trained = fit_text_encoder(
            snapshot.catalog_item_ids,
            snapshot.item_texts,
            users[order],
            items[order],
            config,
            on_epoch=lambda epoch, loss: progress.update(
                task, completed=epoch, description=f"item text encoder (co-purchase loss {loss:.3f})"
            ),
        )
    console.print(
        f"item text encoder: {len(trained.vocabulary)} words, {len(trained.item_ids)} items encoded"
    )
    return trained


def _fit_user_vae(snapshot: Snapshot, settings: Settings) -> object:
    from services.profile.vae_train import VaeConfig, fit_vae  # loads TensorFlow

    users, items = snapshot.interactions()
    config = VaeConfig()
    with progress_bar() as progress:
        task = progress.add_task("user VAE", total=config.epochs)
        trained = fit_vae(
            users,
            items,
            config,
            on_epoch=lambda epoch, loss, recall: progress.update(
                task,
                completed=epoch,
                description=f"user VAE (loss {loss:.1f}, held-out recall@20 {recall:.4f})",
            ),
        )
    console.print(
        f"user VAE: best epoch {trained.epochs}, held-out recall@20 {trained.validation_recall:.4f} "
        f"(most popular {trained.popular_recall:.4f}), {trained.encoder.dim}-dim latent"
    )
    return trained


TRAINERS: dict[str, Trainer] = {
    POPULARITY: Trainer(
        POPULARITY, lambda snapshot, settings: fit_popularity(snapshot, settings.popularity_half_life_days)
    ),
    COOCCURRENCE: Trainer(COOCCURRENCE, lambda snapshot, _: fit_cooccurrence(snapshot)),
    # The GAN candidate generator, served through TF Serving's API when the suite runs with it
    # (`recsys up --gan`); minutes of training on CPU, so `recsys up` does not train it.
    "candidates": Trainer(CANDIDATE_GAN, _fit_candidate_gan, served=False),
    # The item text encoder behind items.SimilarItems and the item-text candidate source.
    "items-text": Trainer(ITEM_EMBEDDINGS, _fit_text_encoder),
    # The shoppers' latent vectors in GetProfile (the ranker fits its own copy of the VAE).
    "profile-vae": Trainer(USER_VAE, _fit_user_vae, in_recommend=False),
    # Learns from candidate lists made before a time cut: trained after the sources it reorders.
    # It fits its own text encoder, user VAE and graph embeddings (services/ranking/views.py).
    "ranking": Trainer(RANKER, _fit_ranker),
}
SERVED = [name for name, trainer in TRAINERS.items() if trainer.served]


async def export_snapshot(clients: SuiteClients, snapshot_dir: Path) -> Snapshot:
    folder = snapshot_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    writer = SnapshotWriter(folder)
    with progress_bar() as progress:
        task = progress.add_task("export events", total=None)
        async for batch in clients.profile.ExportEvents(
            profile_pb2.ExportEventsRequest(), timeout=EXPORT_DEADLINE_S
        ):
            writer.add_events(batch.events)
            progress.advance(task, len(batch.events))
        task = progress.add_task("export items", total=None)
        async for batch in clients.items.ExportItems(
            items_pb2.ExportItemsRequest(), timeout=EXPORT_DEADLINE_S
        ):
            writer.add_items(batch.items)
            progress.advance(task, len(batch.items))
    return writer.write()


def fit_and_publish(snapshot: Snapshot, settings: Settings, names: list[str]) -> dict[str, tuple[int, float]]:
    """Fits each named model; returns name -> (published version, seconds spent)."""
    published = {}
    for name in names:
        trainer = TRAINERS[name]
        started = time.perf_counter()
        model = trainer.fit(snapshot, settings)
        if model is None:
            continue
        version = publish(settings.model_dir, trainer.model, model.save)  # type: ignore[attr-defined]
        published[trainer.model] = (version, time.perf_counter() - started)
    return published


async def _wait_for_versions(
    clients: SuiteClients, key: str, user_id: str, wanted: dict[str, int], timeout: float
) -> str:
    """ "" once a Recommend answer reports every wanted model at its new version or later; else what
    the last answer lacked."""
    deadline = time.monotonic() + timeout
    missing = "no answer"
    while time.monotonic() < deadline:
        try:
            response = await ask_recommend(clients, key, user_id, 1, "home")
            # A model several services load (cooccurrence) counts once every one of them has it.
            seen: dict[str, int] = {}
            for reported in response.model_versions:
                seen[reported.name] = min(seen.get(reported.name, reported.version), reported.version)
            behind = sorted(name for name, version in wanted.items() if seen.get(name, 0) < version)
            if not behind:
                return ""
            missing = (
                f"not yet {', '.join(behind)}; degraded stages: {list(response.degraded_stages) or 'none'}"
            )
        except grpc.aio.AioRpcError as error:
            missing = f"Recommend failed: {error.code().name} {error.details()}"
        await asyncio.sleep(0.25)
    return missing


def run_training(config: Settings, names: list[str]) -> None:
    async def work(clients: SuiteClients) -> None:
        snapshot = await export_snapshot(clients, config.snapshot_dir)
        console.print(
            f"snapshot {snapshot.folder}: {snapshot.event_count} events, "
            f"{len(snapshot.catalog_item_ids)} items"
        )
        published = await asyncio.to_thread(fit_and_publish, snapshot, config, names)
        for name, (version, seconds) in published.items():
            console.print(f"published {name} version {version} ({seconds:.1f}s)")
        if CANDIDATE_GAN in published:
            console.print(
                "a running model server switches to the new GAN version by itself; "
                "`recsys up` starts the suite with the GAN whenever a version exists"
            )
        if snapshot.event_count == 0:
            return
        served = {TRAINERS[name].model for name in SERVED if TRAINERS[name].in_recommend}
        wanted = {name: version for name, (version, _) in published.items() if name in served}
        if not wanted:
            return
        user_id = str(snapshot.user_ids[0])
        missing = await _wait_for_versions(
            clients, read_key(config), user_id, wanted, 4 * config.model_poll_s + 30
        )
        if not missing:
            console.print("the running services now serve the new versions")
        else:
            console.print(f"[yellow]the gateway does not report the new versions yet ({missing})[/yellow]")

    with_clients(work, config)
