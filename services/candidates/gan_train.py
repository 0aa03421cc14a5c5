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


def interaction_matrix(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, item ids, dense binary user x item matrix) of the snapshot's interactions."""
    users, items = snapshot.interactions()
    user_ids, user_index = np.unique(users, return_inverse=True)
    item_ids, item_index = np.unique(items, return_inverse=True)
    matrix = np.zeros((len(user_ids), len(item_ids)), np.float32)
    matrix[user_index, item_index] = 1.0
    return user_ids, item_ids, matrix


def hold_out(matrix: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Moves a random `share` of each shopper's items (shoppers with 2+ items) to a held-out matrix."""
    rng = np.random.default_rng(seed)
    kept, held = matrix.copy(), np.zeros_like(matrix)
    for user in range(matrix.shape[0]):
        owned = np.flatnonzero(matrix[user])
        if len(owned) < 2:
            continue
        chosen = rng.choice(owned, size=max(1, round(share * len(owned))), replace=False)
        kept[user, chosen], held[user, chosen] = 0.0, 1.0
    return kept, held


@dataclass
class TrainedGan:
    """A fitted GAN with its item ids; `save(folder)` writes the serving SavedModel."""

    gan: CFGAN
    item_ids: np.ndarray
    epochs: int
    seconds_per_epoch: float
    validation_recall: float

    def save(self, folder: Path) -> None:
        from services.candidates.gan_export import export

        export(self, folder)


def fit_gan(
    snapshot: Snapshot,
    config: GanConfig | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[int, float, float, float], None] = lambda *_: None,
) -> TrainedGan:
    config = config or GanConfig()
    _, item_ids, matrix = interaction_matrix(snapshot)
    train, validation = hold_out(matrix, VALIDATION_SHARE, config.seed)
    gan = CFGAN(len(item_ids), config)
    dataset = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    folder = checkpoint_dir or Path(tempfile.mkdtemp(prefix="candidate-gan-"))
    checkpoint = tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator)
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=2)
    best, best_epoch, waited = -1.0, 0, 0
    started = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        for batch in dataset:
            d_loss, g_loss = gan.train_step(batch)
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
    return TrainedGan(gan, item_ids, best_epoch, seconds, best)
