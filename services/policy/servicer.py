"""PolicyService RPCs: choose a slate with the shopper's policy, log it, learn from rewards."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
from opentelemetry import trace

from recsys.common.v1 import common_pb2
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from services.policy.context import candidates, considered
from services.policy.policies import assigned, bucket_of, fusion, named_policies
from services.policy.settings import PolicySettings
from services.policy.slates import (
    BANDIT,
    GREEDY,
    SlateRule,
    exact_propensities,
    sample_slates,
    served_propensities,
    within_budget,
)
from services.policy.store import Decision, PolicyStore
from shared.errors import InvalidArgument, NotFound, require
from shared.limits import MAX_ID_LENGTH

MAX_ITEMS = 1000


def reward_values(weights: dict[str, float]) -> dict[int, float]:
    """The configured reward of each event type, by its enum value."""
    return {
        value: weights[name.removeprefix("EVENT_TYPE_").lower()]
        for name, value in common_pb2.EventType.items()
        if value != common_pb2.EVENT_TYPE_UNSPECIFIED
    }


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, store: PolicyStore, settings: PolicySettings) -> None:
        self.store = store
        self.settings = settings
        self.policies = named_policies(settings)
        self.fusion = fusion(settings)
        self.rewards = reward_values(dict(settings.reward_weights))
        self.rng = np.random.default_rng(settings.seed)  # numpy generators lock; threads may share it

    def _version(self, policy: str) -> common_pb2.ModelVersion:
        learns = self.policies[policy].learns
        return common_pb2.ModelVersion(name=policy, version=self.store.model(policy).updates if learns else 0)

    def _response(self, decision: Decision) -> policy_pb2.SelectResponse:
        return policy_pb2.SelectResponse(
            items=[
                policy_pb2.SlateItem(item_id=item_id, propensity=propensity)
                for item_id, propensity in zip(decision.item_ids, decision.propensities, strict=True)
            ],
            policy=decision.policy,
            bucket=decision.bucket,
            model_version=self._version(decision.policy),
        )

    def _decide(self, request: policy_pb2.SelectRequest, policy: str, bucket: int) -> Decision:
        items = considered(request.items, self.settings.consider)
        ids = [item.item_id for item in items]
        logged, shown, shopper_shown = self.store.selection_context(request.request_id, request.user_id, ids)
        if logged is not None:
            if logged.user_id != request.user_id:
                raise InvalidArgument(f"request_id {request.request_id!r} was used for another shopper")
            return logged
        named = self.policies[policy]
        found = candidates(items, request.purchase_count, shown, shopper_shown)
        model = self.store.model(policy) if named.learns else None
        chosen: list[int] = []
        propensities: list[float] = []
        if items:
            scores = self.fusion.scores(found, model, self.settings.bandit_alpha)
            slates = sample_slates(
                named.rule,
                scores,
                found.category_codes(),
                request.count,
                1 if exact_propensities(named.rule) else self.settings.propensity_samples,
                self.rng,
            )
            chosen, propensities = slates[0].tolist(), served_propensities(named.rule, slates, scores)
            if named.rule.kind == BANDIT and self.settings.exploration_budget < 1:
                greedy_rule = SlateRule(GREEDY, category_cap=named.rule.category_cap)
                greedy = sample_slates(
                    greedy_rule,
                    self.fusion.scores(found, None, 0.0),
                    found.category_codes(),
                    request.count,
                    1,
                    self.rng,
                )[0]
                budgeted = within_budget(slates, greedy, self.settings.exploration_budget, self.rng, len(ids))
                chosen, propensities = budgeted.slate.tolist(), budgeted.propensities
                trace.get_current_span().set_attribute("recsys.policy.exploration_share", budgeted.share)
        decision = Decision(
            request_id=request.request_id,
            user_id=request.user_id,
            policy=policy,
            bucket=str(bucket),
            surface=request.surface,
            item_ids=[ids[j] for j in chosen],
            propensities=propensities,
            candidate_ids=ids,
            categories=found.categories,
            features=found.features.astype(np.float32).astype(np.float64),
            ranking_version=request.ranking_version,
        )
        if request.shadow:
            return decision
        return self.store.log_decision(decision, named.learns)

    async def Select(
        self, request: policy_pb2.SelectRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.SelectResponse:
        require(bool(request.request_id.strip()), "request_id must not be empty")
        require(len(request.request_id) <= MAX_ID_LENGTH, "request_id is too long")
        require(bool(request.user_id.strip()), "user_id must not be empty")
        require(0 < len(request.items) <= MAX_ITEMS, f"items must hold 1 to {MAX_ITEMS} entries")
        require(0 < request.count <= MAX_ITEMS, f"count must be between 1 and {MAX_ITEMS}")
        require(
            len({item.item_id for item in request.items}) == len(request.items), "item ids must be distinct"
        )
        bucket = bucket_of(request.user_id, self.settings.salt)
        policy = request.policy or assigned(bucket, self.settings.shares)
        if policy not in self.policies:
            raise NotFound(f"no policy named {policy!r}; known: {', '.join(self.policies)}")
        decision = await asyncio.to_thread(self._decide, request, policy, bucket)
        span = trace.get_current_span()
        span.set_attribute("recsys.policy.name", decision.policy)
        span.set_attribute("recsys.policy.bucket", decision.bucket)
        return self._response(decision)

    async def Reward(
        self, request: policy_pb2.RewardRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.RewardResponse:
        require(bool(request.request_id.strip()), "request_id must not be empty")
        require(bool(request.event_id.strip()), "event_id must not be empty")
        require(
            len(request.event_id) <= MAX_ID_LENGTH, f"event_id must be at most {MAX_ID_LENGTH} characters"
        )
        if request.event_type not in self.rewards:
            known = ", ".join(name.removeprefix("EVENT_TYPE_") for name in common_pb2.EventType.keys()[1:])
            raise InvalidArgument(f"event_type must be one of {known}")
        decision = await asyncio.to_thread(self.store.decision, request.request_id)
        if decision is None:
            raise NotFound(f"no decision was logged for request_id {request.request_id!r}")
        if request.item_id not in decision.item_ids:
            raise InvalidArgument(f"item {request.item_id!r} was not shown in request {request.request_id!r}")
        value = self.rewards[request.event_type]
        stored = await asyncio.to_thread(
            self.store.add_reward,
            request.event_id,
            decision,
            request.item_id,
            request.event_type,
            value,
            self.policies[decision.policy].learns,
        )
        return policy_pb2.RewardResponse(
            value=value,
            duplicate=not stored,
            policy=decision.policy,
            ranking_version=decision.ranking_version,
        )
