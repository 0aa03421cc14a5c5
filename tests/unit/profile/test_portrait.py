"""Real-time portraits: decay, boundedness under a million events, and GetProfile over real gRPC
with the items service answering the catalog facts, on SQLite and PostgreSQL."""

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest

from ml.event_weights import DEFAULT_WEIGHTS, EventWeights
from ml.event_weights import MODEL as EVENT_WEIGHTS
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2, items_pb2_grpc
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.items.app import build as build_items
from services.profile.app import build as build_profile
from services.profile.portrait import MAX_AFFINITIES, ItemFacts, Portrait, review_sentiment
from shared.models import publish
from tests.support import ServerThread, make_settings, suite_env

DAY = 86_400.0
HALF_LIFE = 30 * DAY
CLICK = common_pb2.EVENT_TYPE_CLICK
PURCHASE = common_pb2.EVENT_TYPE_PURCHASE
LIKE = common_pb2.EVENT_TYPE_LIKE


def test_an_event_one_half_life_older_counts_half() -> None:
    portrait = Portrait()
    portrait.fold(PURCHASE, 0.0, ItemFacts("Home>Mugs", "Acme", 4.0), None, HALF_LIFE)
    portrait.fold(PURCHASE, HALF_LIFE, ItemFacts("Garden>Pots", "Acme", 4.0), None, HALF_LIFE)
    view = portrait.view(HALF_LIFE, HALF_LIFE, top=5)
    assert dict(view.categories) == pytest.approx({"Garden>Pots": 2 / 3, "Home>Mugs": 1 / 3})
    assert view.brands == [("Acme", pytest.approx(1.0))]
    assert view.typical_price == pytest.approx(4.0)
    later = portrait.view(2 * HALF_LIFE, HALF_LIFE, top=5)
    assert later.events_per_day == pytest.approx(view.events_per_day / 2)


def test_price_band_sentiment_and_hours() -> None:
    portrait = Portrait()
    for hour, price in ((9, 2.0), (9, 8.0), (21, 4.0)):
        portrait.fold(CLICK, hour * 3600.0, ItemFacts("", "", price), None, HALF_LIFE)
    portrait.fold(common_pb2.EVENT_TYPE_REVIEW, 22 * 3600.0, None, review_sentiment(5, ""), HALF_LIFE)
    view = portrait.view(22 * 3600.0, HALF_LIFE, top=5)
    assert view.typical_price == pytest.approx(4.0, rel=0.01)
    assert view.price_low < view.typical_price < view.price_high
    assert view.sentiment == pytest.approx(1.0)
    assert np.argmax(view.hour_shares) == 9 and sum(view.hour_shares) == pytest.approx(1.0)
    assert review_sentiment(0, "Broken and flimsy, but the colour is lovely") == pytest.approx(-1 / 3)
    assert review_sentiment(0, "no opinion here") is None


def test_review_sentiment_is_kept_per_category_and_brand_and_survives_storage() -> None:
    review = common_pb2.EVENT_TYPE_REVIEW
    portrait = Portrait()
    portrait.fold(review, 0.0, ItemFacts("Home>Mugs", "Acme", 4.0), 1.0, HALF_LIFE)
    portrait.fold(review, HALF_LIFE, ItemFacts("Home>Mugs", "Zed", 4.0), -0.5, HALF_LIFE)
    portrait.fold(review, HALF_LIFE, ItemFacts("Garden>Pots", "Acme", 4.0), -1.0, HALF_LIFE)
    portrait.fold(PURCHASE, HALF_LIFE, ItemFacts("Kids>Toys", "Acme", 4.0), None, HALF_LIFE)
    view = Portrait.from_json(portrait.to_json()).view(HALF_LIFE, HALF_LIFE, top=5)
    # the older review counts half: (0.5 x 1 + 1 x -0.5) / 1.5 = 0
    assert view.category_sentiments == [
        ("Home>Mugs", pytest.approx(0.0)),
        ("Garden>Pots", pytest.approx(-1.0)),
    ]
    assert dict(view.brand_sentiments) == pytest.approx({"Acme": (0.5 - 1.0) / 1.5, "Zed": -0.5})
    assert Portrait.from_json(json.dumps({"origin": 0.0})).view(0.0, HALF_LIFE, 5).category_sentiments == []


def test_a_million_events_for_one_shopper_keep_the_portrait_bounded() -> None:
    rng = np.random.default_rng(0)
    categories = rng.integers(100_000, size=1_000_000)
    brands = rng.integers(50_000, size=1_000_000)
    portrait = Portrait()
    sizes = []
    for n in range(1_000_000):
        # ten years of events, a rare favourite category that keeps coming back
        category = "favourite" if n % 50 == 0 else f"c{categories[n]}"
        facts = ItemFacts(category, f"b{brands[n]}", 1.0 + n % 7)
        portrait.fold(PURCHASE, n * 315.0, facts, None, HALF_LIFE)
        if n % 100_000 == 99_999:
            sizes.append(len(portrait.to_json()))
    assert len(portrait.categories) <= 2 * MAX_AFFINITIES and len(portrait.brands) <= 2 * MAX_AFFINITIES
    assert max(sizes) < 12_000 and max(sizes) < 2 * min(sizes), sizes  # flat, not growing
    view = portrait.view(1_000_000 * 315.0, HALF_LIFE, top=3)
    assert view.categories[0][0] == "favourite"
    assert all(np.isfinite([portrait.activity, *portrait.hours]))
    assert Portrait.from_json(portrait.to_json()) == portrait


@contextmanager
def _serving(tmp_path: Path, database_url: str, weights: EventWeights | None = None):
    """Items and profile services; the profile with `weights` published as its event weights."""
    settings = make_settings(str(tmp_path), **suite_env(), RECSYS_PROFILE_DATABASE_URL=database_url)
    if weights is not None:
        publish(settings.model_dir, EVENT_WEIGHTS, weights.save)
    servers = [
        ServerThread(build, settings, settings.ports[name])
        for name, build in (("items", build_items), ("profile", build_profile))
    ]
    items_channel = grpc.insecure_channel(settings.addresses["items"])
    profile_channel = grpc.insecure_channel(settings.addresses["profile"])
    try:
        yield (
            items_pb2_grpc.ItemsServiceStub(items_channel),
            profile_pb2_grpc.ProfileServiceStub(profile_channel),
        )
    finally:
        items_channel.close()
        profile_channel.close()
        for server in servers:
            server.stop()


@pytest.fixture
def suite(tmp_path: Path, database_url: str):
    with _serving(tmp_path, database_url) as stubs:
        yield stubs


def _event(number: int, item: str, kind: int, when: datetime) -> common_pb2.Event:
    event = common_pb2.Event(event_id=f"e{number}", user_id="shopper", item_id=item, type=kind)
    event.timestamp.FromDatetime(when)
    return event


def test_a_new_event_changes_the_next_profile(suite) -> None:
    items, profile = suite
    catalog = [
        common_pb2.Item(item_id="mug", title="Mug", price=6.0, category_path=["Home", "Mugs"], brand="Acme"),
        common_pb2.Item(
            item_id="pot", title="Pot", price=12.0, category_path=["Garden", "Pots"], brand="Terra"
        ),
    ]
    items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=catalog)]), timeout=10)
    now = datetime.now(UTC)
    events = [_event(n, "mug", CLICK, now - timedelta(hours=5 - n)) for n in range(3)]
    profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=events)]), timeout=10)
    before = profile.GetProfile(profile_pb2.GetProfileRequest(user_id="shopper"), timeout=5).profile.portrait
    assert [(a.name, round(a.score, 6)) for a in before.categories] == [("Home>Mugs", 1.0)]
    assert before.typical_price == pytest.approx(6.0)

    bought = _event(9, "pot", PURCHASE, now)
    profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=[bought])]), timeout=10)
    after = profile.GetProfile(profile_pb2.GetProfileRequest(user_id="shopper"), timeout=5).profile.portrait
    assert [a.name for a in after.categories] == ["Garden>Pots", "Home>Mugs"]
    assert after.categories[0].score > 0.5 and {b.name for b in after.brands} == {"Acme", "Terra"}
    assert after.typical_price > before.typical_price and after.events_per_day > before.events_per_day
    assert len(after.hour_shares) == 24
    # a replayed event is a duplicate and leaves the portrait alone
    profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=[bought])]), timeout=10)
    again = profile.GetProfile(profile_pb2.GetProfileRequest(user_id="shopper"), timeout=5).profile.portrait
    assert json.dumps([(a.name, a.score) for a in again.categories]) == json.dumps(
        [(a.name, a.score) for a in after.categories]
    )
    # a review without a rating: its text's sentiment enters the portrait for its category and brand
    review = _event(10, "pot", common_pb2.EVENT_TYPE_REVIEW, now)
    review.text = "Broken and flimsy"
    profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=[review])]), timeout=10)
    reviewed = profile.GetProfile(
        profile_pb2.GetProfileRequest(user_id="shopper"), timeout=5
    ).profile.portrait
    assert [(a.name, a.score) for a in reviewed.category_sentiments] == [("Garden>Pots", -1.0)]
    assert [(a.name, a.score) for a in reviewed.brand_sentiments] == [("Terra", -1.0)]


@pytest.mark.parametrize("like_weight", [None, 10.0])
def test_the_published_event_weights_decide_what_a_like_counts(
    tmp_path: Path, database_url: str, like_weight
) -> None:
    weights = None if like_weight is None else EventWeights({**DEFAULT_WEIGHTS, LIKE: like_weight})
    with _serving(tmp_path, database_url, weights) as (items, profile):
        catalog = [
            common_pb2.Item(item_id="mug", title="Mug", price=6.0, category_path=["Home", "Mugs"]),
            common_pb2.Item(item_id="pot", title="Pot", price=12.0, category_path=["Garden", "Pots"]),
        ]
        items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=catalog)]), timeout=10)
        now = datetime.now(UTC)
        events = [_event(1, "pot", PURCHASE, now), _event(2, "mug", LIKE, now)]
        profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=events)]), timeout=10)
        portrait = profile.GetProfile(
            profile_pb2.GetProfileRequest(user_id="shopper"), timeout=5
        ).profile.portrait
    first = portrait.categories[0].name
    # by default a purchase (4) outweighs a like (2); the published weights make the like count 10
    assert first == ("Garden>Pots" if like_weight is None else "Home>Mugs")
