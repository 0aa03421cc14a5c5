"""Learned views of items and shoppers that the ranker reads, aligned with its item table's rows.

- text: the item text encoder's unit vectors (ml/text_train.py);
- graph: the knowledge graph's TransE item vectors (ml/graph_train.py),
  where purchases and facts place items;
- vae: the user Mult-VAE (ml/vae.py): the shopper's latent vector from
  their history, decoded into a log-probability for every item.

Each is fitted on the same events as the rest of the ranker's inputs: before the
time cut for the training lists (no feature has seen the purchases it must
predict), on everything for the published model. A view that could not be fitted
(too little data) is absent, and its features stay zero. NumPy only: the ranking
service applies them without the trainers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.vae import UserEncoder


@dataclass(frozen=True)
class LearnedViews:
    text: np.ndarray  # (rows, dim), zero rows for items without a vector; (rows, 0) when absent
    graph: np.ndarray  # (rows, dim), as text
    vae: UserEncoder | None
    vae_columns: np.ndarray  # table row -> the VAE's item column, -1 when it does not know the item

    @classmethod
    def empty(cls, rows: int) -> LearnedViews:
        return cls(np.zeros((rows, 0), np.float32), np.zeros((rows, 0), np.float32), None, np.full(rows, -1))

    @classmethod
    def aligned(
        cls,
        item_ids: np.ndarray,
        text: tuple[Sequence[str], np.ndarray] | None,
        graph: tuple[Sequence[str], np.ndarray] | None,
        vae: UserEncoder | None,
    ) -> LearnedViews:
        """Views for the table rows `item_ids`, from (item ids, vectors) pairs in any order."""
        index = {item: row for row, item in enumerate(item_ids.tolist())}

        def placed(found: tuple[Sequence[str], np.ndarray] | None) -> np.ndarray:
            if found is None:
                return np.zeros((len(item_ids), 0), np.float32)
            ids, vectors = found
            out = np.zeros((len(item_ids), vectors.shape[1]), np.float32)
            for item, vector in zip(ids, vectors, strict=True):
                if item in index:
                    out[index[item]] = vector
            return out

        columns = np.array([-1 if vae is None else vae.index.get(i, -1) for i in item_ids.tolist()])
        return cls(placed(text), placed(graph), vae, columns)

    def save(self, folder: Path) -> None:
        np.savez(folder / "views.npz", text=self.text, graph=self.graph, vae_columns=self.vae_columns)
        if self.vae is not None:
            self.vae.save(folder)

    @classmethod
    def load(cls, folder: Path) -> LearnedViews:
        with np.load(folder / "views.npz") as data:
            text, graph, columns = data["text"], data["graph"], data["vae_columns"]
        vae = UserEncoder.load(folder) if (folder / "vae.npz").exists() else None
        return cls(text, graph, vae, columns)


def similarities(vectors: np.ndarray, own: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's (largest, mean) cosine to the history's vectors; zeros without vectors."""
    count = len(rows)
    if vectors.shape[1] == 0:
        return np.zeros(count), np.zeros(count)
    history = vectors[own]
    history = history[np.linalg.norm(history, axis=1) > 0]
    if len(history) == 0:
        return np.zeros(count), np.zeros(count)
    candidates = np.where((rows >= 0)[:, None], vectors[np.maximum(rows, 0)], 0.0)
    similarity = candidates @ history.T
    return similarity.max(axis=1), similarity.mean(axis=1)


def vae_scores(
    views: LearnedViews, history: Sequence[str], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each candidate's log-probability under the shopper's VAE latent, and its gap to the list's best;
    None when there is no VAE or it knows none of the history. Unknown items get the lowest score."""
    if views.vae is None:
        return None
    latent = views.vae.latent(history)
    if latent is None:
        return None
    every = views.vae.scores(latent)
    columns = np.where(rows >= 0, views.vae_columns[np.maximum(rows, 0)], -1)
    scores = np.where(columns >= 0, every[np.maximum(columns, 0)], every.min())
    return scores, scores - (scores.max() if len(scores) else 0.0)
