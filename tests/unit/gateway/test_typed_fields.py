"""The gateway's answers carry the typed twin of each closed-set string."""

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from services.gateway.typed_fields import resolved_recommend, with_template_kind, with_typed_fields


def test_a_failed_candidate_source_is_typed_as_its_stage_and_source() -> None:
    response = gateway_pb2.RecommendResponse(
        policy="epsilon-greedy", degraded_stages=["profile", "candidates/candidate-gan"]
    )
    response.items.add(item_id="a", source="knowledge-graph")
    with_typed_fields(response)
    assert [(d.stage, d.source) for d in response.degraded] == [
        (common_pb2.STAGE_PROFILE, common_pb2.SOURCE_UNSPECIFIED),
        (common_pb2.STAGE_CANDIDATES, common_pb2.SOURCE_CANDIDATE_GAN),
    ]
    assert response.policy_kind == common_pb2.POLICY_EPSILON_GREEDY
    assert response.items[0].source_kind == common_pb2.SOURCE_KNOWLEDGE_GRAPH


def test_typed_request_fields_become_the_strings_the_pipeline_reads() -> None:
    typed = gateway_pb2.RecommendRequest(user_id="u", surface_kind=common_pb2.SURFACE_CART)
    resolved = resolved_recommend(typed)
    assert (resolved.surface, resolved.policy) == ("cart", "")
    assert typed.surface == ""  # the caller's message is left as it was
    plain = gateway_pb2.RecommendRequest(user_id="u", surface="push")
    assert resolved_recommend(plain) is plain


def test_a_stored_push_gets_its_typed_template() -> None:
    push = with_template_kind(gateway_pb2.PushMessage(template="back_in_stock"))
    assert push.template_kind == gateway_pb2.PUSH_TEMPLATE_BACK_IN_STOCK
