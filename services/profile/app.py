"""Wires the profile service: store and servicer."""

from __future__ import annotations

from recsys.profile.v1 import profile_pb2_grpc
from services.profile.catalog import CatalogCheck
from services.profile.servicer import ProfileServicer
from services.profile.store import ProfileStore
from shared.clients import SuiteClients
from shared.config import Settings
from shared.server import ServiceApp, assemble

NAME = "profile"


def build(settings: Settings) -> ServiceApp:
    store = ProfileStore(settings.database_url(NAME))
    clients = SuiteClients(settings.addresses, settings.stage_deadline_s)
    return assemble(
        NAME,
        profile_pb2_grpc.add_ProfileServiceServicer_to_server,
        ProfileServicer(store, CatalogCheck(clients)),
        store=store,
        clients=clients,
    )
