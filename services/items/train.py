"""Fits popularity: distinct buyers per item, each weighted by how recently they bought it.

A buyer whose latest purchase of the item is `half_life_days` older than the
snapshot's newest event counts one half; with no half-life every buyer counts
one (all-time popularity). Shops are seasonal: what sold this week predicts next
week far better than what sold all year.

Each shopper segment (Event.segment, for example a country) with at least
MIN_SEGMENT_BUYERS buyers gets its own ranking too, kept to its SEGMENT_ITEMS best
items: what a new shopper from that segment is shown before they have a history.
"""

from __future__ import annotations

import numpy as np

from shared.artifacts import PopularityModel
from shared.snapshot import Snapshot

DAY_S = 86_400.0
MIN_SEGMENT_BUYERS = 10
SEGMENT_ITEMS = 1_000


def fit_popularity(snapshot: Snapshot, half_life_days: float = 0.0) -> PopularityModel:
    users, items = snapshot.interactions()
    times = snapshot.interaction_times()
    newest = float(times.max()) if len(times) else 0.0
    model = _ranked(users, items, times, newest, half_life_days)
    segments = snapshot.interaction_segments()
    for segment in np.unique(segments[segments != ""]).tolist():
        rows = segments == segment
        if len(np.unique(users[rows])) >= MIN_SEGMENT_BUYERS:
            ranked = _ranked(users[rows], items[rows], times[rows], newest, half_life_days)
            model.segments[segment] = PopularityModel(
                ranked.item_ids[:SEGMENT_ITEMS], ranked.scores[:SEGMENT_ITEMS], ranked.buyers[:SEGMENT_ITEMS]
            )
    return model


def _ranked(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, newest: float, half_life_days: float
) -> PopularityModel:
    if len(items) == 0:
        empty = np.array([])
        return PopularityModel(item_ids=np.array([], dtype="U1"), scores=empty, buyers=empty.astype(np.int64))
    order = np.lexsort((times, items, users))  # each (user, item) pair's latest purchase comes last
    users, items, times = users[order], items[order], times[order]
    last = np.ones(len(items), dtype=bool)
    last[:-1] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    items, times = items[last], times[last]
    if half_life_days > 0:
        weights = 0.5 ** ((newest - times) / (half_life_days * DAY_S))
    else:
        weights = np.ones(len(items))
    item_ids, index, buyers = np.unique(items, return_inverse=True, return_counts=True)
    scores = np.bincount(index, weights=weights, minlength=len(item_ids))
    ranked = np.lexsort((item_ids, -scores))
    return PopularityModel(item_ids=item_ids[ranked], scores=scores[ranked], buyers=buyers[ranked])
