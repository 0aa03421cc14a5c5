"""Reference recommenders for offline evaluation: most popular, item-kNN (cosine) and EASE, and
time-aware forms of them (RecencyWeighted: popular-lately, EASE with recency-weighted rows).

Each is fitted on the binary user x item training matrix and scores every item
for a batch of users; the evaluation masks the users' own training items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse


class Recommender:
    name = "recommender"

    def fit(self, train: sparse.csr_matrix) -> Recommender:
        raise NotImplementedError

    def scores(self, train: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        """Dense scores (len(users) x items) for the given user rows of `train`."""
        raise NotImplementedError


@dataclass
class MostPopular(Recommender):
    name = "most popular"
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, train: sparse.csr_matrix) -> MostPopular:
        self.popularity = np.asarray(train.sum(axis=0)).ravel()
        return self

    def scores(self, train: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (len(users), 1))


@dataclass
class ItemKNN(Recommender):
    """Cosine item-item similarity; a candidate item is scored from its k most similar items
    among those the user bought (the classic item-based neighbourhood)."""

    k: int = 25
    similarity: sparse.csr_matrix | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"item-kNN (cosine, k={self.k})"

    def fit(self, train: sparse.csr_matrix) -> ItemKNN:
        counts = np.asarray(train.sum(axis=0)).ravel()
        norms = np.sqrt(np.maximum(counts, 1e-12))
        cooccurrence = (train.T @ train).toarray().astype(np.float64)
        similarity = cooccurrence / norms[:, None] / norms[None, :]
        np.fill_diagonal(similarity, 0.0)
        k = min(self.k, similarity.shape[1] - 1)
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        targets = np.repeat(np.arange(similarity.shape[0]), k)
        values = similarity[targets, neighbours.ravel()]
        # Column j holds the weights of target item j's neighbours: scores = X @ S.
        self.similarity = sparse.csr_matrix((values, (neighbours.ravel(), targets)), shape=similarity.shape)
        return self

    def scores(self, train: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        assert self.similarity is not None
        return (train[users] @ self.similarity).toarray()


@dataclass
class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed-form item-item weights."""

    l2: float = 100.0
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"EASE (lambda={self.l2:g})"

    def fit(self, train: sparse.csr_matrix) -> EASE:
        gram = (train.T @ train).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)
        np.fill_diagonal(weights, 0.0)
        self.weights = weights
        return self

    def scores(self, train: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.asarray(train[users] @ self.weights)


@dataclass
class RecencyWeighted(Recommender):
    """`base` fitted on, and scoring from, `weighted`: the training matrix with each entry weighted by
    how recent the purchase is (same shape and rows as the binary matrix the evaluation passes)."""

    base: Recommender
    weighted: sparse.csr_matrix
    half_life_days: float

    @property
    def name(self) -> str:  # type: ignore[override]
        label = (
            "popular lately" if isinstance(self.base, MostPopular) else f"{self.base.name}, recency-weighted"
        )
        return f"{label} (half-life {self.half_life_days:g} d)"

    def fit(self, train: sparse.csr_matrix) -> RecencyWeighted:
        self.base.fit(self.weighted)
        return self

    def scores(self, train: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        return self.base.scores(self.weighted, users)
