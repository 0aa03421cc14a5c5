"""The learned ranker: an MLP over the candidate features plus latent factors and an item bias.

score(user, item) = MLP(standardized features) + mean(history item vectors) . item vector
                    + item bias

Trained listwise: each training list is one shopper's real candidate list, and the
loss is the softmax cross-entropy of the items the shopper went on to buy. Feature
groups can be left out (the ablation); a left-out group's columns are zeroed after
standardization, and leaving out "collaborative" or "item" also drops the latent
factors or the item bias.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import tensorflow as tf

from ml.ranking.config import ITEM_BIAS, LATENT, MLP, RankerConfig
from ml.ranking.features import FEATURES
from ml.ranking.serving import ServingRanker, save_weights


class RankerNet(tf.Module):
    """The scoring function; item index 0 is "unknown item" (no vector, no bias)."""

    def __init__(
        self,
        items: int,
        config: RankerConfig,
        mean: np.ndarray,
        std: np.ndarray,
        features: tuple[str, ...] = FEATURES,
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(config.seed)
        self.config = config
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)
        self.mask = tf.constant(config.feature_mask(features))
        widths = [len(features), *config.hidden, 1]
        self.layers = [
            (
                tf.Variable(rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)).astype(np.float32), name=f"w{i}"),
                tf.Variable(np.zeros(n_out, np.float32), name=f"b{i}"),
            )
            for i, (n_in, n_out) in enumerate(itertools.pairwise(widths))
        ]
        self.vectors = tf.Variable(
            rng.normal(0, 0.01, (items + 1, config.dim)).astype(np.float32), name="vec"
        )
        self.bias = tf.Variable(np.zeros(items + 1, np.float32), name="bias")

    def standardize(self, features: tf.Tensor) -> tf.Tensor:
        return (features - self.mean) / self.std * self.mask

    def parts(self, z: tf.Tensor, items: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        """The score's additive parts for standardized features z [..., N, F], items [..., N],
        history [..., L] (0 pads)."""
        hidden = z
        for i, (weight, bias) in enumerate(self.layers):
            hidden = tf.tensordot(hidden, weight, 1) + bias
            if i < len(self.layers) - 1:
                hidden = tf.nn.relu(hidden)
        known = tf.cast(items > 0, tf.float32)
        parts = {MLP: hidden[..., 0]}
        if self.config.latent:
            present = tf.cast(history > 0, tf.float32)[..., None]
            user = tf.reduce_sum(tf.gather(self.vectors, history) * present, -2) / tf.maximum(
                tf.reduce_sum(present, -2), 1.0
            )
            parts[LATENT] = tf.reduce_sum(tf.gather(self.vectors, items) * user[..., None, :], -1) * known
        if self.config.item_bias:
            parts[ITEM_BIAS] = tf.gather(self.bias, items) * known
        return parts

    def scores(self, features: tf.Tensor, items: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
        return tf.add_n(list(self.parts(self.standardize(features), items, history).values()))

    def weights(self) -> dict[str, np.ndarray]:
        """What the ranking service loads (ml/ranking/serving.py): every variable, mean and std."""
        found = {v.name.split(":")[0]: v.numpy() for v in self.trainable_variables}
        return {**found, "mean": self.mean.numpy(), "std": self.std.numpy()}

    def save(self, folder: Path, extra: dict) -> None:
        """Its weights and metadata (with `extra`), as the ranking service loads them."""
        save_weights(self.weights(), self.config, folder, extra)

    def serving(self) -> ServingRanker:
        """The network as the ranking service runs it, from its current weights."""
        return ServingRanker(self.config, self.weights())

    def assign(self, weights: dict[str, np.ndarray]) -> None:
        for variable in self.trainable_variables:
            variable.assign(weights[variable.name.split(":")[0]])
