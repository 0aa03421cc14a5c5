"""Wires the candidates service: item-kNN, EASE and popular in process, the served fusion, items
client, the GAN, servicer.

With RECSYS_CANDIDATES_GAN on, the generator is asked through TF Serving
(RECSYS_MODELSERVER_ADDR); while it is down or has no model yet, answers come from
the other sources, flagged degraded, and the service is ready all the same.
"""

from __future__ import annotations

from ml.artifacts import (
    CANDIDATE_GAN,
    COOCCURRENCE,
    POPULARITY,
    SERVING,
    CooccurrenceModel,
    PopularityModel,
    ServingConfig,
)
from ml.ease import EASE, EaseModel
from recsys.candidates.v1 import candidates_pb2_grpc
from services.candidates.gan_source import GanSource
from services.candidates.generated import GeneratedLists
from services.candidates.servicer import CandidatesServicer, FusionChoice, Neighbours
from services.candidates.settings import read_candidates_settings
from services.candidates.tfserving import ModelServerClient
from shared.clients import SuiteClients
from shared.config import MODEL_SERVER, Settings, load_section
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble
from shared.tls import client_certificate

NAME = "candidates"


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_candidates_settings)
    clients = SuiteClients.of(settings, NAME, settings.stage_deadline_s)
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    ease = ModelWatcher(settings.model_dir, EASE, EaseModel.load, settings.model_poll_s)
    popularity = ModelWatcher(settings.model_dir, POPULARITY, PopularityModel.load, settings.model_poll_s)
    serving = ModelWatcher(settings.model_dir, SERVING, ServingConfig.load, settings.model_poll_s)
    gan, closers = None, []
    if settings.candidate_gan:
        client = ModelServerClient(
            settings.addresses[MODEL_SERVER],
            CANDIDATE_GAN,
            own.model_server_deadline_s,
            certificate=client_certificate(settings, NAME),
        )
        # Not a start-up dependency: while TF Serving is down or has no model yet, candidates
        # serves its other sources and flags the generator as degraded per request.
        gan = GanSource(client, GeneratedLists(own.generated_lists) if own.generated_lists else None)
        closers.append(client.close)
    return assemble(
        NAME,
        candidates_pb2_grpc.add_CandidatesServiceServicer_to_server,
        CandidatesServicer(
            clients, Neighbours(cooccurrence, ease), popularity, FusionChoice(own.fusion, serving), gan
        ),
        models=[cooccurrence, ease, popularity, serving],
        clients=clients,
        closers=closers,
    )
