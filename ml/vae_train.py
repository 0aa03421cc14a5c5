"""Trains the Mult-VAE over purchase histories in TensorFlow.

Encoder: unit-length binary history, dropout, a tanh layer, then the mean and
log-variance of a Gaussian latent. Decoder: a tanh layer, then a softmax over
the items; the loss is the multinomial log-likelihood of the history plus beta
times the KL divergence to N(0, I), beta annealed from 0 to `beta`. A tenth of
the shoppers are held out: the model sees 80% of each one's items and is scored
by Recall@20 on the rest, against most-popular on the same split; training keeps
the best epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from scipy import sparse

from ml.deadline import Deadline, passed
from ml.metrics import recall_of_hits, top_k
from ml.vae import UserEncoder

RECALL_K = 20
# At most this many shoppers are held out to pick the best epoch: their seen, hidden and scored
# rows are held dense (3 x 4 bytes x shoppers x items).
MAX_HELD_OUT = 5000


@dataclass(frozen=True)
class VaeConfig:
    hidden: int = 600
    latent: int = 32
    max_items: int = 20_000
    dropout: float = 0.5
    beta: float = 0.2
    anneal_epochs: int = 10
    epochs: int = 30
    patience: int = 4
    batch_size: int = 256
    learning_rate: float = 1e-3
    holdout_share: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class TrainedVae:
    encoder: UserEncoder
    epochs: int
    validation_recall: float
    popular_recall: float
    cut: bool = False  # its deadline stopped it before early stopping did

    def save(self, folder: Path) -> None:
        self.encoder.save(folder)


def _matrix(users: np.ndarray, items: np.ndarray, max_items: int) -> tuple[np.ndarray, sparse.csr_matrix]:
    item_ids, item_index, buyers = np.unique(items, return_inverse=True, return_counts=True)
    kept = np.sort(np.argsort(-buyers, kind="stable")[:max_items])
    position = np.full(len(item_ids), -1)
    position[kept] = np.arange(len(kept))
    _, user_index = np.unique(users, return_inverse=True)
    columns = position[item_index]
    known = columns >= 0
    matrix = sparse.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (user_index[known], columns[known])),
        shape=(int(user_index.max()) + 1, len(kept)),
    )
    matrix.data[:] = 1.0
    return item_ids[kept], matrix


def _fold_in(matrix: sparse.csr_matrix, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """80% of each row's items as input, the other 20% (at least one) to recall: two dense binary
    matrices (seen, hidden) of the held-out shoppers."""
    hidden = np.zeros(matrix.shape, np.float32)
    for row in range(matrix.shape[0]):
        items = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
        hidden[row, rng.choice(items, size=max(1, len(items) // 5), replace=False)] = 1.0
    return matrix.toarray() - hidden, hidden


def _recall(scores: np.ndarray, seen: np.ndarray, hidden: np.ndarray) -> float:
    hits = np.take_along_axis(hidden, top_k(scores, RECALL_K, exclude=seen > 0), axis=1)
    return float(recall_of_hits(hits, hidden.sum(axis=1), capped=True).mean())


def fit_vae(
    users: np.ndarray,
    items: np.ndarray,
    config: VaeConfig = VaeConfig(),
    on_epoch: Callable[[int, float, float], None] = lambda epoch, loss, recall: None,
    deadline: Deadline = None,
) -> TrainedVae:
    item_ids, matrix = _matrix(users, items, config.max_items)
    rng = np.random.default_rng(config.seed)
    eligible = np.flatnonzero(np.diff(matrix.indptr) >= 2)
    if len(eligible) < 10:
        raise ValueError("the VAE needs at least ten shoppers with two or more items")
    held_count = min(MAX_HELD_OUT, max(1, int(len(eligible) * config.holdout_share)))
    held = rng.choice(eligible, size=held_count, replace=False)
    train_rows = np.setdiff1d(np.arange(matrix.shape[0]), held)
    seen, hidden = _fold_in(matrix[held], rng)
    popular = np.asarray(matrix[train_rows].sum(axis=0)).ravel()
    popular_recall = _recall(np.tile(popular, (len(held), 1)), seen, hidden)

    tf.keras.utils.set_random_seed(config.seed)
    n = matrix.shape[1]
    initializer = tf.keras.initializers.GlorotUniform()
    weights = {
        "hidden": tf.Variable(initializer((n, config.hidden))),
        "hidden_bias": tf.Variable(tf.zeros(config.hidden)),
        "mean": tf.Variable(initializer((config.hidden, config.latent))),
        "mean_bias": tf.Variable(tf.zeros(config.latent)),
        "log_variance": tf.Variable(initializer((config.hidden, config.latent))),
        "log_variance_bias": tf.Variable(tf.zeros(config.latent)),
        "decoder_hidden": tf.Variable(initializer((config.latent, config.hidden))),
        "decoder_hidden_bias": tf.Variable(tf.zeros(config.hidden)),
        "decoder": tf.Variable(initializer((config.hidden, n))),
        "decoder_bias": tf.Variable(tf.zeros(n)),
    }
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    def encode(x: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.math.l2_normalize(x, axis=1)
        if training:
            x = tf.nn.dropout(x, config.dropout)
        h = tf.tanh(x @ weights["hidden"] + weights["hidden_bias"])
        return h @ weights["mean"] + weights["mean_bias"], h @ weights["log_variance"] + weights[
            "log_variance_bias"
        ]

    def decode(z: tf.Tensor) -> tf.Tensor:
        h = tf.tanh(z @ weights["decoder_hidden"] + weights["decoder_hidden_bias"])
        return h @ weights["decoder"] + weights["decoder_bias"]

    @tf.function
    def step(x: tf.Tensor, beta: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            mean, log_variance = encode(x, training=True)
            z = mean + tf.exp(0.5 * log_variance) * tf.random.normal(tf.shape(mean))
            likelihood = tf.reduce_sum(tf.nn.log_softmax(decode(z)) * x, axis=1)
            kl = 0.5 * tf.reduce_sum(tf.exp(log_variance) + mean**2 - 1.0 - log_variance, axis=1)
            loss = tf.reduce_mean(-likelihood + beta * kl)
        variables = list(weights.values())
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    best: tuple[float, int, dict[str, np.ndarray]] = (-1.0, 0, {})
    seen_input = tf.constant(seen)
    cut = False
    for epoch in range(1, config.epochs + 1):
        beta = tf.constant(config.beta * min(1.0, epoch / config.anneal_epochs), tf.float32)
        # One fancy index per epoch; each batch is then a cheap contiguous slice of its rows.
        shuffled = matrix[rng.permutation(train_rows)]
        losses = [
            float(step(tf.constant(shuffled[s : s + config.batch_size].toarray()), beta))
            for s in range(0, shuffled.shape[0], config.batch_size)
        ]
        mean, _ = encode(seen_input, training=False)
        recall = _recall(decode(mean).numpy(), seen, hidden)
        on_epoch(epoch, float(np.mean(losses)), recall)
        if recall > best[0]:
            best = (recall, epoch, {name: variable.numpy() for name, variable in weights.items()})
        elif epoch - best[1] >= config.patience:
            break
        if passed(deadline) and epoch < config.epochs:
            cut = True
            break
    recall, epoch, kept = best
    encoder = UserEncoder(
        item_ids=item_ids.astype(str),
        hidden=kept["hidden"],
        hidden_bias=kept["hidden_bias"],
        mean=kept["mean"],
        mean_bias=kept["mean_bias"],
        decoder_hidden=kept["decoder_hidden"],
        decoder_hidden_bias=kept["decoder_hidden_bias"],
        decoder=kept["decoder"],
        decoder_bias=kept["decoder_bias"],
    )
    return TrainedVae(encoder, epoch, recall, popular_recall, cut)
