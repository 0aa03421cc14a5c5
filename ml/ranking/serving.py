"""The published ranker's networks as the ranking service runs them: NumPy over the exported weights.

A published ranker is an ensemble of small networks (ml/ranking/ensemble.py) that share the
features' standardization; its score is the mean of theirs. One shopper's list is a few hundred
rows through a few small MLPs; in NumPy that is a fraction of a millisecond, where a TensorFlow
call costs several in dispatch alone, and the service needs no TensorFlow at all. The scores and
gradients equal the training networks' (RankerNet, RankerEnsemble), which a test checks.

weights.npz holds `mean` and `std`, and each member's variables prefixed by its number
(`m0.w0`, `m0.vec`, ...); a single network's unprefixed variables load as one member.
A ranker trained before a feature was added keeps serving: it reads the columns it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.ranking.config import ITEM_BIAS, LATENT, MLP, RankerConfig
from ml.ranking.features import COLUMN, FEATURES

WEIGHTS = "weights.npz"
META = "ranker.json"


@dataclass
class Explained:
    """Scores of one list and, for the explained candidates (by row), (feature, contribution)
    largest first."""

    scores: np.ndarray
    contributions: dict[int, list[tuple[str, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ServingMember:
    """One network of the ensemble: its MLP layers, item vectors and item biases."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    vectors: np.ndarray
    bias: np.ndarray


def members_of(weights: dict[str, np.ndarray], config: RankerConfig) -> list[ServingMember]:
    """The members in `weights`, in their order: prefixed `m<k>.` names, or one unprefixed network."""
    prefixes = sorted(
        {name.split(".", 1)[0] for name in weights if "." in name}, key=lambda prefix: int(prefix[1:])
    ) or [""]
    members = []
    for prefix in prefixes:
        named = {
            name.removeprefix(f"{prefix}."): value.astype(np.float32)
            for name, value in weights.items()
            if not prefix or name.startswith(f"{prefix}.")
        }
        layers = [(named[f"w{i}"], named[f"b{i}"]) for i in range(len(config.hidden) + 1)]
        members.append(ServingMember(layers, named["vec"], named["bias"]))
    return members


def _member_gradient(member: ServingMember, active: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """d(MLP part)/dz of one member for the given rows, back through the units that were on."""
    last_weight = member.layers[-1][0]
    gradient = np.broadcast_to(last_weight[:, 0], (len(rows), last_weight.shape[0]))
    for (weight, _), on in zip(reversed(member.layers[:-1]), reversed(active), strict=True):
        gradient = (gradient * on[rows]) @ weight.T
    return gradient


@dataclass(frozen=True)
class _Passes:
    """One list through every member: standardized inputs, each member's forward pass (its score
    parts and active units), the members' mean parts and their total."""

    z: np.ndarray
    forwards: list[tuple[ServingMember, dict[str, np.ndarray], list[np.ndarray]]]
    parts: dict[str, np.ndarray]
    total: np.ndarray
    share: np.float32

    def gradient(self, rows: np.ndarray) -> np.ndarray:
        """The members' mean d(total)/dz for `rows`."""
        return sum(_member_gradient(member, active, rows) for member, _, active in self.forwards) * self.share


class ServingRanker:
    """One loaded ranker (an ensemble of one or more networks), scoring one shopper's list per call.
    `features` names the columns it was trained on, in its order (a subset of FEATURES)."""

    def __init__(
        self, config: RankerConfig, weights: dict[str, np.ndarray], features: tuple[str, ...] = FEATURES
    ) -> None:
        self.config = config
        self.features = features
        self.columns = None if features == FEATURES else np.array([COLUMN[name] for name in features])
        self.mean = weights["mean"].astype(np.float32)
        self.std = weights["std"].astype(np.float32)
        self.mask = config.feature_mask(features)
        self.members = members_of(weights, config)

    def standardize(self, features: np.ndarray) -> np.ndarray:
        """Standardized inputs of the networks from a [N, FEATURES] matrix."""
        read = features if self.columns is None else features[:, self.columns]
        return (read.astype(np.float32) - self.mean) / self.std * self.mask

    def _forward(
        self, member: ServingMember, z: np.ndarray, items: np.ndarray, history: np.ndarray
    ) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        """One member's score parts for every row, and which units of each hidden layer were on."""
        hidden, active = z, []
        for weight, bias in member.layers[:-1]:
            before = hidden @ weight + bias
            active.append(before > 0)
            hidden = np.maximum(before, 0)
        last_weight, last_bias = member.layers[-1]
        known = (items > 0).astype(np.float32)
        parts = {MLP: (hidden @ last_weight + last_bias)[:, 0]}
        if self.config.latent:
            present = history[history > 0]
            user = member.vectors[present].mean(0) if present.size else np.zeros(self.config.dim, np.float32)
            parts[LATENT] = (member.vectors[items] @ user) * known
        if self.config.item_bias:
            parts[ITEM_BIAS] = member.bias[items] * known
        return parts, active

    def _passes(self, features: np.ndarray, items: np.ndarray, history: np.ndarray) -> _Passes:
        z = self.standardize(features)
        forwards = [(member, *self._forward(member, z, items, history)) for member in self.members]
        share = np.float32(1.0 / len(forwards))
        parts = {name: sum(p[name] for _, p, _ in forwards) * share for name in forwards[0][1]}
        total = np.sum(list(parts.values()), axis=0, dtype=np.float32)
        return _Passes(z, forwards, parts, total, share)

    def outputs(self, features: np.ndarray, items: np.ndarray, history: np.ndarray) -> dict[str, np.ndarray]:
        """The score's parts, their total, the standardized features z and d(total)/dz, for one list:
        features [N, F], items [N] and history [L] (0: unknown item). Each part, the total and the
        gradient are the mean over the members."""
        passes = self._passes(features, items, history)
        gradient = passes.gradient(np.arange(len(passes.z)))
        return {**passes.parts, "total": passes.total, "z": passes.z, "gradient": gradient}

    def explain(
        self, features: np.ndarray, items: np.ndarray, history: np.ndarray, top: int, best: int
    ) -> Explained:
        """Scores, and the `top` contributions of each of the `best` highest-scored candidates:
        gradient x (feature - list mean) for the MLP's inputs (a first-order attribution), and
        the latent and bias parts minus their list means."""
        passes = self._passes(features, items, history)
        scores, z = passes.total, passes.z
        rows = np.argsort(-scores, kind="stable")[:best]
        # The gradient of the explained rows only: the others need no attribution.
        attributions = passes.gradient(rows) * (z[rows] - z.mean(0, keepdims=True))
        names = list(self.features)
        for part in (LATENT, ITEM_BIAS):
            if part in passes.parts:
                names.append(part)
                centred = passes.parts[part][rows] - passes.parts[part].mean()
                attributions = np.concatenate([attributions, centred[:, None]], 1)
        order = np.argsort(-attributions, axis=1)[:, :top]
        chosen = np.take_along_axis(attributions, order, 1)
        contributions = {
            row: [(names[j], value) for j, value in zip(js, values, strict=True) if value > 0]
            for row, js, values in zip(rows.tolist(), order.tolist(), chosen.tolist(), strict=True)
        }
        return Explained(scores, contributions)


def save_weights(weights: dict[str, np.ndarray], config: RankerConfig, folder: Path, extra: dict) -> None:
    np.savez(folder / WEIGHTS, **weights)
    members = members_of(weights, config)
    meta = {
        "config": asdict(config),
        "features": list(FEATURES),
        "items": int(members[0].bias.shape[0]) - 1,
        "members": len(members),
    }
    (folder / META).write_text(json.dumps({**meta, **extra}, indent=2))


def load_serving(folder: Path) -> tuple[ServingRanker, dict]:
    """The ranker published in `folder` and its metadata."""
    meta = json.loads((folder / META).read_text())
    unknown = sorted(set(meta["features"]) - set(FEATURES))
    if unknown:
        raise ValueError(
            f"{folder} was trained on features this version does not compute ({', '.join(unknown)}); "
            "retrain it (recsys train ranking)"
        )
    with np.load(folder / WEIGHTS) as data:
        weights = {name: data[name] for name in data.files}
    return ServingRanker(RankerConfig.from_json(meta["config"]), weights, tuple(meta["features"])), meta
