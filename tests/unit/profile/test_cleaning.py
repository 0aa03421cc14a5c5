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
