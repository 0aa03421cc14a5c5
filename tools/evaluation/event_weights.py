"""The portrait's event weights on simulated shops: learned ones beside the defaults.

Per seed, a simulated shop's every event (views, clicks, carts, purchases, reviews, likes, shares)
goes through ml/event_weights.py exactly as `recsys train event-weights` runs it. Reported: the
NDCG of the categories held-out shoppers bought after the time cut, ordered by each set of
weights: the learned ones, the defaults, and the defaults with likes and shares left out (what
they add), with the learned weights themselves.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml.event_weights import DEFAULT_WEIGHTS, EventWeights, fit_event_weights, type_name
from ml.snapshot import Snapshot, SnapshotWriter
from recsys.common.v1 import common_pb2
from tools.synth.sessions import shopper_events
from tools.synth.shop import catalog, make_shop
from tools.synth.shoppers import shopper

START = 1_700_000_000.0
DAYS = 90
ITEMS = 400
WITHOUT_SOCIAL = "without_likes_and_shares"
SOCIAL = (common_pb2.EVENT_TYPE_LIKE, common_pb2.EVENT_TYPE_SHARE)


@dataclass(frozen=True)
class EventWeightsResult:
    seed: int
    events: int
    held_out_shoppers: int
    learned_ndcg: float
    default_ndcg: float
    without_likes_and_shares_ndcg: float
    gain_low: float
    gain_high: float
    published: bool
    weights: dict[str, float]


def simulated_snapshot(seed: int, shoppers: int, folder: Path) -> Snapshot:
    """Every event of a simulated shop, exported as a training run would export it."""
    shop = make_shop(ITEMS, seed)
    writer = SnapshotWriter(folder)
    for number in range(shoppers):
        writer.add_events(
            [
                e.as_proto()
                for e in shopper_events(seed, shopper(seed, number), shop, START, DAYS, social=True)
            ]
        )
    writer.add_items(catalog(shop))
    return writer.write()


def run_seed(seed: int, shoppers: int) -> EventWeightsResult:
    without_social = {kind: 0.0 if kind in SOCIAL else w for kind, w in DEFAULT_WEIGHTS.items()}
    with tempfile.TemporaryDirectory() as folder:
        snapshot = simulated_snapshot(seed, shoppers, Path(folder) / "snapshot")
        found: EventWeights = fit_event_weights(snapshot, seed, {WITHOUT_SOCIAL: without_social})
    figures = found.figures
    return EventWeightsResult(
        seed=seed,
        events=snapshot.event_count,
        held_out_shoppers=int(figures["held_out_shoppers"]),
        learned_ndcg=figures["learned_ndcg"],
        default_ndcg=figures["default_ndcg"],
        without_likes_and_shares_ndcg=figures[f"{WITHOUT_SOCIAL}_ndcg"],
        gain_low=figures["gain_low"],
        gain_high=figures["gain_high"],
        published=bool(figures["published"]),
        weights={type_name(kind): round(weight, 4) for kind, weight in found.weights.items()},
    )
