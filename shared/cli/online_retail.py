"""Imports the bundled UCI Online Retail data set through the gRPC APIs.

Items go through ItemsService.UpsertItems, purchases through
ProfileService.RecordEvents. Event ids are derived from the invoice, stock
code and line occurrence, so importing twice stores nothing new.
"""

from __future__ import annotations

import csv
import gzip
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from shared.cli.progress import progress_bar
from shared.clients import SuiteClients

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "online-retail"
ITEM_BATCH = 1000
EVENT_BATCH = 5000
IMPORT_DEADLINE_S = 120.0


@dataclass
class ImportSummary:
    items_inserted: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    events_accepted: int = 0
    events_duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    fixed: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    events_seconds: float = 0.0


def read_items(folder: Path) -> list[common_pb2.Item]:
    with (folder / "items.csv").open(newline="", encoding="utf-8") as handle:
        return [
            common_pb2.Item(
                item_id=row["StockCode"],
                title=row["Description"].strip(),
                price=float(row["median_price"] or 0),
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
            )
            when = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            event.timestamp.FromDatetime(when)
            yield event


def count_lines(folder: Path) -> int:
    with gzip.open(folder / "interactions.csv.gz", "rt", encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1


def _batches(events: Iterator[common_pb2.Event], size: int) -> Iterator[list[common_pb2.Event]]:
    batch: list[common_pb2.Event] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def import_online_retail(
    clients: SuiteClients, folder: Path = DEFAULT_PATH, limit: int | None = None
) -> ImportSummary:
    summary = ImportSummary()
    items = read_items(folder)
    total_events = min(count_lines(folder), limit) if limit is not None else count_lines(folder)
    with progress_bar() as progress:
        task = progress.add_task("items", total=len(items))
        for start in range(0, len(items), ITEM_BATCH):
            batch = items[start : start + ITEM_BATCH]
            response = await clients.items.UpsertItems(
                iter([items_pb2.UpsertItemsRequest(items=batch)]), timeout=IMPORT_DEADLINE_S
            )
            summary.items_inserted += response.inserted
            summary.items_updated += response.updated
            summary.items_unchanged += response.unchanged
            summary.rejected.update(f"item: {r.reason}" for r in response.rejected)
            progress.advance(task, len(batch))
        task = progress.add_task("purchases", total=total_events)
        started = time.perf_counter()
        for batch in _batches(read_events(folder, limit), EVENT_BATCH):
            result = await clients.profile.RecordEvents(
                iter([profile_pb2.RecordEventsRequest(events=batch)]), timeout=IMPORT_DEADLINE_S
            )
            summary.events_accepted += result.summary.accepted
            summary.events_duplicate += result.summary.duplicates
            summary.rejected.update(f"event: {r.reason}" for r in result.summary.rejected)
            summary.fixed.update({f"event: {f.reason}": f.count for f in result.summary.fixed})
            progress.advance(task, len(batch))
            summary.events_sent += len(batch)
        summary.events_seconds = time.perf_counter() - started
    return summary
