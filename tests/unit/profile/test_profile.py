"""Profile service over real gRPC, on SQLite and on PostgreSQL."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest

from ml.candidates_offline import histories
from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.app import build
from tests.support import ServerThread, make_settings

PURCHASE = common_pb2.EVENT_TYPE_PURCHASE
VIEW = common_pb2.EVENT_TYPE_VIEW


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerThread]:
    running = ServerThread(build, make_settings(str(tmp_path), RECSYS_PROFILE_DATABASE_URL=database_url))
    yield running
    running.stop()


@pytest.fixture
def profile(server: ServerThread) -> Iterator[profile_pb2_grpc.ProfileServiceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield profile_pb2_grpc.ProfileServiceStub(channel)


def event(event_id: str, user: str = "u1", item: str = "i1", kind: int = PURCHASE, minutes: int = 0):
    message = common_pb2.Event(event_id=event_id, user_id=user, item_id=item, type=kind, price=2.5)
    message.timestamp.FromDatetime(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes))
    return message


def record(stub, *batches) -> common_pb2.IngestSummary:
    requests = [profile_pb2.RecordEventsRequest(events=list(batch)) for batch in batches]
    return stub.RecordEvents(iter(requests), timeout=10).summary


def test_a_profiles_lists_order_items_by_their_latest_event_of_the_kinds_each_counts(profile) -> None:
    review = common_pb2.EVENT_TYPE_REVIEW
    record(
        profile,
        [
            event("p1", item="a", minutes=1),
            event("v1", item="a", kind=VIEW, minutes=8),  # a's latest event, but not a purchase
            event("p2", item="b", minutes=3),
            event("r1", item="c", kind=review, minutes=4),  # reviewed: consumed, not purchased
            event("d1", item="d", kind=common_pb2.EVENT_TYPE_DISMISS, minutes=9),  # never recent
            event("v2", item="f", kind=VIEW, minutes=5),
            event("v3", item="e", kind=VIEW, minutes=5),  # the same moment as f: by item id
        ],
    )
    found = profile.GetProfile(profile_pb2.GetProfileRequest(user_id="u1"), timeout=5).profile
    assert list(found.recent_item_ids) == ["a", "e", "f", "c", "b"]
    assert list(found.purchased_item_ids) == ["b", "a"]
    assert list(found.consumed_item_ids) == ["c", "b", "a"]


def test_events_are_stored_once_and_counted(profile) -> None:
    first = record(profile, [event("e1", item="a"), event("e2", item="b", minutes=5)])
    assert (first.accepted, first.duplicates, len(first.rejected)) == (2, 0, 0)
    again = record(
        profile,
        [event("e1", item="a")],
        [event("e2"), event("e2"), event("e3", item="c", kind=VIEW, minutes=9)],
    )
    assert (again.accepted, again.duplicates) == (1, 3)
    found = profile.GetProfile(profile_pb2.GetProfileRequest(user_id="u1"), timeout=5).profile
    assert found.event_count == 3
    assert found.purchase_count == 2
    assert list(found.recent_item_ids) == ["c", "b", "a"]
    assert list(found.purchased_item_ids) == ["b", "a"]
    assert found.first_event_time.ToDatetime(UTC) == datetime(2025, 1, 1, tzinfo=UTC)
    assert found.last_event_time.ToDatetime(UTC) == datetime(2025, 1, 1, 0, 9, tzinfo=UTC)


def test_invalid_events_are_rejected_with_reasons_and_the_rest_kept(profile) -> None:
    bad = [
        common_pb2.Event(event_id="", user_id="u", item_id="i", type=PURCHASE),
        common_pb2.Event(event_id="x1", user_id="", item_id="i", type=PURCHASE),
        common_pb2.Event(event_id="x2", user_id="u", item_id="i"),
        common_pb2.Event(event_id="x3", user_id="u", item_id="i", type=PURCHASE, price=-1),
        common_pb2.Event(event_id="x4", user_id="u", item_id="i", type=PURCHASE, quantity=-2),
        common_pb2.Event(event_id="x5", user_id="u", item_id="i" * 300, type=PURCHASE),
        common_pb2.Event(
            event_id="x6", user_id="u", item_id="i", type=common_pb2.EVENT_TYPE_REVIEW, rating=9
        ),
        common_pb2.Event(event_id="x7", user_id="u", item_id="i", type=PURCHASE, price=float("nan")),
    ]
    future = common_pb2.Event(event_id="x8", user_id="u", item_id="i", type=PURCHASE)
    future.timestamp.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    beyond = common_pb2.Event(event_id="x9", user_id="u", item_id="i", type=PURCHASE)
    beyond.timestamp.seconds = 10**15  # past year 9999: no datetime can hold it
    summary = record(profile, [*bad, future, beyond, event("ok", user="u")])
    assert summary.accepted == 1
    reasons = {r.index: r.reason for r in summary.rejected}
    assert reasons == {
        0: "event_id is empty",
        1: "user_id is empty",
        2: "type must be one of VIEW, CLICK, ADD_TO_CART, PURCHASE, REVIEW, LIKE, SHARE, DISMISS",
        3: "price must be a finite number >= 0",
        4: "quantity must be between 0 and 100000",
        5: "item_id is longer than 128 characters",
        6: "rating must be between 0 and 5",
        7: "price must be a finite number >= 0",
        8: "timestamp is more than a day in the future",
        9: "timestamp is out of range (years 1 to 9999, nanos 0 to 999,999,999)",
    }


def test_oversized_batch_and_bad_requests_get_invalid_argument(profile) -> None:
    huge = [event(f"h{i}") for i in range(10_001)]
    with pytest.raises(grpc.RpcError) as raised:
        record(profile, huge)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for call, request in [
        (profile.GetProfile, profile_pb2.GetProfileRequest(user_id=" ")),
        (profile.GetHistory, profile_pb2.GetHistoryRequest(user_id="u1", limit=5000)),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as raised:
        profile.GetProfile(profile_pb2.GetProfileRequest(user_id="nobody"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_history_is_newest_first_and_export_streams_everything(profile) -> None:
    record(profile, [event(f"e{i}", user=f"u{i % 3}", item=f"i{i}", minutes=i) for i in range(25)])
    history = profile.GetHistory(profile_pb2.GetHistoryRequest(user_id="u0", limit=3), timeout=5).events
    assert [e.item_id for e in history] == ["i24", "i21", "i18"]
    batches = list(profile.ExportEvents(profile_pb2.ExportEventsRequest(batch_size=10), timeout=10))
    assert [len(b.events) for b in batches] == [10, 10, 5]
    exported = [e.event_id for b in batches for e in b.events]
    assert sorted(exported) == sorted(f"e{i}" for i in range(25))
    assert batches[0].events[0].price == 2.5


def test_an_events_segment_is_stored_exported_and_checked(profile) -> None:
    tagged = event("seg1")
    tagged.segment = "United Kingdom"
    summary = record(
        profile,
        [
            tagged,
            common_pb2.Event(event_id="seg2", user_id="u", item_id="i", type=PURCHASE, segment="x" * 65),
        ],
    )
    assert summary.accepted == 1
    assert [r.reason for r in summary.rejected] == ["segment is longer than 64 characters"]
    exported = [
        e for b in profile.ExportEvents(profile_pb2.ExportEventsRequest(), timeout=10) for e in b.events
    ]
    assert [(e.event_id, e.segment) for e in exported] == [("seg1", "United Kingdom")]


def test_a_shoppers_segment_follows_their_latest_event_and_lists_them(profile) -> None:
    def tagged(event_id: str, user: str, segment: str, minutes: int) -> common_pb2.Event:
        found = event(event_id, user=user, minutes=minutes)
        found.segment = segment
        return found

    record(
        profile,
        [tagged("a1", "ann", "France", 0), tagged("a2", "ann", "", 5), tagged("b1", "bob", "Spain", 0)],
    )
    record(
        profile, [tagged("a3", "ann", "Spain", 10), tagged("c1", "cat", "France", 0), event("d1", user="dan")]
    )
    record(profile, [tagged("b0", "bob", "France", -60)])  # older than bob's latest: his segment stays
    segment = {
        u: profile.GetProfile(profile_pb2.GetProfileRequest(user_id=u)).profile.segment
        for u in ["ann", "bob", "cat", "dan"]
    }
    assert segment == {"ann": "Spain", "bob": "Spain", "cat": "France", "dan": ""}
    batches = list(profile.ListUsers(profile_pb2.ListUsersRequest(segment="Spain", batch_size=1)))
    assert [list(b.user_ids) for b in batches] == [["ann"], ["bob"]] and [b.total for b in batches] == [2, 0]
    everyone = list(profile.ListUsers(profile_pb2.ListUsersRequest()))
    assert [u for b in everyone for u in b.user_ids] == ["ann", "bob", "cat", "dan"]
    page = list(profile.ListUsers(profile_pb2.ListUsersRequest(after_user_id="ann", limit=2, batch_size=5)))
    assert [list(b.user_ids) for b in page] == [["bob", "cat"]] and page[0].total == 0
    with pytest.raises(grpc.RpcError) as error:
        list(profile.ListUsers(profile_pb2.ListUsersRequest(batch_size=10_001)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_batches_whose_shoppers_interleave_are_all_stored(profile) -> None:
    """Each batch names the same shoppers in its own order: the writers must not deadlock."""
    batches = []
    for n in range(24):
        users = [f"s{(n * 5 + k * (1 + n % 3)) % 12}" for k in range(12)]
        batches.append(
            [event(f"b{n}-{k}", user=user, item=f"i{k}", minutes=n) for k, user in enumerate(users)]
        )
    with ThreadPoolExecutor(max_workers=8) as pool:
        summaries = list(pool.map(lambda batch: record(profile, batch), batches))
    assert sum(s.accepted for s in summaries) == 24 * 12 and not any(s.rejected for s in summaries)


def test_concurrent_writers_of_the_same_events_store_each_once(profile) -> None:
    batch = [event(f"c{i}", user=f"u{i % 7}", item=f"i{i}") for i in range(200)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        summaries = list(pool.map(lambda _: record(profile, batch), range(6)))
    assert sum(s.accepted for s in summaries) == 200
    assert sum(s.duplicates for s in summaries) == 1000
    total = sum(
        profile.GetProfile(profile_pb2.GetProfileRequest(user_id=f"u{u}"), timeout=5).profile.event_count
        for u in range(7)
    )
    assert total == 200


def test_request_context_and_new_event_types_round_trip(profile) -> None:
    liked = event("ctx1", item="x", kind=common_pb2.EVENT_TYPE_LIKE)
    liked.surface, liked.session_id, liked.request_id = "product", "s-42", "r-7"
    shared = event("ctx2", item="y", kind=common_pb2.EVENT_TYPE_SHARE, minutes=1)
    assert record(profile, [liked, shared]).accepted == 2
    history = profile.GetHistory(profile_pb2.GetHistoryRequest(user_id="u1"), timeout=5).events
    by_id = {e.event_id: e for e in history}
    assert (by_id["ctx1"].surface, by_id["ctx1"].session_id, by_id["ctx1"].request_id) == (
        "product",
        "s-42",
        "r-7",
    )
    assert by_id["ctx2"].type == common_pb2.EVENT_TYPE_SHARE


def test_malformed_stream_messages_get_invalid_argument(server) -> None:
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.stream_unary("/recsys.profile.v1.ProfileService/RecordEvents")
        with pytest.raises(grpc.RpcError) as raised:
            raw(iter([b"\xff\xff\xff garbage"]), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in raised.value.details()


def test_events_answering_a_recommendation_keep_a_pending_reward_until_acknowledged(profile) -> None:
    answering = [event(f"r{n}", item=f"i{n}", minutes=n) for n in range(3)]
    for message in answering:
        message.request_id = "req-1"
    record(profile, [*answering, event("plain", item="x", minutes=9)])
    record(profile, [answering[0]])  # a resent event adds no second pending reward

    def pending(**kwargs) -> profile_pb2.ListPendingRewardsResponse:
        return profile.ListPendingRewards(profile_pb2.ListPendingRewardsRequest(**kwargs), timeout=5)

    listed = pending()
    assert [e.event_id for e in listed.events] == ["r0", "r1", "r2"] and listed.pending == 3
    assert {(e.request_id, e.user_id) for e in listed.events} == {("req-1", "u1")}
    assert [e.event_id for e in pending(limit=1).events] == ["r0"]
    assert pending(min_age_seconds=3600).events == []
    done = profile.AckRewards(profile_pb2.AckRewardsRequest(event_ids=["r0", "r2", "unknown"]), timeout=5)
    assert done.acknowledged == 2
    assert [e.event_id for e in pending().events] == ["r1"]
    too_old = {"min_age_seconds": 1e300}  # no date is that far back (found by `make chaos`)
    for bad in [
        {"limit": -1},
        {"limit": 5001},
        {"min_age_seconds": -1.0},
        {"min_age_seconds": float("nan")},
        too_old,
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            pending(**bad)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_training_reads_a_history_in_the_order_the_service_hands_it_over(profile) -> None:
    """Training's lists are built from the histories serving will send: the latest first, a basket
    bought at one moment by item id whatever order its lines came in."""
    lines = [("m", 0), ("q", 3), ("b", 3), ("k", 3), ("m", 7), ("a", 1)]  # (item, minute), sent in this order
    record(profile, [event(f"e{n}", item=item, minutes=minute) for n, (item, minute) in enumerate(lines)])
    served = profile.GetProfile(
        profile_pb2.GetProfileRequest(user_id="u1"), timeout=5
    ).profile.recent_item_ids
    users = np.array(["u1"] * len(lines))
    items = np.array([item for item, _ in lines])
    minutes = np.array([minute * 60.0 for _, minute in lines])
    assert list(served) == histories(users, items, minutes)["u1"] == ["m", "b", "k", "q", "a"]
