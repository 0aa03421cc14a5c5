"""The gateway holds the catalog items Recommend needs and follows the catalog's changes, over a real
items service: held items are answered without asking it, a change reaches them with the next look,
and when the changes cannot be read for too long the catalog is asked again."""

import asyncio
from pathlib import Path

import grpc
import pytest

from recsys.common.v1 import common_pb2
from services.gateway.catalog import HeldCatalog
from services.items.app import build as build_items
from shared import metrics
from shared.clients import SuiteClients
from tests.support import ServerThread, make_settings, suite_env, upsert_items


def _prices(found: dict[str, common_pb2.Item]) -> dict[str, float]:
    return {item_id: item.price for item_id, item in found.items()}


def test_held_items_follow_the_catalogs_changes_and_are_not_trusted_once_it_is_away(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), **suite_env())
    items = ServerThread(build_items, settings, settings.ports["items"])
    now = [0.0]

    async def settled(catalog: HeldCatalog, ids: list[str]) -> dict[str, float]:
        """The prices once the look at the changes a request started has finished."""
        await catalog.items(ids, 5.0)
        if catalog._following is not None:
            await asyncio.wait([catalog._following])
        return _prices(await catalog.items(ids, 5.0))

    async def scenario() -> None:
        clients = SuiteClients(settings.addresses, 5.0)
        catalog = HeldCatalog(clients, capacity=2, follow_s=1.0, max_age_s=30.0, clock=lambda: now[0])
        try:
            # the first request asks the catalog; unknown ids are left out
            assert await settled(catalog, ["tea", "cake", "ghost"]) == {"tea": 2.0, "cake": 3.0}
            assert catalog.trusted
            upsert_items(items.address, common_pb2.Item(item_id="tea", title="Tea", price=2.5))
            now[0] = 0.5  # no look due yet: the held price answers
            assert _prices(await catalog.items(["tea"], 5.0)) == {"tea": 2.0}
            now[0] = 1.5  # a look is due: the change is read in the background and replaces it
            assert await settled(catalog, ["tea"]) == {"tea": 2.5}
            await asyncio.to_thread(items.stop)
            now[0] = 20.0  # the catalog is away: the looks fail, the held items still answer
            assert await settled(catalog, ["tea", "cake"]) == {"tea": 2.5, "cake": 3.0}
            with pytest.raises(grpc.aio.AioRpcError):
                await catalog.items(["milk"], 1.0)  # not held: the catalog must be asked
            now[0] = 32.0  # no look has succeeded for max_age_s: held items are asked for again
            with pytest.raises(grpc.aio.AioRpcError):
                await catalog.items(["tea"], 1.0)
        finally:
            await clients.close()

    try:
        upsert_items(
            items.address,
            common_pb2.Item(item_id="tea", title="Tea", price=2.0),
            common_pb2.Item(item_id="cake", title="Cake", price=3.0),
            common_pb2.Item(item_id="milk", title="Milk", price=1.0),
        )
        asyncio.run(scenario())
    finally:
        items.stop()


def test_at_most_capacity_items_are_held_the_least_recently_used_leaving_first(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), **suite_env())
    items = ServerThread(build_items, settings, settings.ports["items"])

    async def scenario() -> None:
        clients = SuiteClients(settings.addresses, 5.0)
        catalog = HeldCatalog(clients, capacity=2)
        try:
            await catalog.items(["a"], 5.0)
            assert catalog._following is not None
            await asyncio.wait([catalog._following])  # the first look at the changes: held items count
            held, asked = (metrics.HELD_ITEMS.labels(outcome) for outcome in ("held", "asked"))
            before = held._value.get(), asked._value.get()
            for ids in (["b"], ["a"], ["c"]):  # b is the least recently used when c comes
                await catalog.items(ids, 5.0)
            assert list(catalog._items) == ["a", "c"]
            assert (held._value.get() - before[0], asked._value.get() - before[1]) == (1, 2)
            nothing = HeldCatalog(clients, capacity=0)
            assert _prices(await nothing.items(["a"], 5.0)) == {"a": 1.0}
            assert not nothing._items
        finally:
            await clients.close()

    try:
        upsert_items(items.address, *(common_pb2.Item(item_id=i, title=i, price=1.0) for i in "abc"))
        asyncio.run(scenario())
    finally:
        items.stop()
