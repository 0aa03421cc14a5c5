"""Wires the gateway: API keys, request log, downstream clients, servicer."""

from __future__ import annotations

import asyncio

from recsys.gateway.v1 import gateway_pb2_grpc

from services.gateway.feedback import FeedbackRecorder
from services.gateway.recommend import Recommender
from services.gateway.servicer import GatewayServicer
from services.gateway.store import GatewayStore
from shared.auth import ApiKeyInterceptor, server_keys
from shared.clients import STUB_DESCRIPTORS, SuiteClients
from shared.config import Settings
from shared.server import ServiceApp

NAME = "gateway"


def build(settings: Settings) -> ServiceApp:
    store = GatewayStore(settings.database_url(NAME))
    clients = SuiteClients(settings.addresses, settings.stage_deadline_s)
    servicer = GatewayServicer(
        Recommender(clients, store, settings.stage_deadline_s),
        FeedbackRecorder(clients, settings.stage_deadline_s),
    )

    async def startup() -> None:
        await asyncio.to_thread(store.migrate)

    async def shutdown() -> None:
        await clients.close()
        store.engine.dispose()

    return ServiceApp(
        name=NAME,
        servicers=[
            (
                STUB_DESCRIPTORS[NAME],
                lambda server: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server),
            )
        ],
        startup=startup,
        shutdown=shutdown,
        interceptors=[ApiKeyInterceptor(server_keys(settings))],
    )
