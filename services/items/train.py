"""Fits the popularity baseline: distinct buyers per item in a snapshot."""

from __future__ import annotations

import numpy as np

from shared.artifacts import PopularityModel
from shared.snapshot import Snapshot


def fit_popularity(snapshot: Snapshot) -> PopularityModel:
    users, items = snapshot.interactions()
    if len(items) == 0:
        return PopularityModel(item_ids=np.array([], dtype="U1"), scores=np.array([]))
    pairs = np.unique(np.stack([users, items]), axis=1)
    item_ids, buyers = np.unique(pairs[1], return_counts=True)
    order = np.lexsort((item_ids, -buyers))
    return PopularityModel(item_ids=item_ids[order], scores=buyers[order].astype(np.float64))
