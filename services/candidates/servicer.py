"""CandidatesService RPCs: every source, the availability check, the fusion."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field

import grpc
from opentelemetry import trace

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
from ml.retrieval import Fusion, Retrieved, merge, neighbour_candidates
from ml.text_encoder import ITEM_EMBEDDINGS
from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from services.candidates.availability import Availability
from services.candidates.gan_source import GanSource
from shared import metrics, sources
from shared.clients import SuiteClients
from shared.deadlines import downstream_timeout
from shared.errors import require
from shared.limits import MAX_SEGMENT_LENGTH
from shared.models import ModelWatcher

log = logging.getLogger(__name__)
DEFAULT_COUNT = 200
MAX_COUNT = 1000
MAX_IDS = 10_000
MAX_SIMILAR = 500  # the most SimilarItems returns
AVAILABILITY = "availability"
MERGE_ORDER = (
    sources.GENERATOR,
    sources.ITEM_KNN,
    sources.EASE,
    sources.POPULAR,
    sources.ITEM_TEXT,
    sources.KNOWLEDGE_GRAPH,
)
# The knowledge-graph walk starts from the shopper's latest items, each one step back weighing less.
GRAPH_SEEDS = 5
GRAPH_RECENCY = 0.8
# The item-text query: the shopper's latest items, each one step back weighing this much less.
TEXT_SEEDS = 50
TEXT_RECENCY = 0.9


@dataclass
class RemoteAnswers:
    """What the sources behind other services answered for one request."""

    lists: dict[str, list[Retrieved]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    popular_segment: str = ""  # the segment whose buyers ranked the popular list, "" for everyone


@dataclass(frozen=True)
class Neighbours:
    """The in-process sources: item-kNN's co-buys and EASE's weights, in the same layout."""

    cooccurrence: ModelWatcher[CooccurrenceModel]
    ease: ModelWatcher[EaseModel]

    def retrieve(
        self, history: list[str], exclude: set[str], count: int, decays: Mapping[str, float]
    ) -> dict[str, list[Retrieved]]:
        """Both sources' lists, whatever their fusion weight (their placements are ranking features);
        `decays`: each one's recency decay (absent: 1.0)."""
        models = {sources.ITEM_KNN: self.cooccurrence.model, sources.EASE: self.ease.model}
        return {
            source: neighbour_candidates(model, history, exclude, source, count, decays.get(source, 1.0))
            for source, model in models.items()
        }

    def versions(self) -> dict[str, int]:
        """The versions of the models loaded (none yet: not reported)."""
        loaded = {COOCCURRENCE: self.cooccurrence.version, EASE: self.ease.version}
        return {name: version for name, version in loaded.items() if version}


@dataclass(frozen=True)
class FusionChoice:
    """The fusion served: the operator's (`fixed`), else the one training chose on validation, else
    the defaults; and the neighbour sources' recency decays training chose."""

    fixed: Fusion | None
    serving: ModelWatcher[ServingConfig] | None = None

    def current(self) -> tuple[Fusion, int]:
        """The fusion and the version of the serving configuration it came from (0: not from one)."""
        if self.fixed is not None:
            return self.fixed, 0
        config = self.serving.model if self.serving is not None else None
        if config is None:
            return Fusion(), 0
        return Fusion(config.weights, config.quotas), self.serving.version  # type: ignore[union-attr]

    def recency_decays(self) -> Mapping[str, float]:
        """The neighbour sources' recency decays training chose (the operator's fusion keeps them)."""
        config = self.serving.model if self.serving is not None else None
        return config.recency_decays if config is not None else {}


class CandidatesServicer(candidates_pb2_grpc.CandidatesServiceServicer):
    def __init__(
        self,
        clients: SuiteClients,
        neighbours: Neighbours,
        popularity: ModelWatcher[PopularityModel],
        fusion: FusionChoice,
        gan: GanSource | None = None,
    ) -> None:
        self.clients = clients
        self.availability = Availability(clients)
        self.neighbours = neighbours
        self.popularity = popularity
        self.fusion = fusion
        self.gan = gan

    def _popular(self, count: int, exclude: set[str], segment: str, answers: RemoteAnswers) -> None:
        """The most popular items (among the segment's buyers where the model knows the segment), from
        the popularity model this process loads (none until one is published)."""
        model = self.popularity.model
        if model is None:
            return
        ranking, answers.popular_segment = model.in_segment(segment)
        answers.lists[sources.POPULAR] = [
            Retrieved(item_id, sources.POPULAR, score, buyers=buyers)
            for item_id, score, buyers in ranking.top(count, exclude)
        ]
        answers.versions[POPULARITY] = self.popularity.version

    async def _text_neighbours(
        self, history: list[str], excluded: list[str], count: int, timeout: float
    ) -> tuple[list[Retrieved], int] | None:
        """Items whose text embedding is close to the shopper's latest items; None while the items
        service has no text encoder (a state, not a failure)."""
        seeds = history[:TEXT_SEEDS]
        try:
            response = await self.clients.items.SimilarItems(
                items_pb2.SimilarItemsRequest(
                    item_ids=seeds,
                    weights=[TEXT_RECENCY**n for n in range(len(seeds))],
                    count=min(count, MAX_SIMILAR),
                    exclude_item_ids=excluded,
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return None  # no encoder yet, or none of the shopper's items is in the catalog
            raise
        found = [Retrieved(i.item_id, sources.ITEM_TEXT, i.score, i.anchor_item_id) for i in response.items]
        return found, response.model_version.version

    async def _graph_neighbours(
        self, history: list[str], excluded: list[str], count: int, timeout: float
    ) -> tuple[list[Retrieved], int]:
        """Items linked in the catalog graph to the shopper's latest items, in one call; each keeps
        its strongest link (score times GRAPH_RECENCY per step back) with its seed and path."""
        seeds = list(dict.fromkeys(history[:GRAPH_SEEDS]))
        try:
            response = await self.clients.items.RelatedToItems(
                items_pb2.RelatedToItemsRequest(
                    item_ids=seeds,
                    weights=[GRAPH_RECENCY**step for step in range(len(seeds))],
                    count=min(count, MAX_SIMILAR),
                    exclude_item_ids=excluded,
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return [], 0  # none of the seeds is in the catalog (or shown): they link nowhere
            raise
        found = [
            Retrieved(
                item.item_id,
                sources.KNOWLEDGE_GRAPH,
                item.score,
                item.anchor_item_id,
                tuple((link.relation, link.value) for link in item.path),
            )
            for item in response.items
        ]
        return found, 0

    async def _remote_sources(
        self,
        history: list[str],
        exclude: set[str],
        count: int,
        fusion: Fusion,
        context: grpc.aio.ServicerContext,
    ) -> RemoteAnswers:
        """For a shopper with a history, the generator's and the text and graph neighbours, concurrently;
        a source `fusion` does not use is not asked. Each call may take what the caller of `context`
        left, less what the answer needs: a source that is late is named degraded, and the others
        are answered in time."""
        excluded = sorted(exclude)  # sent to every source the items service answers
        remote = RemoteAnswers()
        asked: dict[str, tuple[str | None, Awaitable[object]]] = {}
        catalog_s = downstream_timeout(context, self.clients.default_deadline_s)
        if history:  # with no history the others have nothing to go on
            if self.gan is not None and fusion.serves(sources.GENERATOR):
                generator_s = downstream_timeout(context, self.gan.deadline_s)
                asked[sources.GENERATOR] = (CANDIDATE_GAN, self.gan.retrieve(history, exclude, generator_s))
            if fusion.serves(sources.ITEM_TEXT):
                asked[sources.ITEM_TEXT] = (
                    ITEM_EMBEDDINGS,
                    self._text_neighbours(history, excluded, count, catalog_s),
                )
            if fusion.serves(sources.KNOWLEDGE_GRAPH):
                # the graph is the live catalog: no model version to report
                asked[sources.KNOWLEDGE_GRAPH] = (
                    None,
                    self._graph_neighbours(history, excluded, count, catalog_s),
                )
        answers = await asyncio.gather(*(call for _, call in asked.values()), return_exceptions=True)
        found, versions, degraded = remote.lists, remote.versions, remote.degraded
        for (source, (model, _)), answer in zip(asked.items(), answers, strict=True):
            if isinstance(answer, grpc.aio.AioRpcError):
                log.warning("source %s failed: %s %s", source, answer.code().name, answer.details())
                degraded.append(source)
            elif isinstance(answer, Exception):
                log.error("source %s failed", source, exc_info=answer)
                degraded.append(source)
            elif isinstance(answer, BaseException):
                raise answer
            elif answer is not None:
                found[source], version = answer
                if model is not None:
                    versions[model] = version
        return remote

    async def _available(
        self, lists: dict[str, list[Retrieved]], context: grpc.aio.ServicerContext
    ) -> dict[str, list[Retrieved]] | None:
        """The lists without the items the catalog withholds (hidden, out of stock); None when the
        catalog cannot say (availability.py) in the time the caller left."""
        try:
            withheld = await self.availability.withheld(
                downstream_timeout(context, self.clients.default_deadline_s)
            )
        except grpc.aio.AioRpcError as error:
            log.warning("availability check failed: %s %s", error.code().name, error.details())
            return None
        except TimeoutError:
            log.warning("availability check failed: the catalog did not answer in the time left")
            return None
        if not withheld:
            return lists
        return {source: [c for c in found if c.item_id not in withheld] for source, found in lists.items()}

    async def Generate(
        self, request: candidates_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> candidates_pb2.GenerateResponse:
        require(bool(request.user_id.strip()), "user_id must not be empty")
        require(0 <= request.count <= MAX_COUNT, f"count must be between 0 and {MAX_COUNT}")
        require(
            len(request.history_item_ids) <= MAX_IDS and len(request.exclude_item_ids) <= MAX_IDS,
            f"history_item_ids and exclude_item_ids hold at most {MAX_IDS} ids each",
        )
        require(
            len(request.segment) <= MAX_SEGMENT_LENGTH,
            f"segment is longer than {MAX_SEGMENT_LENGTH} characters",
        )
        count = request.count or DEFAULT_COUNT
        history = list(request.history_item_ids)
        exclude = set(request.exclude_item_ids)
        fusion, serving_version = self.fusion.current()
        answers, neighbours = await asyncio.gather(
            self._remote_sources(history, exclude, count, fusion, context),
            asyncio.to_thread(
                self.neighbours.retrieve, history, exclude, count, self.fusion.recency_decays()
            ),
        )
        # popular is always asked: a shopper without a history has nothing else
        self._popular(count, exclude, request.segment, answers)
        remote, versions, degraded = answers.lists, answers.versions, answers.degraded
        remote.update(neighbours)
        versions.update(self.neighbours.versions())
        if serving_version:
            versions[SERVING] = serving_version
        lists = {source: remote[source] for source in MERGE_ORDER if source in remote}
        available = await self._available(lists, context)
        if available is None:
            degraded.append(AVAILABILITY)
            available = lists
        merged = merge(available, fusion.weights, fusion.quotas, count)
        counts = Counter(candidate.source for candidate in merged)
        span = trace.get_current_span()
        for source, n in counts.items():
            span.set_attribute(f"recsys.candidates.source.{source}", n)
            metrics.CANDIDATE_SOURCE_ITEMS.labels(source).inc(n)
        for source in degraded:
            metrics.CANDIDATE_SOURCE_DEGRADED.labels(source).inc()
        if degraded:
            span.set_attribute("recsys.candidates.degraded_sources", degraded)
        return candidates_pb2.GenerateResponse(
            candidates=[
                candidates_pb2.Candidate(
                    item_id=c.item_id,
                    source=c.source,
                    score=c.score,
                    anchor_item_id=c.anchor_item_id,
                    realism=c.realism,
                    fusion_score=c.fusion_score,
                    found_by=[
                        common_pb2.SourceRank(source=p.source, rank=p.rank, score=p.score) for p in c.found_by
                    ],
                    graph_path=[common_pb2.GraphLink(relation=r, value=v) for r, v in c.graph_path],
                    buyers=c.buyers,
                )
                for c in merged
            ],
            source_counts=dict(counts),
            model_versions=[common_pb2.ModelVersion(name=n, version=v) for n, v in versions.items()],
            degraded_sources=degraded,
            popular_segment=answers.popular_segment,
        )
