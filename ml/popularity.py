"""Fits popularity: distinct buyers per item, each weighted by how recently they bought it.

A buyer whose latest purchase of the item is `half_life_days` older than the
snapshot's newest event counts one half; with no half-life every buyer counts
one (all-time popularity). Shops are seasonal: what sold this week predicts next
week far better than what sold all year.

Each shopper segment (Event.segment, for example a country) with at least
MIN_SEGMENT_BUYERS buyers gets its own ranking too, kept to its SEGMENT_ITEMS best
items: what a new shopper from that segment is shown before they have a history.
A small segment's favourites are noisy, so its items are ranked by their share of
the segment's popularity shrunk toward their share of everyone's, as if
SEGMENT_PRIOR_BUYERS more buyers had bought like everyone. On Online Retail the 31
new shoppers outside the United Kingdom get Recall@20 0.032 from their country's
shrunk ranking against 0.045 from everyone's (docs/profiles-and-items.md): no
evidence yet that segments help.
Only items the segment bought are ranked, so every item's `buyers` is a count of the
segment's own buyers.
"""

from __future__ import annotations

import numpy as np

from ml.artifacts import PopularityModel
from ml.metrics import mean_metrics
from ml.snapshot import Snapshot

DAY_S = 86_400.0
MIN_SEGMENT_BUYERS = 10
SEGMENT_ITEMS = 1_000
SEGMENT_PRIOR_BUYERS = 30


def fit_popularity(snapshot: Snapshot, half_life_days: float = 0.0) -> PopularityModel:
    users, items = snapshot.interactions()
    times = snapshot.interaction_times()
    newest = float(times.max()) if len(times) else 0.0
    model = _ranked(users, items, times, newest, half_life_days)
    segments = snapshot.interaction_segments()
    for segment in np.unique(segments[segments != ""]).tolist():
        rows = segments == segment
        buyers = len(np.unique(users[rows]))
        if buyers >= MIN_SEGMENT_BUYERS:
            own = _ranked(users[rows], items[rows], times[rows], newest, half_life_days)
            model.segments[segment] = _shrunk(
                own, model, SEGMENT_PRIOR_BUYERS / (SEGMENT_PRIOR_BUYERS + buyers)
            )
    return model


def _shrunk(segment: PopularityModel, everyone: PopularityModel, prior: float) -> PopularityModel:
    """The segment's items by (1 - prior) x their share of its popularity + prior x their share of
    everyone's, best SEGMENT_ITEMS first."""
    shares = dict(
        zip(everyone.item_ids.tolist(), (everyone.scores / everyone.scores.sum()).tolist(), strict=True)
    )
    overall = np.array([shares.get(item, 0.0) for item in segment.item_ids.tolist()])
    scores = (1 - prior) * segment.scores / segment.scores.sum() + prior * overall
    ranked = np.lexsort((segment.item_ids, -scores))[:SEGMENT_ITEMS]
    return PopularityModel(segment.item_ids[ranked], scores[ranked], segment.buyers[ranked])


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


# Half-lives tried by `choose_half_life`, in days; 0 is all-time popularity.
HALF_LIVES = (0.0, 1.0, 3.0, 7.0, 14.0, 30.0, 90.0)
VALIDATION_SHARE = 0.2  # of the interactions, the latest, held out to choose on
VALIDATION_USERS = 5_000  # shoppers scored at most (a seeded sample beyond that)
VALIDATION_K = 20


def choose_half_life(
    snapshot: Snapshot, half_lives: tuple[float, ...] = HALF_LIVES, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """The half-life whose popularity, fitted on all but the latest VALIDATION_SHARE of the
    interactions, best predicts what shoppers newly bought in that latest part (NDCG@20, their
    earlier items left out); with the NDCG of each. Ties go to the earlier in `half_lives`; too
    little data to judge keeps the first (all-time)."""
    users, items = snapshot.interactions()
    times = snapshot.interaction_times()
    if len(times) < 2:
        return half_lives[0], {}
    cutoff = np.quantile(times, 1.0 - VALIDATION_SHARE)
    earlier = times < cutoff
    seen: dict[str, set[str]] = {}
    for user, item in zip(users[earlier].tolist(), items[earlier].tolist(), strict=True):
        seen.setdefault(user, set()).add(item)
    wanted: dict[str, set[str]] = {}
    for user, item in zip(users[~earlier].tolist(), items[~earlier].tolist(), strict=True):
        if item not in seen.get(user, ()):
            wanted.setdefault(user, set()).add(item)
    if not wanted or not earlier.any():
        return half_lives[0], {}
    judged = sorted(wanted)
    if len(judged) > VALIDATION_USERS:
        judged = np.random.default_rng(seed).choice(judged, VALIDATION_USERS, replace=False).tolist()
    newest = float(times[earlier].max())
    found = {}
    for half_life in half_lives:
        model = _ranked(users[earlier], items[earlier], times[earlier], newest, half_life)
        rankings = {
            user: [item for item, _, _ in model.top(VALIDATION_K, seen.get(user, set()))] for user in judged
        }
        found[half_life] = mean_metrics(rankings, {user: wanted[user] for user in judged}, VALIDATION_K)[
            "ndcg"
        ]
    return max(half_lives, key=lambda half_life: found[half_life]), found
