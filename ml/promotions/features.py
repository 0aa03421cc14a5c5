"""What the uplift model may know about a shopper and an offer: behaviour only.

The inputs are the shopper's portrait (category affinities, price band, activity) and purchase
count, and the offer's own terms. No protected attribute (age, gender, ethnicity, religion,
health, location or language) is an input, and nothing here reads the shopper's segment: the
feature list below is the whole input, and a test holds it to that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ml.promotions.offers import ACTIVITY, Offer
from recsys.profile.v1 import profile_pb2

FEATURES = (
    "intercept",
    "category_affinity",
    "top_category_affinity",
    "log_typical_price",
    "log_basket_over_typical_price",
    "price_spread",
    "log_events_per_day",
    "log_purchases",
    "has_category",
    "price_cut",
    "is_activity",
    "price_cut_x_log_typical_price",
    "price_cut_x_category_affinity",
    "price_cut_x_log_basket_over_typical_price",
    "price_cut_x_log_purchases",
    "activity_x_category_affinity",
)


@dataclass(frozen=True)
class ShopperFacts:
    """The behavioural facts of one shopper that the model and the explanations read."""

    user_id: str
    categories: dict[str, float] = field(default_factory=dict)
    typical_price: float = 0.0
    price_low: float = 0.0
    price_high: float = 0.0
    events_per_day: float = 0.0
    purchase_count: int = 0

    @classmethod
    def from_profile(cls, profile: profile_pb2.Profile) -> ShopperFacts:
        portrait = profile.portrait
        return cls(
            user_id=profile.user_id,
            categories={a.name: a.score for a in portrait.categories},
            typical_price=portrait.typical_price,
            price_low=portrait.price_low,
            price_high=portrait.price_high,
            events_per_day=portrait.events_per_day,
            purchase_count=profile.purchase_count,
        )


def features(shopper: ShopperFacts, offer: Offer, basket_price: float) -> np.ndarray:
    """One row in the order of FEATURES."""
    affinity = shopper.categories.get(offer.category, 0.0)
    top = offer.category.split(">")[0]
    top_affinity = sum(score for name, score in shopper.categories.items() if name.split(">")[0] == top)
    typical = shopper.typical_price or basket_price
    log_typical = math.log(max(typical, 0.01))
    relative = math.log(max(basket_price, 0.01)) - log_typical
    spread = math.log(shopper.price_high / shopper.price_low) if shopper.price_low > 0 else 0.0
    # The cut the offer makes to the basket's log price: what a price-sensitive shopper feels.
    cut = math.log1p(basket_price) - math.log1p(basket_price - offer.discount(basket_price))
    is_activity = 1.0 if offer.kind == ACTIVITY else 0.0
    return np.array(
        [
            1.0,
            affinity,
            top_affinity,
            log_typical,
            relative,
            spread,
            math.log1p(shopper.events_per_day),
            math.log1p(shopper.purchase_count),
            1.0 if offer.category in shopper.categories else 0.0,
            cut,
            is_activity,
            cut * log_typical,
            cut * affinity,
            cut * relative,
            cut * math.log1p(shopper.purchase_count),
            is_activity * affinity,
        ]
    )
