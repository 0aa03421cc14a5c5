"""Sessions of the synthetic shoppers (view, click, cart, purchase, review funnel; on request, likes
and shares of what they clicked) and optional dirt injection, streamed one shopper at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from recsys.common.v1 import common_pb2
from tools.synth.reviews import rating_of, review_text
from tools.synth.shop import Shop
from tools.synth.shoppers import BROWSE_POOL, Shopper, affinity, click_probability, purchase_probability

VIEW = common_pb2.EVENT_TYPE_VIEW
CLICK = common_pb2.EVENT_TYPE_CLICK
ADD_TO_CART = common_pb2.EVENT_TYPE_ADD_TO_CART
PURCHASE = common_pb2.EVENT_TYPE_PURCHASE
REVIEW = common_pb2.EVENT_TYPE_REVIEW
LIKE = common_pb2.EVENT_TYPE_LIKE
SHARE = common_pb2.EVENT_TYPE_SHARE
DAY = 86_400.0
DIRT_KINDS = (
    "exact-duplicate",
    "near-duplicate",
    "missing-value",
    "impossible-value",
    "outlier",
    "unknown-item",
)
BOT_CLICKS = 300


@dataclass(frozen=True)
class SynthEvent:
    event_id: str
    user_id: str
    item_id: str
    type: int
    timestamp: float
    quantity: int = 0
    price: float = 0.0
    rating: int = 0
    text: str = ""
    surface: str = ""
    session_id: str = ""
    dirt: str = ""
    # Reviews only: the shopper's true satisfaction with the item (simulator truth, never sent).
    satisfaction: float = 0.0

    def as_proto(self) -> common_pb2.Event:
        event = common_pb2.Event(
            event_id=self.event_id,
            user_id=self.user_id,
            item_id=self.item_id,
            type=self.type,  # type: ignore[arg-type]
            quantity=self.quantity,
            price=self.price,
            rating=self.rating,
            text=self.text,
            surface=self.surface,
            session_id=self.session_id,
        )
        event.timestamp.FromDatetime(datetime.fromtimestamp(self.timestamp, UTC))
        return event


def like_probability(taste: float) -> float:
    """A clicked item is liked more surely than it is bought when it matches the shopper's taste."""
    return float(1.0 / (1.0 + np.exp(-2.0 * (taste - 3.0))))


def share_probability(taste: float) -> float:
    """Shares are rarer than likes and follow taste as closely."""
    return float(1.0 / (1.0 + np.exp(-2.0 * (taste - 3.8))))


def shopper_events(
    seed: int, person: Shopper, shop: Shop, start: float, days: int, social: bool = False
) -> Iterator[SynthEvent]:
    """One shopper's sessions in time order (a review follows its purchase in the stream, though it
    is written days later). With `social`, clicked items are also liked and shared, the more surely
    the more they match the shopper's taste; every other event is the same with or without."""
    rng = np.random.default_rng([seed, 4, person.number])
    # Likes and shares draw from their own stream: every other event is as it was without them.
    social_rng = np.random.default_rng([seed, 9, person.number])
    shared = 0
    sessions = 1 + rng.poisson(person.activity * shop.regime.sessions_scale)
    burst = shop.regime.burst_days
    if burst is None:
        starts = sorted(
            start
            + rng.integers(days) * DAY
            + ((person.active_hour + rng.normal(0, 1.5) - person.utc_offset_hours) % 24) * 3600.0
            for _ in range(sessions)
        )
    else:
        first = (
            start + rng.integers(days) * DAY + ((person.active_hour - person.utc_offset_hours) % 24) * 3600.0
        )
        starts = sorted(first + rng.uniform(0, burst * DAY, size=sessions).tolist())
    counter = 0
    for number, session_start in enumerate(starts):
        session_id = f"{person.user_id}-s{number}"
        pool = rng.choice(len(shop), size=min(BROWSE_POOL, len(shop)), replace=False)
        weights = np.exp(2.0 * affinity(person, shop, pool))
        views = rng.choice(pool, size=int(rng.integers(3, 12)), replace=False, p=weights / weights.sum())
        clicks = rng.random(len(views)) < click_probability(person, shop, views)
        buys = clicks & (rng.random(len(views)) < purchase_probability(person, shop, views))
        moment = session_start
        for item, clicked, bought in zip(views.tolist(), clicks.tolist(), buys.tolist(), strict=True):
            moment += 5.0 + rng.exponential(40.0)
            steps = [VIEW] + ([CLICK] if clicked else []) + ([ADD_TO_CART, PURCHASE] if bought else [])
            for step in steps:
                counter += 1
                moment += 2.0 + rng.exponential(10.0)
                yield SynthEvent(
                    event_id=f"{person.user_id}-e{counter}",
                    user_id=person.user_id,
                    item_id=str(shop.item_ids[item]),
                    type=step,
                    timestamp=moment,
                    quantity=int(rng.integers(1, 4)) if step in (ADD_TO_CART, PURCHASE) else 0,
                    price=float(shop.prices[item]) if step == PURCHASE else 0.0,
                    surface="product" if step != VIEW else "home",
                    session_id=session_id,
                )
            if social and clicked:
                taste = float(affinity(person, shop, np.array([item]))[0])
                for kind, chance in ((LIKE, like_probability(taste)), (SHARE, share_probability(taste))):
                    if social_rng.random() < chance:
                        shared += 1
                        yield SynthEvent(
                            event_id=f"{person.user_id}-x{shared}",
                            user_id=person.user_id,
                            item_id=str(shop.item_ids[item]),
                            type=kind,
                            timestamp=moment + 1.0 + social_rng.exponential(20.0),
                            surface="product",
                            session_id=session_id,
                        )
            if bought and rng.random() < 0.3:
                satisfaction = affinity(person, shop, np.array([item]))[0] + rng.normal(0, 0.7)
                rating = rating_of(float(satisfaction))
                counter += 1
                written = moment + DAY * rng.uniform(2, 10)  # days later; the session goes on now
                rng.integers(3)  # the draw that once chose a fixed text: the event stream stays as it was
                yield SynthEvent(
                    event_id=f"{person.user_id}-e{counter}",
                    user_id=person.user_id,
                    item_id=str(shop.item_ids[item]),
                    type=REVIEW,
                    timestamp=written,
                    rating=rating,
                    text=review_text(seed, person.number, counter, float(satisfaction)),
                    session_id=session_id,
                    satisfaction=float(satisfaction),
                )


class DirtInjector:
    """Adds labelled bad records to a clean stream at `rate` (and bot bursts at rate / 10 per
    shopper), so that the cleaning stage can be scored against known answers."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = np.random.default_rng([seed, 5])
        self.serial = 0

    def _new_id(self, event: SynthEvent) -> str:
        self.serial += 1
        return f"{event.event_id}-dirt{self.serial}"

    def _dirty(self, event: SynthEvent, kind: str) -> SynthEvent:
        if kind == "exact-duplicate":
            return replace(event, dirt=kind)
        fresh = replace(event, event_id=self._new_id(event), dirt=kind)
        if kind == "near-duplicate":
            return replace(fresh, timestamp=event.timestamp + 0.3)
        if kind == "missing-value":
            field = ("user_id", "item_id", "type")[int(self.rng.integers(3))]
            return replace(fresh, **{field: 0 if field == "type" else ""})
        if kind == "impossible-value":
            return replace(fresh, type=PURCHASE, price=-float(self.rng.uniform(1, 50)), quantity=1)
        if kind == "outlier":
            return replace(fresh, type=PURCHASE, quantity=int(self.rng.integers(20_000, 90_000)))
        return replace(fresh, item_id=f"GHOST{self.serial:06d}")

    def bot(self, number: int, start: float, shop: Shop) -> Iterator[SynthEvent]:
        user = f"BOT{number:07d}"
        items = self.rng.integers(len(shop), size=BOT_CLICKS)
        for n, item in enumerate(items.tolist()):
            yield SynthEvent(
                event_id=f"{user}-e{n}",
                user_id=user,
                item_id=str(shop.item_ids[item]),
                type=CLICK,
                timestamp=start + n * 0.15,
                dirt="bot",
            )

    def inject(self, events: Iterator[SynthEvent], person: Shopper, shop: Shop) -> Iterator[SynthEvent]:
        last = 0.0
        for event in events:
            yield event
            last = event.timestamp
            # Reviews, likes and shares pass clean: dirt follows the same draws as before they existed.
            if event.type in (REVIEW, LIKE, SHARE) or self.rng.random() >= self.rate:
                continue
            yield self._dirty(event, DIRT_KINDS[int(self.rng.integers(len(DIRT_KINDS)))])
        if last and self.rng.random() < self.rate / 10:
            yield from self.bot(person.number, last + 3600.0, shop)
