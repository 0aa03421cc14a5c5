"""Wires the policy service: decision store and servicer."""

from __future__ import annotations

from recsys.policy.v1 import policy_pb2_grpc
from services.policy.servicer import PolicyServicer
from services.policy.settings import read_policy_settings
from services.policy.store import PolicyStore
from shared.config import Settings, load_section
from shared.server import ServiceApp, assemble

NAME = "policy"


def build(settings: Settings) -> ServiceApp:
    store = PolicyStore(settings.database_url(NAME))
    return assemble(
        NAME,
        policy_pb2_grpc.add_PolicyServiceServicer_to_server,
        PolicyServicer(store, load_section(settings, read_policy_settings)),
        store=store,
        migrate_on_start=settings.migrate_on_start,
    )
