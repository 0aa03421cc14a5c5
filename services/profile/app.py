"""Wires the profile service: store, catalog check, user VAE, review sentiment, event weights and
servicer."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ml.event_weights import DEFAULT_WEIGHTS, EventWeights
from ml.event_weights import MODEL as EVENT_WEIGHTS
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


def event_weights(published: ModelWatcher[EventWeights]) -> Callable[[], Mapping[int, float]]:
    """How much each event type counts in the portrait: the published weights, else the defaults."""
    return lambda: published.model.weights if published.model is not None else DEFAULT_WEIGHTS


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_profile_settings)
    sentiment = ModelWatcher(settings.model_dir, SENTIMENT, SentimentModel.load, settings.model_poll_s)
    weights = ModelWatcher(settings.model_dir, EVENT_WEIGHTS, EventWeights.load, settings.model_poll_s)
    store = ProfileStore(
        settings.database_url(NAME),
        own.half_life_days,
        consumed_types=own.consumed_types,
        cached_profiles=own.cached_profiles,
        text_score=text_score(sentiment),
        event_weights=event_weights(weights),
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
        models=[vae, sentiment, weights],
    )
