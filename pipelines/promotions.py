"""Training the promotion uplift model from the gateway's logged plans and the shop's purchases.

A logged decision's outcome is whether the shopper bought anything in the offer's category during
the offer's window. The new model is published only if, estimated off-policy on logs it was not
fitted on (two halves of the shoppers, each scored by the model fitted on the other), the offers
it would send earn a positive incremental margin; otherwise it is kept under refused/ and the
plans stay as they are (a trial, or the model in place).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.promotions.allocate import incremental_margin
from ml.promotions.features import FEATURES
from ml.promotions.offpolicy import Estimate, LoggedMargin, incremental_margin_per_offer
from ml.promotions.uplift import MODEL, LoggedOutcome, NotEnoughLogs, UpliftModel
from ml.snapshot import PURCHASE, Snapshot
from recsys.gateway.v1 import gateway_pb2
from shared.models import publish

REFUSED = "refused"


@dataclass(frozen=True)
class UpliftReport:
    decisions: int
    sent: int
    bought_sent: int
    bought_held_out: int
    estimate: Estimate | None  # None: too few logs to fit or to estimate
    version: int | None  # published version; None when nothing was published
    refused: bool
    reason: str


def _purchases(snapshot: Snapshot) -> dict[str, list[tuple[float, str]]]:
    """Each shopper's purchases as (time, category)."""
    category_of = dict(
        zip(snapshot.catalog_item_ids.tolist(), snapshot.catalog_categories.tolist(), strict=True)
    )
    found: dict[str, list[tuple[float, str]]] = defaultdict(list)
    mask = snapshot.types == PURCHASE
    for user, item, moment in zip(
        snapshot.user_ids[mask].tolist(),
        snapshot.item_ids[mask].tolist(),
        snapshot.timestamps[mask].tolist(),
        strict=True,
    ):
        found[user].append((moment, category_of.get(item, "")))
    return found


def _bought(decision: gateway_pb2.ExportPromotionDecisionsResponse, purchases: dict) -> bool:
    start = decision.window_start.seconds + decision.window_start.nanos / 1e9
    end = decision.window_end.seconds + decision.window_end.nanos / 1e9
    return any(
        start <= moment < end and category == decision.category
        for moment, category in purchases.get(decision.user_id, ())
    )


def _margin(
    decision: gateway_pb2.ExportPromotionDecisionsResponse, bought: bool, margin_rate: float
) -> float:
    """The realized margin of the pair in its window: the sale's margin, less the discount a
    redeeming recipient took and the invitation's cost."""
    sale = margin_rate * decision.basket_price if bought else 0.0
    if not decision.sent:
        return sale
    return sale - (decision.discount if bought else 0.0) - decision.cost


def _fold(user_id: str) -> int:
    return hashlib.sha256(user_id.encode()).digest()[0] % 2


def _cross_fitted(
    outcomes: list[LoggedOutcome],
    margins: list[LoggedMargin],
    users: list[str],
    decisions,
    margin_rate: float,
) -> Estimate:
    chosen = np.zeros(len(outcomes), dtype=bool)
    for held in (0, 1):
        fit_on = [o for o, u in zip(outcomes, users, strict=True) if _fold(u) != held]
        model = UpliftModel.fit(fit_on)
        for n, (outcome, user, decision) in enumerate(zip(outcomes, users, decisions, strict=True)):
            if _fold(user) == held:
                without, with_offer = model.chances(outcome.features)
                value = incremental_margin(
                    float(without[0]),
                    float(with_offer[0]),
                    margin_rate * decision.basket_price,
                    decision.discount,
                    decision.cost,
                )
                chosen[n] = value > 0
    return incremental_margin_per_offer(margins, chosen)


def train_uplift(
    decisions: Sequence[gateway_pb2.ExportPromotionDecisionsResponse],
    snapshot: Snapshot,
    model_dir: Path,
    margin_rate: float,
    keep: int,
) -> UpliftReport:
    usable = [d for d in decisions if list(d.feature_names) == list(FEATURES)]
    purchases = _purchases(snapshot)
    bought = [_bought(d, purchases) for d in usable]
    outcomes = [
        LoggedOutcome(np.array(d.features), d.sent, d.propensity, b)
        for d, b in zip(usable, bought, strict=True)
    ]
    margins = [
        LoggedMargin(d.sent, d.propensity, _margin(d, b, margin_rate))
        for d, b in zip(usable, bought, strict=True)
    ]
    sent = sum(d.sent for d in usable)
    counts = {
        "decisions": len(usable),
        "sent": sent,
        "bought_sent": sum(b for d, b in zip(usable, bought, strict=True) if d.sent),
        "bought_held_out": sum(b for d, b in zip(usable, bought, strict=True) if not d.sent),
    }
    try:
        model = UpliftModel.fit(outcomes)
        estimate = _cross_fitted(outcomes, margins, [d.user_id for d in usable], usable, margin_rate)
    except NotEnoughLogs as error:
        return UpliftReport(
            **counts, estimate=None, version=None, refused=False, reason=f"not trained: {error}"
        )
    if estimate.value <= 0:
        publish(model_dir / REFUSED, MODEL, model.save, keep=keep)
        return UpliftReport(
            **counts,
            estimate=estimate,
            version=None,
            refused=True,
            reason="refused: the offers it would send earn no incremental margin on logs it did not fit",
        )
    version = publish(model_dir, MODEL, model.save, keep=keep)
    return UpliftReport(**counts, estimate=estimate, version=version, refused=False, reason="published")
