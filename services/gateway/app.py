"""Wires the gateway: API keys, request log, downstream clients, servicer."""

from __future__ import annotations

from recsys.gateway.v1 import gateway_pb2_grpc
from services.gateway.feedback import FeedbackRecorder
from services.gateway.push.log import PushLog
from services.gateway.push.planner import PushPlanner
from services.gateway.recommend import Recommender
from services.gateway.servicer import GatewayServicer
from services.gateway.store import GatewayStore
from shared.auth import ApiKeyInterceptor, server_keys
from shared.clients import SuiteClients
from shared.config import Settings
from shared.server import ServiceApp, assemble

NAME = "gateway"


def build(settings: Settings) -> ServiceApp:
    store = GatewayStore(settings.database_url(NAME))
    clients = SuiteClients(settings.addresses, settings.stage_deadline_s)
    recommender = Recommender(clients, store, settings.stage_deadline_s, settings.policy.consider)
    push_log = PushLog(store, settings.push)
    servicer = GatewayServicer(
        recommender,
        FeedbackRecorder(clients, settings.stage_deadline_s, push_log),
        PushPlanner(recommender, push_log, clients, settings.push),
        push_log,
    )
    return assemble(
        NAME,
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
        servicer,
        store=store,
        clients=clients,
        interceptors=[ApiKeyInterceptor(server_keys(settings))],
    )
