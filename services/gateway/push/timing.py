"""When to send a push: in the shopper's most active local hour that is not a quiet hour.

The profile's portrait holds the share of the shopper's (decayed) events in each
UTC hour. Shifted into the shopper's time zone and smoothed over the two hours
either side (so that someone active at 23:00 gets 21:00 rather than a random
hour), the best hour outside quiet hours is chosen; the minute is spread by a
key so that a campaign does not send everything at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

# Weights of the hours -2..+2 around each hour when smoothing the shopper's activity.
SMOOTHING = np.array([0.25, 0.5, 1.0, 0.5, 0.25])
# The local hour for shoppers with no recorded activity (when it is not quiet).
DEFAULT_HOUR = 19


@dataclass(frozen=True)
class QuietHours:
    """Local hours from `start` (inclusive) to `end` (exclusive), wrapping past midnight."""

    start: int = 22
    end: int = 8

    def __contains__(self, hour: int) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end


def local_shares(hour_shares_utc: Sequence[float], zone: ZoneInfo, moment: datetime) -> np.ndarray:
    """The shares by local hour of `zone` at `moment` (its UTC offset then, rounded to the hour)."""
    shares = np.zeros(24)
    if len(hour_shares_utc) == 24:
        shares = np.maximum(np.asarray(hour_shares_utc, dtype=float), 0.0)
    offset = moment.astimezone(zone).utcoffset() or timedelta(0)
    hours = round(offset.total_seconds() / 3600)
    return np.roll(shares, hours)  # local hour h holds UTC hour h - offset


def best_hour(shares_local: np.ndarray, quiet: QuietHours) -> int:
    """The allowed local hour with the most smoothed activity; DEFAULT_HOUR (or the first hour after
    quiet hours) when the shopper has none."""
    allowed = [hour for hour in range(24) if hour not in quiet]
    if not allowed:
        raise ValueError("quiet hours cover the whole day")
    padded = np.concatenate([shares_local[-2:], shares_local, shares_local[:2]])
    smoothed = np.convolve(padded, SMOOTHING, mode="valid")
    if smoothed[allowed].max() <= 0:
        return DEFAULT_HOUR if DEFAULT_HOUR not in quiet else quiet.end
    return max(allowed, key=lambda hour: (smoothed[hour], -hour))


def spread_minute(key: str) -> int:
    """A stable minute 0-59 from a key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 60


def send_time(
    now: datetime, hour_shares_utc: Sequence[float], zone: ZoneInfo, quiet: QuietHours, key: str
) -> datetime:
    """The first moment after `now` at the shopper's best local hour (minute from `key`), in UTC.

    Days whose clock skips that hour (a daylight-saving change) are passed over.
    """
    hour = best_hour(local_shares(hour_shares_utc, zone, now), quiet)
    minute = spread_minute(key)
    today = now.astimezone(zone).date()
    for days in range(3):
        day = today + timedelta(days=days)
        wanted = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        moment = wanted.astimezone(now.tzinfo)
        if moment > now and moment.astimezone(zone).hour == hour:
            return moment
    raise ValueError(f"no send time at local hour {hour} in the next three days")
