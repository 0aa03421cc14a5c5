"""Recommend orchestration: profile, candidates, ranking, policy, catalog, each with a deadline.

A stage that fails or is late never fails the request: the gateway carries on
with what it has (popular items at worst) and names the stage in
`degraded_stages`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from recsys.candidates.v1 import candidates_pb2
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.items.v1 import items_pb2
from recsys.policy.v1 import policy_pb2
from recsys.profile.v1 import profile_pb2
from recsys.ranking.v1 import ranking_pb2
from services.gateway.budget import Budget
from services.gateway.catalog import HeldCatalog
from services.gateway.reasons import Evidence, explain
from services.gateway.store import GatewayStore, LoggedRequest
from services.gateway.typed_fields import resolved_recommend, with_typed_fields
from shared import metrics, sources
from shared.clients import SuiteClients
from shared.errors import InvalidArgument, require
from shared.limits import MAX_ID_LENGTH, MAX_SEGMENT_LENGTH
from shared.surfaces import SURFACES

log = logging.getLogger(__name__)

DEFAULT_COUNT = 10
MAX_COUNT = 100
CANDIDATE_COUNT = 200
MAX_EXCLUDE = 1000
MAX_CONTEXT = 50
MAX_POLICY_LENGTH = 64
FALLBACK_POLICY = "fallback-greedy"
# The stages one Recommend runs, in order; each call's timeout is its share of the budget left.
STAGES = ("profile", "candidates", "ranking", "catalog", "policy")
# Sources whose anchor is a recent item the candidate was found from, not one it is co-bought with.
RELATED_SOURCES = (sources.ITEM_TEXT, sources.KNOWLEDGE_GRAPH)


@dataclass
class Choice:
    """One item on its way through the stages."""

    item_id: str
    source: str
    score: float
    anchor_item_id: str = ""  # the shopper's item it is co-bought with
    # the shopper's recent item it was found from by item-text or the knowledge graph
    related_item_id: str = ""
    propensity: float = 1.0
    fusion_score: float = 0.0
    top_features: list[str] = field(default_factory=list)
    buyers: int = 0  # its distinct buyers, when the popular source found it
    # The candidates stage's record of it (None when it came from elsewhere): the fields only a few
    # of the 200 candidates need are read from it when needed, not copied for every one.
    candidate: candidates_pb2.Candidate | None = None

    @property
    def found_by(self) -> Sequence[common_pb2.SourceRank]:
        """Each source that found it, with its rank and score there."""
        return self.candidate.found_by if self.candidate is not None else ()

    @property
    def graph_path(self) -> list[tuple[str, str]]:
        """For the knowledge graph, the (relation, value) facts linking it to `related_item_id`."""
        if self.candidate is None:
            return []
        return [(link.relation, link.value) for link in self.candidate.graph_path]


@dataclass
class Progress:
    """What the stages have produced so far for one request."""

    request_id: str
    budget: Budget
    degraded: list[str] = field(default_factory=list)
    versions: list[common_pb2.ModelVersion] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    purchased: frozenset[str] = frozenset()
    context: frozenset[str] = frozenset()  # the request's context items, used as history when cold
    portrait: profile_pb2.Portrait = field(default_factory=profile_pb2.Portrait)
    popular_segment: str = ""
    purchase_count: int = 0
    last_event_time: Timestamp | None = None
    exclude: set[str] = field(default_factory=set)
    cold_start: bool = False
    policy: str = FALLBACK_POLICY
    ranking_version: int = 0

    def timeout(self, stage: str) -> float:
        """The next call's timeout: its share of the request's budget (services/gateway/budget.py)."""
        return self.budget.stage(len(STAGES) - STAGES.index(stage))

    def degrade(self, stage: str, error: grpc.aio.AioRpcError) -> None:
        log.warning("stage %s degraded: %s %s", stage, error.code().name, error.details())
        metrics.STAGE_DEGRADED.labels(stage).inc()
        self.degraded.append(stage)


@dataclass
class Decision:
    """What the stages decided for one request: the policy's slate and what is known about it."""

    user_id: str
    progress: Progress
    slate: list[Choice]
    catalog: dict[str, common_pb2.Item]
    # the ranker's score of every ranked candidate; empty when the ranking stage was degraded
    ranker_scores: dict[str, float]
    candidate_count: int
    count: int
    surface: str

    def evidence(self, choice: Choice) -> Evidence:
        """What the gateway knows about one chosen item and its shopper, for reasons."""
        progress = self.progress
        return Evidence(
            source=choice.source,
            item=self.catalog.get(choice.item_id),
            top_features=choice.top_features,
            anchor=self.catalog.get(choice.anchor_item_id),
            related=self.catalog.get(choice.related_item_id),
            graph_path=choice.graph_path,
            context=progress.context,
            buyers=choice.buyers,
            segment=progress.popular_segment,
            purchases=progress.purchase_count,
            portrait=progress.portrait,
        )

    def confidence(self) -> dict[str, float]:
        """The ranker's probability of each candidate among all ranked ones (its scores are the logits of
        a softmax over the list); empty when the ranking stage was degraded."""
        if not self.ranker_scores:
            return {}
        ids = list(self.ranker_scores)
        logits = np.array([self.ranker_scores[i] for i in ids])
        weights = np.exp(logits - logits.max())
        return dict(zip(ids, (weights / weights.sum()).tolist(), strict=True))


def _margin(item: common_pb2.Item) -> float:
    """The merchant's margin share from the item's `margin` attribute; 0 when absent or unreadable."""
    try:
        return min(max(float(item.attributes.get("margin", "0")), 0.0), 1.0)
    except ValueError:
        return 0.0


def _scored(choice: Choice, item: common_pb2.Item | None) -> policy_pb2.ScoredItem:
    """What the policy needs to know about one ranked item."""
    generator = next((found.score for found in choice.found_by if found.source == sources.GENERATOR), 0.0)
    scored = policy_pb2.ScoredItem(item_id=choice.item_id, score=choice.score, generator_score=generator)
    if item is not None:
        scored.category = item.category_path[-1] if item.category_path else ""
        scored.price = item.price
        scored.stock_status = item.stock_status
        scored.margin = _margin(item)
    return scored


def _distinct(versions: list[common_pb2.ModelVersion]) -> list[common_pb2.ModelVersion]:
    """Each (name, version) once, in first-seen order (several stages may use one model)."""
    seen: dict[tuple[str, int], common_pb2.ModelVersion] = {}
    for version in versions:
        seen.setdefault((version.name, version.version), version)
    return list(seen.values())


# A caller's request id: it names the logged decision, so it fits every table that stores one.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def validate(request: gateway_pb2.RecommendRequest) -> tuple[int, str]:
    """The effective count and surface, or INVALID_ARGUMENT."""
    require(bool(request.user_id.strip()), "user_id must not be empty")
    require(len(request.user_id) <= MAX_ID_LENGTH, f"user_id must be at most {MAX_ID_LENGTH} characters")
    require(
        0 <= request.count <= MAX_COUNT,
        f"count must be between 0 and {MAX_COUNT} (0 means {DEFAULT_COUNT}); got {request.count}",
    )
    surface = request.surface or SURFACES[0]
    require(surface in SURFACES, f"surface must be one of {', '.join(SURFACES)}; got {surface!r}")
    require(
        len(request.exclude_item_ids) <= MAX_EXCLUDE,
        f"exclude_item_ids holds at most {MAX_EXCLUDE} ids",
    )
    require(
        len(request.policy) <= MAX_POLICY_LENGTH, f"policy must be at most {MAX_POLICY_LENGTH} characters"
    )
    require(
        len(request.segment) <= MAX_SEGMENT_LENGTH, f"segment must be at most {MAX_SEGMENT_LENGTH} characters"
    )
    require(
        len(request.context_item_ids) <= MAX_CONTEXT
        and all(0 < len(item) <= MAX_ID_LENGTH for item in request.context_item_ids),
        f"context_item_ids holds at most {MAX_CONTEXT} non-empty ids of at most {MAX_ID_LENGTH} characters",
    )
    require(
        not request.request_id or CLIENT_REQUEST_ID.fullmatch(request.request_id) is not None,
        "request_id must be at most 64 letters, digits, '-', '_', '.' or ':'",
    )
    return request.count or DEFAULT_COUNT, surface


class Recommender:
    def __init__(
        self,
        clients: SuiteClients,
        store: GatewayStore,
        deadline_s: float,
        consider: int,
        catalog: HeldCatalog,
    ) -> None:
        self.clients = clients
        self.catalog = catalog  # the shown items' facts (catalog.py)
        self.consider = consider  # the policy chooses among this many of the best ranked items
        self.store = store
        self.deadline_s = deadline_s
        self._last_popular: list[Choice] = []

    async def _profile(self, user_id: str, progress: Progress) -> None:
        try:
            with metrics.STAGE_SECONDS.labels("profile").time():
                response = await self.clients.profile.GetProfile(
                    profile_pb2.GetProfileRequest(user_id=user_id), timeout=progress.timeout("profile")
                )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                progress.cold_start = True
                metrics.COLD_STARTS.inc()
            else:
                progress.degrade("profile", error)
            return
        progress.history = list(response.profile.recent_item_ids)
        progress.portrait = response.profile.portrait
        progress.purchase_count = response.profile.purchase_count
        if response.profile.HasField("last_event_time"):
            progress.last_event_time = response.profile.last_event_time
        progress.purchased = frozenset(response.profile.purchased_item_ids)
        progress.exclude.update(progress.purchased, response.profile.consumed_item_ids)

    async def _popular(self, segment: str, progress: Progress) -> list[Choice]:
        """Popular items straight from the catalog; the last good answer if that fails too."""
        try:
            with metrics.STAGE_SECONDS.labels("items").time():
                response = await self.clients.items.Popular(
                    items_pb2.PopularRequest(count=CANDIDATE_COUNT, segment=segment),
                    timeout=progress.timeout("candidates"),
                )
            self._last_popular = [
                Choice(i.item_id, sources.POPULAR, i.score, buyers=i.buyers) for i in response.items
            ]
            progress.popular_segment = response.segment
            progress.versions.append(response.model_version)
        except grpc.aio.AioRpcError as error:
            progress.degrade("items", error)
        return [c for c in self._last_popular if c.item_id not in progress.exclude]

    async def _candidates(self, user_id: str, segment: str, progress: Progress) -> list[Choice]:
        try:
            with metrics.STAGE_SECONDS.labels("candidates").time():
                response = await self.clients.candidates.Generate(
                    candidates_pb2.GenerateRequest(
                        user_id=user_id,
                        history_item_ids=progress.history,
                        exclude_item_ids=sorted(progress.exclude),
                        count=CANDIDATE_COUNT,
                        segment=segment,
                    ),
                    timeout=progress.timeout("candidates"),
                )
        except grpc.aio.AioRpcError as error:
            progress.degrade("candidates", error)
            return await self._popular(segment, progress)
        progress.popular_segment = response.popular_segment
        progress.versions.extend(response.model_versions)
        progress.degraded.extend(f"candidates/{source}" for source in response.degraded_sources)
        exclude = progress.exclude
        choices = []
        for c in response.candidates:
            item_id = c.item_id
            if item_id in exclude:
                continue
            source, anchor = c.source, c.anchor_item_id
            related = source in RELATED_SOURCES
            choices.append(
                Choice(
                    item_id,
                    source,
                    c.score,
                    "" if related else anchor,
                    anchor if related else "",
                    fusion_score=c.fusion_score,
                    buyers=c.buyers,
                    candidate=c,
                )
            )
        return choices

    async def _rank(
        self, user_id: str, surface: str, choices: list[Choice], progress: Progress
    ) -> list[Choice]:
        request = ranking_pb2.RankRequest(
            user_id=user_id,
            history_item_ids=progress.history,
            surface=surface,
            purchase_count=progress.purchase_count,
        )
        add = request.candidates.add
        for c in choices:
            add(item_id=c.item_id, fusion_score=c.fusion_score, found_by=c.found_by)
        if progress.last_event_time is not None:
            request.last_event_time.CopyFrom(progress.last_event_time)
        request.request_time.GetCurrentTime()
        try:
            with metrics.STAGE_SECONDS.labels("ranking").time():
                response = await self.clients.ranking.Rank(request, timeout=progress.timeout("ranking"))
        except grpc.aio.AioRpcError as error:
            progress.degrade("ranking", error)
            if any(c.fusion_score for c in choices):
                # the sources' own scores are on different scales: the fused score keeps their order
                for choice in choices:
                    choice.score = choice.fusion_score
            return choices
        progress.versions.append(response.model_version)
        progress.ranking_version = response.model_version.version
        by_id = {c.item_id: c for c in choices}
        ranked = []
        for item in response.items:
            choice = by_id.get(item.item_id)
            if choice is None:
                continue
            choice.score = item.score
            choice.anchor_item_id = item.top_contributor_item_id or choice.anchor_item_id
            choice.top_features = [f.feature for f in item.top_features]
            ranked.append(choice)
        return ranked

    async def _select(
        self,
        request: gateway_pb2.RecommendRequest,
        surface: str,
        count: int,
        ranked: list[Choice],
        catalog: dict[str, common_pb2.Item],
        progress: Progress,
    ) -> list[Choice]:
        try:
            with metrics.STAGE_SECONDS.labels("policy").time():
                response = await self.clients.policy.Select(
                    policy_pb2.SelectRequest(
                        request_id=progress.request_id,
                        user_id=request.user_id,
                        count=count,
                        surface=surface,
                        policy=request.policy,
                        purchase_count=progress.purchase_count,
                        items=[_scored(c, catalog.get(c.item_id)) for c in ranked],
                        shadow=request.shadow,
                        ranking_version=progress.ranking_version,
                    ),
                    timeout=progress.timeout("policy"),
                )
        except grpc.aio.AioRpcError as error:
            if request.policy and error.code() == grpc.StatusCode.NOT_FOUND:
                raise InvalidArgument(error.details() or f"unknown policy {request.policy!r}") from error
            if request.request_id and error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                # the caller's id names another shopper's decision: the caller's mistake, not an outage
                raise InvalidArgument(error.details() or "request_id was used before") from error
            progress.degrade("policy", error)
            return ranked[:count]
        progress.policy = response.policy
        progress.versions.append(response.model_version)
        by_id = {c.item_id: c for c in ranked}
        slate = []
        for item in response.items:
            if item.item_id in by_id:
                by_id[item.item_id].propensity = item.propensity
                slate.append(by_id[item.item_id])
        return slate

    async def _catalog(self, ids: list[str], progress: Progress) -> dict[str, common_pb2.Item]:
        ids = list(dict.fromkeys(i for i in ids if i))
        if not ids:
            return {}
        try:
            with metrics.STAGE_SECONDS.labels("items").time():
                return await self.catalog.items(ids, progress.timeout("catalog"))
        except grpc.aio.AioRpcError as error:
            progress.degrade("items", error)
            return {}

    async def decide(
        self, request: gateway_pb2.RecommendRequest, time_remaining: float | None = None
    ) -> Decision:
        """Runs the stages for a request (validated here) up to the policy's slate, within the
        `time_remaining` seconds the caller left (None: no deadline, each stage its ceiling)."""
        count, surface = validate(request)
        user_id = request.user_id
        progress = Progress(
            request_id=request.request_id or uuid.uuid4().hex,
            exclude=set(request.exclude_item_ids),
            budget=Budget.of(time_remaining, self.deadline_s),
        )
        await self._profile(user_id, progress)
        if not progress.history and request.context_item_ids:
            # A shopper with no history is recommended from what they are looking at.
            progress.history = list(dict.fromkeys(request.context_item_ids))
            progress.context = frozenset(progress.history)
            progress.exclude.update(progress.history)
        choices = await self._candidates(user_id, request.segment, progress)
        ranked = await self._rank(user_id, surface, choices, progress) if choices else []
        scores = {c.item_id: c.score for c in ranked} if progress.ranking_version else {}
        ranked = ranked[: max(self.consider, count)]
        catalog = await self._catalog(
            [c.item_id for c in ranked]
            + [c.anchor_item_id for c in ranked]
            + [c.related_item_id for c in ranked],
            progress,
        )
        slate = await self._select(request, surface, count, ranked, catalog, progress) if ranked else []
        return Decision(user_id, progress, slate, catalog, scores, len(choices), count, surface)

    async def recommend(
        self, request: gateway_pb2.RecommendRequest, time_remaining: float | None = None
    ) -> gateway_pb2.RecommendResponse:
        request = resolved_recommend(request)
        decision = await self.decide(request, time_remaining)
        progress = decision.progress
        response = gateway_pb2.RecommendResponse(
            request_id=progress.request_id,
            model_versions=_distinct(progress.versions),
            degraded_stages=list(dict.fromkeys(progress.degraded)),
            cold_start=progress.cold_start,
            policy=progress.policy,
        )
        for choice in decision.slate:
            item = decision.catalog.get(choice.item_id)
            explained = explain(decision.evidence(choice))
            response.items.add(
                item_id=choice.item_id,
                score=choice.score,
                source=choice.source,
                reason=explained.text if explained else "",
                reason_facts=[
                    gateway_pb2.ReasonFact(kind=kind, value=value) for kind, value in explained.facts
                ]
                if explained
                else [],
                propensity=choice.propensity,
                title=item.title if item else "",
                price=item.price if item else 0.0,
            )
        with_typed_fields(response)
        self._annotate(response, decision.candidate_count)
        metrics.RECOMMENDED_ITEMS.labels(
            progress.policy, str(progress.ranking_version), decision.surface
        ).inc(len(response.items))
        if not request.shadow:
            await self._log(request.user_id, decision.surface, decision.count, response)
        return response

    @staticmethod
    def _annotate(response: gateway_pb2.RecommendResponse, candidate_count: int) -> None:
        span = trace.get_current_span()
        span.set_attribute("recsys.request_id", response.request_id)
        span.set_attribute("recsys.candidates.count", candidate_count)
        span.set_attribute("recsys.degraded_stages", list(response.degraded_stages))
        span.set_attribute("recsys.policy", response.policy)
        span.set_attribute(
            "recsys.model_versions", [f"{v.name}:{v.version}" for v in response.model_versions]
        )

    async def _log(
        self, user_id: str, surface: str, count: int, response: gateway_pb2.RecommendResponse
    ) -> None:
        entry = LoggedRequest(
            request_id=response.request_id,
            user_id=user_id,
            surface=surface,
            count=count,
            item_ids=[item.item_id for item in response.items],
            degraded_stages=list(response.degraded_stages),
        )
        try:
            await asyncio.to_thread(self.store.log_request, entry)
        except Exception:
            log.exception("could not log request %s", response.request_id)
