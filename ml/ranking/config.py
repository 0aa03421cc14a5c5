"""The learned ranker's shape and training settings, and the names of its score's parts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.ranking.features import FEATURES, GROUPS

MLP = "mlp"
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
    # Networks in the published ensemble (ml/ranking/ensemble.py), each from its own seed and lists.
    members: int = 5
    # The share of the training lists each member keeps aside to stop early on.
    stopping_share: float = 0.15
    # Feature groups left out (an ablation); see features.GROUPS.
    removed: tuple[str, ...] = ()
    seed: int = 0

    @property
    def latent(self) -> bool:
        return "collaborative" not in self.removed

    @property
    def item_bias(self) -> bool:
        return "item" not in self.removed

    def feature_mask(self, features: tuple[str, ...] = FEATURES) -> np.ndarray:
        """1 for each of `features` the ranker reads, 0 for those of the groups it leaves out."""
        gone = {name for group in self.removed for name in GROUPS.get(group, ())}
        return np.array([0.0 if name in gone else 1.0 for name in features], dtype=np.float32)

    @classmethod
    def from_json(cls, saved: dict) -> RankerConfig:
        return cls(**{**saved, "hidden": tuple(saved["hidden"]), "removed": tuple(saved["removed"])})
