"""Wires the gateway: API keys, request log, downstream clients, servicer."""

from __future__ import annotations

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway.admission import Admission, EarlyRefusal
from services.gateway.catalog import HeldCatalog
from services.gateway.feedback import FeedbackRecorder
from services.gateway.promotions.log import PromotionLog
from services.gateway.promotions.planner import PromotionPlanner
from services.gateway.push.log import PushLog
from services.gateway.push.planner import PushPlanner, money_format
from services.gateway.recommend import Recommender
from services.gateway.servicer import GatewayServicer
from services.gateway.settings import read_gateway_settings
from services.gateway.store import GatewayStore
from shared.auth import ApiKeyInterceptor, key_table
from shared.clients import SuiteClients
from shared.config import Settings, load_section
from shared.server import ServiceApp, assemble

NAME = "gateway"
RECOMMEND = f"/{gateway_pb2.DESCRIPTOR.services_by_name['GatewayService'].full_name}/Recommend"


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_gateway_settings)
    store = GatewayStore(settings.database_url(NAME))
    clients = SuiteClients.of(settings, NAME, settings.stage_deadline_s)
    catalog = HeldCatalog(clients, own.held_items)
    recommender = Recommender(clients, store, settings.stage_deadline_s, own.consider, catalog)
    push_log = PushLog(store, own.push)
    feedback = FeedbackRecorder(clients, settings.stage_deadline_s, push_log, own.reward_relay_s)
    promotion_log = PromotionLog(store)
    promotions = PromotionPlanner(
        clients, promotion_log, push_log, settings.model_dir, own.promotions, money_format(own.push.currency)
    )
    admission = Admission(own.recommend_concurrency)
    servicer = GatewayServicer(
        recommender,
        feedback,
        PushPlanner(recommender, push_log, clients, own.push),
        push_log,
        admission,
        promotions,
        promotion_log,
    )
    return assemble(
        NAME,
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
        servicer,
        store=store,
        migrate_on_start=settings.migrate_on_start,
        clients=clients,
        interceptors=[ApiKeyInterceptor(key_table(settings))],
        front_interceptors=[EarlyRefusal(admission, [RECOMMEND])],
        background=[feedback.relay],
        public=True,
    )
