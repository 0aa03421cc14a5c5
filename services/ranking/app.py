"""Wires the ranking service: co-occurrence model and servicer."""

from __future__ import annotations

from recsys.ranking.v1 import ranking_pb2_grpc
from services.ranking.servicer import RankingServicer
from shared.artifacts import COOCCURRENCE, CooccurrenceModel
from shared.config import Settings
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "ranking"


def build(settings: Settings) -> ServiceApp:
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    return assemble(
        NAME,
        ranking_pb2_grpc.add_RankingServiceServicer_to_server,
        RankingServicer(cooccurrence),
        models=[cooccurrence],
    )
