"""The `clean-events` stage: every event passes it on ingestion, whichever way it came in
(gateway feedback, importers, direct RecordEvents).

Per event, in order: missing or impossible values are rejected (a quantity of 0
is the contract's default of 1, not a repair, and is not reported as a fix);
absurd quantities are rejected as outliers; an item the catalog does not know is
rejected. Across events of the same user,
judged by event time against the batch and the events already stored: the
same (item, type) again within a second is a near-duplicate, and more than
BURST_LIMIT browsing events (view, click, like, share) within a minute is a
bot-like burst; purchases, carts and reviews are never dropped for bursts
(one invoice may hold hundreds of lines). Dropped events go to quarantine with
their reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from recsys.common.v1 import common_pb2
from services.profile.events import EventRecord, validate

NEAR_DUPLICATE = timedelta(seconds=1)
BURST_WINDOW = timedelta(seconds=60)
BURST_LIMIT = 120
MAX_QUANTITY = 10_000
BROWSING = frozenset(
    {
        common_pb2.EVENT_TYPE_VIEW,
        common_pb2.EVENT_TYPE_CLICK,
        common_pb2.EVENT_TYPE_LIKE,
        common_pb2.EVENT_TYPE_SHARE,
        common_pb2.EVENT_TYPE_DISMISS,
    }
)
NEAR_DUPLICATE_REASON = "near-duplicate: same user, item and type within 1s"
BURST_REASON = f"bot-like burst: more than {BURST_LIMIT} browsing events within a minute from one user"
OUTLIER_REASON = f"outlier: quantity above {MAX_QUANTITY}"
UNKNOWN_ITEM_REASON = "unknown item: not in the catalog"


@dataclass(frozen=True)
class Seen:
    """What the stage needs to know of an event already stored."""

    event_id: str
    item_id: str
    type: int
    timestamp: datetime


@dataclass(frozen=True)
class Lookback:
    """What the stage must know of a batch's users' stored events: every one within NEAR_DUPLICATE
    of the batch's times (for near-duplicates) and, only for a user whose stored browsing within
    BURST_WINDOW of them could make a burst with the batch's, every browsing event there. A user
    whose browsing in the whole burst window, stored and new, stays within BURST_LIMIT cannot be
    in a burst, so for most users the stage reads a few seconds of events, not two minutes."""

    user_ids: list[str]
    near: tuple[datetime, datetime]
    burst: tuple[datetime, datetime]
    browsing_in_batch: dict[str, int]

    def least_stored_for_a_burst(self) -> int:
        """Users with fewer stored browsing events in the burst window than this cannot burst."""
        return BURST_LIMIT + 1 - max(self.browsing_in_batch.values(), default=0)

    def could_burst(self, stored_browsing: Mapping[str, int]) -> list[str]:
        """The users whose stored and new browsing in the burst window exceed BURST_LIMIT."""
        return sorted(
            user
            for user, count in stored_browsing.items()
            if count + self.browsing_in_batch.get(user, 0) > BURST_LIMIT
        )


def lookback(events: Sequence[common_pb2.Event], times: Sequence[datetime]) -> Lookback:
    """The stored events the stage needs to clean `events`, whose times are `times`."""
    browsing = Counter(event.user_id for event in events if event.type in BROWSING)
    first, last = min(times), max(times)
    return Lookback(
        user_ids=sorted({event.user_id for event in events if event.user_id}),
        near=(first - NEAR_DUPLICATE, last + NEAR_DUPLICATE),
        burst=(first - BURST_WINDOW, last + BURST_WINDOW),
        browsing_in_batch=dict(browsing),
    )


@dataclass
class Cleaned:
    accepted: list[tuple[int, EventRecord]] = field(default_factory=list)
    dropped: list[tuple[int, common_pb2.Event, str]] = field(default_factory=list)
    fixes: Counter[str] = field(default_factory=Counter)


def _single(event: common_pb2.Event, now: datetime, known_items: set[str] | None) -> EventRecord | str:
    checked = validate(event, now)
    if isinstance(checked, str):
        return checked
    if checked.quantity > MAX_QUANTITY:
        return OUTLIER_REASON
    if known_items is not None and checked.item_id not in known_items:
        return UNKNOWN_ITEM_REASON
    return checked


def clean(
    events: Sequence[common_pb2.Event],
    now: datetime,
    stored: dict[str, Iterable[Seen]],
    known_items: set[str] | None = None,
) -> Cleaned:
    """Runs the stage over one batch. `stored` holds each user's stored events that the batch's
    Lookback names; `known_items`, when given, is the catalog's ids among the batch's items."""
    result = Cleaned()
    candidates: dict[str, list[tuple[int, EventRecord]]] = defaultdict(list)
    for index, event in enumerate(events):
        checked = _single(event, now, known_items)
        if isinstance(checked, str):
            result.dropped.append((index, event, checked))
            continue
        candidates[checked.user_id].append((index, checked))
    for user_id, user_events in candidates.items():
        history = list(stored.get(user_id, ()))
        bursting = _in_bursts(user_events, history)
        kept: list[Seen] = history
        for index, record in sorted(user_events, key=lambda pair: (pair[1].timestamp, pair[0])):
            reason = BURST_REASON if index in bursting else _near_duplicate(record, kept)
            if reason:
                result.dropped.append((index, events[index], reason))
                continue
            kept.append(Seen(record.event_id, record.item_id, record.type, record.timestamp))
            result.accepted.append((index, record))
    result.accepted.sort(key=lambda pair: pair[0])
    result.dropped.sort(key=lambda triple: triple[0])
    return result


def _near_duplicate(record: EventRecord, kept: list[Seen]) -> str | None:
    for seen in kept:
        if seen.event_id == record.event_id:
            continue  # the same event sent again: an exact duplicate, counted when stored
        if (
            seen.item_id == record.item_id
            and seen.type == record.type
            and abs(record.timestamp - seen.timestamp) < NEAR_DUPLICATE
        ):
            return NEAR_DUPLICATE_REASON
    return None


def _in_bursts(user_events: list[tuple[int, EventRecord]], history: list[Seen]) -> set[int]:
    """Batch indexes of browsing events inside any minute holding more than BURST_LIMIT of them."""
    timeline = sorted(
        [(seen.timestamp, -1) for seen in history if seen.type in BROWSING]
        + [(record.timestamp, index) for index, record in user_events if record.type in BROWSING]
    )
    flagged: set[int] = set()
    start = 0
    for end in range(len(timeline)):
        while timeline[end][0] - timeline[start][0] >= BURST_WINDOW:
            start += 1
        if end - start + 1 > BURST_LIMIT:
            flagged.update(index for _, index in timeline[start : end + 1] if index >= 0)
    return flagged
