"""Train/test splits of purchase data: a time cut (retail-temporal's, or at any share), a random
holdout, each user's last item. The protocols of `recsys eval` pair them with data sets
(tools/evaluation/datasets.py).

A split holds the binary user x item training matrix (distinct pairs) and, for
each test user, the set of relevant item indices. Items and users outside the
training part are not evaluated, and a user's own training items are never
relevant (they are excluded from every ranking).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import sparse

from ml.ease import binary_matrix
from ml.validation import LAST, RANDOM, TIME
from tools.importers import online_retail

RETAIL_CUTOFF = "2011-11-01 00:00:00"


@dataclass(frozen=True)
class Interactions:
    """Purchase lines in time order: user id, item id, time as 'YYYY-MM-DD HH:MM:SS', and, where the
    data has them, the shopper's segment (the country, for Online Retail), quantity and unit price."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    segments: np.ndarray | None = None
    quantities: np.ndarray | None = None
    prices: np.ndarray | None = None

    @classmethod
    def from_online_retail(cls, folder: Path) -> Interactions:
        lines = list(online_retail.read_lines(folder))
        times = np.array([line.time for line in lines])
        order = np.argsort(times, kind="stable")
        return cls(
            users=np.array([line.user_id for line in lines])[order],
            items=np.array([line.item_id for line in lines])[order],
            times=times[order],
            segments=np.array([line.country for line in lines])[order],
            quantities=np.array([line.quantity for line in lines], dtype=np.int32)[order],
            prices=np.array([line.price for line in lines], dtype=np.float64)[order],
        )

    def subset(self, mask: np.ndarray) -> Interactions:
        def kept(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[mask]

        return Interactions(
            self.users[mask],
            self.items[mask],
            self.times[mask],
            kept(self.segments),
            kept(self.quantities),
            kept(self.prices),
        )


def purchases_in_time_order(
    users: list[str], items: list[str], moments: list[float], quantities: list[int], prices: list[float]
) -> Interactions:
    """Purchase lines given as columns with Unix times, as Interactions in time order."""
    order = np.argsort(np.asarray(moments, dtype=np.float64), kind="stable")
    times = np.array([datetime.fromtimestamp(m, UTC).strftime(online_retail.TIME_FORMAT) for m in moments])
    return Interactions(
        users=np.array(users)[order],
        items=np.array(items)[order],
        times=times[order],
        quantities=np.array(quantities, dtype=np.int32)[order],
        prices=np.array(prices, dtype=np.float64)[order],
    )


@dataclass(frozen=True)
class Split:
    """`kind` is what is held out, named as the validation carve names it (ml.validation): TIME (what
    users bought after a cut), RANDOM (a random share of the pairs) or LAST (each user's latest new
    item); the served suite validates on the same kind."""

    name: str
    kind: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sparse.csr_matrix
    test: dict[int, set[int]]
    train_interactions: Interactions

    @property
    def stats(self) -> dict[str, int]:
        return {
            "train_users": len(self.user_ids),
            "train_items": len(self.item_ids),
            "train_pairs": int(self.train.nnz),
            "test_pairs": sum(len(items) for items in self.test.values()),
            "test_users": len(self.test),
        }


def _matrix(train: Interactions) -> tuple[np.ndarray, np.ndarray, sparse.csr_matrix]:
    user_ids, user_index = np.unique(train.users, return_inverse=True)
    item_ids, item_index = np.unique(train.items, return_inverse=True)
    matrix = sparse.csr_matrix(
        (np.ones(len(user_index), np.float32), (user_index, item_index)),
        shape=(len(user_ids), len(item_ids)),
    )
    matrix.data[:] = 1.0
    return user_ids, item_ids, matrix


def _split(
    name: str, kind: str, train: Interactions, test_users: np.ndarray, test_items: np.ndarray
) -> Split:
    user_ids, item_ids, matrix = _matrix(train)
    user_pos = {u: i for i, u in enumerate(user_ids.tolist())}
    item_pos = {t: i for i, t in enumerate(item_ids.tolist())}
    test: dict[int, set[int]] = {}
    for user, item in zip(test_users.tolist(), test_items.tolist(), strict=True):
        u, i = user_pos.get(user), item_pos.get(item)
        if u is None or i is None or matrix[u, i]:
            continue
        test.setdefault(u, set()).add(i)
    return Split(name, kind, user_ids, item_ids, matrix, test, train)


def retail_temporal(data: Interactions) -> Split:
    """Train before 2011-11-01; test: new items bought after it by train users."""
    before = data.times < RETAIL_CUTOFF
    after = ~before
    return _split("retail-temporal", TIME, data.subset(before), data.users[after], data.items[after])


def random_holdout(data: Interactions, fraction: float = 0.2, seed: int = 0) -> Split:
    """A random `fraction` of the distinct user-item pairs is held out."""
    pairs = np.unique(np.stack([data.users, data.items]), axis=1)
    held = np.random.default_rng(seed).random(pairs.shape[1]) < fraction
    held_keys = set(map(tuple, pairs[:, held].T.tolist()))
    keep = np.array([(u, i) not in held_keys for u, i in zip(data.users, data.items, strict=True)])
    return _split(f"random-holdout-{fraction:g}", RANDOM, data.subset(keep), pairs[0, held], pairs[1, held])


def leave_last_out(data: Interactions) -> Split:
    """Each user's most recently first-bought item is held out (users with 2+ items)."""
    last: dict[str, tuple[str, str]] = {}
    first_seen: dict[tuple[str, str], str] = {}
    for user, item, time in zip(data.users.tolist(), data.items.tolist(), data.times.tolist(), strict=True):
        if (user, item) not in first_seen:
            first_seen[(user, item)] = time
            last[user] = (item, time)
    per_user_items: dict[str, int] = {}
    for user, _item in first_seen:
        per_user_items[user] = per_user_items.get(user, 0) + 1
    held = {(u, item) for u, (item, _) in last.items() if per_user_items[u] >= 2}
    keep = np.array([(u, i) not in held for u, i in zip(data.users, data.items, strict=True)])
    users = np.array([u for u, _ in held])
    items = np.array([i for _, i in held])
    return _split("leave-last-out", LAST, data.subset(keep), users, items)


def time_cut(data: Interactions, share: float = 0.2) -> Split:
    """The latest `share` of the purchases held out: new items bought after the cut by earlier users
    (retail-temporal's shape, for any stretch of time)."""
    cutoff = data.times[min(int(len(data.times) * (1 - share)), len(data.times) - 1)]
    before = data.times < cutoff
    return _split("time-cut", TIME, data.subset(before), data.users[~before], data.items[~before])


def validation(split: Split, fraction: float = 0.2, seed: int = 0) -> Split:
    """A split of the training part only, of the test's own kind (a time cut, each user's latest new
    item, or a random holdout), for hyper-parameter tuning."""
    if split.kind == TIME:
        inner = time_cut(split.train_interactions, fraction)
    elif split.kind == LAST:
        inner = leave_last_out(split.train_interactions)
    else:
        inner = random_holdout(split.train_interactions, fraction, seed)
    return replace(inner, name=f"{split.name}/validation")


def recency_weighted(split: Split, half_life_days: float) -> sparse.csr_matrix:
    """`split.train` with each (user, item) entry weighted 0.5 ** (days from the pair's latest purchase
    to the training part's newest, / half-life): the weighting EASE's rows get in training."""
    data = split.train_interactions
    seconds = data.times.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    return binary_matrix(data.users, data.items, seconds, half_life_days)[1]
