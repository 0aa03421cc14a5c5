"""Wires the profile service: store, servicer, start-up."""

from __future__ import annotations

import asyncio

from recsys.profile.v1 import profile_pb2_grpc

from services.profile.servicer import ProfileServicer
from services.profile.store import ProfileStore
from shared.clients import STUB_DESCRIPTORS
from shared.config import Settings
from shared.server import ServiceApp

NAME = "profile"


def build(settings: Settings) -> ServiceApp:
    store = ProfileStore(settings.database_url(NAME))
    servicer = ProfileServicer(store)

    async def startup() -> None:
        await asyncio.to_thread(store.migrate)

    async def shutdown() -> None:
        store.engine.dispose()

    return ServiceApp(
        name=NAME,
        servicers=[
            (
                STUB_DESCRIPTORS[NAME],
                lambda server: profile_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server),
            )
        ],
        startup=startup,
        shutdown=shutdown,
    )
