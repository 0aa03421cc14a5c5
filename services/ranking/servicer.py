"""RankingService RPCs."""

from __future__ import annotations

import grpc
from opentelemetry import trace

from recsys.common.v1 import common_pb2
from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from services.ranking.scoring import RANKER_NAME, score_candidates
from shared.artifacts import COOCCURRENCE, CooccurrenceModel
from shared.errors import require
from shared.models import ModelWatcher

MAX_CANDIDATES = 1000
MAX_HISTORY = 10_000


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(self, cooccurrence: ModelWatcher[CooccurrenceModel]) -> None:
        self.cooccurrence = cooccurrence

    async def Rank(
        self, request: ranking_pb2.RankRequest, context: grpc.aio.ServicerContext
    ) -> ranking_pb2.RankResponse:
        require(bool(request.user_id.strip()), "user_id must not be empty")
        require(len(request.item_ids) > 0, "item_ids must not be empty")
        require(
            len(request.item_ids) <= MAX_CANDIDATES,
            f"at most {MAX_CANDIDATES} item_ids per call, got {len(request.item_ids)}",
        )
        require(len(set(request.item_ids)) == len(request.item_ids), "item_ids must be distinct")
        require(
            len(request.history_item_ids) <= MAX_HISTORY,
            f"history_item_ids holds at most {MAX_HISTORY} ids",
        )
        scored = score_candidates(
            self.cooccurrence.model, list(request.history_item_ids), list(request.item_ids)
        )
        trace.get_current_span().set_attribute("recsys.ranking.ranker", RANKER_NAME)
        return ranking_pb2.RankResponse(
            items=[
                ranking_pb2.RankedItem(
                    item_id=s.item_id,
                    score=s.score,
                    top_contributor_item_id=s.top_contributor_item_id,
                )
                for s in scored
            ],
            model_version=common_pb2.ModelVersion(name=COOCCURRENCE, version=self.cooccurrence.version),
        )
