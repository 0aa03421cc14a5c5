"""protobuf Timestamps from callers, read without trusting them: one out of range is a reason to
reject its record, never an exception in the middle of a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from shared.errors import InvalidArgument

# What a Timestamp may hold (google/protobuf/timestamp.proto): 0001-01-01 to 9999-12-31, UTC.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "timestamp is out of range (years 1 to 9999, nanos 0 to 999,999,999)"


def in_range(stamp: Timestamp) -> bool:
    return MIN_SECONDS <= stamp.seconds <= MAX_SECONDS and 0 <= stamp.nanos <= 999_999_999


def to_datetime(stamp: Timestamp) -> datetime | None:
    """The moment as an aware UTC datetime (to the microsecond, as Timestamp.ToDatetime); None when it
    is out of a Timestamp's range. Read on every ingested event: this is a third of ToDatetime's cost."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if not (MIN_SECONDS <= seconds <= MAX_SECONDS and 0 <= nanos <= 999_999_999):
        return None
    return EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def checked_datetime(stamp: Timestamp, field: str) -> datetime:
    """A caller's Timestamp as an aware UTC datetime; INVALID_ARGUMENT naming `field` when it is out
    of range."""
    moment = to_datetime(stamp)
    if moment is None:
        raise InvalidArgument(f"{field}: {OUT_OF_RANGE}", field=field)
    return moment
