"""Wires the ranking service: the learned ranker, the co-occurrence baseline it falls back to."""

from __future__ import annotations

from recsys.ranking.v1 import ranking_pb2_grpc
from services.ranking.ranker import RankerModel
from services.ranking.servicer import RankingServicer
from shared.artifacts import COOCCURRENCE, RANKER, CooccurrenceModel
from shared.config import Settings
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "ranking"


def build(settings: Settings) -> ServiceApp:
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    models: list[ModelWatcher] = [cooccurrence]
    ranker = None
    if settings.ranker == "learned":
        ranker = ModelWatcher(settings.model_dir, RANKER, RankerModel.load, settings.model_poll_s)
        models.append(ranker)
    return assemble(
        NAME,
        ranking_pb2_grpc.add_RankingServiceServicer_to_server,
        RankingServicer(ranker, cooccurrence),
        models=models,
    )
