"""Wires the candidates service: co-occurrence model, items client, servicer."""

from __future__ import annotations

from recsys.candidates.v1 import candidates_pb2_grpc
from services.candidates.servicer import CandidatesServicer
from shared.artifacts import COOCCURRENCE, CooccurrenceModel
from shared.clients import SuiteClients
from shared.config import Settings
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "candidates"


def build(settings: Settings) -> ServiceApp:
    clients = SuiteClients(settings.addresses, settings.stage_deadline_s)
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    return assemble(
        NAME,
        candidates_pb2_grpc.add_CandidatesServiceServicer_to_server,
        CandidatesServicer(clients, cooccurrence),
        models=[cooccurrence],
        clients=clients,
    )
