"""Trains the review sentiment classifier in TensorFlow from ratings (weak labels)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ml.sentiment import SentimentModel, check_labels, terms, weak_labels


@dataclass(frozen=True)
class SentimentConfig:
    min_count: int = 3  # terms seen in fewer reviews are left out
    max_terms: int = 20_000
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 0.02
    l2: float = 1e-4
    seed: int = 0


def fit_sentiment(
    texts: list[str], ratings: list[int], config: SentimentConfig = SentimentConfig()
) -> SentimentModel:
    labels = weak_labels(ratings)
    check_labels(labels)
    used = labels >= 0
    positive, negative = int((labels == 1).sum()), int((labels == 0).sum())
    kept = [text for text, keep in zip(texts, used.tolist(), strict=True) if keep]
    counts = Counter(term for text in kept for term in set(terms(text)))
    vocabulary = np.array(
        sorted(t for t, c in counts.most_common(config.max_terms) if c >= config.min_count), dtype=str
    )
    x = SentimentModel(vocabulary, np.zeros(len(vocabulary), dtype=np.float32), 0.0).columns(kept)
    y = labels[used].astype(np.float32)
    tf.keras.utils.set_random_seed(config.seed)
    dense = tf.keras.layers.Dense(1, kernel_regularizer=tf.keras.regularizers.l2(config.l2))
    model = tf.keras.Sequential([tf.keras.Input(shape=(len(vocabulary),)), dense])
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
    )
    # The classes weigh the same: shops get far more praise than complaints.
    weights = {0: len(y) / (2 * negative), 1: len(y) / (2 * positive)}
    model.fit(x, y, epochs=config.epochs, batch_size=config.batch_size, class_weight=weights, verbose=0)
    kernel, bias = dense.get_weights()
    return SentimentModel(vocabulary, kernel[:, 0].astype(np.float32), float(bias[0]))
