"""The fatigue rules a push must pass against the pushes already planned for its shopper.

Caps are rolling, by send time: at most `daily_cap` pushes in any 24 hours and
`weekly_cap` in any 7 days. A set of send times keeps a cap of n per window W
exactly when any n + 1 consecutive ones (in time order) span at least W.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.gateway.settings import PushConfig

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Planned:
    """A push already planned for the shopper: when it goes out and what it promotes."""

    send_time: datetime
    item_ids: tuple[str, ...]


def exceeds_cap(times: Sequence[datetime], cap: int, window: timedelta) -> bool:
    """True when more than `cap` of the times fall inside some window of length `window`."""
    ordered = sorted(times)
    return any(ordered[i + cap] - ordered[i] < window for i in range(len(ordered) - cap))


def history_window(config: PushConfig) -> timedelta:
    """How far either side of a send time earlier pushes can matter to the rules."""
    return max(WEEK, timedelta(days=config.dedupe_days))


def broken_rule(
    planned: Sequence[Planned], send_time: datetime, item_ids: Sequence[str], config: PushConfig
) -> str | None:
    """Why a push of `item_ids` at `send_time` may not join `planned`; None when it may."""
    dedupe = timedelta(days=config.dedupe_days)
    for earlier in planned:
        repeated = set(item_ids) & set(earlier.item_ids)
        if repeated and abs(earlier.send_time - send_time) < dedupe:
            return f"item {sorted(repeated)[0]} is already pushed within {config.dedupe_days:g} days"
    times = [earlier.send_time for earlier in planned] + [send_time]
    if exceeds_cap(times, config.daily_cap, DAY):
        return f"daily cap reached ({config.daily_cap} per 24 hours)"
    if exceeds_cap(times, config.weekly_cap, WEEK):
        return f"weekly cap reached ({config.weekly_cap} per 7 days)"
    return None
