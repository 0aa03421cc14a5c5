"""The gateway's typed fields (enums) beside its string fields: requests may name a surface or
a policy by either, and answers carry both (shared/closed_sets.py)."""

from __future__ import annotations

from recsys.gateway.v1 import gateway_pb2
from shared.closed_sets import POLICIES, PUSH_TEMPLATES, SOURCES, STAGES, SURFACES


def resolved_recommend(request: gateway_pb2.RecommendRequest) -> gateway_pb2.RecommendRequest:
    """The request with its string fields naming what its typed fields name (INVALID_ARGUMENT
    when the two disagree); the request itself when no typed field is set."""
    if not request.surface_kind and not request.policy_kind:
        return request
    resolved = gateway_pb2.RecommendRequest()
    resolved.CopyFrom(request)
    resolved.surface = SURFACES.resolve(request.surface, request.surface_kind, "surface")
    resolved.policy = POLICIES.resolve(request.policy, request.policy_kind, "policy")
    return resolved


def resolved_policy(request: gateway_pb2.GeneratePushRequest) -> str:
    """The policy a push request names by `policy` or `policy_kind` ("" for the shopper's bucket)."""
    return POLICIES.resolve(request.policy, request.policy_kind, "policy")


def with_typed_fields(response: gateway_pb2.RecommendResponse) -> gateway_pb2.RecommendResponse:
    """Fills the typed twins of the response's policy, degraded stages and item sources."""
    response.policy_kind = POLICIES.number(response.policy)  # type: ignore[assignment]
    for degraded in response.degraded_stages:
        stage, _, source = degraded.partition("/")
        response.degraded.add(stage=STAGES.number(stage), source=SOURCES.number(source))  # type: ignore[arg-type]
    for item in response.items:
        item.source_kind = SOURCES.number(item.source)  # type: ignore[assignment]
    return response


def with_template_kind(push: gateway_pb2.PushMessage) -> gateway_pb2.PushMessage:
    """Fills the push's typed template from its `template` (also for pushes stored before it existed)."""
    push.template_kind = PUSH_TEMPLATES.number(push.template)  # type: ignore[assignment]
    return push
