"""Each importer on a small fixture in its source's real format, then loaded through the APIs."""

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from ml.snapshot import SnapshotWriter
from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.items.app import build as build_items
from services.profile.app import build as build_profile
from shared.clients import SuiteClients
from tests.support import ServerThread, make_settings, suite_env
from tools.importers import generic_csv, movielens, online_retail, retailrocket
from tools.importers.loader import Checkpoint, load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REVIEW = common_pb2.EVENT_TYPE_REVIEW


def when(event: common_pb2.Event) -> datetime:
    return event.timestamp.ToDatetime(UTC)


@pytest.mark.parametrize(
    ("folder", "first_item", "first_event"),
    [
        (
            "movielens-100k",
            ("movie:242", "Kolya (1996)", ["Movies", "Comedy"]),
            ("ml:196", "movie:242", 3, 881250949),
        ),
        (
            "movielens-1m",
            ("movie:1193", "One Flew Over the Cuckoo's Nest (1975)", ["Movies", "Drama"]),
            ("ml:1", "movie:1193", 5, 978300760),
        ),
        (
            "movielens-latest",
            ("movie:1", "Toy Story (1995)", ["Movies", "Adventure"]),
            ("ml:1", "movie:1", 4, 964982703),
        ),
    ],
)
def test_movielens_layouts(folder, first_item, first_event) -> None:
    items = movielens.read_items(FIXTURES / folder)
    events = list(movielens.read_events(FIXTURES / folder))
    assert (items[0].item_id, items[0].title, list(items[0].category_path)) == first_item
    assert items[0].domain == common_pb2.DOMAIN_CONTENT and items[0].kind == "video"
    first = events[0]
    assert (first.user_id, first.item_id, first.rating, int(when(first).timestamp())) == first_event
    assert {event.type for event in events} == {REVIEW}
    assert len({event.event_id for event in events}) == len(events)


def test_movielens_half_stars_round_up_and_unknown_folders_are_refused(tmp_path) -> None:
    ratings = {
        e.item_id: e.rating
        for e in movielens.read_events(FIXTURES / "movielens-latest")
        if e.user_id == "ml:1"
    }
    assert ratings == {"movie:1": 4, "movie:3": 4}
    assert (
        next(e for e in movielens.read_events(FIXTURES / "movielens-latest") if e.user_id == "ml:2").rating
        == 1
    )
    with pytest.raises(movielens.FormatError):
        movielens.read_items(tmp_path)


def test_retailrocket_items_take_the_latest_category_and_events_keep_unknown_types_for_the_cleaner() -> None:
    items = {item.item_id: item for item in retailrocket.read_items(FIXTURES / "retailrocket")}
    assert list(items["rr:318965"].category_path) == [
        "category 250",
        "category 1338",
    ]  # moved from 1277 later
    assert list(items["rr:248676"].category_path) == ["category 805", "category 1173"]
    assert items["rr:355908"].stock_status == common_pb2.STOCK_STATUS_IN_STOCK
    assert items["rr:248676"].stock_status == common_pb2.STOCK_STATUS_OUT_OF_STOCK
    events = list(retailrocket.read_events(FIXTURES / "retailrocket"))
    assert [e.type for e in events] == [1, 1, 3, 4, 0]  # wishlist is unknown: the cleaner rejects it
    assert events[3].session_id == "5355"
    assert when(events[0]) == datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC)


def test_generic_csv_with_a_mapping_reads_names_numbers_and_times() -> None:
    mapping = {
        "event_id": "order_ref",
        "user_id": "customer",
        "item_id": "sku",
        "type": "action",
        "timestamp": "when",
        "quantity": "qty",
        "price": "unit_price",
    }
    problems: Counter[str] = Counter()
    events = list(generic_csv.read_events(FIXTURES / "csv" / "orders.csv", mapping, problems=problems))
    assert [(e.event_id, e.type, e.quantity) for e in events] == [
        ("A1", common_pb2.EVENT_TYPE_PURCHASE, 2),
        ("A2", common_pb2.EVENT_TYPE_VIEW, 0),
        ("A3", common_pb2.EVENT_TYPE_ADD_TO_CART, 1),
    ]
    assert when(events[0]) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert when(events[1]) == when(events[2]).replace(microsecond=0)  # seconds and milliseconds
    assert sum(problems.values()) == 1 and "unreadable value" in next(iter(problems))
    with pytest.raises(generic_csv.MappingError, match="not in the file"):
        list(generic_csv.read_events(FIXTURES / "csv" / "orders.csv", {"user_id": "nope"}))


def test_generic_csv_derives_stable_ids_when_the_file_has_none(tmp_path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text("u,i\nx,1\ny,2\n")
    first = [e.event_id for e in generic_csv.read_events(path, {"user_id": "u", "item_id": "i"}, "click")]
    again = [e.event_id for e in generic_csv.read_events(path, {"user_id": "u", "item_id": "i"}, "click")]
    assert first == again and len(set(first)) == 2 and first[0].startswith("csv:")


@pytest.fixture
def suite(tmp_path):
    settings = make_settings(str(tmp_path), **suite_env())
    servers = [
        ServerThread(build, settings, settings.ports[name])
        for name, build in (("items", build_items), ("profile", build_profile))
    ]
    yield settings
    for server in servers:
        server.stop()


def _load(settings, items, events, checkpoint=None):
    async def run():
        clients = SuiteClients(settings.addresses, 10)
        try:
            return await load(clients, items, events, None, checkpoint)
        finally:
            await clients.close()

    return asyncio.run(run())


def test_loading_twice_stores_nothing_new_and_unknown_items_are_quarantined(suite) -> None:
    items = retailrocket.read_items(FIXTURES / "retailrocket")
    first = _load(suite, items, retailrocket.read_events(FIXTURES / "retailrocket"))
    assert (first.items_inserted, first.events_accepted) == (3, 4)
    assert first.rejected == Counter(
        {"event: type must be one of VIEW, CLICK, ADD_TO_CART, PURCHASE, REVIEW, LIKE, SHARE, DISMISS": 1}
    )
    again = _load(suite, items, retailrocket.read_events(FIXTURES / "retailrocket"))
    assert (again.items_unchanged, again.events_accepted, again.events_duplicate) == (3, 0, 4)
    ratings = _load(suite, [], movielens.read_events(FIXTURES / "movielens-1m"))
    assert ratings.rejected == Counter({"event: unknown item: not in the catalog": 3})


def test_an_interrupted_import_resumes_from_its_checkpoint(suite, tmp_path) -> None:
    folder = online_retail.DEFAULT_PATH
    checkpoint = Checkpoint(tmp_path / "checkpoint.json")
    first = _load(
        suite, online_retail.read_items(folder), online_retail.read_events(folder, 6000), checkpoint
    )
    assert checkpoint.done == 6000 and first.events_sent == 6000
    resumed = _load(
        suite, [], online_retail.read_events(folder, 12000), Checkpoint(tmp_path / "checkpoint.json")
    )
    assert resumed.events_skipped == 5000  # whole acknowledged batches are skipped
    assert resumed.events_sent == 7000
    # The partly acknowledged batch (events 5,001 to 6,000) is sent again and stores nothing new.
    assert 900 < resumed.events_duplicate <= 1000
    done = _load(
        suite, [], online_retail.read_events(folder, 12000), Checkpoint(tmp_path / "checkpoint.json")
    )
    assert (done.events_skipped, done.events_sent) == (12000, 0)


def test_after_a_movielens_import_every_rated_movie_is_consumed(suite) -> None:
    folder = FIXTURES / "movielens-100k"
    summary = _load(suite, movielens.read_items(folder), movielens.read_events(folder))
    assert summary.events_accepted > 0
    rated: dict[str, set[str]] = {}
    for event in movielens.read_events(folder):
        rated.setdefault(event.user_id, set()).add(event.item_id)
    with grpc.insecure_channel(suite.addresses["profile"]) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        for user, movies in rated.items():
            profile = stub.GetProfile(profile_pb2.GetProfileRequest(user_id=user), timeout=10).profile
            assert set(profile.consumed_item_ids) == movies
            assert not profile.purchased_item_ids  # ratings are reviews, not purchases


def test_a_ratings_snapshot_takes_low_ratings_as_evidence_against(tmp_path) -> None:
    writer = SnapshotWriter(tmp_path / "snapshot")
    events = [
        common_pb2.Event(user_id="u", item_id=item, type=common_pb2.EVENT_TYPE_REVIEW, rating=rating)
        for item, rating in (("loved", 5), ("fine", 3), ("hated", 1), ("poor", 2))
    ]
    events.append(common_pb2.Event(user_id="u", item_id="gone", type=common_pb2.EVENT_TYPE_DISMISS))
    writer.add_events(events)
    _, items = writer.write().interactions()
    assert sorted(items.tolist()) == ["fine", "loved"]
