"""The shopper's latent vector: the encoder of a Mult-VAE, applied online in NumPy.

The VAE (services/profile/vae_train.py, after Liang et al., "Variational
Autoencoders for Collaborative Filtering", 2018) is trained in TensorFlow on the
purchase histories of a snapshot. Serving needs only its encoder's mean: the
shopper's current items as a binary vector over the model's items, scaled to
unit length, through a tanh layer, to the mean of the latent Gaussian. Items the
model does not know are ignored; a shopper with none of its items gets no vector.

user_vae/<v>/vae.npz holds the item ids and the encoder's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

USER_VAE = "user_vae"


@dataclass(frozen=True)
class UserEncoder:
    item_ids: np.ndarray
    hidden: np.ndarray  # (items, hidden)
    hidden_bias: np.ndarray
    mean: np.ndarray  # (hidden, latent)
    mean_bias: np.ndarray
    index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.index.update((item, n) for n, item in enumerate(self.item_ids.tolist()))

    @property
    def dim(self) -> int:
        return self.mean.shape[1]

    def latent(self, item_ids: Sequence[str]) -> np.ndarray | None:
        """The latent mean for a shopper holding these items; None when the model knows none."""
        rows = sorted({self.index[item] for item in item_ids if item in self.index})
        if not rows:
            return None
        # x / |x| for a binary x: each held item contributes its row divided by sqrt(count)
        hidden = np.tanh(self.hidden[rows].sum(axis=0) / np.sqrt(len(rows)) + self.hidden_bias)
        return (hidden @ self.mean + self.mean_bias).astype(np.float32)

    def save(self, folder: Path) -> None:
        np.savez(
            folder / "vae.npz",
            item_ids=self.item_ids,
            hidden=self.hidden,
            hidden_bias=self.hidden_bias,
            mean=self.mean,
            mean_bias=self.mean_bias,
        )

    @classmethod
    def load(cls, folder: Path) -> UserEncoder:
        with np.load(folder / "vae.npz") as data:
            return cls(
                item_ids=data["item_ids"],
                hidden=data["hidden"],
                hidden_bias=data["hidden_bias"],
                mean=data["mean"],
                mean_bias=data["mean_bias"],
            )
