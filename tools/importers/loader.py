"""Loads catalogs and events into a running suite through the gRPC APIs, for every importer.

Items go through ItemsService.UpsertItems, events through ProfileService.RecordEvents
(where the clean-events stage runs). Each importer derives stable event ids from
its source, so importing twice stores nothing new; a checkpoint of acknowledged
events lets an interrupted import resume where it stopped.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.progress import progress_bar
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from shared.clients import SuiteClients

ITEM_BATCH = 1000
EVENT_BATCH = 5000
DEADLINE_S = 120.0


@dataclass
class ImportSummary:
    items_inserted: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    events_accepted: int = 0
    events_duplicate: int = 0
    events_skipped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    fixed: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    events_seconds: float = 0.0


class Checkpoint:
    """How many events of a source were acknowledged, kept in a small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done = 0
        if path is not None and path.exists():
            self.done = int(json.loads(path.read_text()).get("events_done", 0))

    def save(self, done: int) -> None:
        self.done = done
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"events_done": done}))


def batches(records: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(
    clients: SuiteClients,
    items: Sequence[common_pb2.Item],
    events: Iterable[common_pb2.Event],
    total_events: int | None,
    checkpoint: Checkpoint | None = None,
) -> ImportSummary:
    """Upserts the catalog, then streams the events in batches with a progress bar."""
    summary = ImportSummary()
    checkpoint = checkpoint or Checkpoint(None)
    with progress_bar() as progress:
        task = progress.add_task("items", total=len(items))
        for batch in batches(items, ITEM_BATCH):
            response = await clients.items.UpsertItems(
                iter([items_pb2.UpsertItemsRequest(items=batch)]), timeout=DEADLINE_S
            )
            summary.items_inserted += response.inserted
            summary.items_updated += response.updated
            summary.items_unchanged += response.unchanged
            summary.rejected.update(f"item: {r.reason}" for r in response.rejected)
            summary.fixed.update({f"item: {f.reason}": f.count for f in response.fixed})
            progress.advance(task, len(batch))
        task = progress.add_task("events", total=total_events)
        started = time.perf_counter()
        position = 0
        for batch in batches(events, EVENT_BATCH):
            position += len(batch)
            if position <= checkpoint.done:
                summary.events_skipped += len(batch)
                progress.advance(task, len(batch))
                continue
            result = await clients.profile.RecordEvents(
                iter([profile_pb2.RecordEventsRequest(events=batch)]), timeout=DEADLINE_S
            )
            summary.events_accepted += result.summary.accepted
            summary.events_duplicate += result.summary.duplicates
            summary.rejected.update(f"event: {r.reason}" for r in result.summary.rejected)
            summary.fixed.update({f"event: {f.reason}": f.count for f in result.summary.fixed})
            summary.events_sent += len(batch)
            checkpoint.save(position)
            progress.advance(task, len(batch))
        summary.events_seconds = time.perf_counter() - started
    return summary
