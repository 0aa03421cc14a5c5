"""Which item ids the catalog knows and what it says of them, asked of the items service and
remembered (category, brand and price feed the shoppers' portraits)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc

from recsys.items.v1 import items_pb2
from services.profile.portrait import ItemFacts
from shared.clients import SuiteClients

log = logging.getLogger(__name__)
CHUNK = 1000


class CatalogCheck:
    """Known items are cached (the catalog only grows); unknown ones are asked again each time."""

    def __init__(self, clients: SuiteClients) -> None:
        self.clients = clients
        self.known: dict[str, ItemFacts] = {}

    async def known_among(self, item_ids: Iterable[str]) -> set[str] | None:
        """The ids among `item_ids` that the catalog holds; None when the catalog cannot be
        asked (the check is then skipped: valid events are never lost to an outage)."""
        wanted = {item for item in item_ids if item}
        missing = sorted(wanted - self.known.keys())
        try:
            for start in range(0, len(missing), CHUNK):
                response = await self.clients.items.GetItems(
                    items_pb2.GetItemsRequest(item_ids=missing[start : start + CHUNK])
                )
                self.known.update(
                    (item.item_id, ItemFacts(">".join(item.category_path), item.brand, item.price))
                    for item in response.items
                )
        except grpc.aio.AioRpcError as error:
            log.warning("catalog check skipped: items service %s", error.code().name)
            return None
        return wanted & self.known.keys()

    def facts(self, item_ids: Iterable[str]) -> dict[str, ItemFacts]:
        """What the cache holds about these items (ask `known_among` first)."""
        return {item: self.known[item] for item in item_ids if item in self.known}
