"""The availability check remembers the catalog's answers for a while, over a real items service."""

import asyncio
from pathlib import Path

import grpc
import pytest

from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2, items_pb2_grpc
from services.candidates.availability import Availability
from services.items.app import build as build_items
from shared.clients import SuiteClients
from tests.support import ServerThread, make_settings, suite_env


def _upsert(address: str, *items: common_pb2.Item) -> None:
    with grpc.insecure_channel(address) as channel:
        items_pb2_grpc.ItemsServiceStub(channel).UpsertItems(
            iter([items_pb2.UpsertItemsRequest(items=list(items))]), timeout=10
        )


def test_answers_are_reused_until_they_expire_then_the_catalog_is_asked_again(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), **suite_env())
    items = ServerThread(build_items, settings, settings.ports["items"])
    now = [0.0]
    running = [True]

    def stop_items() -> None:
        if running.pop():
            items.stop()
        running.append(False)

    async def scenario() -> None:
        clients = SuiteClients(settings.addresses, 5.0)
        availability = Availability(clients, ttl_s=10.0, clock=lambda: now[0])
        try:
            # an item the catalog does not know is kept (the gateway's catalog stage drops it)
            assert await availability.usable(["tea", "cake", "milk", "ghost"]) == {"tea", "ghost"}
            _upsert(items.address, common_pb2.Item(item_id="tea", title="Tea", hidden=True))
            now[0] = 9.0
            assert await availability.usable(["tea", "cake"]) == {"tea"}  # remembered, not asked
            now[0] = 10.5
            assert await availability.usable(["tea", "cake"]) == set()  # expired: asked, now hidden
            await asyncio.to_thread(stop_items)
            now[0] = 11.0
            assert await availability.usable(["tea", "cake"]) == set()  # fresh: no catalog needed
            with pytest.raises(grpc.aio.AioRpcError):
                await availability.usable(["tea", "bread"])  # never asked: the catalog must answer
        finally:
            await clients.close()

    try:
        _upsert(
            items.address,
            common_pb2.Item(item_id="tea", title="Tea"),
            common_pb2.Item(item_id="cake", title="Cake", hidden=True),
            common_pb2.Item(item_id="milk", title="Milk", stock_status=common_pb2.STOCK_STATUS_OUT_OF_STOCK),
        )
        asyncio.run(scenario())
    finally:
        stop_items()
