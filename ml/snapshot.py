"""Training snapshots: events and catalog exported through the services' streaming RPCs.

A snapshot is a folder `<home>/snapshots/<UTC time>/` with `events.npz` and
`items.npz` (NumPy, no pickles). Trainers read only snapshots, never another
service's tables, so the same path works in Kubernetes with a volume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.normalize import robust_scale_by_group
from ml.text_encoder import Fact, category_facts, facts_of, item_text
from recsys.common.v1 import common_pb2

PURCHASE = common_pb2.EVENT_TYPE_PURCHASE
REVIEW = common_pb2.EVENT_TYPE_REVIEW
DISMISS = common_pb2.EVENT_TYPE_DISMISS
# Ratings run from 1 to 5; a review rated below 3 says the shopper did not like the item.
NEUTRAL_RATING = 3

# The per-event columns, all of one length.
EVENT_COLUMNS = (
    "user_ids",
    "item_ids",
    "types",
    "timestamps",
    "quantities",
    "segments",
    "ratings",
    "sentiments",
)
FACT_SEPARATOR, FIELD_SEPARATOR = "\x1e", "\x1f"  # ASCII record and unit separators


def _encoded_facts(facts: set[Fact]) -> str:
    return FACT_SEPARATOR.join(f"{fact.relation}{FIELD_SEPARATOR}{fact.value}" for fact in sorted(facts))


def _decoded_facts(encoded: str) -> set[Fact]:
    return {Fact(*part.split(FIELD_SEPARATOR, 1)) for part in encoded.split(FACT_SEPARATOR) if part}


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    user_ids: np.ndarray
    item_ids: np.ndarray
    types: np.ndarray
    timestamps: np.ndarray
    quantities: np.ndarray
    catalog_item_ids: np.ndarray
    catalog_titles: np.ndarray
    catalog_categories: np.ndarray
    catalog_prices: np.ndarray
    catalog_price_scaled: np.ndarray
    catalog_texts: np.ndarray | None = None  # ml.text_encoder.item_text of each item
    catalog_facts: np.ndarray | None = None  # each item's facts, encoded by _encoded_facts
    segments: np.ndarray | None = None  # each event's Event.segment ("" when the platform sent none)
    ratings: np.ndarray | None = None  # each event's Event.rating (0: none)
    # Reviews with a text: their event rows and texts (kept apart: most events have no text).
    review_rows: np.ndarray | None = None
    review_texts: np.ndarray | None = None
    # Each event's review sentiment in [-1, 1], NaN where it has none: derived when a training run
    # starts (ml/sentiment.py: scored_reviews), never stored.
    sentiments: np.ndarray | None = None

    @property
    def item_texts(self) -> list[str]:
        """Each catalog item's text (its title in snapshots written before texts were exported)."""
        texts = self.catalog_texts if self.catalog_texts is not None else self.catalog_titles
        return texts.tolist()

    @property
    def item_facts(self) -> list[set[Fact]]:
        """Each catalog item's facts (only its category levels in snapshots written before facts were
        exported)."""
        if self.catalog_facts is not None:
            return [_decoded_facts(encoded) for encoded in self.catalog_facts.tolist()]
        return [category_facts(path.split(">") if path else []) for path in self.catalog_categories.tolist()]

    def events_where(self, mask: np.ndarray) -> Snapshot:
        """The same snapshot with only the events `mask` selects (the catalog unchanged)."""
        return dataclasses.replace(
            self,
            **{name: getattr(self, name)[mask] for name in EVENT_COLUMNS if getattr(self, name) is not None},
            review_rows=None,
            review_texts=None,
        )

    @property
    def event_count(self) -> int:
        return len(self.user_ids)

    def _interaction_mask(self) -> np.ndarray:
        mask = self.types == PURCHASE
        if mask.any():
            return mask
        # Nothing bought (a ratings or clicks data set): every event is evidence of interest,
        # except dismissals and reviews rated below NEUTRAL_RATING, which are evidence against.
        interested = self.types != DISMISS
        if self.ratings is not None:
            interested &= ~((self.types == REVIEW) & (self.ratings > 0) & (self.ratings < NEUTRAL_RATING))
        return interested

    def interactions(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_ids, item_ids) of purchases, or, when nothing was bought yet, of every event that
        shows interest (not a dismissal, not a review rated 1 or 2)."""
        mask = self._interaction_mask()
        return self.user_ids[mask], self.item_ids[mask]

    def interaction_times(self) -> np.ndarray:
        """The timestamps of `interactions()`, in the same order."""
        return self.timestamps[self._interaction_mask()]

    def interaction_segments(self) -> np.ndarray:
        """The segments of `interactions()`, in the same order ("" for snapshots without segments)."""
        if self.segments is None:
            return np.full(int(self._interaction_mask().sum()), "", dtype=str)
        return self.segments[self._interaction_mask()]

    def reviews(self) -> tuple[list[str], list[int]]:
        """The texts of the reviews that have one, with their ratings (0: none)."""
        if self.review_rows is None or self.review_texts is None:
            return [], []
        if self.ratings is None:
            return self.review_texts.tolist(), [0] * len(self.review_texts)
        return self.review_texts.tolist(), [int(r) for r in self.ratings[self.review_rows].tolist()]

    @classmethod
    def load(cls, folder: Path) -> Snapshot:
        reviews = folder / "reviews.npz"
        review_rows, review_texts = None, None
        if reviews.exists():
            with np.load(reviews) as found:
                review_rows, review_texts = found["rows"], found["texts"]
        with np.load(folder / "events.npz") as events, np.load(folder / "items.npz") as items:
            return cls(
                folder=folder,
                user_ids=events["user_ids"],
                item_ids=events["item_ids"],
                types=events["types"],
                timestamps=events["timestamps"],
                quantities=events["quantities"],
                segments=events.get("segments"),
                ratings=events.get("ratings"),
                catalog_item_ids=items["item_ids"],
                catalog_titles=items["titles"],
                catalog_categories=items["categories"],
                catalog_prices=items["prices"],
                catalog_price_scaled=items["price_scaled"],
                catalog_texts=items.get("texts"),
                catalog_facts=items.get("facts"),
                review_rows=review_rows,
                review_texts=review_texts,
            )


class SnapshotWriter:
    """Accumulates exported batches as compact arrays and writes them once at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._events: dict[str, list[np.ndarray]] = {
            "user_ids": [],
            "item_ids": [],
            "types": [],
            "timestamps": [],
            "quantities": [],
            "segments": [],
            "ratings": [],
        }
        self._event_count = 0
        self._review_rows: list[int] = []
        self._review_texts: list[str] = []
        self._items: dict[str, list[np.ndarray]] = {
            "item_ids": [],
            "titles": [],
            "categories": [],
            "prices": [],
            "texts": [],
            "facts": [],
        }

    def add_events(self, events: Sequence[common_pb2.Event]) -> None:
        for n, event in enumerate(events):
            if event.type == REVIEW and event.text:
                self._review_rows.append(self._event_count + n)
                self._review_texts.append(event.text)
        self._event_count += len(events)
        columns = self._events
        columns["user_ids"].append(np.array([e.user_id for e in events], dtype=str))
        columns["item_ids"].append(np.array([e.item_id for e in events], dtype=str))
        columns["types"].append(np.array([e.type for e in events], dtype=np.int8))
        columns["timestamps"].append(
            np.array([e.timestamp.seconds + e.timestamp.nanos / 1e9 for e in events])
        )
        columns["quantities"].append(np.array([e.quantity for e in events], dtype=np.int32))
        columns["segments"].append(np.array([e.segment for e in events], dtype=str))
        columns["ratings"].append(np.array([e.rating for e in events], dtype=np.int8))

    def add_items(self, items: Iterable[common_pb2.Item]) -> None:
        batch = list(items)
        self._items["item_ids"].append(np.array([i.item_id for i in batch], dtype=str))
        self._items["titles"].append(np.array([i.title for i in batch], dtype=str))
        self._items["categories"].append(np.array([">".join(i.category_path) for i in batch], dtype=str))
        self._items["prices"].append(np.array([i.price for i in batch], dtype=np.float64))
        self._items["texts"].append(np.array([item_text(i) for i in batch], dtype=str))
        self._items["facts"].append(np.array([_encoded_facts(facts_of(i)) for i in batch], dtype=str))

    @staticmethod
    def _joined(columns: dict[str, list[np.ndarray]], empty: dict[str, str]) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(parts) if parts else np.array([], dtype=empty[name])
            for name, parts in columns.items()
        }

    def write(self) -> Snapshot:
        self.folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            self.folder / "events.npz",
            **self._joined(
                self._events,
                {
                    "user_ids": "U1",
                    "item_ids": "U1",
                    "types": "int8",
                    "timestamps": "float64",
                    "quantities": "int32",
                    "segments": "U1",
                    "ratings": "int8",
                },
            ),
        )
        items = self._joined(
            self._items,
            {
                "item_ids": "U1",
                "titles": "U1",
                "categories": "U1",
                "prices": "float64",
                "texts": "U1",
                "facts": "U1",
            },
        )
        items["price_scaled"] = robust_scale_by_group(items["prices"], items["categories"])
        np.savez(self.folder / "items.npz", **items)
        np.savez(
            self.folder / "reviews.npz",
            rows=np.array(self._review_rows, dtype=np.int64),
            texts=np.array(self._review_texts, dtype=str) if self._review_texts else np.array([], dtype="U1"),
        )
        return Snapshot.load(self.folder)
