"""Wires the profile service: store, catalog check, user VAE, review sentiment and servicer."""

from __future__ import annotations

from collections.abc import Callable

from ml.sentiment import MODEL as SENTIMENT
from ml.sentiment import SentimentModel, opinion_words
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


def text_score(sentiment: ModelWatcher[SentimentModel]) -> Callable[[str], float | None]:
    """A review text's sentiment: the published classifier's, else the opinion-word rule."""

    def score(text: str) -> float | None:
        model = sentiment.model
        return float(model.scores([text])[0]) if model is not None else opinion_words(text)

    return score


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_profile_settings)
    sentiment = ModelWatcher(settings.model_dir, SENTIMENT, SentimentModel.load, settings.model_poll_s)
    store = ProfileStore(
        settings.database_url(NAME),
        own.half_life_days,
        consumed_types=own.consumed_types,
        cached_profiles=own.cached_profiles,
        text_score=text_score(sentiment),
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
        models=[vae, sentiment],
    )
