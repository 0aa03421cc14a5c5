"""Wires the policy service: decision store and servicer."""

from __future__ import annotations

import asyncio

from recsys.policy.v1 import policy_pb2_grpc

from services.policy.servicer import PolicyServicer
from services.policy.store import PolicyStore
from shared.clients import STUB_DESCRIPTORS
from shared.config import Settings
from shared.server import ServiceApp

NAME = "policy"


def build(settings: Settings) -> ServiceApp:
    store = PolicyStore(settings.database_url(NAME))
    servicer = PolicyServicer(store)

    async def startup() -> None:
        await asyncio.to_thread(store.migrate)

    async def shutdown() -> None:
        store.engine.dispose()

    return ServiceApp(
        name=NAME,
        servicers=[
            (
                STUB_DESCRIPTORS[NAME],
                lambda server: policy_pb2_grpc.add_PolicyServiceServicer_to_server(servicer, server),
            )
        ],
        startup=startup,
        shutdown=shutdown,
    )
