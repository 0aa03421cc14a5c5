"""A shopper's real-time portrait: decayed affinities, price band, activity and sentiment.

Every event folds into the portrait in the transaction that stores it, so the
next GetProfile sees it. Weights decay with a half-life: an event `half_life`
ago counts half. Instead of shrinking every value at each event, a value is
stored multiplied by 2^((t - origin) / half_life) (t its event's time) and
divided back when read; the origin moves forward when the factors grow large.

The portrait is bounded whatever the stream: at most MAX_AFFINITIES categories
and brands each (the weakest are dropped once there are twice as many), 24
hourly slots and a handful of sums, so a shopper with a million events
takes no more room than one with a hundred.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from ml.event_weights import DEFAULT_WEIGHTS
from ml.sentiment import opinion_words, rating_sentiment
from recsys.common.v1 import common_pb2

MAX_AFFINITIES = 50
MAX_EXPONENT = 500.0  # 2^500 is far from float overflow; past it the origin moves
# Events that say what the shopper pays for: their prices shape the price band.
PRICED = {common_pb2.EVENT_TYPE_CLICK, common_pb2.EVENT_TYPE_ADD_TO_CART, common_pb2.EVENT_TYPE_PURCHASE}


@dataclass(frozen=True)
class ItemFacts:
    """What the catalog says about an event's item."""

    category: str  # the category path joined with ">", "" when unknown
    brand: str
    price: float


def review_sentiment(
    rating: int, text: str, text_score: Callable[[str], float | None] = opinion_words
) -> float | None:
    """In [-1, 1]: the rating (1 to 5) when given, else the text's score (the published sentiment
    classifier's, else the balance of opinion words); None if neither says anything."""
    rated = rating_sentiment(rating)
    if rated is not None:
        return rated
    return text_score(text) if text else None


@dataclass
class Portrait:
    origin: float = 0.0  # seconds since the epoch; stored values are scaled relative to it
    categories: dict[str, float] = field(default_factory=dict)
    brands: dict[str, float] = field(default_factory=dict)
    activity: float = 0.0
    price_weight: float = 0.0
    log_price: float = 0.0
    log_price_square: float = 0.0
    sentiment_weight: float = 0.0
    sentiment: float = 0.0
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)
    # Review sentiment per category path and per brand: [decayed weight, decayed sum of sentiment].
    category_reviews: dict[str, list[float]] = field(default_factory=dict)
    brand_reviews: dict[str, list[float]] = field(default_factory=dict)

    def fold(
        self,
        event_type: int,
        when: float,
        facts: ItemFacts | None,
        sentiment: float | None,
        half_life_s: float,
        weights: Mapping[int, float] = DEFAULT_WEIGHTS,
    ) -> None:
        """Adds one event at `when` (seconds since the epoch); `weights` says how much each event type
        counts for its item's category and brand (learned per shop: ml/event_weights.py)."""
        if not self.activity and not self.price_weight and not self.sentiment_weight:
            self.origin = when
        if (when - self.origin) / half_life_s > MAX_EXPONENT:
            self._move_origin(when, half_life_s)
        scale = 2.0 ** ((when - self.origin) / half_life_s)
        weight = weights.get(event_type, 0.0)
        self.activity += scale
        self.hours[int(when // 3600) % 24] += scale
        if facts is not None:
            if facts.category:
                _add(self.categories, facts.category, weight * scale)
            if facts.brand:
                _add(self.brands, facts.brand, weight * scale)
            if event_type in PRICED and facts.price > 0:
                logged = math.log(facts.price)
                self.price_weight += scale
                self.log_price += scale * logged
                self.log_price_square += scale * logged * logged
        if sentiment is not None:
            self.sentiment_weight += scale
            self.sentiment += scale * sentiment
            if facts is not None and facts.category:
                _add_review(self.category_reviews, facts.category, scale, sentiment)
            if facts is not None and facts.brand:
                _add_review(self.brand_reviews, facts.brand, scale, sentiment)

    def _move_origin(self, when: float, half_life_s: float) -> None:
        shrink = 2.0 ** (-(when - self.origin) / half_life_s)
        self.origin = when
        for table in (self.categories, self.brands):
            for key in table:
                table[key] *= shrink
        self.hours = [value * shrink for value in self.hours]
        for reviews in (self.category_reviews, self.brand_reviews):
            for pair in reviews.values():
                pair[0] *= shrink
                pair[1] *= shrink
        for name in (
            "activity",
            "price_weight",
            "log_price",
            "log_price_square",
            "sentiment_weight",
            "sentiment",
        ):
            setattr(self, name, getattr(self, name) * shrink)

    def view(self, now: float, half_life_s: float, top: int) -> PortraitView:
        """The portrait as of `now`: decayed scores, strongest first."""
        factor = 2.0 ** (-(now - self.origin) / half_life_s)
        mean = self.log_price / self.price_weight if self.price_weight else 0.0
        spread = (
            math.sqrt(max(self.log_price_square / self.price_weight - mean * mean, 0.0))
            if self.price_weight
            else 0.0
        )
        total_hours = sum(self.hours)
        return PortraitView(
            categories=_strongest(self.categories, top),
            brands=_strongest(self.brands, top),
            events_per_day=self.activity * factor * math.log(2) / (half_life_s / 86_400),
            typical_price=math.exp(mean) if self.price_weight else 0.0,
            price_low=math.exp(mean - spread) if self.price_weight else 0.0,
            price_high=math.exp(mean + spread) if self.price_weight else 0.0,
            sentiment=self.sentiment / self.sentiment_weight if self.sentiment_weight else 0.0,
            hour_shares=[value / total_hours if total_hours else 0.0 for value in self.hours],
            category_sentiments=_most_reviewed(self.category_reviews, top),
            brand_sentiments=_most_reviewed(self.brand_reviews, top),
        )

    def to_json(self) -> str:
        # orjson: a portrait is mostly floats, and the standard encoder's float formatting was a
        # fifth of the profile service's time under a stream of feedback.
        return orjson.dumps(self.__dict__).decode()

    @classmethod
    def from_json(cls, text: str) -> Portrait:
        try:
            return cls(**orjson.loads(text))
        except orjson.JSONDecodeError:  # written by the standard encoder (NaN, Infinity): read as it was
            return cls(**json.loads(text))


@dataclass(frozen=True)
class PortraitView:
    categories: list[tuple[str, float]]
    brands: list[tuple[str, float]]
    events_per_day: float
    typical_price: float
    price_low: float
    price_high: float
    sentiment: float
    hour_shares: list[float]
    category_sentiments: list[tuple[str, float]]  # (category path, mean sentiment), most reviewed first
    brand_sentiments: list[tuple[str, float]]


def _add(table: dict[str, float], key: str, value: float) -> None:
    table[key] = table.get(key, 0.0) + value
    if len(table) > 2 * MAX_AFFINITIES:
        keep = sorted(table.items(), key=lambda pair: pair[1], reverse=True)[:MAX_AFFINITIES]
        table.clear()
        table.update(keep)


def _strongest(table: dict[str, float], top: int) -> list[tuple[str, float]]:
    """The strongest keys with their share of the positive total (decay cancels out of a share)."""
    total = sum(value for value in table.values() if value > 0)
    ranked = sorted(table.items(), key=lambda pair: (-pair[1], pair[0]))[:top]
    return [(key, value / total if total else 0.0) for key, value in ranked]


def _add_review(table: dict[str, list[float]], key: str, weight: float, sentiment: float) -> None:
    pair = table.setdefault(key, [0.0, 0.0])
    pair[0] += weight
    pair[1] += weight * sentiment
    if len(table) > 2 * MAX_AFFINITIES:
        keep = sorted(table.items(), key=lambda item: item[1][0], reverse=True)[:MAX_AFFINITIES]
        table.clear()
        table.update(keep)


def _most_reviewed(table: dict[str, list[float]], top: int) -> list[tuple[str, float]]:
    """The most reviewed keys with their mean sentiment (decay cancels out of a mean)."""
    ranked = sorted(table.items(), key=lambda item: (-item[1][0], item[0]))[:top]
    return [(key, total / weight) for key, (weight, total) in ranked if weight > 0]
