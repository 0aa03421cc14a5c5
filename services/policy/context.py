"""What a policy knows about each candidate of one request: its context vector.

The vector holds the upstream scores (standardized over the request), the
item (price, margin, how it fared so far), the shopper
(purchases, what they did with this item before) and the position. The
position enters the reward model so that rewards earned low on the slate are
credited fairly; candidates are scored at the top position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsys.common.v1 import common_pb2
from recsys.policy.v1 import policy_pb2

FEATURES = (
    "bias",
    "ranker_z",
    "ranker_reciprocal_rank",
    "generator_z",
    "log_price",
    "is_product",
    "shopper_purchases",
    "item_reward_rate",
    "item_exposure",
    "shopper_item_reward",
    "shopper_item_shown",
    "margin",
    "ranker_z_seen",
    "position",
)
POSITION = FEATURES.index("position")
# Prior impressions that pull an item's observed reward rate towards 0 until it has been shown enough.
RATE_PRIOR = 20.0


@dataclass(frozen=True)
class Exposure:
    """How often something was shown and the reward it earned."""

    shown: float = 0.0
    reward: float = 0.0


@dataclass(frozen=True)
class Candidates:
    item_ids: list[str]
    categories: list[str]
    features: np.ndarray  # one row per candidate, at the top position
    ranker_z: np.ndarray
    generator_z: np.ndarray
    margin: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)

    def category_codes(self) -> np.ndarray:
        """One integer per category; an item without a category is alone in its own."""
        codes: dict[str, int] = {}
        return np.array(
            [codes.setdefault(category or f"\0{n}", len(codes)) for n, category in enumerate(self.categories)]
        )


def logged_candidates(item_ids: list[str], categories: list[str], features: np.ndarray) -> Candidates:
    """The candidates of a logged decision, rebuilt from its stored contexts."""
    return Candidates(
        item_ids=item_ids,
        categories=categories,
        features=features,
        ranker_z=features[:, FEATURES.index("ranker_z")],
        generator_z=features[:, FEATURES.index("generator_z")],
        margin=features[:, FEATURES.index("margin")],
    )


def position_factor(position: int) -> float:
    """1 at the top, falling like the position discount of NDCG."""
    return float(1.0 / np.log2(position + 2))


def at_position(features: np.ndarray, position: int) -> np.ndarray:
    placed = features.copy()
    placed[..., POSITION] = position_factor(position)
    return placed


def standardized(values: np.ndarray, least_spread: float = 1e-12) -> np.ndarray:
    """Centred and divided by the spread; a spread under `least_spread` counts as that much, so
    that near-equal values are not blown up into large differences."""
    spread = values.std()
    return (values - values.mean()) / max(spread, least_spread)


def considered(items: Sequence[policy_pb2.ScoredItem], limit: int) -> list[policy_pb2.ScoredItem]:
    """The best `limit` items that can be shown: out-of-stock items never are."""
    available = [i for i in items if i.stock_status != common_pb2.STOCK_STATUS_OUT_OF_STOCK]
    return available[:limit]


def candidates(
    items: Sequence[policy_pb2.ScoredItem],
    purchase_count: int,
    item_exposure: Mapping[str, Exposure],
    shopper_exposure: Mapping[str, Exposure],
) -> Candidates:
    ranker = np.array([i.score for i in items], dtype=np.float64)
    generator = np.array([i.generator_score for i in items], dtype=np.float64)
    price = np.array([i.price for i in items], dtype=np.float64)
    margin = np.clip(np.array([i.margin for i in items], dtype=np.float64), 0.0, 1.0)
    seen = [item_exposure.get(i.item_id, Exposure()) for i in items]
    mine = [shopper_exposure.get(i.item_id, Exposure()) for i in items]
    shown = np.array([s.shown for s in seen])
    columns = {
        "bias": np.ones(len(items)),
        "ranker_z": standardized(ranker),
        "ranker_reciprocal_rank": 1.0 / (1.0 + np.arange(len(items))),
        "generator_z": standardized(generator),
        "log_price": np.log1p(np.maximum(price, 0.0)) / 5.0,
        "is_product": (price > 0).astype(np.float64),
        "shopper_purchases": np.full(len(items), np.log1p(max(purchase_count, 0)) / 5.0),
        "item_reward_rate": np.array([s.reward for s in seen]) / (shown + RATE_PRIOR),
        "item_exposure": np.log1p(shown) / 10.0,
        "shopper_item_reward": np.log1p(np.maximum([m.reward for m in mine], 0.0)),
        "shopper_item_shown": np.log1p([m.shown for m in mine]) / 3.0,
        "margin": margin,
        # the ranker's confidence in an item the shopper has already been shown
        "ranker_z_seen": standardized(ranker) * np.log1p([m.shown for m in mine]) / 3.0,
        "position": np.full(len(items), position_factor(0)),
    }
    return Candidates(
        item_ids=[i.item_id for i in items],
        categories=[i.category for i in items],
        features=np.column_stack([columns[name] for name in FEATURES]),
        ranker_z=columns["ranker_z"],
        generator_z=columns["generator_z"],
        margin=margin,
    )
