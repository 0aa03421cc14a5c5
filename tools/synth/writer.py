"""Writes a synthetic shop and its shoppers' events as CSV files that the generic importer reads."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recsys.common.v1 import common_pb2
from tools.importers.generic_csv import EVENT_FIELDS, ITEM_FIELDS
from tools.synth.sessions import DirtInjector, shopper_events
from tools.synth.shop import Shop, make_shop
from tools.synth.shoppers import shopper

START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
# Written as the names the generic importer reads ("view", "add_to_cart"...); 0 stays empty.
EVENT_TYPES = {
    value: name.removeprefix("EVENT_TYPE_").lower() for name, value in common_pb2.EventType.items() if value
}
ITEM_COLUMNS = list(ITEM_FIELDS)
EVENT_COLUMNS = [name for name in EVENT_FIELDS if name != "request_id"]
# The column mapping for `recsys data import csv` that reads these files.
MAPPING = {name: name for name in EVENT_COLUMNS}


@dataclass(frozen=True)
class SynthSummary:
    shoppers: int
    items: int
    events: int
    dirt: dict[str, int]


def write_items(shop: Shop, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ITEM_COLUMNS)
        writer.writeheader()
        for n in range(len(shop)):
            top, leaf = shop.category_paths[n]
            writer.writerow(
                {
                    "item_id": shop.item_ids[n],
                    "title": shop.titles[n],
                    "price": f"{shop.prices[n]:.2f}",
                    "category": f"{top}>{leaf}",
                    "brand": shop.brands[n],
                    "domain": shop.domains[n],
                    "kind": shop.kinds[n],
                    "description": f"{shop.titles[n]} from our {leaf.lower()} range.",
                    "stock": "in_stock",
                }
            )


def synthesize(
    folder: Path,
    shoppers: int,
    items: int,
    days: int,
    seed: int,
    dirt: float,
    advance: Callable[[int], None] = lambda _: None,
) -> SynthSummary:
    """Streams `shoppers` shoppers' events to `folder`; memory does not grow with shoppers."""
    folder.mkdir(parents=True, exist_ok=True)
    shop = make_shop(items, seed)
    write_items(shop, folder / "items.csv")
    injector = DirtInjector(dirt, seed) if dirt > 0 else None
    labels: Counter[str] = Counter()
    written = 0
    with (
        gzip.open(folder / "events.csv.gz", "wt", newline="", encoding="utf-8") as events_file,
        gzip.open(folder / "dirt.csv.gz", "wt", newline="", encoding="utf-8") as dirt_file,
    ):
        events_out, dirt_out = csv.writer(events_file), csv.writer(dirt_file)
        events_out.writerow(EVENT_COLUMNS)
        dirt_out.writerow(["event_id", "kind"])
        for number in range(shoppers):
            person = shopper(seed, number)
            stream = shopper_events(seed, person, shop, START, days)
            if injector is not None:
                stream = injector.inject(stream, person, shop)
            for event in stream:
                when = datetime.fromtimestamp(event.timestamp, UTC).isoformat(timespec="milliseconds")
                events_out.writerow(
                    [
                        event.event_id,
                        event.user_id,
                        event.item_id,
                        EVENT_TYPES.get(event.type, ""),
                        when,
                        event.quantity,
                        f"{event.price:.2f}",
                        event.rating,
                        event.text,
                        event.surface,
                        event.session_id,
                    ]
                )
                written += 1
                if event.dirt:
                    labels[event.dirt] += 1
                    dirt_out.writerow([event.event_id, event.dirt])
            advance(1)
    summary = SynthSummary(shoppers, items, written, dict(labels))
    (folder / "truth.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "shoppers": shoppers,
                "items": items,
                "days": days,
                "dirt_rate": dirt,
                "events": written,
                "dirt": dict(labels),
                "mapping": MAPPING,
                "note": "shoppers and their responses are rebuilt from the seed: tools.synth.shoppers",
            },
            indent=2,
        )
    )
    return summary
