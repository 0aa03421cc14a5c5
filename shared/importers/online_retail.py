"""The bundled UCI Online Retail data set: items.csv and interactions.csv.gz (purchase lines).

Event ids come from the invoice, stock code and line occurrence, so importing
twice stores nothing new.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from recsys.common.v1 import common_pb2

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "online-retail"


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


def read_events(folder: Path, limit: int | None = None) -> Iterator[common_pb2.Event]:
    """Purchase events in file order; `limit` keeps only the first N lines."""
    seen: Counter[tuple[str, str]] = Counter()
    with gzip.open(folder / "interactions.csv.gz", "rt", newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            if limit is not None and number >= limit:
                return
            key = (row["InvoiceNo"], row["StockCode"])
            seen[key] += 1
            event = common_pb2.Event(
                event_id=f"online-retail:{key[0]}:{key[1]}:{seen[key]}",
                user_id=row["CustomerID"],
                item_id=row["StockCode"],
                type=common_pb2.EVENT_TYPE_PURCHASE,
                quantity=int(row["Quantity"]),
                price=float(row["UnitPrice"]),
                segment=row["Country"],
            )
            when = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            event.timestamp.FromDatetime(when)
            yield event


def count_lines(folder: Path) -> int:
    with gzip.open(folder / "interactions.csv.gz", "rt", encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1
