"""Which item ids the catalog knows, asked of the items service and remembered."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc

from recsys.items.v1 import items_pb2
from shared.clients import SuiteClients

log = logging.getLogger(__name__)
CHUNK = 1000


class CatalogCheck:
    """Known ids are cached (the catalog only grows); unknown ones are asked again each time."""

    def __init__(self, clients: SuiteClients) -> None:
        self.clients = clients
        self.known: set[str] = set()

    async def known_among(self, item_ids: Iterable[str]) -> set[str] | None:
        """The ids among `item_ids` that the catalog holds; None when the catalog cannot be
        asked (the check is then skipped: valid events are never lost to an outage)."""
        wanted = {item for item in item_ids if item}
        missing = sorted(wanted - self.known)
        try:
            for start in range(0, len(missing), CHUNK):
                response = await self.clients.items.GetItems(
                    items_pb2.GetItemsRequest(item_ids=missing[start : start + CHUNK])
                )
                self.known.update(item.item_id for item in response.items)
        except grpc.aio.AioRpcError as error:
            log.warning("catalog check skipped: items service %s", error.code().name)
            return None
        return wanted & self.known
