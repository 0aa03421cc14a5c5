"""The stores stamp times from their clock, so a test can pin "now" and move it."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recsys.common.v1 import common_pb2
from services.items.store import ItemsStore
from shared.clock import ManualClock


def test_a_price_drop_is_stamped_with_the_stores_clock(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2020, 1, 1, tzinfo=UTC))
    store = ItemsStore(f"sqlite:///{tmp_path / 'items.sqlite'}", clock)
    store.migrate()
    try:
        item = common_pb2.Item(item_id="mug", title="Red mug", price=5.0)
        item.listed_time.FromDatetime(datetime(2019, 6, 1, tzinfo=UTC))
        store.upsert([item])
        clock.advance(timedelta(days=3))
        item.price = 4.0
        store.upsert([item])
        stored = store.get(["mug"])["mug"]
        assert stored.previous_price == 5.0
        assert stored.price_changed_time.ToDatetime(tzinfo=UTC) == datetime(2020, 1, 4, tzinfo=UTC)
    finally:
        store.close()


def test_a_manual_clock_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2020, 1, 1))
