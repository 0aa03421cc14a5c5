"""The shopper's latent vector: the encoder of a Mult-VAE, applied online in NumPy.

The VAE (ml/vae_train.py, after Liang et al., "Variational
Autoencoders for Collaborative Filtering", 2018) is trained in TensorFlow on the
purchase histories of a snapshot. Serving needs only its encoder's mean: the
shopper's current items as a binary vector over the model's items, scaled to
unit length, through a tanh layer, to the mean of the latent Gaussian. Items the
model does not know are ignored; a shopper with none of its items gets no vector.

The decoder is kept too: `scores` turns a latent vector back into a log-probability
for every item, which the ranker reads as a feature.

user_vae/<v>/vae.npz holds the item ids, the encoder's and the decoder's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
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
    decoder_hidden: np.ndarray  # (latent, hidden)
    decoder_hidden_bias: np.ndarray
    decoder: np.ndarray  # (hidden, items)
    decoder_bias: np.ndarray
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

    def scores(self, latent: np.ndarray) -> np.ndarray:
        """Log-probability of every model item (in `item_ids` order) for a shopper at `latent`."""
        hidden = np.tanh(latent @ self.decoder_hidden + self.decoder_hidden_bias)
        logits = hidden @ self.decoder + self.decoder_bias
        top = logits.max()
        return (logits - top - np.log(np.exp(logits - top).sum())).astype(np.float32)

    def save(self, folder: Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "index"}
        np.savez(folder / "vae.npz", **arrays)

    @classmethod
    def load(cls, folder: Path) -> UserEncoder:
        with np.load(folder / "vae.npz") as data:
            if "decoder" not in data.files:
                raise ValueError(
                    f"{folder} predates the saved decoder; retrain it (recsys train profile-vae)"
                )
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name != "index"})
