"""Trains the item text encoder in TensorFlow on co-purchases.

Objective: items bought one after the other by the same shopper (within
`window` distinct items) should have close vectors. Each batch of such pairs is
an in-batch softmax: the first item's vector must pick its partner's among
every partner in the batch (temperature `temperature`), the objective of
two-tower retrieval models. Only words are seen, never item ids, so any item
with a text, sold or not, gets a vector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ml.text_encoder import MAX_WORDS, ItemEmbeddings, word_ids, words


@dataclass(frozen=True)
class TextEncoderConfig:
    dim: int = 64
    filters: int = 64
    widths: tuple[int, ...] = (1, 2, 3)
    window: int = 5
    max_pairs: int = 200_000
    epochs: int = 3
    batch_size: int = 512
    temperature: float = 0.1
    learning_rate: float = 2e-3
    min_word_count: int = 1
    seed: int = 0


def copurchase_pairs(users: np.ndarray, items: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) catalog rows: each shopper's distinct items in time order, each paired with the
    next `window`. `users` and `items` are in time order; `items` holds catalog rows."""
    histories: dict[str, dict[int, None]] = {}
    for user, item in zip(users.tolist(), items.tolist(), strict=True):
        histories.setdefault(user, {})[item] = None
    first, second = [], []
    for history in histories.values():
        sequence = list(history)
        for n, item in enumerate(sequence):
            for later in sequence[n + 1 : n + 1 + window]:
                first.append(item)
                second.append(later)
    return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)


def vocabulary_of(texts: list[str], min_count: int) -> np.ndarray:
    counts: dict[str, int] = {}
    for text in texts:
        for word in words(text):
            counts[word] = counts.get(word, 0) + 1
    return np.array(sorted(word for word, count in counts.items() if count >= min_count), dtype=str)


def _encoder(vocabulary_size: int, config: TextEncoderConfig) -> tf.keras.Model:
    ids = tf.keras.Input((MAX_WORDS,), dtype="int32")
    embedded = tf.keras.layers.Embedding(vocabulary_size + 2, config.dim, name="words")(ids)
    pooled = [
        tf.keras.layers.GlobalMaxPooling1D()(
            tf.keras.layers.Conv1D(
                config.filters, width, padding="same", activation="relu", name=f"conv_{width}"
            )(embedded)
        )
        for width in config.widths
    ]
    joined = tf.keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0]
    vector = tf.keras.layers.UnitNormalization()(tf.keras.layers.Dense(config.dim, name="dense")(joined))
    return tf.keras.Model(ids, vector)


def fit_text_encoder(
    item_ids: np.ndarray,
    texts: list[str],
    users: np.ndarray,
    purchased: np.ndarray,
    config: TextEncoderConfig = TextEncoderConfig(),
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> ItemEmbeddings:
    """Encoder and catalog vectors from the catalog's texts and purchases: `users` and the
    `purchased` item ids in time order; purchases of items outside the catalog are left out."""
    rows = {item: n for n, item in enumerate(np.asarray(item_ids).tolist())}
    known = np.array([item in rows for item in purchased.tolist()], dtype=bool)
    items = np.array([rows[item] for item in purchased[known].tolist()], dtype=np.int64)
    first, second = copurchase_pairs(users[known], items, config.window)
    if len(first) < 2:
        raise ValueError("the text encoder needs at least two co-purchases")
    rng = np.random.default_rng(config.seed)
    if len(first) > config.max_pairs:
        keep = rng.choice(len(first), config.max_pairs, replace=False)
        first, second = first[keep], second[keep]
    vocabulary = vocabulary_of(texts, config.min_word_count)
    tokens = tf.constant(word_ids(texts, {word: n + 2 for n, word in enumerate(vocabulary.tolist())}))
    tf.keras.utils.set_random_seed(config.seed)
    encoder = _encoder(len(vocabulary), config)
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    @tf.function
    def step(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            left = encoder(tf.gather(tokens, a), training=True)
            right = encoder(tf.gather(tokens, b), training=True)
            logits = tf.matmul(left, right, transpose_b=True) / config.temperature
            labels = tf.range(tf.shape(a)[0])
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            )
        gradients = tape.gradient(loss, encoder.trainable_variables)
        optimizer.apply_gradients(zip(gradients, encoder.trainable_variables, strict=True))
        return loss

    batch = min(config.batch_size, len(first))
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(first))
        losses = [
            float(step(first[order[s : s + batch]], second[order[s : s + batch]]))
            for s in range(0, len(order) - batch + 1, batch)
        ]
        on_epoch(epoch, float(np.mean(losses)))
    return _artifact(encoder, vocabulary, config, item_ids, tokens)


def _artifact(
    encoder: tf.keras.Model,
    vocabulary: np.ndarray,
    config: TextEncoderConfig,
    item_ids: np.ndarray,
    tokens: tf.Tensor,
) -> ItemEmbeddings:
    embedding = encoder.get_layer("words").get_weights()[0]
    convolutions = [encoder.get_layer(f"conv_{width}") for width in config.widths]
    dense = encoder.get_layer("dense")
    vectors = encoder.predict(tokens, batch_size=4096, verbose=0).astype(np.float32)
    return ItemEmbeddings(
        vocabulary=vocabulary,
        embedding=embedding,
        kernels=[layer.get_weights()[0] for layer in convolutions],
        biases=[layer.get_weights()[1] for layer in convolutions],
        dense=dense.get_weights()[0],
        dense_bias=dense.get_weights()[1],
        item_ids=np.asarray(item_ids, dtype=str),
        vectors=vectors,
    )
