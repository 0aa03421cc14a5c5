"""RetailRocket: events.csv (view, addtocart, transaction), item_properties*.csv (the latest
categoryid and availability of each item) and category_tree.csv (category parents)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from recsys.common.v1 import common_pb2

EVENT_TYPES = {
    "view": common_pb2.EVENT_TYPE_VIEW,
    "addtocart": common_pb2.EVENT_TYPE_ADD_TO_CART,
    "transaction": common_pb2.EVENT_TYPE_PURCHASE,
}


def _category_path(category: str, parents: dict[str, str]) -> list[str]:
    path = []
    while category and category not in path and len(path) < 20:
        path.append(category)
        category = parents.get(category, "")
    return [f"category {c}" for c in reversed(path)]


def read_items(folder: Path) -> list[common_pb2.Item]:
    """Items named by id (the data set hashes titles), with category path and stock status."""
    parents: dict[str, str] = {}
    tree = folder / "category_tree.csv"
    if tree.exists():
        with tree.open(newline="", encoding="utf-8") as handle:
            parents = {row["categoryid"]: row["parentid"] for row in csv.DictReader(handle)}
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    for path in sorted(folder.glob("item_properties*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["property"] not in ("categoryid", "available"):
                    continue
                key = (row["itemid"], row["property"])
                stamp = int(row["timestamp"])
                if key not in latest or stamp >= latest[key][0]:
                    latest[key] = (stamp, row["value"])
    item_ids = sorted({item for item, _ in latest}, key=lambda i: (len(i), i))
    items = []
    for item in item_ids:
        category = latest.get((item, "categoryid"), (0, ""))[1]
        available = latest.get((item, "available"), (0, ""))[1]
        items.append(
            common_pb2.Item(
                item_id=f"rr:{item}",
                title=f"item {item}",
                category_path=_category_path(category, parents),
                stock_status=(
                    common_pb2.STOCK_STATUS_IN_STOCK
                    if available == "1"
                    else common_pb2.STOCK_STATUS_OUT_OF_STOCK
                    if available == "0"
                    else common_pb2.STOCK_STATUS_UNSPECIFIED
                ),
                domain=common_pb2.DOMAIN_PRODUCT,
            )
        )
    return items


def read_events(folder: Path) -> Iterator[common_pb2.Event]:
    with (folder / "events.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            kind = EVENT_TYPES.get(row["event"])
            event = common_pb2.Event(
                event_id=f"retailrocket:{row['visitorid']}:{row['itemid']}:{row['event']}:{row['timestamp']}",
                user_id=f"rr:{row['visitorid']}",
                item_id=f"rr:{row['itemid']}",
                type=kind or common_pb2.EVENT_TYPE_UNSPECIFIED,
                session_id=row.get("transactionid", "") or "",
            )
            event.timestamp.FromDatetime(datetime.fromtimestamp(int(row["timestamp"]) / 1000, UTC))
            yield event
