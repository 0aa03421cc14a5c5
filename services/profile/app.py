"""Wires the profile service: store, catalog check, user VAE and servicer."""

from __future__ import annotations

from ml.vae import USER_VAE, UserEncoder
from recsys.profile.v1 import profile_pb2_grpc
from services.profile.catalog import CatalogCheck
from services.profile.servicer import ProfileServicer
from services.profile.settings import read_profile_settings
from services.profile.store import ProfileStore
from shared.clients import SuiteClients
from shared.config import Settings, load_section
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "profile"


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_profile_settings)
    store = ProfileStore(
        settings.database_url(NAME),
        own.half_life_days,
        consumed_types=own.consumed_types,
        cached_profiles=own.cached_profiles,
    )
    clients = SuiteClients.of(settings, NAME, settings.stage_deadline_s)
    vae = ModelWatcher(settings.model_dir, USER_VAE, UserEncoder.load, settings.model_poll_s)
    return assemble(
        NAME,
        profile_pb2_grpc.add_ProfileServiceServicer_to_server,
        ProfileServicer(store, CatalogCheck(clients), vae),
        store=store,
        migrate_on_start=settings.migrate_on_start,
        clients=clients,
        models=[vae],
    )
