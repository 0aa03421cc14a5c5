"""Deadlines of iterative fits: a point in `time.monotonic()` after which a fit stops at the end of
its current epoch (or member) and keeps the best it has; None is no deadline."""

from __future__ import annotations

import time

Deadline = float | None


def passed(deadline: Deadline) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def seconds_left(deadline: Deadline) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)
