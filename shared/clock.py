"""The time services read: the system clock in production, a clock that tests set and move.

Every class that stamps or compares times takes a `clock` (default `system_clock`)
instead of calling `datetime.now`, so a test can pin "now" and move it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that shows `now` until it is moved; for tests and simulations."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a ManualClock needs a timezone-aware time")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
