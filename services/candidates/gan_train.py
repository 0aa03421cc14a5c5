"""Training of the candidate GAN from a snapshot: tf.data, early stopping on a validation split
carved from the training data, checkpoints of the best epoch, a fixed seed.

Shopper vectors are dense (one float per item), which suits catalogs up to some
tens of thousands of items; the exported signature takes item indices.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from services.candidates.gan import CFGAN, GanConfig, recall_at
from shared.snapshot import Snapshot

VALIDATION_SHARE = 0.2
VALIDATION_K = 20


def first_interactions(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, dense user x item time of the first interaction, infinite where there is none)."""
    users, items = snapshot.interactions()
    times = snapshot.interaction_times()
    user_ids, user_index = np.unique(users, return_inverse=True)
    item_ids, item_index = np.unique(items, return_inverse=True)
    first = np.full((len(user_ids), len(item_ids)), np.inf)
    np.minimum.at(first, (user_index, item_index), times)
    return item_ids, first


def hold_out_latest(first: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) binary matrices: each shopper with 2+ items keeps the earliest and hands
    the latest `share` of their items (at least one) to the held-out part.

    Validating on what shoppers bought last mirrors serving, which predicts the next
    purchases from the earlier ones; a random holdout keeps rewarding the generator for
    memorizing long after it stops predicting the future.
    """
    owned = np.isfinite(first)
    kept, held = owned.astype(np.float32), np.zeros(first.shape, np.float32)
    counts = owned.sum(axis=1)
    order = np.argsort(np.where(owned, -first, np.inf), axis=1, kind="stable")
    for user in np.flatnonzero(counts >= 2):
        latest = order[user, : max(1, round(share * counts[user]))]
        kept[user, latest], held[user, latest] = 0.0, 1.0
    return kept, held


@dataclass
class TrainedGan:
    """A fitted GAN with its item ids; `save(folder)` writes the serving SavedModel."""

    gan: CFGAN
    item_ids: np.ndarray
    epochs: int
    seconds_per_epoch: float
    validation_recall: float
    replicas: int = 1

    def save(self, folder: Path) -> None:
        from services.candidates.gan_export import export

        export(self, folder)


def training_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over every GPU when there are several; otherwise the default strategy
    (one GPU when present, else the CPU)."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def fit_gan(
    snapshot: Snapshot,
    config: GanConfig | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[int, float, float, float], None] = lambda *_: None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainedGan:
    """Fits the GAN; `config.batch_size` is per replica, so each step sees batch x replicas rows."""
    config = config or GanConfig()
    strategy = strategy or training_strategy()
    item_ids, first = first_interactions(snapshot)
    train, validation = hold_out_latest(first, VALIDATION_SHARE)
    with strategy.scope():
        gan = CFGAN(len(item_ids), config)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size * strategy.num_replicas_in_sync)
        .prefetch(tf.data.AUTOTUNE)
    )

    @tf.function
    def step(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        d_loss, g_loss = strategy.run(gan.train_step, args=(batch,))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, d_loss, axis=None), strategy.reduce(total, g_loss, axis=None)

    folder = checkpoint_dir or Path(tempfile.mkdtemp(prefix="candidate-gan-"))
    checkpoint = tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator)
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=2)
    best, best_epoch, waited = -1.0, 0, 0
    started = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        for batch in dataset:
            d_loss, g_loss = step(batch)
        recall = recall_at(gan.scores(train), train, validation, VALIDATION_K)
        on_epoch(epoch, float(d_loss), float(g_loss), recall)
        if recall > best:
            best, best_epoch, waited = recall, epoch, 0
            manager.save(checkpoint_number=epoch)
        elif epoch >= config.min_epochs:
            waited += 1
            if waited >= config.patience:
                break
    checkpoint.restore(manager.latest_checkpoint).expect_partial()
    seconds = (time.perf_counter() - started) / max(epoch, 1)
    return TrainedGan(gan, item_ids, best_epoch, seconds, best, strategy.num_replicas_in_sync)
