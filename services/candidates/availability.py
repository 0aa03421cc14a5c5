"""Which candidates may be shown: every item except those the catalog withholds (hidden, or out of
stock), whose ids this process holds and reads again in the background.

Asking the catalog about each request's fused candidates was one more call per Generate, and
under load the same items came back request after request. Withheld items are usually few, so
the whole list is read (`ItemsService.ListUnavailable`, from the database) at most every
REFRESH_S, while the list read before it keeps serving: an item hidden or sold out stops being a
candidate about REFRESH_S after it changed (a refresh starts with the first request after that).
A request waits for the catalog only when the list is missing or older than MAX_AGE_S (the
catalog has not answered the refreshes): then the catalog's error is the request's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from recsys.items.v1 import items_pb2
from shared.clients import SuiteClients

log = logging.getLogger(__name__)

REFRESH_S = 5.0
MAX_AGE_S = 30.0
# How long one read of the list may take.
READ_TIMEOUT_S = 10.0


class Availability:
    """The catalog's withheld items, read whole and refreshed. Used from one event loop."""

    def __init__(
        self,
        clients: SuiteClients,
        refresh_s: float = REFRESH_S,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._withheld: frozenset[str] | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def withheld(self, timeout: float | None = None) -> frozenset[str]:
        """The ids of the items that may not be shown (items the catalog does not know are not among
        them: the gateway's catalog stage drops those). Raises the catalog's error when the list
        must be read now and cannot be, and TimeoutError when that read is not done within
        `timeout` seconds (it goes on for the requests after)."""
        age = self.clock() - self._read_at
        if self._withheld is None or age >= self.refresh_s:
            reading = self._refresh()
            if self._withheld is None or age >= self.max_age_s:
                await asyncio.wait_for(asyncio.shield(reading), timeout)
        return self._withheld or frozenset()

    def _refresh(self) -> asyncio.Task[None]:
        """The read in progress, or a new one (one at a time, whatever the number of requests)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
            self._reading.add_done_callback(_log_failure)
        return self._reading

    async def _read(self) -> None:
        started = self.clock()
        withheld: set[str] = set()
        request = items_pb2.ListUnavailableRequest()
        async for page in self.clients.items.ListUnavailable(request, timeout=READ_TIMEOUT_S):
            withheld.update(page.item_ids)
        self._withheld, self._read_at = frozenset(withheld), started


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("could not read the catalog's withheld items: %s", error)
