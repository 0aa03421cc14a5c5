"""Offline evaluation: rank every training item for each test user, score the top K."""

from __future__ import annotations

import numpy as np

from ml.baselines import Recommender
from tools.evaluation.protocols import Split

BATCH = 512


def rank(model: Recommender, split: Split, k: int) -> dict[int, np.ndarray]:
    """Top-k item indices for every test user, the user's own training items excluded."""
    users = np.array(sorted(split.test))
    k = min(k, split.train.shape[1])
    rankings: dict[int, np.ndarray] = {}
    for start in range(0, len(users), BATCH):
        batch = users[start : start + BATCH]
        scores = model.scores(split.train, batch).astype(np.float64)
        seen = split.train[batch]
        scores[seen.nonzero()] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        for user, row, row_scores in zip(batch.tolist(), top, top_scores, strict=True):
            rankings[user] = row[np.isfinite(row_scores)]  # never the user's own items
    return rankings
