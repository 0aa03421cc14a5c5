"""Wires the candidates service: item-kNN and EASE, the served fusion, items client, the GAN, servicer.

With RECSYS_CANDIDATES_GAN on, the service reports SERVING only once TF Serving
(RECSYS_MODELSERVER_ADDR) has the candidate GAN AVAILABLE; afterwards a failing
model server degrades the answers to the other sources instead of failing them.
"""

from __future__ import annotations

from functools import partial

from ml.artifacts import CANDIDATE_GAN, COOCCURRENCE, SERVING, CooccurrenceModel, ServingConfig
from ml.ease import EASE, EaseModel
from recsys.candidates.v1 import candidates_pb2_grpc
from services.candidates.servicer import CandidatesServicer, FusionChoice, Neighbours
from services.candidates.settings import read_candidates_settings
from shared.clients import SuiteClients
from shared.config import MODEL_SERVER, Settings, load_section
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "candidates"
# How often and how long start-up polls GetModelStatus before it logs and starts over.
STATUS_POLL_S = 0.5
STATUS_WAIT_S = 30.0


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_candidates_settings)
    clients = SuiteClients(settings.addresses, settings.stage_deadline_s)
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    ease = ModelWatcher(settings.model_dir, EASE, EaseModel.load, settings.model_poll_s)
    serving = ModelWatcher(settings.model_dir, SERVING, ServingConfig.load, settings.model_poll_s)
    gan, dependencies, closers = None, [], []
    if settings.candidate_gan:
        from services.candidates.gan_source import GanSource  # TensorFlow loads only when needed
        from services.candidates.tfserving import ModelServerClient

        client = ModelServerClient(
            settings.addresses[MODEL_SERVER], CANDIDATE_GAN, own.model_server_deadline_s
        )
        gan = GanSource(client)
        dependencies.append(partial(client.wait_available, STATUS_POLL_S, STATUS_WAIT_S))
        closers.append(client.close)
    return assemble(
        NAME,
        candidates_pb2_grpc.add_CandidatesServiceServicer_to_server,
        CandidatesServicer(clients, Neighbours(cooccurrence, ease), FusionChoice(own.fusion, serving), gan),
        models=[cooccurrence, ease, serving],
        clients=clients,
        dependencies=dependencies,
        closers=closers,
    )
