"""RankingService RPCs: what training chose on validation (the learned ranker, or the candidates' own
fused order), the co-occurrence baseline when nothing was chosen and no ranker is published."""

from __future__ import annotations

import asyncio
import json

import grpc
from opentelemetry import trace

from ml.artifacts import CANDIDATE_ORDER, COOCCURRENCE, RANKER, SERVING, CooccurrenceModel, ServingConfig
from ml.ranking.features import RankCandidate, Shopper
from ml.ranking.ranker import Ranked, RankerModel
from recsys.common.v1 import common_pb2
from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from services.ranking.scoring import RANKER_NAME, score_candidates
from shared.errors import NotFound, require
from shared.models import ModelWatcher
from shared.sources import Placement
from shared.surfaces import SURFACES
from shared.timestamps import OUT_OF_RANGE, in_range

MAX_CANDIDATES = 1000
MAX_HISTORY = 10_000


def _validate(request: ranking_pb2.RankRequest) -> None:
    require(bool(request.user_id.strip()), "user_id must not be empty")
    require(len(request.candidates) > 0, "candidates must not be empty")
    require(
        len(request.candidates) <= MAX_CANDIDATES,
        f"at most {MAX_CANDIDATES} candidates per call, got {len(request.candidates)}",
    )
    ids = [c.item_id for c in request.candidates]
    require(all(ids), "every candidate needs an item_id")
    require(len(set(ids)) == len(ids), "candidate item_ids must be distinct")
    require(
        len(request.history_item_ids) <= MAX_HISTORY,
        f"history_item_ids holds at most {MAX_HISTORY} ids",
    )
    require(request.purchase_count >= 0, f"purchase_count must not be negative, got {request.purchase_count}")
    require(
        not request.HasField("last_event_time") or in_range(request.last_event_time),
        f"last_event_time: {OUT_OF_RANGE}",
    )
    require(
        not request.surface or request.surface in SURFACES,
        f"surface must be one of {', '.join(SURFACES)}; got {request.surface!r}",
    )


def _shopper(request: ranking_pb2.RankRequest) -> Shopper:
    return Shopper(
        history=list(request.history_item_ids),
        purchases=request.purchase_count,
        last_active=request.last_event_time.ToSeconds() if request.HasField("last_event_time") else None,
        surface=request.surface or SURFACES[0],
    )


def _candidates(request: ranking_pb2.RankRequest) -> list[RankCandidate]:
    return [
        RankCandidate(
            c.item_id,
            c.fusion_score,
            tuple(Placement(p.source, p.rank, p.score) for p in c.found_by),
        )
        for c in request.candidates
    ]


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(
        self,
        ranker: ModelWatcher[RankerModel] | None,
        cooccurrence: ModelWatcher[CooccurrenceModel],
        serving: ModelWatcher[ServingConfig] | None = None,
    ) -> None:
        """`ranker` None: always the co-occurrence baseline (RECSYS_RANKER=baseline); `serving` is
        followed for the order only with a ranker, and reported by GetServing either way."""
        self.ranker = ranker
        self.cooccurrence = cooccurrence
        self.serving = serving

    async def Rank(
        self, request: ranking_pb2.RankRequest, context: grpc.aio.ServicerContext
    ) -> ranking_pb2.RankResponse:
        _validate(request)
        config = self.serving.model if self.serving is not None and self.ranker is not None else None
        if config is not None and config.ranker == CANDIDATE_ORDER:
            return self._candidate_order(request)
        model = self.ranker.model if self.ranker is not None else None
        if self.ranker is None or model is None:
            return self._baseline(request)
        ranked = await asyncio.to_thread(model.rank, _shopper(request), _candidates(request))
        trace.get_current_span().set_attribute("recsys.ranking.ranker", RANKER)
        return ranking_pb2.RankResponse(
            items=[_ranked_item(r) for r in ranked],
            model_version=common_pb2.ModelVersion(name=RANKER, version=self.ranker.version),
        )

    async def GetServing(
        self, request: ranking_pb2.GetServingRequest, context: grpc.aio.ServicerContext
    ) -> ranking_pb2.GetServingResponse:
        config = self.serving.model if self.serving is not None else None
        if config is None:
            raise NotFound("no serving configuration yet: `recsys train` publishes one")
        return ranking_pb2.GetServingResponse(
            model_version=common_pb2.ModelVersion(name=SERVING, version=self.serving.version),  # type: ignore[union-attr]
            order=config.ranker,
            weights=dict(config.weights),
            quotas=dict(config.quotas),
            report_json=json.dumps(config.report),
        )

    def _candidate_order(self, request: ranking_pb2.RankRequest) -> ranking_pb2.RankResponse:
        """The candidates as retrieval fused them: training found no ranker that beats that order."""
        trace.get_current_span().set_attribute("recsys.ranking.ranker", CANDIDATE_ORDER)
        count = len(request.candidates)
        return ranking_pb2.RankResponse(
            items=[
                ranking_pb2.RankedItem(item_id=c.item_id, score=float(count - position))
                for position, c in enumerate(request.candidates)
            ],
            model_version=common_pb2.ModelVersion(name=SERVING, version=self.serving.version),  # type: ignore[union-attr]
        )

    def _baseline(self, request: ranking_pb2.RankRequest) -> ranking_pb2.RankResponse:
        scored = score_candidates(
            self.cooccurrence.model,
            list(request.history_item_ids),
            [c.item_id for c in request.candidates],
        )
        trace.get_current_span().set_attribute("recsys.ranking.ranker", RANKER_NAME)
        return ranking_pb2.RankResponse(
            items=[
                ranking_pb2.RankedItem(
                    item_id=s.item_id, score=s.score, top_contributor_item_id=s.top_contributor_item_id
                )
                for s in scored
            ],
            model_version=common_pb2.ModelVersion(name=COOCCURRENCE, version=self.cooccurrence.version),
        )


def _ranked_item(ranked: Ranked) -> ranking_pb2.RankedItem:
    return ranking_pb2.RankedItem(
        item_id=ranked.item_id,
        score=ranked.score,
        top_contributor_item_id=ranked.anchor_item_id,
        top_features=[
            ranking_pb2.FeatureContribution(feature=name, contribution=value)
            for name, value in ranked.contributions
        ],
    )
