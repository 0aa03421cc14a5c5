"""Wires the candidates service: item-kNN model, items client, the GAN through TF Serving, servicer.

With RECSYS_CANDIDATES_GAN on, the service reports SERVING only once TF Serving
(RECSYS_MODELSERVER_ADDR) has the candidate GAN AVAILABLE; afterwards a failing
model server degrades the answers to the other sources instead of failing them.
"""

from __future__ import annotations

from functools import partial

from recsys.candidates.v1 import candidates_pb2_grpc
from services.candidates.servicer import CandidatesServicer
from shared.artifacts import CANDIDATE_GAN, COOCCURRENCE, CooccurrenceModel
from shared.clients import SuiteClients
from shared.config import MODEL_SERVER, Settings
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "candidates"
# How often and how long start-up polls GetModelStatus before it logs and starts over.
STATUS_POLL_S = 0.5
STATUS_WAIT_S = 30.0


def build(settings: Settings) -> ServiceApp:
    clients = SuiteClients(settings.addresses, settings.stage_deadline_s)
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    gan, dependencies, closers = None, [], []
    if settings.candidate_gan:
        from services.candidates.gan_source import GanSource  # TensorFlow loads only when needed
        from shared.tfserving import ModelServerClient

        client = ModelServerClient(
            settings.addresses[MODEL_SERVER], CANDIDATE_GAN, settings.model_server_deadline_s
        )
        gan = GanSource(client)
        dependencies.append(partial(client.wait_available, STATUS_POLL_S, STATUS_WAIT_S))
        closers.append(client.close)
    return assemble(
        NAME,
        candidates_pb2_grpc.add_CandidatesServiceServicer_to_server,
        CandidatesServicer(clients, cooccurrence, settings.candidate_weights, settings.candidate_quotas, gan),
        models=[cooccurrence],
        clients=clients,
        dependencies=dependencies,
        closers=closers,
    )
