"""Wires the items service: catalog store, popularity model, servicer."""

from __future__ import annotations

import asyncio

from recsys.items.v1 import items_pb2_grpc

from services.items.servicer import ItemsServicer
from services.items.store import ItemsStore
from shared.artifacts import POPULARITY, PopularityModel
from shared.clients import STUB_DESCRIPTORS
from shared.config import Settings
from shared.models import ModelWatcher
from shared.server import ServiceApp

NAME = "items"


def build(settings: Settings) -> ServiceApp:
    store = ItemsStore(settings.database_url(NAME))
    popularity = ModelWatcher(settings.model_dir, POPULARITY, PopularityModel.load, settings.model_poll_s)
    servicer = ItemsServicer(store, popularity)

    async def startup() -> None:
        await asyncio.to_thread(store.migrate)
        await popularity.refresh()

    async def shutdown() -> None:
        store.engine.dispose()

    return ServiceApp(
        name=NAME,
        servicers=[
            (
                STUB_DESCRIPTORS[NAME],
                lambda server: items_pb2_grpc.add_ItemsServiceServicer_to_server(servicer, server),
            )
        ],
        startup=startup,
        background=[popularity.watch],
        shutdown=shutdown,
    )
