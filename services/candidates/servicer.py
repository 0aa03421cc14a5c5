"""CandidatesService RPCs."""

from __future__ import annotations

import logging
from collections import Counter

import grpc
from opentelemetry import trace

from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from services.candidates.retrieval import Retrieved, cooccurrence_candidates, merge
from shared import sources
from shared.artifacts import COOCCURRENCE, POPULARITY, CooccurrenceModel
from shared.clients import SuiteClients
from shared.errors import require
from shared.models import ModelWatcher

log = logging.getLogger(__name__)
DEFAULT_COUNT = 200
MAX_COUNT = 1000
MAX_IDS = 10_000


class CandidatesServicer(candidates_pb2_grpc.CandidatesServiceServicer):
    def __init__(self, clients: SuiteClients, cooccurrence: ModelWatcher[CooccurrenceModel]) -> None:
        self.clients = clients
        self.cooccurrence = cooccurrence

    async def _popular(self, count: int, exclude: list[str]) -> tuple[list[Retrieved], int]:
        try:
            response = await self.clients.items.Popular(
                items_pb2.PopularRequest(count=min(count, MAX_COUNT), exclude_item_ids=exclude)
            )
        except grpc.aio.AioRpcError as error:
            log.warning("popular source failed: %s %s", error.code().name, error.details())
            trace.get_current_span().set_attribute("recsys.candidates.failed_sources", [sources.POPULAR])
            return [], 0
        items = [Retrieved(i.item_id, sources.POPULAR, i.score) for i in response.items]
        return items, response.model_version.version

    async def Generate(
        self, request: candidates_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> candidates_pb2.GenerateResponse:
        require(bool(request.user_id.strip()), "user_id must not be empty")
        require(0 <= request.count <= MAX_COUNT, f"count must be between 0 and {MAX_COUNT}")
        require(
            len(request.history_item_ids) <= MAX_IDS and len(request.exclude_item_ids) <= MAX_IDS,
            f"history_item_ids and exclude_item_ids hold at most {MAX_IDS} ids each",
        )
        count = request.count or DEFAULT_COUNT
        exclude = set(request.exclude_item_ids)
        cooccurring = cooccurrence_candidates(
            self.cooccurrence.model, list(request.history_item_ids), exclude
        )
        popular, popular_version = await self._popular(count, list(request.exclude_item_ids))
        merged = merge([cooccurring, popular], count)
        counts = Counter(candidate.source for candidate in merged)
        span = trace.get_current_span()
        for source, n in counts.items():
            span.set_attribute(f"recsys.candidates.source.{source}", n)
        return candidates_pb2.GenerateResponse(
            candidates=[
                candidates_pb2.Candidate(
                    item_id=c.item_id,
                    source=c.source,
                    score=c.score,
                    anchor_item_id=c.anchor_item_id,
                )
                for c in merged
            ],
            source_counts=dict(counts),
            model_versions=[
                common_pb2.ModelVersion(name=COOCCURRENCE, version=self.cooccurrence.version),
                common_pb2.ModelVersion(name=POPULARITY, version=popular_version),
            ],
        )
