"""Items service over real gRPC, on SQLite and on PostgreSQL."""

import time

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from ml.artifacts import POPULARITY, PopularityModel
from ml.popularity import fit_popularity
from ml.snapshot import Snapshot
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from services.items.store import ItemsStore, quarantine
from shared.models import publish


def upsert(stub, *batches):
    return stub.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=b) for b in batches]), timeout=10)


def mug(item_id: str, title: str = "Mug", price: float = 3.0) -> common_pb2.Item:
    return common_pb2.Item(
        item_id=item_id,
        title=title,
        price=price,
        category_path=["Home", "Kitchen"],
        brand="Acme",
        attributes={"color": "red"},
    )


def test_upsert_counts_new_changed_and_unchanged_items(items) -> None:
    stub, _ = items
    first = upsert(stub, [mug("a"), mug("b")], [mug("c")])
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    second = upsert(stub, [mug("a"), mug("b", price=4.0), mug("d"), common_pb2.Item(item_id="")])
    assert (second.inserted, second.updated, second.unchanged) == (1, 1, 1)
    assert [(r.index, r.reason) for r in second.rejected] == [(3, "item_id is empty")]
    found = stub.GetItems(items_pb2.GetItemsRequest(item_ids=["b", "zz", "a"]), timeout=5)
    assert [i.item_id for i in found.items] == ["b", "a"]
    assert found.items[0].price == 4.0
    assert list(found.items[0].category_path) == ["Home", "Kitchen"]
    assert dict(found.items[0].attributes) == {"color": "red"}
    assert list(found.missing_item_ids) == ["zz"]


def test_a_read_mask_returns_only_the_fields_it_names(items) -> None:
    stub, _ = items
    gone = mug("gone")
    gone.stock_status = common_pb2.STOCK_STATUS_OUT_OF_STOCK
    upsert(stub, [mug("a"), gone])
    mask = field_mask_pb2.FieldMask(paths=["hidden", "stock_status"])
    found = stub.GetItems(items_pb2.GetItemsRequest(item_ids=["gone", "a", "zz"], read_mask=mask), timeout=5)
    assert list(found.items) == [
        common_pb2.Item(item_id="gone", stock_status=common_pb2.STOCK_STATUS_OUT_OF_STOCK),
        common_pb2.Item(item_id="a"),  # upserted with no stock status: nothing else to copy
    ]
    assert list(found.missing_item_ids) == ["zz"]
    whole = stub.GetItems(items_pb2.GetItemsRequest(item_ids=["a"]), timeout=5).items[0]
    assert (whole.title, whole.brand) == ("Mug", "Acme")  # without a mask, every field
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetItems(
            items_pb2.GetItemsRequest(item_ids=["a"], read_mask=field_mask_pb2.FieldMask(paths=["colour"])),
            timeout=5,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "colour" in refused.value.details()


def test_the_catalog_remembers_listing_price_drops_and_restocks(items) -> None:
    stub, _ = items
    old = mug("old")
    old.listed_time.FromSeconds(1_600_000_000)
    out = mug("out")
    out.stock_status = common_pb2.STOCK_STATUS_OUT_OF_STOCK
    upsert(stub, [old, mug("new"), out])
    before = {i.item_id: i for i in stub.GetItems(items_pb2.GetItemsRequest(item_ids=["old", "new"])).items}
    assert before["old"].listed_time.seconds == 1_600_000_000
    assert before["new"].listed_time.seconds > 1_600_000_000
    assert before["new"].previous_price == 0 and not before["new"].HasField("price_changed_time")
    cheaper = mug("new", price=2.0)
    cheaper.previous_price = 99.0  # set by the catalog, ignored on upsert
    back = mug("out")
    back.stock_status = common_pb2.STOCK_STATUS_IN_STOCK
    second = upsert(stub, [mug("old"), cheaper, back])
    assert (second.updated, second.unchanged) == (2, 1)  # an unset listed_time keeps the stored one
    after = {
        i.item_id: i for i in stub.GetItems(items_pb2.GetItemsRequest(item_ids=["old", "new", "out"])).items
    }
    assert after["old"].listed_time.seconds == 1_600_000_000
    assert after["new"].listed_time == before["new"].listed_time
    assert (after["new"].price, after["new"].previous_price) == (2.0, 3.0)
    assert after["new"].HasField("price_changed_time") and not after["new"].HasField("restocked_time")
    assert after["out"].HasField("restocked_time") and after["out"].previous_price == 0


def test_export_streams_the_catalog_in_batches(items) -> None:
    stub, _ = items
    upsert(stub, [mug(f"i{n:03d}") for n in range(12)])
    batches = list(stub.ExportItems(items_pb2.ExportItemsRequest(batch_size=5), timeout=10))
    assert [len(b.items) for b in batches] == [5, 5, 2]
    assert [i.item_id for b in batches for i in b.items] == [f"i{n:03d}" for n in range(12)]


def test_an_export_with_updated_since_streams_only_the_items_changed_since(items) -> None:
    stub, _ = items
    upsert(stub, [mug("a"), mug("b"), mug("c")])
    time.sleep(0.05)
    since = Timestamp()
    since.GetCurrentTime()
    time.sleep(0.05)
    upsert(stub, [mug("a"), mug("b", price=9.0), mug("d")])  # a unchanged, b changed, d new

    def exported(request: items_pb2.ExportItemsRequest) -> list[tuple[str, float]]:
        return [(i.item_id, i.price) for page in stub.ExportItems(request, timeout=10) for i in page.items]

    assert exported(items_pb2.ExportItemsRequest(updated_since=since)) == [("b", 9.0), ("d", 3.0)]
    assert exported(items_pb2.ExportItemsRequest(updated_since=since, batch_size=1)) == [
        ("b", 9.0),
        ("d", 3.0),
    ]
    assert len(exported(items_pb2.ExportItemsRequest())) == 4  # unset: every item
    with pytest.raises(grpc.RpcError) as refused:
        exported(items_pb2.ExportItemsRequest(updated_since=Timestamp(seconds=-(10**12))))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "updated_since" in refused.value.details()


def test_the_unavailable_items_are_listed_in_batches_in_id_order(items) -> None:
    stub, _ = items
    hidden = [mug(f"h{n:02d}") for n in range(4)]
    for item in hidden:
        item.hidden = True
    sold_out = mug("s00")
    sold_out.stock_status = common_pb2.STOCK_STATUS_OUT_OF_STOCK
    upsert(stub, [*hidden, sold_out, mug("a00"), mug("z00")])
    pages = [
        list(page.item_ids)
        for page in stub.ListUnavailable(items_pb2.ListUnavailableRequest(batch_size=2), timeout=10)
    ]
    assert pages == [["h00", "h01"], ["h02", "h03"], ["s00"]]
    back = mug("h01")  # shown again, then read from the database at once (no cache in between)
    upsert(stub, [back])
    listed = [
        i
        for page in stub.ListUnavailable(items_pb2.ListUnavailableRequest(), timeout=10)
        for i in page.item_ids
    ]
    assert listed == ["h00", "h02", "h03", "s00"]
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.ListUnavailable(items_pb2.ListUnavailableRequest(batch_size=-1), timeout=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_popular_is_empty_until_trained_then_follows_the_newest_model(items) -> None:
    stub, settings = items
    empty = stub.Popular(items_pb2.PopularRequest(count=5), timeout=5)
    assert list(empty.items) == [] and empty.model_version.version == 0
    model = PopularityModel(
        item_ids=np.array(["x", "y", "z"]), scores=np.array([9.0, 5.0, 1.0]), buyers=np.array([12, 7, 1])
    )
    version = publish(settings.model_dir, POPULARITY, model.save)
    for _ in range(100):
        answer = stub.Popular(items_pb2.PopularRequest(count=2, exclude_item_ids=["x"]), timeout=5)
        if answer.model_version.version == version:
            break
        time.sleep(0.05)
    assert answer.model_version.version == version
    assert [(i.item_id, i.score, i.buyers) for i in answer.items] == [("y", 5.0, 7), ("z", 1.0, 1)]


def test_popular_in_a_known_segment_ranks_by_that_segments_buyers(items, tmp_path) -> None:
    # six shoppers in the north buy "n", twelve in the south buy "s", two "x" everywhere
    rows = [(f"north{u}", "n", "North") for u in range(6)] + [(f"south{u}", "s", "South") for u in range(12)]
    rows += [(f"north{u}", "x", "North") for u in range(2)] + [(f"south{u}", "x", "South") for u in range(2)]
    snapshot = Snapshot(
        folder=tmp_path,
        user_ids=np.array([r[0] for r in rows]),
        item_ids=np.array([r[1] for r in rows]),
        types=np.full(len(rows), common_pb2.EVENT_TYPE_PURCHASE, dtype=np.int8),
        timestamps=np.arange(len(rows), dtype=float),
        quantities=np.ones(len(rows), dtype=np.int32),
        catalog_item_ids=np.array([], dtype=str),
        catalog_titles=np.array([], dtype=str),
        catalog_categories=np.array([], dtype=str),
        catalog_prices=np.array([]),
        catalog_price_scaled=np.array([]),
        segments=np.array([r[2] for r in rows]),
    )
    model = fit_popularity(snapshot)
    assert list(model.item_ids) == ["s", "n", "x"]
    assert set(model.segments) == {"South"}  # the north has fewer than MIN_SEGMENT_BUYERS buyers
    assert list(model.segments["South"].item_ids) == ["s", "x"]
    stub, settings = items
    version = publish(settings.model_dir, POPULARITY, model.save)
    for _ in range(100):
        answer = stub.Popular(items_pb2.PopularRequest(count=5, segment="South"), timeout=5)
        if answer.model_version.version == version:
            break
        time.sleep(0.05)
    assert answer.segment == "South"
    assert [(i.item_id, i.buyers) for i in answer.items] == [("s", 12), ("x", 2)]
    everyone = stub.Popular(items_pb2.PopularRequest(count=5, segment="North"), timeout=5)
    assert everyone.segment == "" and [i.item_id for i in everyone.items] == ["s", "n", "x"]
    with pytest.raises(grpc.RpcError) as raised:
        stub.Popular(items_pb2.PopularRequest(segment="x" * 65), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_requests_get_invalid_argument(items) -> None:
    stub, _ = items
    for call in (
        lambda: stub.Popular(items_pb2.PopularRequest(count=5000), timeout=5),
        lambda: stub.GetItems(items_pb2.GetItemsRequest(item_ids=[str(i) for i in range(1001)]), timeout=5),
        lambda: upsert(stub, [mug(str(i)) for i in range(10_001)]),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cleaning_normalizes_titles_keeps_every_field_and_quarantines_bad_items(items) -> None:
    stub, settings = items
    video = common_pb2.Item(
        item_id="v1",
        title="  Tea \t time\x07 video ",
        description="How to brew.",
        kind="video",
        domain=common_pb2.DOMAIN_CONTENT,
        stock_status=common_pb2.STOCK_STATUS_OUT_OF_STOCK,
    )
    timeless = common_pb2.Item(item_id="timeless")
    timeless.listed_time.seconds = -(10**15)
    answer = upsert(stub, [video, mug("m1"), common_pb2.Item(item_id="bad", price=-1), timeless])
    assert answer.inserted == 2
    # The defaulted domain of the mugs is not a repair; the video's title is.
    assert {(f.reason, f.count) for f in answer.fixed} == {
        ("title whitespace or control characters normalized", 1),
    }
    assert [(r.event_id, r.reason) for r in answer.rejected] == [
        ("bad", "price must be a finite number >= 0"),
        ("timeless", "listed_time: timestamp is out of range (years 1 to 9999, nanos 0 to 999,999,999)"),
    ]
    stored = stub.GetItems(items_pb2.GetItemsRequest(item_ids=["v1", "m1"]), timeout=5).items
    assert stored[0].title == "Tea time video"
    assert (stored[0].description, stored[0].kind, stored[0].domain, stored[0].stock_status) == (
        "How to brew.",
        "video",
        common_pb2.DOMAIN_CONTENT,
        common_pb2.STOCK_STATUS_OUT_OF_STOCK,
    )
    assert stored[1].domain == common_pb2.DOMAIN_PRODUCT
    store = ItemsStore(settings.database_url("items"))
    try:
        with store.engine.connect() as connection:
            rows = list(connection.execute(select(quarantine.c.item_id, quarantine.c.reason)))
    finally:
        store.close()
    assert rows == [
        ("bad", "price must be a finite number >= 0"),
        ("timeless", "listed_time: timestamp is out of range (years 1 to 9999, nanos 0 to 999,999,999)"),
    ]


def test_an_item_too_big_for_the_graph_is_refused_alone(items) -> None:
    """A category path's every prefix is a fact of the knowledge graph: 600 levels of 5,000
    characters grew the items service by half a gigabyte under fuzzing (`make chaos`)."""
    stub, _ = items
    oversized = {
        "deep": common_pb2.Item(item_id="deep", category_path=["Home"] * 13),
        "wide": common_pb2.Item(item_id="wide", attributes={f"k{n}": "v" for n in range(65)}),
        "long-value": common_pb2.Item(item_id="long-value", attributes={"colour": "x" * 1001}),
        "long-level": common_pb2.Item(item_id="long-level", category_path=["x" * 201]),
        "long-brand": common_pb2.Item(item_id="long-brand", brand="x" * 201),
        "long-text": common_pb2.Item(item_id="long-text", description="x" * 20_001),
    }
    answer = upsert(stub, [mug("fits"), *oversized.values()])
    assert answer.inserted == 1
    assert [r.event_id for r in answer.rejected] == list(oversized)
    assert all(
        "more than" in r.reason or "longer than" in r.reason or "at most" in r.reason for r in answer.rejected
    )
