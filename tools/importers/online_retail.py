"""The bundled UCI Online Retail data set: items.csv and interactions.csv.gz (purchase lines).

Event ids come from the invoice, stock code and line occurrence, so importing
twice stores nothing new.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recsys.common.v1 import common_pb2

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "online-retail"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def read_items(folder: Path) -> list[common_pb2.Item]:
    with (folder / "items.csv").open(newline="", encoding="utf-8") as handle:
        return [
            common_pb2.Item(
                item_id=row["StockCode"],
                title=row["Description"].strip(),
                price=float(row["median_price"] or 0),
                domain=common_pb2.DOMAIN_PRODUCT,
            )
            for row in csv.DictReader(handle)
        ]


@dataclass(frozen=True)
class Line:
    """One purchase line of interactions.csv.gz, as the file has it."""

    invoice: str
    user_id: str
    item_id: str
    quantity: int
    price: float
    country: str
    time: str  # 'YYYY-MM-DD HH:MM:SS', UTC


def read_lines(folder: Path, limit: int | None = None) -> Iterator[Line]:
    """Purchase lines in file order; `limit` keeps only the first N. The one reader of the file."""
    with gzip.open(folder / "interactions.csv.gz", "rt", newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            if limit is not None and number >= limit:
                return
            yield Line(
                invoice=row["InvoiceNo"],
                user_id=row["CustomerID"],
                item_id=row["StockCode"],
                quantity=int(row["Quantity"]),
                price=float(row["UnitPrice"]),
                country=row["Country"],
                time=row["InvoiceDate"],
            )


def purchase_event(
    event_id: str, user_id: str, item_id: str, time: str, quantity: int, price: float, segment: str
) -> common_pb2.Event:
    """A purchase line as the event the importers and the served evaluation send."""
    event = common_pb2.Event(
        event_id=event_id,
        user_id=user_id,
        item_id=item_id,
        type=common_pb2.EVENT_TYPE_PURCHASE,
        quantity=quantity,
        price=price,
        segment=segment,
    )
    event.timestamp.FromDatetime(datetime.strptime(time, TIME_FORMAT).replace(tzinfo=UTC))
    return event


def read_events(folder: Path, limit: int | None = None) -> Iterator[common_pb2.Event]:
    """Purchase events in file order; `limit` keeps only the first N lines."""
    seen: Counter[tuple[str, str]] = Counter()
    for line in read_lines(folder, limit):
        key = (line.invoice, line.item_id)
        seen[key] += 1
        yield purchase_event(
            f"online-retail:{key[0]}:{key[1]}:{seen[key]}",
            line.user_id,
            line.item_id,
            line.time,
            line.quantity,
            line.price,
            line.country,
        )


def count_lines(folder: Path) -> int:
    with gzip.open(folder / "interactions.csv.gz", "rt", encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1
