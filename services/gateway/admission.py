"""Admission control for Recommend: a bounded number in flight, the rest refused at once.

Past the suite's capacity a queue only grows: every call waits behind work that finishes after
its caller has given up, and the suite ends up answering almost nobody. Refusing what is over the
limit at once keeps the admitted calls fast and tells the others when to come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import ResourceExhausted

RETRY_AFTER_S = 0.05


class Admission:
    """At most `limit` calls at a time on one event loop (no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.in_flight >= self.limit:
            raise ResourceExhausted(
                f"the gateway is answering its limit of {self.limit} Recommend calls "
                "(RECSYS_RECOMMEND_CONCURRENCY); retry shortly",
                RETRY_AFTER_S,
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
