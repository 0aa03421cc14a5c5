"""Any CSV of events (and optionally of items) with a column mapping.

The mapping names, for each field of the contract, the column that holds it;
unmapped fields take their defaults. Event types may be names (view, click,
add_to_cart, purchase, review, like, share and common synonyms) or numbers;
timestamps ISO 8601 or Unix seconds or milliseconds. Rows without an event id
get one derived from their content, so importing twice stores nothing new.
Rows whose values cannot be read are counted with the reason and skipped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from recsys.common.v1 import common_pb2

EVENT_FIELDS = (
    "event_id",
    "user_id",
    "item_id",
    "type",
    "timestamp",
    "quantity",
    "price",
    "rating",
    "text",
    "surface",
    "session_id",
    "request_id",
)
ITEM_FIELDS = ("item_id", "title", "price", "category", "brand", "domain", "kind", "description", "stock")
TYPE_NAMES = {
    "view": common_pb2.EVENT_TYPE_VIEW,
    "pageview": common_pb2.EVENT_TYPE_VIEW,
    "click": common_pb2.EVENT_TYPE_CLICK,
    "add_to_cart": common_pb2.EVENT_TYPE_ADD_TO_CART,
    "addtocart": common_pb2.EVENT_TYPE_ADD_TO_CART,
    "cart": common_pb2.EVENT_TYPE_ADD_TO_CART,
    "purchase": common_pb2.EVENT_TYPE_PURCHASE,
    "transaction": common_pb2.EVENT_TYPE_PURCHASE,
    "buy": common_pb2.EVENT_TYPE_PURCHASE,
    "order": common_pb2.EVENT_TYPE_PURCHASE,
    "review": common_pb2.EVENT_TYPE_REVIEW,
    "rating": common_pb2.EVENT_TYPE_REVIEW,
    "like": common_pb2.EVENT_TYPE_LIKE,
    "share": common_pb2.EVENT_TYPE_SHARE,
}
DOMAINS = {
    "product": common_pb2.DOMAIN_PRODUCT,
    "content": common_pb2.DOMAIN_CONTENT,
    "promotion": common_pb2.DOMAIN_PROMOTION,
}
STOCK = {
    "in_stock": common_pb2.STOCK_STATUS_IN_STOCK,
    "out_of_stock": common_pb2.STOCK_STATUS_OUT_OF_STOCK,
    "preorder": common_pb2.STOCK_STATUS_PREORDER,
}


class MappingError(ValueError):
    """The mapping names an unknown field, or a column the file does not have."""


def open_csv(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def check_mapping(mapping: Mapping[str, str], header: list[str], fields: tuple[str, ...]) -> None:
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise MappingError(f"unknown field(s) {', '.join(unknown)}; fields are {', '.join(fields)}")
    absent = sorted(column for column in mapping.values() if column not in header)
    if absent:
        raise MappingError(f"column(s) {', '.join(absent)} not in the file (it has {', '.join(header)})")


def parse_type(value: str) -> int:
    text = value.strip().lower()
    if text.isdigit() and int(text) in common_pb2.EventType.values():
        return int(text)
    return TYPE_NAMES.get(text, common_pb2.EVENT_TYPE_UNSPECIFIED)


def parse_time(value: str) -> datetime:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)


def _event(row: Mapping[str, str], default_type: str) -> common_pb2.Event:
    event = common_pb2.Event(
        user_id=row.get("user_id", "").strip(),
        item_id=row.get("item_id", "").strip(),
        type=parse_type(row.get("type", default_type) or default_type),  # type: ignore[arg-type]
        text=row.get("text", ""),
        surface=row.get("surface", ""),
        session_id=row.get("session_id", ""),
        request_id=row.get("request_id", ""),
    )
    if row.get("quantity", "").strip():
        event.quantity = int(float(row["quantity"]))
    if row.get("price", "").strip():
        event.price = float(row["price"])
    if row.get("rating", "").strip():
        event.rating = round(float(row["rating"]))
    if row.get("timestamp", "").strip():
        event.timestamp.FromDatetime(parse_time(row["timestamp"]))
    identity = row.get("event_id", "").strip()
    if not identity:
        digest = hashlib.sha1("\x1f".join(f"{k}={row[k]}" for k in sorted(row)).encode()).hexdigest()
        identity = f"csv:{digest[:24]}"
    event.event_id = identity
    return event


def read_events(
    path: Path, mapping: Mapping[str, str], default_type: str = "", problems: Counter[str] | None = None
) -> Iterator[common_pb2.Event]:
    """Events of the file; rows that cannot be read are counted in `problems` and skipped."""
    problems = problems if problems is not None else Counter()
    with open_csv(path) as handle:
        reader = csv.DictReader(handle)
        check_mapping(mapping, reader.fieldnames or [], EVENT_FIELDS)
        for row in reader:
            fields = {name: row.get(column, "") or "" for name, column in mapping.items()}
            try:
                yield _event(fields, default_type)
            except ValueError as error:
                problems[f"row: unreadable value ({type(error).__name__}: {str(error)[:60]})"] += 1


def count_rows(path: Path) -> int:
    with open_csv(path) as handle:
        return sum(1 for _ in handle) - 1


def header(path: Path) -> list[str]:
    """The file's column names."""
    with open_csv(path) as handle:
        return next(csv.reader(handle), [])


def read_named_items(path: Path) -> list[common_pb2.Item]:
    """The items of a CSV whose columns are named after the item fields (ITEM_FIELDS)."""
    columns = header(path)
    return read_items(path, {field: field for field in ITEM_FIELDS if field in columns})


def read_items(path: Path, mapping: Mapping[str, str]) -> list[common_pb2.Item]:
    with open_csv(path) as handle:
        reader = csv.DictReader(handle)
        check_mapping(mapping, reader.fieldnames or [], ITEM_FIELDS)
        items = []
        for row in reader:
            value = {name: (row.get(column, "") or "").strip() for name, column in mapping.items()}
            category = value.get("category", "")
            separator = ">" if ">" in category else "/"
            items.append(
                common_pb2.Item(
                    item_id=value.get("item_id", ""),
                    title=value.get("title", ""),
                    price=float(value["price"]) if value.get("price") else 0.0,
                    category_path=[part.strip() for part in category.split(separator) if part.strip()],
                    brand=value.get("brand", ""),
                    description=value.get("description", ""),
                    kind=value.get("kind", ""),
                    domain=DOMAINS.get(value.get("domain", "").lower(), common_pb2.DOMAIN_UNSPECIFIED),
                    stock_status=STOCK.get(
                        value.get("stock", "").lower(), common_pb2.STOCK_STATUS_UNSPECIFIED
                    ),
                )
            )
        return items
