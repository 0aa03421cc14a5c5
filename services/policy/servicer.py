"""PolicyService RPCs. The baseline policy is greedy: the ranked order, propensity 1.0."""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry import trace

from recsys.common.v1 import common_pb2
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from services.policy.store import Decision, PolicyStore
from shared.errors import InvalidArgument, NotFound, require

POLICY_NAME = "greedy"
BUCKET = "all"
MAX_ITEMS = 1000
MAX_ID_LENGTH = 128
REWARD_VALUES: dict[int, float] = {
    common_pb2.EVENT_TYPE_VIEW: 0.0,
    common_pb2.EVENT_TYPE_CLICK: 1.0,
    common_pb2.EVENT_TYPE_ADD_TO_CART: 3.0,
    common_pb2.EVENT_TYPE_PURCHASE: 10.0,
    common_pb2.EVENT_TYPE_REVIEW: 0.0,
    common_pb2.EVENT_TYPE_LIKE: 1.0,
    common_pb2.EVENT_TYPE_SHARE: 2.0,
}


def _slate(decision: Decision) -> policy_pb2.SelectResponse:
    return policy_pb2.SelectResponse(
        items=[
            policy_pb2.SlateItem(item_id=item_id, propensity=propensity)
            for item_id, propensity in zip(decision.item_ids, decision.propensities, strict=True)
        ],
        policy=decision.policy,
        bucket=decision.bucket,
        model_version=common_pb2.ModelVersion(name=decision.policy, version=0),
    )


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    async def Select(
        self, request: policy_pb2.SelectRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.SelectResponse:
        require(bool(request.request_id.strip()), "request_id must not be empty")
        require(len(request.request_id) <= MAX_ID_LENGTH, "request_id is too long")
        require(bool(request.user_id.strip()), "user_id must not be empty")
        require(0 < len(request.items) <= MAX_ITEMS, f"items must hold 1 to {MAX_ITEMS} entries")
        require(0 < request.count <= MAX_ITEMS, f"count must be between 1 and {MAX_ITEMS}")
        chosen = list(dict.fromkeys(item.item_id for item in request.items))[: request.count]
        decision = Decision(
            request_id=request.request_id,
            user_id=request.user_id,
            policy=POLICY_NAME,
            bucket=BUCKET,
            surface=request.surface,
            item_ids=chosen,
            propensities=[1.0] * len(chosen),
        )
        logged = await asyncio.to_thread(self.store.log_decision, decision)
        span = trace.get_current_span()
        span.set_attribute("recsys.policy.name", logged.policy)
        span.set_attribute("recsys.policy.bucket", logged.bucket)
        return _slate(logged)

    async def Reward(
        self, request: policy_pb2.RewardRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.RewardResponse:
        require(bool(request.request_id.strip()), "request_id must not be empty")
        require(bool(request.event_id.strip()), "event_id must not be empty")
        if request.event_type not in REWARD_VALUES:
            raise InvalidArgument(
                "event_type must be VIEW, CLICK, ADD_TO_CART, PURCHASE, REVIEW, LIKE or SHARE"
            )
        decision = await asyncio.to_thread(self.store.decision, request.request_id)
        if decision is None:
            raise NotFound(f"no decision was logged for request_id {request.request_id!r}")
        if request.item_id not in decision.item_ids:
            raise InvalidArgument(f"item {request.item_id!r} was not shown in request {request.request_id!r}")
        value = REWARD_VALUES[request.event_type]
        stored = await asyncio.to_thread(
            self.store.add_reward,
            request.event_id,
            request.request_id,
            request.item_id,
            request.event_type,
            value,
        )
        return policy_pb2.RewardResponse(value=value, duplicate=not stored, policy=decision.policy)
