"""The clean-events stage on hand-made batches, and its quarantine over real gRPC."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.app import build
from services.profile.cleaning import (
    BURST_LIMIT,
    BURST_REASON,
    NEAR_DUPLICATE_REASON,
    OUTLIER_REASON,
    UNKNOWN_ITEM_REASON,
    Seen,
    clean,
    lookback,
)
from services.profile.store import ProfileStore
from tests.support import ServerThread, make_settings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
CLICK = common_pb2.EVENT_TYPE_CLICK
PURCHASE = common_pb2.EVENT_TYPE_PURCHASE


def event(event_id: str, item: str = "i1", kind: int = CLICK, seconds: float = 0, user: str = "u1", **fields):
    message = common_pb2.Event(event_id=event_id, user_id=user, item_id=item, type=kind, **fields)
    message.timestamp.FromDatetime(T0 + timedelta(seconds=seconds))
    return message


def reasons(result) -> dict[str, str]:
    return {event.event_id: reason for _, event, reason in result.dropped}


def test_near_duplicates_within_a_second_are_dropped_but_exact_resends_are_left_to_dedupe() -> None:
    batch = [
        event("a", seconds=0),
        event("b", seconds=0.4),  # same click 0.4 s later: near-duplicate
        event("c", seconds=1.5),  # 1.5 s later: a new click
        event("d", item="i2", seconds=0.2),  # another item: fine
        event("a", seconds=0),  # the same event again: an exact duplicate, not a near one
    ]
    result = clean(batch, NOW, {})
    assert reasons(result) == {"b": NEAR_DUPLICATE_REASON}
    assert [record.event_id for _, record in result.accepted] == ["a", "c", "d", "a"]


def test_stored_events_count_for_near_duplicates() -> None:
    stored = {"u1": [Seen("old", "i1", CLICK, T0 + timedelta(seconds=0.5))]}
    assert reasons(clean([event("new", seconds=0)], NOW, stored)) == {"new": NEAR_DUPLICATE_REASON}
    assert reasons(clean([event("old", seconds=0.5)], NOW, stored)) == {}


def test_browsing_bursts_are_cut_at_the_limit_but_purchases_never() -> None:
    clicks = [event(f"c{n}", item=f"i{n}", seconds=n * 0.1) for n in range(BURST_LIMIT + 30)]
    result = clean(clicks, NOW, {})
    assert result.accepted == []
    assert set(reasons(result).values()) == {BURST_REASON}
    human = [event(f"h{n}", item=f"i{n}", seconds=n * 0.6) for n in range(BURST_LIMIT)]
    assert len(clean(human, NOW, {}).accepted) == BURST_LIMIT
    invoice = [event(f"p{n}", item=f"i{n}", kind=PURCHASE, quantity=2) for n in range(500)]
    assert len(clean(invoice, NOW, {}).accepted) == 500


def test_the_lookback_reads_seconds_around_the_batch_and_the_burst_window_only_for_users_who_could_burst() -> (
    None
):
    batch = [event(f"c{n}", item=f"i{n}", seconds=n) for n in range(20)] + [event("v", user="u2", seconds=5)]
    wanted = lookback(batch, [T0 + timedelta(seconds=n) for n in range(20)] + [T0 + timedelta(seconds=5)])
    assert wanted.user_ids == ["u1", "u2"]
    assert wanted.near == (T0 - timedelta(seconds=1), T0 + timedelta(seconds=20))
    assert wanted.burst == (T0 - timedelta(seconds=60), T0 + timedelta(seconds=79))
    assert wanted.least_stored_for_a_burst() == BURST_LIMIT + 1 - 20
    # u1 brings 20 browsing events: 101 stored make a burst possible, 100 do not; u2 brings one.
    assert wanted.could_burst({"u1": BURST_LIMIT - 20, "u2": BURST_LIMIT - 20}) == []
    assert wanted.could_burst({"u1": BURST_LIMIT - 19, "u2": BURST_LIMIT}) == ["u1", "u2"]


def test_outliers_unknown_items_and_repairs() -> None:
    batch = [
        event("big", kind=PURCHASE, quantity=50_000),
        event("ghost", item="nope", kind=PURCHASE, quantity=1),
        event("zero", item="i2", kind=PURCHASE),
        event("neg", item="i3", kind=PURCHASE, price=-3.0),
    ]
    result = clean(batch, NOW, {}, known_items={"i1", "i2", "i3"})
    assert reasons(result) == {
        "big": OUTLIER_REASON,
        "ghost": UNKNOWN_ITEM_REASON,
        "neg": "price must be a finite number >= 0",
    }
    assert result.fixes == {}  # quantity 0 is the contract's default of 1, not a repair
    assert result.accepted[0][1].quantity == 1


@pytest.fixture
def profile(tmp_path: Path, database_url: str):
    settings = make_settings(str(tmp_path), RECSYS_PROFILE_DATABASE_URL=database_url)
    server = ServerThread(build, settings)
    channel = grpc.insecure_channel(server.address)
    yield profile_pb2_grpc.ProfileServiceStub(channel), database_url
    channel.close()
    server.stop()


def test_dropped_events_are_quarantined_with_their_reason(profile) -> None:
    stub, url = profile
    batch = [
        event("a"),
        event("b", seconds=0.3),
        event("c", item="", seconds=5),
        event("p", kind=PURCHASE, item="i9"),
    ]
    summary = stub.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=batch)]), timeout=10).summary
    assert summary.accepted == 2
    assert [(r.index, r.reason) for r in summary.rejected] == [
        (1, NEAR_DUPLICATE_REASON),
        (2, "item_id is empty"),
    ]
    assert list(summary.fixed) == []  # the purchase without a quantity took the default, no repair
    store = ProfileStore(url)
    try:
        assert sorted(store.quarantined()) == [("b", NEAR_DUPLICATE_REASON), ("c", "item_id is empty")]
    finally:
        store.close()
    # Resending the batch quarantines nothing twice.
    stub.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=batch)]), timeout=10)
    store = ProfileStore(url)
    try:
        assert len(store.quarantined()) == 2
    finally:
        store.close()
    # The same near-duplicate sent in a later batch is judged against the stored click.
    again = stub.RecordEvents(
        iter([profile_pb2.RecordEventsRequest(events=[event("b2", seconds=0.6)])]), timeout=10
    )
    assert [r.reason for r in again.summary.rejected] == [NEAR_DUPLICATE_REASON]


def test_a_burst_split_across_batches_is_cut_against_the_stored_browsing(profile) -> None:
    stub, _ = profile
    record = stub.RecordEvents
    # 110 clicks of one shopper over 55 s, and one of another.
    first = [event(f"c{n}", item=f"i{n % 9}", seconds=n * 0.5) for n in range(110)] + [
        event("o", item="k", user="u2", seconds=50)
    ]
    assert record(iter([profile_pb2.RecordEventsRequest(events=first)]), timeout=10).summary.accepted == 111
    # 20 more clicks in the same minute: together more than BURST_LIMIT; another shopper's are fine.
    more = [event(f"d{n}", item=f"j{n}", seconds=56 + n * 0.1) for n in range(20)]
    other = [event(f"o{n}", item=f"j{n}", user="u2", seconds=56 + n * 0.1) for n in range(20)]
    late = [
        event("p", item="i1", kind=PURCHASE, quantity=1, seconds=57),
        event("near", item="k", user="u2", seconds=50.6),
    ]
    summary = record(iter([profile_pb2.RecordEventsRequest(events=more + other + late)]), timeout=10).summary
    assert {r.event_id: r.reason for r in summary.rejected} == {
        **{f"d{n}": BURST_REASON for n in range(20)},
        "near": NEAR_DUPLICATE_REASON,  # the stored "o"
    }
    assert summary.accepted == 21
    # Far from the stored minute the same shopper browses freely again.
    later = [event(f"e{n}", item=f"j{n}", seconds=300 + n) for n in range(20)]
    assert record(iter([profile_pb2.RecordEventsRequest(events=later)]), timeout=10).summary.accepted == 20
