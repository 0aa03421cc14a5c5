"""The availability filter holds the catalog's withheld items and reads them again in the background,
over a real items service."""

import asyncio
from pathlib import Path

import grpc
import pytest

from recsys.common.v1 import common_pb2
from services.candidates.availability import Availability
from services.items.app import build as build_items
from shared.clients import SuiteClients
from tests.support import ServerThread, make_settings, suite_env, upsert_items


def test_the_withheld_items_are_read_again_in_the_background_and_kept_while_the_catalog_is_away(
    tmp_path: Path,
) -> None:
    settings = make_settings(str(tmp_path), **suite_env())
    items = ServerThread(build_items, settings, settings.ports["items"])
    now = [0.0]

    async def settled(availability: Availability) -> frozenset[str]:
        """The list once the read a request started has finished."""
        await availability.withheld()
        if availability._reading is not None:
            await asyncio.wait([availability._reading])
        return await availability.withheld()

    async def scenario() -> None:
        clients = SuiteClients(settings.addresses, 5.0)
        availability = Availability(clients, refresh_s=5.0, max_age_s=30.0, clock=lambda: now[0])
        try:
            # the first request waits for the list; items the catalog does not know are not in it
            assert await availability.withheld() == {"cake", "milk"}
            upsert_items(
                items.address,
                common_pb2.Item(item_id="tea", title="Tea", hidden=True),
                common_pb2.Item(item_id="milk", title="Milk", stock_status=common_pb2.STOCK_STATUS_IN_STOCK),
            )
            now[0] = 4.0
            assert await settled(availability) == {"cake", "milk"}  # still fresh: not read again
            now[0] = 5.5
            # due: this request is answered from the list it has while the new one is read
            assert await availability.withheld() == {"cake", "milk"}
            assert await settled(availability) == {"cake", "tea"}
            await asyncio.to_thread(items.stop)
            now[0] = 20.0  # the refresh fails, the list read at 5.5 keeps serving
            assert await settled(availability) == {"cake", "tea"}
            now[0] = 36.0  # older than max_age_s: the request must wait for the catalog, which fails
            with pytest.raises(grpc.aio.AioRpcError):
                await availability.withheld()
        finally:
            await clients.close()

    try:
        upsert_items(
            items.address,
            common_pb2.Item(item_id="tea", title="Tea"),
            common_pb2.Item(item_id="cake", title="Cake", hidden=True),
            common_pb2.Item(item_id="milk", title="Milk", stock_status=common_pb2.STOCK_STATUS_OUT_OF_STOCK),
        )
        asyncio.run(scenario())
    finally:
        items.stop()
