"""How much each kind of event says about a shopper's taste, learned from what they bought later.

The portrait (services/profile/portrait.py) sums a weight per event into each category a shopper
touched. Out of the box the weights are fixed guesses (DEFAULT_WEIGHTS). Here they are learned per
shop: at a time cut, each (shopper, category) pair touched before it is described by its count of
each event type, and labelled by whether the shopper bought in that category after the cut. A
category's score is the portrait's weighted sum of its counts; the weights are searched (from
the defaults, one type at a time, purchases fixed as the scale) for the order of each shopper's
categories that best puts first the ones bought next (NDCG), the quantity the portrait serves.
Signals keep their sign: likes, shares and reviews count for a category, dismissals against it.
Types seen too rarely to learn keep their default weight.

The learned weights are published only when they order held-out shoppers' categories better than
the defaults do (NDCG of the categories bought after the cut, paired bootstrap interval above 0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.metrics import paired_gain_interval
from ml.snapshot import Snapshot
from recsys.common.v1 import common_pb2

MODEL = "event_weights"
DEFAULT_WEIGHTS: dict[int, float] = {
    common_pb2.EVENT_TYPE_VIEW: 0.2,
    common_pb2.EVENT_TYPE_CLICK: 1.0,
    common_pb2.EVENT_TYPE_ADD_TO_CART: 2.0,
    common_pb2.EVENT_TYPE_PURCHASE: 4.0,
    common_pb2.EVENT_TYPE_REVIEW: 1.0,
    common_pb2.EVENT_TYPE_LIKE: 2.0,
    common_pb2.EVENT_TYPE_SHARE: 2.0,
    common_pb2.EVENT_TYPE_DISMISS: -1.0,
}
TYPES = tuple(DEFAULT_WEIGHTS)
ANCHOR = common_pb2.EVENT_TYPE_PURCHASE  # its weight sets the scale of the others
MIN_EVENTS = 200  # of a type before the cut, to learn its weight
MIN_SHOPPERS = 50  # held-out shoppers with a later purchase, to judge the weights on
CUT_SHARE = 0.8  # the cut: this quantile of the event times
HELD_SHARE = 0.3  # of the shoppers, to judge on
# Multiples of a type's default weight the search tries, its passes over the types, and the gain in
# mean NDCG a change must bring: a finer or longer search fitted noise (worse on held-out shoppers).
SEARCH = (0.0, 0.5, 1.0, 2.0, 4.0)
SEARCH_ROUNDS = 1
MIN_STEP_GAIN = 1e-3
CONFIDENCE, BOOTSTRAP_SAMPLES = 0.95, 2000  # the held-out gain's interval


def type_name(kind: int) -> str:
    """An event type as people write it: "like" for EVENT_TYPE_LIKE."""
    return common_pb2.EventType.Name(kind).removeprefix("EVENT_TYPE_").lower()


class TooFewEvents(ValueError):
    """Not enough events or later purchases to learn or judge weights; the message says which."""


@dataclass(frozen=True)
class EventWeights:
    """A weight per event type (common.v1.EventType number) and how they fared on held-out shoppers."""

    weights: dict[int, float]
    learned: tuple[int, ...] = ()
    figures: dict[str, float] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "event_weights.json").write_text(
            json.dumps(
                {
                    "weights": {common_pb2.EventType.Name(t): w for t, w in self.weights.items()},
                    "learned": [common_pb2.EventType.Name(t) for t in self.learned],
                    "figures": self.figures,
                },
                indent=2,
            )
        )

    @classmethod
    def load(cls, folder: Path) -> EventWeights:
        saved = json.loads((folder / "event_weights.json").read_text())
        weights = {common_pb2.EventType.Value(name): float(w) for name, w in saved["weights"].items()}
        learned = tuple(common_pb2.EventType.Value(name) for name in saved["learned"])
        return cls({**DEFAULT_WEIGHTS, **weights}, learned, saved.get("figures", {}))


@dataclass(frozen=True)
class CategoryPairs:
    """(shopper, category) pairs touched before the cut: counts per type, bought after, shopper."""

    counts: np.ndarray  # [pairs, len(TYPES)]
    bought_later: np.ndarray  # [pairs] bool
    shopper: np.ndarray  # [pairs] shopper number

    def take(self, mask: np.ndarray) -> CategoryPairs:
        return CategoryPairs(self.counts[mask], self.bought_later[mask], self.shopper[mask])


def category_pairs(snapshot: Snapshot) -> CategoryPairs:
    """The pairs of `snapshot` at its CUT_SHARE time cut (events of uncategorized items left out)."""
    categories = dict(
        zip(snapshot.catalog_item_ids.tolist(), snapshot.catalog_categories.tolist(), strict=True)
    )
    category = np.array([categories.get(item, "") for item in snapshot.item_ids.tolist()], dtype=object)
    known = (category != "") & np.isin(snapshot.types, TYPES)
    if not known.any():
        raise TooFewEvents("no events of categorized items")
    cut = float(np.quantile(snapshot.timestamps[known], CUT_SHARE))
    before = known & (snapshot.timestamps < cut)
    later = known & (snapshot.timestamps >= cut) & (snapshot.types == ANCHOR)
    if not later.any():
        raise TooFewEvents("no purchases after the time cut to learn from")
    keys = np.char.add(np.char.add(snapshot.user_ids.astype(str), "\x1f"), category.astype(str))
    pair_keys, pair_of = np.unique(keys[before], return_inverse=True)
    column = {t: n for n, t in enumerate(TYPES)}
    counts = np.zeros((len(pair_keys), len(TYPES)))
    np.add.at(counts, (pair_of, np.array([column[t] for t in snapshot.types[before].tolist()])), 1.0)
    bought_later = np.isin(pair_keys, keys[later])
    users = np.array([key.split("\x1f", 1)[0] for key in pair_keys.tolist()])
    return CategoryPairs(counts, bought_later, np.unique(users, return_inverse=True)[1])


def ndcg_per_shopper(pairs: CategoryPairs, weights: Mapping[int, float]) -> np.ndarray:
    """Per shopper with a later purchase in a touched category: NDCG of their categories ordered by
    the weighted sum of their counts (ties broken against the order, so that guessing earns nothing)."""
    scores = pairs.counts @ np.array([weights[t] for t in TYPES])
    order = np.lexsort((pairs.bought_later, -scores, pairs.shopper))  # by shopper, best first
    shopper, labels = pairs.shopper[order], pairs.bought_later[order].astype(float)
    starts = np.flatnonzero(np.r_[True, shopper[1:] != shopper[:-1]])
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    gains = np.add.reduceat(labels / np.log2(position + 2.0), starts)
    positives = np.add.reduceat(labels, starts).astype(int)
    ideal = np.cumsum(1.0 / np.log2(np.arange(len(order)) + 2.0))
    bought = positives > 0
    return gains[bought] / ideal[positives[bought] - 1]


def learn_weights(pairs: CategoryPairs) -> tuple[dict[int, float], tuple[int, ...]]:
    """Weights from `pairs`: for the types with MIN_EVENTS events, a coordinate search from the
    defaults, each weight in turn set to the multiple of its default in SEARCH (signs kept) that
    orders the shoppers' categories best (mean NDCG, by at least MIN_STEP_GAIN); the purchase weight
    stays, as the scale. The other types keep their defaults. TooFewEvents when purchases are too
    rare."""
    totals = pairs.counts.sum(axis=0)
    anchor = TYPES.index(ANCHOR)
    if totals[anchor] < MIN_EVENTS:
        raise TooFewEvents(f"{int(totals[anchor])} purchases before the cut; at least {MIN_EVENTS}")
    learnable = tuple(t for n, t in enumerate(TYPES) if totals[n] >= MIN_EVENTS)
    weights = dict(DEFAULT_WEIGHTS)
    best = ndcg_per_shopper(pairs, weights).mean()
    for _ in range(SEARCH_ROUNDS):
        for kind in learnable:
            if kind == ANCHOR:
                continue
            for multiple in SEARCH:
                tried = {**weights, kind: DEFAULT_WEIGHTS[kind] * multiple}
                quality = ndcg_per_shopper(pairs, tried).mean()
                if quality > best + MIN_STEP_GAIN:
                    weights, best = tried, quality
    return weights, learnable


def fit_event_weights(
    snapshot: Snapshot, seed: int = 0, references: Mapping[str, Mapping[int, float]] | None = None
) -> EventWeights:
    """Weights learned on most shoppers, judged beside the defaults on the rest, then refitted on
    all. The figures say how both fared (and each of `references`, as `<name>_ndcg`); `published`
    in them is 1.0 when the learned ones surely won. TooFewEvents when the shop cannot teach or
    judge them."""
    pairs = category_pairs(snapshot)
    rng = np.random.default_rng(seed)
    held_shoppers = rng.random(int(pairs.shopper.max()) + 1) < HELD_SHARE
    held = held_shoppers[pairs.shopper]
    judged = pairs.take(held)
    if len(np.unique(judged.shopper[judged.bought_later])) < MIN_SHOPPERS:
        raise TooFewEvents(f"fewer than {MIN_SHOPPERS} held-out shoppers bought again after the cut")
    weights, _ = learn_weights(pairs.take(~held))
    learned_ndcg = ndcg_per_shopper(judged, weights)
    default_ndcg = ndcg_per_shopper(judged, DEFAULT_WEIGHTS)
    _, low, high = paired_gain_interval(learned_ndcg, default_ndcg, CONFIDENCE, BOOTSTRAP_SAMPLES, seed)
    final, learned = learn_weights(pairs)
    figures = {
        "held_out_shoppers": float(len(learned_ndcg)),
        "learned_ndcg": float(learned_ndcg.mean()),
        "default_ndcg": float(default_ndcg.mean()),
        "gain_low": low,
        "gain_high": high,
        "published": float(low > 0),
    }
    for name, reference in (references or {}).items():
        figures[f"{name}_ndcg"] = float(ndcg_per_shopper(judged, reference).mean())
    return EventWeights(final, learned, figures)
