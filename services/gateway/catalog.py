"""The catalog facts a Recommend shows and gives the policy, held in this process and kept current by
following the catalog's changes.

Asking the items service for them was one more call per Recommend, and the same items came back
request after request. This process keeps the items it has read (at most `capacity`, the least
recently used leave first) and, at most every FOLLOW_S while requests come, asks the catalog which
items changed since a little before its previous look (`ExportItems` with `updated_since`, read
from the database) and replaces those it holds: a change reaches Recommend about FOLLOW_S after it
is stored. Each look reaches back OVERLAP_S before the previous one began, which is longer than
the items service's own cache may be stale (services/items/store.py: CACHE_S): an item read
through a replica's stale cache just after it changed is put right by a later look.

Held items are trusted only while the changes have been read within MAX_AGE_S. When the catalog
has not answered for longer, every request asks it for its items, as before, and the catalog's
error degrades the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from shared import metrics
from shared.clients import SuiteClients

log = logging.getLogger(__name__)

FOLLOW_S = 1.0
OVERLAP_S = 40.0
MAX_AGE_S = 30.0
CAPACITY = 20_000
# How long one look at the changes may take.
READ_TIMEOUT_S = 10.0


class HeldCatalog:
    """Items read from the catalog, kept current. Used from one event loop; callers must not change
    the items it returns."""

    def __init__(
        self,
        clients: SuiteClients,
        capacity: int = CAPACITY,
        follow_s: float = FOLLOW_S,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.capacity = capacity
        self.follow_s = follow_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._items: OrderedDict[str, common_pb2.Item] = OrderedDict()
        self._followed_at: float | None = None  # when the last look that succeeded began (clock)
        self._followed_from: float | None = None  # the same moment by the wall clock
        self._following: asyncio.Task[None] | None = None
        self._tried_at: float | None = None  # when the last look began, whether or not it succeeded

    @property
    def trusted(self) -> bool:
        return self._followed_at is not None and self.clock() - self._followed_at < self.max_age_s

    async def items(self, item_ids: Sequence[str], timeout: float) -> dict[str, common_pb2.Item]:
        """The catalog's items among `item_ids` (unknown ids are left out): those held, and the others
        read from the catalog within `timeout` seconds. Raises the catalog's error when it must be
        asked and cannot answer."""
        self._follow_when_due()
        found: dict[str, common_pb2.Item] = {}
        missing: list[str] = []
        trusted = self.trusted
        for item_id in item_ids:
            item = self._items.get(item_id) if trusted else None
            if item is None:
                missing.append(item_id)
            else:
                self._items.move_to_end(item_id)
                found[item_id] = item
        metrics.HELD_ITEMS.labels("held").inc(len(found))
        metrics.HELD_ITEMS.labels("asked").inc(len(missing))
        if missing:
            response = await self.clients.items.GetItems(
                items_pb2.GetItemsRequest(item_ids=missing), timeout=timeout
            )
            for item in response.items:
                found[item.item_id] = item
                self._hold(item)
        return found

    def _hold(self, item: common_pb2.Item) -> None:
        self._items[item.item_id] = item
        self._items.move_to_end(item.item_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def _follow_when_due(self) -> None:
        """Starts a look at the changes when none began for `follow_s` (one at a time: while the
        catalog is away, one failed look a period, not one per request)."""
        due = self._tried_at is None or self.clock() - self._tried_at >= self.follow_s
        if due and (self._following is None or self._following.done()):
            self._tried_at = self.clock()
            self._following = asyncio.create_task(self._follow())
            self._following.add_done_callback(_log_failure)

    async def _follow(self) -> None:
        began, began_wall = self.clock(), self.wall_clock()
        # The first look reaches back from now: what is held came from the items service, whose
        # cache is at most OVERLAP_S behind the database.
        since = Timestamp()
        since.FromNanoseconds(int(((self._followed_from or began_wall) - OVERLAP_S) * 1e9))
        request = items_pb2.ExportItemsRequest(updated_since=since)
        async for page in self.clients.items.ExportItems(request, timeout=READ_TIMEOUT_S):
            for item in page.items:
                if item.item_id in self._items:
                    self._items[item.item_id] = item
        self._followed_at, self._followed_from = began, began_wall


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("could not read the catalog's changes: %s", error)
