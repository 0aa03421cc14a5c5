"""The data sets `recsys eval` judges the pipeline on, and its protocols: a data set with the split
that holds out its test.

Online Retail is the shipped real data. The simulated shops are regimes of the simulator
(tools.synth) designed to differ in kind: strong popularity skew, specialists whose own taste
decides, and shoppers who come once with all their sessions bunched together (and a bestseller
shop where taste barely matters, to show where no model can win). A pipeline whose choices were
tuned to one of them would lose on another. Each simulated protocol also knows its ceiling: the
shoppers' true affinities (tools/evaluation/truth.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from recsys.common.v1 import common_pb2
from tools.evaluation.protocols import (
    Interactions,
    Split,
    leave_last_out,
    purchases_in_time_order,
    random_holdout,
    retail_temporal,
    time_cut,
)
from tools.evaluation.report import ModelResult
from tools.evaluation.truth import truth_result
from tools.importers import online_retail
from tools.synth.sessions import PURCHASE, REVIEW, SynthEvent, shopper_events
from tools.synth.shop import REGIMES, catalog, make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START

SIMULATED_SHOPPERS = 4_000
SIMULATED_ITEMS = 3_000
SIMULATED_DAYS = 180
SIMULATED_SEED = 0


@dataclass(frozen=True)
class Reviews:
    """Reviews with their rating and text, one entry per review (timestamps in seconds)."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ratings: np.ndarray
    texts: np.ndarray


@dataclass(frozen=True)
class Dataset:
    """Purchases in time order and the catalog they come from; `digest` identifies the data (a hash
    of the shipped files, or of the simulated purchases) and `origin` says where it comes from.
    Simulated shops also have their shoppers' reviews."""

    interactions: Interactions
    items: list[common_pb2.Item]
    digest: str
    origin: str
    reviews: Reviews | None = None


def online_retail_data() -> Dataset:
    digest = hashlib.sha256()
    for path in sorted(online_retail.DEFAULT_PATH.glob("*.csv*")):
        digest.update(path.read_bytes())
    return Dataset(
        Interactions.from_online_retail(online_retail.DEFAULT_PATH),
        online_retail.read_items(online_retail.DEFAULT_PATH),
        digest.hexdigest()[:16],
        "UCI Online Retail (data/online-retail)",
    )


def simulated(regime: str, seed: int = SIMULATED_SEED) -> Dataset:
    """The purchases of SIMULATED_SHOPPERS shoppers over SIMULATED_DAYS days in a shop of
    SIMULATED_ITEMS items, in the named regime (tools.synth.shop.REGIMES)."""
    shop = make_shop(SIMULATED_ITEMS, seed, REGIMES[regime])
    users: list[str] = []
    items: list[str] = []
    moments: list[float] = []
    quantities: list[int] = []
    prices: list[float] = []
    reviews: list[SynthEvent] = []
    for number in range(SIMULATED_SHOPPERS):
        for event in shopper_events(seed, shopper(seed, number), shop, START, SIMULATED_DAYS):
            if event.type == REVIEW:
                reviews.append(event)
            if event.type == PURCHASE:
                users.append(event.user_id)
                items.append(event.item_id)
                moments.append(event.timestamp)
                quantities.append(event.quantity)
                prices.append(event.price)
    data = purchases_in_time_order(users, items, moments, quantities, prices)
    digest = hashlib.sha256()
    for column in (data.users, data.items, data.times):
        digest.update("\n".join(column.tolist()).encode())
    return Dataset(
        data,
        catalog(shop),
        digest.hexdigest()[:16],
        f"simulated shop, regime {regime!r}, seed {seed}, {SIMULATED_SHOPPERS} shoppers, "
        f"{SIMULATED_ITEMS} items, {SIMULATED_DAYS} days",
        Reviews(
            users=np.array([r.user_id for r in reviews], dtype=str),
            items=np.array([r.item_id for r in reviews], dtype=str),
            timestamps=np.array([r.timestamp for r in reviews], dtype=np.float64),
            ratings=np.array([r.rating for r in reviews], dtype=np.int32),
            texts=np.array([r.text for r in reviews], dtype=str),
        ),
    )


@dataclass(frozen=True)
class Protocol:
    description: str
    data: Callable[[], Dataset]
    split: Callable[[Interactions], Split]
    # The best any model could do on the split (simulated shops only): reported, never a baseline.
    truth: Callable[[Split], ModelResult] | None = None


def _simulated(regime: str) -> Callable[[], Dataset]:
    return lambda: simulated(regime)


def _truth(regime: str) -> Callable[[Split], ModelResult]:
    return lambda split: truth_result(
        split, make_shop(SIMULATED_ITEMS, SIMULATED_SEED, REGIMES[regime]), SIMULATED_SEED
    )


def _named(name: str, split: Callable[[Interactions], Split]) -> Callable[[Interactions], Split]:
    def named_split(data: Interactions) -> Split:
        return replace(split(data), name=name)

    return named_split


PROTOCOLS: dict[str, Protocol] = {
    "retail-temporal": Protocol(
        "Online Retail, trained before 2011-11-01, new items bought after it",
        online_retail_data,
        retail_temporal,
    ),
    "random-holdout": Protocol(
        "Online Retail, a random 20% of user-item pairs held out", online_retail_data, random_holdout
    ),
    "leave-last-out": Protocol(
        "Online Retail, each shopper's latest new item held out", online_retail_data, leave_last_out
    ),
    "sim-popular": Protocol(
        "simulated shop of strong popularity skew, latest 20% of purchases held out",
        _simulated("popular"),
        _named("sim-popular", time_cut),
        _truth("popular"),
    ),
    "sim-taste": Protocol(
        "simulated shop of strong personal taste, latest 20% of purchases held out",
        _simulated("taste"),
        _named("sim-taste", time_cut),
        _truth("taste"),
    ),
    "sim-bunched": Protocol(
        "simulated shop whose shoppers come once (sessions within hours), a random 20% of pairs held out",
        _simulated("bunched"),
        _named("sim-bunched", random_holdout),
        _truth("bunched"),
    ),
    "sim-bestseller": Protocol(
        "simulated bestseller shop (taste barely matters; no model can win by much), latest 20% of "
        "purchases held out",
        _simulated("bestseller"),
        _named("sim-bestseller", time_cut),
        _truth("bestseller"),
    ),
}
