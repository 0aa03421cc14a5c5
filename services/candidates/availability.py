"""Which candidates may be shown (neither hidden nor out of stock), remembered for a few seconds.

Asking the catalog about every fused candidate on every request was the costliest call of
Generate; under load the same items come back request after request. An answer is reused for
AVAILABILITY_TTL_S, so an item hidden or sold out stops being a candidate within that time (plus
the items service's own cache time, CACHE_S in services/items/store.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from google.protobuf import field_mask_pb2

from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from shared.clients import SuiteClients

AVAILABILITY_TTL_S = 10.0
# What the check reads of each item.
AVAILABILITY_FIELDS = field_mask_pb2.FieldMask(paths=["hidden", "stock_status"])
# Entries beyond this are swept (expired first, then all): the memory stays bounded on any catalog.
MAX_ENTRIES = 500_000


class Availability:
    """The catalog's recent answers: item id -> (when asked, may be shown). Used from one event loop."""

    def __init__(
        self,
        clients: SuiteClients,
        ttl_s: float = AVAILABILITY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.ttl_s = ttl_s
        self.clock = clock
        self._known: dict[str, tuple[float, bool]] = {}

    async def usable(self, item_ids: Sequence[str]) -> set[str]:
        """The ids among `item_ids` that may be shown; items the catalog does not know are kept (the
        gateway's catalog stage drops them). Raises the catalog's error when it must be asked and
        cannot answer."""
        now = self.clock()
        fresh = {
            i: entry[1] for i in item_ids if (entry := self._known.get(i)) and now - entry[0] < self.ttl_s
        }
        missing = [i for i in item_ids if i not in fresh]
        if missing:
            response = await self.clients.items.GetItems(
                items_pb2.GetItemsRequest(item_ids=missing, read_mask=AVAILABILITY_FIELDS)
            )
            shown = {i: True for i in missing}  # unknown to the catalog: kept
            for item in response.items:
                shown[item.item_id] = (
                    not item.hidden and item.stock_status != common_pb2.STOCK_STATUS_OUT_OF_STOCK
                )
            self._remember(shown, now)
            fresh.update(shown)
        return {i for i in item_ids if fresh[i]}

    def _remember(self, shown: dict[str, bool], now: float) -> None:
        if len(self._known) + len(shown) > MAX_ENTRIES:
            self._known = {i: e for i, e in self._known.items() if now - e[0] < self.ttl_s}
            if len(self._known) + len(shown) > MAX_ENTRIES:
                self._known = {}
        self._known.update((i, (now, ok)) for i, ok in shown.items())
