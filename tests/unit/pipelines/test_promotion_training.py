"""The uplift trainer joins logged decisions with purchases in the offer's category and window,
and publishes only a model whose choices earn margin on logs it did not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.promotions.features import FEATURES
from ml.promotions.uplift import MODEL
from ml.snapshot import SnapshotWriter
from pipelines.promotions import REFUSED, train_uplift
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.models import latest_version

START, END = 1_900_000_000, 1_900_000_000 + 7 * 86_400
MOVED = FEATURES.index("category_affinity")


def _shop(tmp_path: Path, rows: int, lift: float, discount: float, seed: int = 0):
    """Decisions with a 50/50 holdout; shoppers with a high feature buy much more when sent the offer."""
    rng = np.random.default_rng(seed)
    decisions, events = [], []
    for n in range(rows):
        x = rng.normal(size=len(FEATURES))
        x[0] = 1.0
        sent = bool(rng.random() < 0.5)
        chance = 0.15 + (lift if sent and x[MOVED] > 0 else 0.0)
        decision = gateway_pb2.ExportPromotionDecisionsResponse(
            plan_id="p1",
            user_id=f"u{n}",
            offer_id="c1",
            category="Home>Kitchen",
            sent=sent,
            propensity=0.5,
            features=x.tolist(),
            feature_names=list(FEATURES),
            basket_price=10.0,
            discount=discount,
        )
        decision.window_start.FromSeconds(START)
        decision.window_end.FromSeconds(END)
        decisions.append(decision)
        if rng.random() < chance:
            event = common_pb2.Event(
                event_id=f"e{n}", user_id=f"u{n}", item_id="k1", type=common_pb2.EVENT_TYPE_PURCHASE
            )
            event.timestamp.FromSeconds(START + 86_400)
            events.append(event)
        # a purchase outside the window, or in another category, is no outcome
        late = common_pb2.Event(
            event_id=f"l{n}", user_id=f"u{n}", item_id="k1", type=common_pb2.EVENT_TYPE_PURCHASE
        )
        late.timestamp.FromSeconds(END + 86_400)
        other = common_pb2.Event(
            event_id=f"o{n}", user_id=f"u{n}", item_id="t1", type=common_pb2.EVENT_TYPE_PURCHASE
        )
        other.timestamp.FromSeconds(START + 3600)
        events += [late, other]
    writer = SnapshotWriter(tmp_path / "snapshot")
    writer.add_events(events)
    writer.add_items(
        [
            common_pb2.Item(
                item_id="k1", title="Kitchen thing", price=10.0, category_path=["Home", "Kitchen"]
            ),
            common_pb2.Item(item_id="t1", title="Tool", price=10.0, category_path=["Garden", "Tools"]),
        ]
    )
    return decisions, writer.write()


def test_a_model_whose_offers_earn_margin_is_published(tmp_path: Path) -> None:
    decisions, snapshot = _shop(tmp_path, 4000, lift=0.4, discount=1.0)
    report = train_uplift(decisions, snapshot, tmp_path / "models", margin_rate=0.4, keep=3)
    assert report.decisions == 4000 and report.version is not None and not report.refused
    assert report.estimate is not None and report.estimate.value > 0
    held_out = [d for d in decisions if not d.sent]
    assert report.bought_held_out < 0.25 * len(
        held_out
    )  # out-of-window and other-category purchases left out
    assert latest_version(tmp_path / "models", MODEL) == report.version


def test_a_model_whose_offers_lose_money_is_refused(tmp_path: Path) -> None:
    decisions, snapshot = _shop(tmp_path, 4000, lift=0.0, discount=3.0)
    report = train_uplift(decisions, snapshot, tmp_path / "models", margin_rate=0.4, keep=3)
    assert report.refused and report.version is None
    assert latest_version(tmp_path / "models", MODEL) is None
    assert latest_version(tmp_path / "models" / REFUSED, MODEL) is not None


def test_too_few_logs_train_nothing(tmp_path: Path) -> None:
    decisions, snapshot = _shop(tmp_path, 100, lift=0.4, discount=1.0)
    report = train_uplift(decisions, snapshot, tmp_path / "models", margin_rate=0.4, keep=3)
    assert report.estimate is None and report.version is None and "not trained" in report.reason
