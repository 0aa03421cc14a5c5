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
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from ml.ranking.features import FEATURES, GROUPS

LATENT = "latent_factors"
ITEM_BIAS = "item_bias"


@dataclass(frozen=True)
class RankerConfig:
    dim: int = 32
    hidden: tuple[int, ...] = (64, 32)
    learning_rate: float = 2e-3
    batch_lists: int = 32
    max_epochs: int = 40
    min_epochs: int = 3
    patience: int = 5
    l2: float = 1e-5
    # Feature groups left out (an ablation); see features.GROUPS.
    removed: tuple[str, ...] = ()
    seed: int = 0

    @property
    def latent(self) -> bool:
        return "collaborative" not in self.removed

    @property
    def item_bias(self) -> bool:
        return "item" not in self.removed

    def feature_mask(self) -> np.ndarray:
        gone = {name for group in self.removed for name in GROUPS[group]}
        return np.array([0.0 if name in gone else 1.0 for name in FEATURES], dtype=np.float32)


class RankerNet(tf.Module):
    """The scoring function; item index 0 is "unknown item" (no vector, no bias)."""

    def __init__(self, items: int, config: RankerConfig, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        rng = np.random.default_rng(config.seed)
        self.config = config
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)
        self.mask = tf.constant(config.feature_mask())
        widths = [len(FEATURES), *config.hidden, 1]
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
        parts = {"mlp": hidden[..., 0]}
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
        found = {v.name.split(":")[0]: v.numpy() for v in self.trainable_variables}
        return {**found, "mean": self.mean.numpy(), "std": self.std.numpy()}

    def assign(self, weights: dict[str, np.ndarray]) -> None:
        for variable in self.trainable_variables:
            variable.assign(weights[variable.name.split(":")[0]])


@dataclass
class Explained:
    """Scores of one list and, for the explained candidates (by row), (feature, contribution)
    largest first."""

    scores: np.ndarray
    contributions: dict[int, list[tuple[str, float]]] = field(default_factory=dict)


class ServingRanker:
    """One loaded ranker, scoring one shopper's list per call (a compiled graph, any list length)."""

    def __init__(self, net: RankerNet) -> None:
        self.net = net
        self._explain = tf.function(
            self._gradients,
            input_signature=[
                tf.TensorSpec([None, len(FEATURES)], tf.float32),
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([None], tf.int64),
            ],
        )

    def _gradients(self, features: tf.Tensor, items: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        z = self.net.standardize(features)
        with tf.GradientTape() as tape:
            tape.watch(z)
            parts = self.net.parts(z, items, history)
            total = tf.add_n(list(parts.values()))
        # Each score depends only on its own row, so the gradient of the sum is every row's gradient.
        return {**parts, "total": total, "z": z, "gradient": tape.gradient(total, z)}

    def explain(
        self, features: np.ndarray, items: np.ndarray, history: np.ndarray, top: int, best: int
    ) -> Explained:
        """Scores, and the `top` contributions of each of the `best` highest-scored candidates:
        gradient x (feature - list mean) for the MLP's inputs (a first-order attribution), and
        the latent and bias parts minus their list means."""
        out = {k: v.numpy() for k, v in self._explain(features, items, history).items()}
        scores = out["total"]
        rows = np.argsort(-scores, kind="stable")[:best]
        z = out["z"]
        attributions = out["gradient"][rows] * (z[rows] - z.mean(0, keepdims=True))
        names = list(FEATURES)
        for part in (LATENT, ITEM_BIAS):
            if part in out:
                names.append(part)
                centred = out[part][rows] - out[part].mean()
                attributions = np.concatenate([attributions, centred[:, None]], 1)
        order = np.argsort(-attributions, axis=1)[:, :top]
        chosen = np.take_along_axis(attributions, order, 1)
        contributions = {
            row: [(names[j], value) for j, value in zip(js, values, strict=True) if value > 0]
            for row, js, values in zip(rows.tolist(), order.tolist(), chosen.tolist(), strict=True)
        }
        return Explained(scores, contributions)


def save_net(net: RankerNet, folder: Path, extra: dict) -> None:
    np.savez(folder / "weights.npz", **net.weights())
    meta = {"config": asdict(net.config), "features": list(FEATURES), "items": int(net.bias.shape[0]) - 1}
    (folder / "ranker.json").write_text(json.dumps({**meta, **extra}, indent=2))


def load_net(folder: Path) -> tuple[RankerNet, dict]:
    meta = json.loads((folder / "ranker.json").read_text())
    if meta["features"] != list(FEATURES):
        raise ValueError(f"{folder} was trained on other features; retrain it (recsys train ranking)")
    config = RankerConfig(
        **{
            **meta["config"],
            "hidden": tuple(meta["config"]["hidden"]),
            "removed": tuple(meta["config"]["removed"]),
        }
    )
    with np.load(folder / "weights.npz") as data:
        weights = {name: data[name] for name in data.files}
    net = RankerNet(meta["items"], config, weights["mean"], weights["std"])
    net.assign(weights)
    return net, meta
