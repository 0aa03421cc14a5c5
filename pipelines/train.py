"""The training pipeline: export a snapshot through the services' streaming RPCs, fit, publish.

Training never reads another service's tables; it reads what ExportEvents and
ExportItems stream. Each fitted model is published as a new version under
`<home>/models/<name>/<version>/`, which the running services pick up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ml.artifacts import CANDIDATE_GAN, COOCCURRENCE, POPULARITY, RANKER
from ml.cooccurrence import fit_cooccurrence
from ml.popularity import choose_half_life, fit_popularity
from ml.snapshot import Snapshot, SnapshotWriter
from ml.text_encoder import ITEM_EMBEDDINGS
from ml.vae import USER_VAE
from pipelines.progress import console, progress_bar
from pipelines.settings import TrainingSettings, training_settings
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from shared.clients import SuiteClients
from shared.config import Settings
from shared.models import publish

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
    fit: Callable[[Snapshot, TrainingSettings], object | None]
    served: bool = True
    in_recommend: bool = True


def _fit_candidate_gan(snapshot: Snapshot, settings: TrainingSettings) -> object | None:
    from ml.gan.model import GanConfig  # TensorFlow loads only when needed
    from ml.gan.train import GanMemoryError, fit_gan

    config = GanConfig(
        mixed_precision=settings.gan_mixed_precision,
        max_memory_mb=settings.gan_max_memory_mb,
        max_minutes=settings.gan_max_minutes,
    )
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

        try:
            trained = fit_gan(snapshot, config, on_epoch=on_epoch)
        except GanMemoryError as error:
            console.print(f"[red]candidate GAN not trained: {error}[/red]")
            return None
    console.print(
        f"candidate GAN: best epoch {trained.epochs}, validation recall@20 {trained.validation_recall:.4f}, "
        f"{trained.seconds_per_epoch:.2f}s per epoch on {trained.replicas} replica(s)"
        + (", mixed precision" if config.mixed_precision else "")
        + (f", cut short by the {config.max_minutes:g}-minute budget" if trained.budget_bound else "")
    )
    return trained


def _fit_ranker(snapshot: Snapshot, settings: TrainingSettings) -> object | None:
    from ml.ranking.model import RankerConfig  # TensorFlow loads only when needed
    from ml.ranking.train import RankerRefused, fit_ranker, training_lists

    generator = "the GAN, " if settings.with_gan else ""
    console.print(
        f"ranker: fitting the candidate sources ({generator}item-kNN, popular) and the learned views "
        "(text encoder, user VAE, graph embeddings) before the time cut, then the views on everything"
    )
    fit_generator = (lambda earlier: _fit_candidate_gan(earlier, settings)) if settings.with_gan else None
    lists, vocabulary = training_lists(snapshot, settings.sources, fit_generator)
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
            trained = fit_ranker(
                snapshot, settings.sources, lists, vocabulary, config, on_epoch, gate=settings.ranker_gate
            )
        except RankerRefused as error:
            console.print(
                f"[yellow]ranker not published: {error}; ranking keeps what it serves now "
                "(the last published ranker, or the co-occurrence baseline)[/yellow]"
            )
            return None
    mean, low, high = trained.gain
    console.print(
        f"ranker: {trained.lists} lists, best epoch {trained.epochs}, validation NDCG@20 "
        f"{trained.validation_ndcg:.4f} against {trained.candidate_ndcg:.4f} for the candidate order: "
        f"gain {mean:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}] over {trained.validation_lists} lists"
    )
    return trained


def _fit_text_encoder(snapshot: Snapshot, settings: TrainingSettings) -> object:
    from ml.text_train import TextEncoderConfig, fit_text_encoder  # loads TensorFlow

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


def _fit_user_vae(snapshot: Snapshot, settings: TrainingSettings) -> object:
    from ml.vae_train import VaeConfig, fit_vae  # loads TensorFlow

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
        POPULARITY,
        lambda snapshot, training: fit_popularity(snapshot, training.sources.popularity_half_life_days),
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
    # It fits its own text encoder, user VAE and graph embeddings (ml/ranking/views.py).
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


def with_chosen_half_life(training: TrainingSettings, snapshot: Snapshot) -> TrainingSettings:
    """`training` with the popularity half-life it names, or else the one the snapshot's own latest
    purchases prefer (every model that reads popularity then uses that one)."""
    if training.popularity_half_life_days is not None:
        return training
    chosen, scores = choose_half_life(snapshot)
    if scores:
        tried = ", ".join(f"{half_life:g} d {ndcg:.4f}" for half_life, ndcg in scores.items())
        console.print(
            f"popularity half-life {chosen:g} days (0: all-time), chosen on the latest 20% of the "
            f"purchases; NDCG@20 of each: {tried}"
        )
    sources = dataclasses.replace(training.sources, popularity_half_life_days=chosen)
    return dataclasses.replace(training, sources=sources, popularity_half_life_days=chosen)


def fit_and_publish(snapshot: Snapshot, settings: Settings, names: list[str]) -> dict[str, tuple[int, float]]:
    """Fits each named model; returns name -> (published version, seconds spent)."""
    training = with_chosen_half_life(training_settings(settings), snapshot)
    published = {}
    for name in names:
        trainer = TRAINERS[name]
        started = time.perf_counter()
        model = trainer.fit(snapshot, training)
        if model is None:
            continue
        version = publish(settings.model_dir, trainer.model, model.save)  # type: ignore[attr-defined]
        published[trainer.model] = (version, time.perf_counter() - started)
    return published
