"""Validation of incoming events: each is accepted as an EventRecord or rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from recsys.common.v1 import common_pb2
from shared.limits import MAX_ID_LENGTH, MAX_SEGMENT_LENGTH
from shared.timestamps import OUT_OF_RANGE, to_datetime

MAX_TEXT_LENGTH = 4000
MAX_SURFACE_LENGTH = 32
MAX_QUANTITY = 100_000
FUTURE_TOLERANCE = timedelta(days=1)
PURCHASE = common_pb2.EVENT_TYPE_PURCHASE
DISMISS = common_pb2.EVENT_TYPE_DISMISS
REVIEW = common_pb2.EVENT_TYPE_REVIEW
EVENT_TYPES = frozenset(common_pb2.EventType.values()) - {common_pb2.EVENT_TYPE_UNSPECIFIED}


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    user_id: str
    item_id: str
    type: int
    timestamp: datetime
    request_id: str
    quantity: int
    price: float
    rating: int
    text: str
    surface: str = ""
    session_id: str = ""
    segment: str = ""


def _problem(event: common_pb2.Event, now: datetime, moment: datetime | None) -> str | None:
    for name in ("event_id", "user_id", "item_id"):
        value = getattr(event, name)
        if not value.strip():
            return f"{name} is empty"
        if len(value) > MAX_ID_LENGTH:
            return f"{name} is longer than {MAX_ID_LENGTH} characters"
    if event.type not in EVENT_TYPES:
        return "type must be one of VIEW, CLICK, ADD_TO_CART, PURCHASE, REVIEW, LIKE, SHARE, DISMISS"
    if event.quantity < 0 or event.quantity > MAX_QUANTITY:
        return f"quantity must be between 0 and {MAX_QUANTITY}"
    if not event.price >= 0 or event.price == float("inf"):
        return "price must be a finite number >= 0"
    if not 0 <= event.rating <= 5:
        return "rating must be between 0 and 5"
    if len(event.text) > MAX_TEXT_LENGTH:
        return f"text is longer than {MAX_TEXT_LENGTH} characters"
    if len(event.request_id) > MAX_ID_LENGTH or len(event.session_id) > MAX_ID_LENGTH:
        return f"request_id and session_id must be at most {MAX_ID_LENGTH} characters"
    if len(event.surface) > MAX_SURFACE_LENGTH:
        return f"surface is longer than {MAX_SURFACE_LENGTH} characters"
    if len(event.segment) > MAX_SEGMENT_LENGTH:
        return f"segment is longer than {MAX_SEGMENT_LENGTH} characters"
    if moment is None:
        return OUT_OF_RANGE
    if moment > now + FUTURE_TOLERANCE:
        return "timestamp is more than a day in the future"
    return None


def validate(event: common_pb2.Event, now: datetime) -> EventRecord | str:
    """The event as a record, or the reason it is rejected."""
    moment = to_datetime(event.timestamp) if event.HasField("timestamp") else now
    problem = _problem(event, now, moment)
    if problem or moment is None:
        return problem or OUT_OF_RANGE
    return EventRecord(
        event_id=event.event_id,
        user_id=event.user_id,
        item_id=event.item_id,
        type=event.type,
        timestamp=moment,
        request_id=event.request_id,
        quantity=event.quantity or 1,
        price=event.price,
        rating=event.rating,
        text=event.text,
        surface=event.surface,
        session_id=event.session_id,
        segment=event.segment,
    )


def to_proto(record: EventRecord) -> common_pb2.Event:
    event = common_pb2.Event(
        event_id=record.event_id,
        user_id=record.user_id,
        item_id=record.item_id,
        type=record.type,  # type: ignore[arg-type]
        request_id=record.request_id,
        quantity=record.quantity,
        price=record.price,
        rating=record.rating,
        text=record.text,
        surface=record.surface,
        session_id=record.session_id,
        segment=record.segment,
    )
    event.timestamp.FromDatetime(record.timestamp)
    return event
