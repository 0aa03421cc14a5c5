"""The items service's catalog table."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    or_,
    select,
    true,
)

from recsys.common.v1 import common_pb2
from shared.bulk import lookup_chunks, not_yet_stored, one_of
from shared.clock import Clock, system_clock
from shared.db import Store, as_utc

CACHE_S = 30.0  # how stale a catalog read may be after another replica's upsert
CACHE_ITEMS = 200_000

metadata = MetaData()
catalog = Table(
    "items_catalog",
    metadata,
    Column("item_id", String(128), primary_key=True),
    Column("title", Text, nullable=False),
    Column("price", Float, nullable=False),
    Column("category_path", Text, nullable=False),
    Column("brand", String(256), nullable=False),
    Column("attributes", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
    Column("description", Text, nullable=False),
    Column("stock_status", SmallInteger, nullable=False),
    Column("domain", SmallInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("hidden", Boolean, nullable=False),
    # when the merchant listed it, and what the catalog saw change: set by the store
    Column("listed_at", DateTime(timezone=True), nullable=False),
    Column("previous_price", Float, nullable=False, default=0.0),
    Column("price_changed_at", DateTime(timezone=True), nullable=True),
    Column("restocked_at", DateTime(timezone=True), nullable=True),
)
# Columns the store keeps itself rather than copying from the upserted item.
HISTORY = ("listed_at", "previous_price", "price_changed_at", "restocked_at")
quarantine = Table(
    "items_quarantine",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("item_id", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)


@dataclass
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _row(item: common_pb2.Item) -> dict[str, object]:
    return {
        "item_id": item.item_id,
        "title": item.title,
        "price": item.price,
        "category_path": json.dumps(list(item.category_path), ensure_ascii=False),
        "brand": item.brand,
        "attributes": json.dumps(dict(sorted(item.attributes.items())), ensure_ascii=False),
        "description": item.description,
        "stock_status": item.stock_status,
        "domain": item.domain,
        "kind": item.kind,
        "hidden": item.hidden,
    }


def _history(stored: dict[str, object], row: dict[str, object], now: datetime) -> dict[str, object]:
    """The history columns of a replaced item: its listing time, and when its price or stock changed."""
    history = {name: stored[name] for name in HISTORY}
    if row["price"] != stored["price"]:
        history["previous_price"], history["price_changed_at"] = stored["price"], now
    if stored["stock_status"] == common_pb2.STOCK_STATUS_OUT_OF_STOCK and row["stock_status"] != (
        common_pb2.STOCK_STATUS_OUT_OF_STOCK
    ):
        history["restocked_at"] = now
    return history


def _item(row: object) -> common_pb2.Item:
    mapping = row._mapping  # type: ignore[attr-defined]
    item = common_pb2.Item(
        item_id=mapping["item_id"],
        title=mapping["title"],
        price=mapping["price"],
        category_path=json.loads(mapping["category_path"]),
        brand=mapping["brand"],
        attributes=json.loads(mapping["attributes"]),
        description=mapping["description"],
        stock_status=mapping["stock_status"],
        domain=mapping["domain"],
        kind=mapping["kind"],
        hidden=mapping["hidden"],
        previous_price=mapping["previous_price"],
    )
    item.listed_time.FromDatetime(as_utc(mapping["listed_at"]))
    if mapping["price_changed_at"] is not None:
        item.price_changed_time.FromDatetime(as_utc(mapping["price_changed_at"]))
    if mapping["restocked_at"] is not None:
        item.restocked_time.FromDatetime(as_utc(mapping["restocked_at"]))
    return item


class ItemsStore(Store):
    """The catalog. Reads go through a small in-memory cache: an upsert on this process clears its
    items at once, and any entry (another replica may have changed it) lives CACHE_S seconds."""

    service = "items"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, url: str, clock: Clock = system_clock) -> None:
        super().__init__(url, clock)
        self._cache: OrderedDict[str, tuple[float, common_pb2.Item | None]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _forget(self, item_ids: Iterable[str]) -> None:
        with self._cache_lock:
            for item_id in item_ids:
                self._cache.pop(item_id, None)

    def _cached(self, item_ids: Sequence[str], now: float) -> tuple[dict[str, common_pb2.Item], list[str]]:
        """The cached items among `item_ids`, and the ids to read from the database."""
        found: dict[str, common_pb2.Item] = {}
        missing: list[str] = []
        with self._cache_lock:
            for item_id in item_ids:
                entry = self._cache.get(item_id)
                if entry is None or now - entry[0] > CACHE_S:
                    missing.append(item_id)
                    continue
                self._cache.move_to_end(item_id)
                if entry[1] is not None:
                    found[item_id] = entry[1]
        return found, missing

    def _remember(self, read: dict[str, common_pb2.Item], asked: Sequence[str], now: float) -> None:
        with self._cache_lock:
            for item_id in asked:
                self._cache[item_id] = (now, read.get(item_id))
                self._cache.move_to_end(item_id)
            while len(self._cache) > CACHE_ITEMS:
                self._cache.popitem(last=False)

    def upsert(
        self, items: Sequence[common_pb2.Item], dropped: Sequence[tuple[str, str, str]] = ()
    ) -> UpsertResult:
        """Inserts new items and replaces changed ones (identical items are left alone), and
        quarantines the dropped ones, given as (item_id, reason, payload)."""
        result = UpsertResult()
        latest = {item.item_id: _row(item) for item in items}
        listed = {
            item.item_id: as_utc(item.listed_time.ToDatetime())
            for item in items
            if item.HasField("listed_time")
        }
        now = self.clock()
        with self.engine.begin() as connection:
            rows = [
                {"item_id": i[:128], "reason": r, "payload": p, "received_at": now} for i, r, p in dropped
            ]
            fresh = not_yet_stored(connection, quarantine, rows, ("item_id", "reason", "payload"))
            if fresh:
                connection.execute(quarantine.insert(), fresh)
            ids = list(latest)
            stored: dict[str, dict[str, object]] = {}
            for chunk in lookup_chunks(connection, ids):
                query = select(catalog).where(one_of(connection, catalog.c.item_id, chunk))
                for row in connection.execute(query):
                    mapping = dict(row._mapping)
                    mapping.pop("updated_at")
                    mapping["listed_at"] = as_utc(mapping["listed_at"])
                    stored[mapping["item_id"]] = mapping
            new_rows = [
                {**row, "updated_at": now, "listed_at": listed.get(key, now), "previous_price": 0.0}
                for key, row in latest.items()
                if key not in stored
            ]
            changed = []
            for key, row in latest.items():
                if key not in stored:
                    continue
                before = stored[key]
                fields = {name: before[name] for name in row}
                if fields == row and listed.get(key, before["listed_at"]) == before["listed_at"]:
                    continue
                history = _history(before, row, now)
                history["listed_at"] = listed.get(key, before["listed_at"])
                changed.append({**row, **history, "updated_at": now})
            if new_rows:
                connection.execute(catalog.insert(), new_rows)
            for row in changed:
                connection.execute(catalog.update().where(catalog.c.item_id == row["item_id"]).values(**row))
            result.inserted = len(new_rows)
            result.updated = len(changed)
            result.unchanged = len(latest) - len(new_rows) - len(changed)
        self._forget(latest)
        return result

    def get(self, item_ids: Sequence[str]) -> dict[str, common_pb2.Item]:
        """The stored items among `item_ids` (unknown ids are left out). Callers must not change them."""
        now = time.monotonic()
        found, missing = self._cached(item_ids, now)
        read: dict[str, common_pb2.Item] = {}
        if missing:
            with self.engine.connect() as connection:
                for chunk in lookup_chunks(connection, missing):
                    for row in connection.execute(
                        select(catalog).where(one_of(connection, catalog.c.item_id, chunk))
                    ):
                        read[row.item_id] = _item(row)
            self._remember(read, missing, now)
        return {**found, **read}

    def unavailable(self, batch_size: int) -> Iterator[list[str]]:
        """The ids of hidden and out-of-stock items in id order, in batches (keyset pagination); read
        from the database, never from this replica's cache."""
        withheld = or_(catalog.c.hidden, catalog.c.stock_status == common_pb2.STOCK_STATUS_OUT_OF_STOCK)
        last = ""
        while True:
            query = (
                select(catalog.c.item_id)
                .where(withheld, catalog.c.item_id > last)
                .order_by(catalog.c.item_id)
                .limit(batch_size)
            )
            with self.engine.connect() as connection:
                ids = list(connection.execute(query).scalars())
            if not ids:
                return
            last = ids[-1]
            yield ids

    def export(
        self, batch_size: int, updated_since: datetime | None = None
    ) -> Iterator[list[common_pb2.Item]]:
        """The whole catalog, or the items stored or changed at or after `updated_since`, in id order,
        in batches (keyset pagination); read from the database, never from this replica's cache."""
        changed = catalog.c.updated_at >= updated_since if updated_since is not None else true()
        last = ""
        while True:
            query = (
                select(catalog)
                .where(changed, catalog.c.item_id > last)
                .order_by(catalog.c.item_id)
                .limit(batch_size)
            )
            with self.engine.connect() as connection:
                rows = list(connection.execute(query))
            if not rows:
                return
            last = rows[-1].item_id
            yield [_item(row) for row in rows]
