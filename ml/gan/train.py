"""Training of the candidate GAN from a snapshot: tf.data, early stopping on a validation split
carved from the training data, checkpoints of the best epoch, a fixed seed.

Shopper vectors stay sparse until a batch is fed to the networks: memory grows with
the events and the batch, never with shoppers x items (see `peak_memory_bytes`,
checked against `GanConfig.max_memory_mb` before anything is built). The exported
signature takes item ids.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from scipy import sparse

from ml.gan.model import CFGAN, GanConfig
from ml.metrics import held_out_recall
from ml.snapshot import Snapshot

VALIDATION_SHARE = 0.2
VALIDATION_K = 20
# Shoppers scored at once for the validation recall: bounds the dense score matrix.
SCORING_ROWS = 1024
# Early stopping reads the recall of at most this many shoppers with held items (a fixed sample):
# scoring every shopper each epoch cost a quarter of an epoch on a 22,000-shopper shop.
STOPPING_SHOPPERS = 5000
# What TensorFlow itself holds once loaded and has traced the steps (measured: 0.7 to 0.9 GB).
RUNTIME_BYTES = 1024 * 2**20


class GanMemoryError(ValueError):
    """Training the GAN on this snapshot would exceed the configured memory bound."""


@dataclass(frozen=True)
class FirstInteractions:
    """Each (shopper, item) pair's first interaction time, as sparse triples."""

    item_ids: np.ndarray
    user_ids: np.ndarray
    rows: np.ndarray  # shopper index
    columns: np.ndarray  # item index
    times: np.ndarray

    @property
    def shoppers(self) -> int:
        return len(self.user_ids)

    @property
    def shape(self) -> tuple[int, int]:
        return self.shoppers, len(self.item_ids)

    def matrix(self, keep: np.ndarray | None = None) -> sparse.csr_matrix:
        """The binary shoppers x items matrix of the pairs `keep` selects (all by default)."""
        rows, columns = (self.rows, self.columns) if keep is None else (self.rows[keep], self.columns[keep])
        return sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, columns)), shape=self.shape, dtype=np.float32
        )


def first_interactions(snapshot: Snapshot) -> FirstInteractions:
    users, items = snapshot.interactions()
    times = snapshot.interaction_times()
    user_ids, user_index = np.unique(users, return_inverse=True)
    item_ids, item_index = np.unique(items, return_inverse=True)
    pairs = user_index.astype(np.int64) * len(item_ids) + item_index
    order = np.lexsort((times, pairs))
    pairs, times = pairs[order], np.asarray(times, dtype=np.float64)[order]
    first = np.r_[True, pairs[1:] != pairs[:-1]] if len(pairs) else np.zeros(0, bool)
    return FirstInteractions(
        item_ids, user_ids, pairs[first] // len(item_ids), pairs[first] % len(item_ids), times[first]
    )


def hold_out_recent(first: FirstInteractions, share: float) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(kept, held-out) binary matrices split at one moment: interactions before the time that
    leaves the latest `share` of all first interactions after it are kept; the items shoppers
    first bought after it are held out (for shoppers who kept at least one item).

    This is the situation served candidates are in: predicting the coming weeks'
    new purchases from everything before. On Online Retail it picks 45 epochs where
    holding out each shopper's own latest items picked 54; the test period itself
    peaks near 30 for a generator trained on everything, so both still err long.
    """
    cutoff = np.quantile(first.times, 1.0 - share) if len(first.times) else 0.0
    kept = first.times < cutoff
    active = np.zeros(first.shoppers, bool)
    active[first.rows[kept]] = True
    return first.matrix(kept), first.matrix(~kept & active[first.rows])


def peak_memory_bytes(shoppers: int, items: int, pairs: int, config: GanConfig) -> int:
    """An upper estimate of training's peak memory: the runtime, the sparse interactions and
    their tf.data copies, two GANs' weights with Adam slots and gradients, the dense tensors
    of one batch's step, and one block of validation scores."""
    hidden = config.hidden
    generator = (items + config.noise) * hidden + hidden * items + hidden + items
    discriminator = 2 * items * hidden + hidden * (hidden // 2) + hidden // 2 + hidden + 1
    weights = 2 * (generator + discriminator) * 4 * 4  # two GANs; weights, two Adam slots, gradients
    step = 24 * config.batch_size * items * 4  # dense vectors, masks and their gradients
    scoring = 4 * min(SCORING_ROWS, shoppers) * items * 8
    interactions = pairs * (8 + 8 + 8 + 4) * 6  # triples, three CSR matrices, two tf.data copies
    return RUNTIME_BYTES + weights + step + scoring + interactions


def held_out_recall_of(gan: CFGAN, known: sparse.csr_matrix, held: sparse.csr_matrix, k: int) -> float:
    """Mean recall@k of the held-out items over shoppers who have any, their known items
    excluded; scored SCORING_ROWS shoppers at a time."""
    recalls = [
        held_out_recall(
            gan.scores(known[start : start + SCORING_ROWS].toarray()),
            known[start : start + SCORING_ROWS].toarray(),
            held[start : start + SCORING_ROWS].toarray(),
            k,
        )
        for start in range(0, known.shape[0], SCORING_ROWS)
    ]
    found = np.concatenate(recalls) if recalls else np.zeros(0)
    return float(found.mean()) if len(found) else 0.0


@dataclass
class TrainedGan:
    """A fitted GAN with its item ids; `save(folder)` writes the serving SavedModel."""

    gan: CFGAN
    item_ids: np.ndarray
    epochs: int
    seconds_per_epoch: float
    validation_recall: float
    replicas: int = 1
    # Whether the time budget (GanConfig.max_minutes) cut the validation stage or the refit short.
    budget_bound: bool = False
    seconds: float = 0.0  # both stages
    pairs: int = 0  # the distinct (shopper, item) pairs it was trained on

    def save(self, folder: Path) -> None:
        from ml.gan.export import export

        export(self, folder)


def training_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over every GPU when there are several; otherwise the default strategy
    (one GPU when present, else the CPU)."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class _Training:
    """One GAN and its distributed training step over one interaction matrix."""

    def __init__(
        self, matrix: sparse.csr_matrix, config: GanConfig, strategy: tf.distribute.Strategy
    ) -> None:
        with strategy.scope():
            self.gan = CFGAN(matrix.shape[1], config)
        coordinates = matrix.tocoo()
        rows = tf.sparse.reorder(
            tf.SparseTensor(
                np.stack([coordinates.row, coordinates.col], axis=1).astype(np.int64),
                coordinates.data.astype(np.float32),
                matrix.shape,
            )
        )
        # Rows stay sparse through the shuffle; only a batch becomes dense, on its way in.
        self.dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(rows)
            .shuffle(matrix.shape[0], seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch_size * strategy.num_replicas_in_sync)
            .map(tf.sparse.to_dense, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

        @tf.function
        def step(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            d_loss, g_loss = strategy.run(self.gan.train_step, args=(batch,))
            total = tf.distribute.ReduceOp.SUM
            return strategy.reduce(total, d_loss, axis=None), strategy.reduce(total, g_loss, axis=None)

        self.step = step

    def epoch(self) -> tuple[float, float]:
        """One pass over the matrix; the last step's (discriminator, generator) losses."""
        for batch in self.dataset:
            d_loss, g_loss = self.step(batch)
        return float(d_loss), float(g_loss)


EpochCallback = Callable[[str, int, float, float, float | None], None]


def _checked(snapshot: Snapshot, config: GanConfig) -> FirstInteractions:
    """The snapshot's first interactions, or GanMemoryError when training on them would exceed
    `config.max_memory_mb`."""
    first = first_interactions(snapshot)
    needed = peak_memory_bytes(first.shoppers, len(first.item_ids), len(first.times), config)
    if needed > config.max_memory_mb * 2**20:
        raise GanMemoryError(
            f"training the candidate GAN on {first.shoppers} shoppers x {len(first.item_ids)} items "
            f"({len(first.times)} distinct purchases) needs about {needed / 2**20:,.0f} MB, more than "
            f"the {config.max_memory_mb:,} MB allowed (RECSYS_GAN_MAX_MEMORY_MB); raise the bound, "
            "or lower GanConfig.hidden or batch_size"
        )
    return first


def stopping_rows(held: sparse.csr_matrix, seed: int) -> np.ndarray:
    """The shoppers whose held-items recall stops training: those with any held item, a fixed
    random STOPPING_SHOPPERS of them when there are more, in row order."""
    rows = np.flatnonzero(held.getnnz(axis=1) > 0)
    if len(rows) <= STOPPING_SHOPPERS:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, STOPPING_SHOPPERS, replace=False))


@dataclass
class _EarlyStopped:
    training: _Training
    best_epoch: int
    recall: float
    epochs: int  # run, the ones after the best included
    bound: bool  # the time budget stopped it


def _early_stopped(
    train: sparse.csr_matrix,
    held: sparse.csr_matrix,
    config: GanConfig,
    strategy: tf.distribute.Strategy,
    on_epoch: EpochCallback,
    budget_s: float,
    keep_best: bool,
) -> _EarlyStopped:
    """Trains on `train` until recall@20 of `held` stops improving (or `budget_s` runs out);
    `keep_best`: the networks end at their best epoch's weights."""
    started = time.perf_counter()
    probe = _Training(train, config, strategy)
    best, best_epoch, waited, epochs, bound = -1.0, 1, 0, 0, False
    best_weights: list[list[np.ndarray]] = []
    networks = (probe.gan.generator, probe.gan.discriminator)
    rows = stopping_rows(held, config.seed)
    known, held = train[rows], held[rows]
    for epoch in range(1, config.max_epochs + 1):
        d_loss, g_loss = probe.epoch()
        epochs += 1
        recall = held_out_recall_of(probe.gan, known, held, VALIDATION_K)
        on_epoch("validation", epoch, d_loss, g_loss, recall)
        if recall > best:
            best, best_epoch, waited = recall, epoch, 0
            if keep_best:
                best_weights = [network.get_weights() for network in networks]
        elif epoch >= config.min_epochs:
            waited += 1
            if waited >= config.patience:
                break
        if time.perf_counter() - started > budget_s and epoch < config.max_epochs:
            bound = True
            break
    if keep_best and best_epoch != epochs:
        for network, weights in zip(networks, best_weights, strict=True):
            network.set_weights(weights)
    return _EarlyStopped(probe, best_epoch, best, epochs, bound)


def _refit(
    everything: sparse.csr_matrix,
    epochs: int,
    config: GanConfig,
    strategy: tf.distribute.Strategy,
    on_epoch: EpochCallback,
    checkpoint_dir: Path | None,
) -> _Training:
    """A fresh GAN (same seed) trained on every interaction for `epochs`, a checkpoint per epoch."""
    final = _Training(everything, config, strategy)
    folder = checkpoint_dir or Path(tempfile.mkdtemp(prefix="candidate-gan-"))
    checkpoint = tf.train.Checkpoint(generator=final.gan.generator, discriminator=final.gan.discriminator)
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=2)
    for epoch in range(1, epochs + 1):
        d_loss, g_loss = final.epoch()
        manager.save(checkpoint_number=epoch)
        on_epoch("refit", epoch, d_loss, g_loss, None)
    return final


def _affordable(seconds_per_epoch: float, rows_then: int, rows_now: int, budget_s: float, wanted: int) -> int:
    """How many of `wanted` epochs over `rows_now` interactions fit in `budget_s` at the pace
    measured over `rows_then` (at least one)."""
    pace = seconds_per_epoch * rows_now / max(rows_then, 1)
    return min(wanted, max(1, int(budget_s / max(pace, 1e-9))))


def refit_affordable(snapshot: Snapshot, chosen: TrainedGan, budget_s: float) -> bool:
    """Whether one epoch over every interaction of `snapshot` fits in `budget_s`, at the pace
    `chosen` (from `fit_gan_on_carve`) was trained at on the carve's pairs."""
    pairs = len(first_interactions(snapshot).rows)
    return chosen.seconds_per_epoch * pairs / max(chosen.pairs, 1) <= budget_s


def fit_gan(
    snapshot: Snapshot,
    config: GanConfig | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: EpochCallback = lambda *_: None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainedGan:
    """Fits the GAN in two stages, reporting each epoch to `on_epoch(stage, epoch, d_loss, g_loss,
    validation recall or None)`:

    1. "validation": trains on the interactions before a cutoff and early-stops on
       recall@20 of the items shoppers first bought after it (`hold_out_recent`), which
       fixes the number of epochs;
    2. "refit": trains a fresh GAN (same seed) on every interaction for that many
       epochs, with a checkpoint per epoch, so the latest purchases, the most telling
       ones, are not left out of the model that is served.

    `config.max_minutes` bounds both stages together: the validation stage stops once
    it has used half, and the refit runs as many of the chosen epochs as the rest
    allows at the measured pace (`TrainedGan.budget_bound` says when that cut anything).
    `config.batch_size` is per replica: each step sees batch x replicas rows.
    Training runs that carve a validation split of their own use `fit_gan_on_carve` and
    `refit_gan` instead: the first stage is then the carve's, and serves validation too.
    """
    config = config or GanConfig()
    first = _checked(snapshot, config)
    strategy = strategy or training_strategy()
    everything = first.matrix()
    train, validation = hold_out_recent(first, VALIDATION_SHARE)
    started = time.perf_counter()
    budget_s = config.max_minutes * 60
    stopped = _early_stopped(train, validation, config, strategy, on_epoch, budget_s / 2, keep_best=False)
    spent = time.perf_counter() - started
    refit_epochs = _affordable(
        spent / stopped.epochs, train.nnz, everything.nnz, budget_s - spent, stopped.best_epoch
    )
    final = _refit(everything, refit_epochs, config, strategy, on_epoch, checkpoint_dir)
    return TrainedGan(
        final.gan,
        first.item_ids,
        refit_epochs,
        (time.perf_counter() - started) / (stopped.epochs + refit_epochs),
        stopped.recall,
        strategy.num_replicas_in_sync,
        budget_bound=stopped.bound or refit_epochs < stopped.best_epoch,
        seconds=time.perf_counter() - started,
    )


def fit_gan_on_carve(
    fit: Snapshot,
    held: Mapping[str, Iterable[str]],
    config: GanConfig | None = None,
    on_epoch: EpochCallback = lambda *_: None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainedGan:
    """The GAN fitted on a validation carve's fitting part, early-stopped on recall@20 of the
    carve's held items (`held`: shopper -> items) and returned at its best epoch (`epochs`).

    One fit serves three purposes in a training run: the generator's lists on validation, the
    ranker's lists to learn from, and the epoch count for `refit_gan`. It may use half of
    `config.max_minutes`.
    """
    config = config or GanConfig()
    first = _checked(fit, config)
    strategy = strategy or training_strategy()
    train = first.matrix()
    user_row = {user: row for row, user in enumerate(first.user_ids.tolist())}
    item_column = {item: column for column, item in enumerate(first.item_ids.tolist())}
    pairs = [
        (user_row[user], item_column[item])
        for user, items in held.items()
        if user in user_row
        for item in items
        if item in item_column
    ]
    rows, columns = (np.array(side, np.int64) for side in zip(*pairs, strict=True)) if pairs else ([], [])
    held_matrix = sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, columns)), shape=first.shape, dtype=np.float32
    )
    started = time.perf_counter()
    budget_s = config.max_minutes * 60
    stopped = _early_stopped(train, held_matrix, config, strategy, on_epoch, budget_s / 2, keep_best=True)
    seconds = time.perf_counter() - started
    return TrainedGan(
        stopped.training.gan,
        first.item_ids,
        stopped.best_epoch,
        seconds / stopped.epochs,
        stopped.recall,
        strategy.num_replicas_in_sync,
        budget_bound=stopped.bound,
        seconds=seconds,
        pairs=train.nnz,
    )


def refit_gan(
    snapshot: Snapshot,
    chosen: TrainedGan,
    config: GanConfig | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: EpochCallback = lambda *_: None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainedGan:
    """A fresh GAN trained on every interaction of `snapshot` for the epochs `chosen` (from
    `fit_gan_on_carve`) found best, or as many as the rest of `config.max_minutes` allows."""
    config = config or GanConfig()
    first = _checked(snapshot, config)
    strategy = strategy or training_strategy()
    everything = first.matrix()
    started = time.perf_counter()
    epochs = _affordable(
        chosen.seconds_per_epoch,
        chosen.pairs,
        everything.nnz,
        config.max_minutes * 60 - chosen.seconds,
        chosen.epochs,
    )
    final = _refit(everything, epochs, config, strategy, on_epoch, checkpoint_dir)
    seconds = time.perf_counter() - started
    return TrainedGan(
        final.gan,
        first.item_ids,
        epochs,
        seconds / epochs,
        chosen.validation_recall,
        strategy.num_replicas_in_sync,
        budget_bound=chosen.budget_bound or epochs < chosen.epochs,
        seconds=chosen.seconds + seconds,
        pairs=everything.nnz,
    )
