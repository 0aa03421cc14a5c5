"""Wires the ranking service: the learned ranker, the order training chose, the co-occurrence fallback."""

from __future__ import annotations

from ml.artifacts import COOCCURRENCE, RANKER, SERVING, CooccurrenceModel, ServingConfig
from ml.ranking.ranker import RankerModel
from recsys.ranking.v1 import ranking_pb2_grpc
from services.ranking.servicer import RankingServicer
from services.ranking.settings import read_ranking_settings
from shared.config import Settings, load_section
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "ranking"


def build(settings: Settings) -> ServiceApp:
    own = load_section(settings, read_ranking_settings)
    cooccurrence = ModelWatcher(
        settings.model_dir, COOCCURRENCE, CooccurrenceModel.load, settings.model_poll_s
    )
    models: list[ModelWatcher] = [cooccurrence]
    serving = ModelWatcher(settings.model_dir, SERVING, ServingConfig.load, settings.model_poll_s)
    models.append(serving)
    ranker = None
    if own.ranker == "learned":
        ranker = ModelWatcher(settings.model_dir, RANKER, RankerModel.load, settings.model_poll_s)
        models.append(ranker)
    return assemble(
        NAME,
        ranking_pb2_grpc.add_RankingServiceServicer_to_server,
        RankingServicer(ranker, cooccurrence, serving),
        models=models,
    )
