"""The gateway with the five other services in-process, over real gRPC and SQLite."""

import asyncio
import dataclasses
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ml.text_encoder import Fact, facts_of
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.items.v1 import items_pb2
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.policy.app import build as build_policy
from shared.auth import bearer_metadata, read_key
from shared.clients import SuiteClients
from shared.closed_sets import SOURCES, STAGES
from shared.keys import FAILED_LIMIT
from tests.support import ServerThread
from tests.unit.gateway.suite import (
    BASKETS,
    ITEMS,
    SEGMENTS,
    gateway_with,
    gateway_with_dead,
    hung_addresses,
    recommend,
)
from tools.cli.supervisor import free_port


def test_recommends_distinct_unbought_items_from_the_shoppers_group(gateway) -> None:
    response = recommend(gateway, "user1", 5, policy="greedy")
    ids = [item.item_id for item in response.items]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert not set(ids) & set(BASKETS["user1"])
    assert list(response.degraded_stages) == []
    top = response.items[0]
    # item-kNN and EASE found it through the shopper's item1 (the reason says so); popular found it too
    assert top.source in {"item-knn", "ease", "popular"}
    assert top.item_id in ITEMS[10:20]  # user1 buys in the second group
    assert top.title == f"Title {top.item_id}"
    assert top.reason.startswith("Often bought together with Title item1")
    assert top.propensity == 1.0
    assert response.policy == "greedy"
    assert {v.name for v in response.model_versions} == {
        "cooccurrence",
        "ease",
        "popularity",
        "item_embeddings",
        "greedy",
    }


def test_the_shoppers_bucket_policy_chooses_and_every_item_carries_its_propensity(gateway) -> None:
    response = recommend(gateway, "user1", 5)
    assert response.policy == "bandit"
    assert "bandit" in {v.name for v in response.model_versions}
    assert all(0 < item.propensity <= 1 for item in response.items)
    with pytest.raises(grpc.RpcError) as raised:
        recommend(gateway, "user1", 5, policy="thompson")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no policy named 'thompson'" in raised.value.details()


def field_violations(error: grpc.RpcError) -> list[str]:
    """The fields the BadRequest detail of an error's google.rpc.Status names."""
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())["grpc-status-details-bin"])
    bad = error_details_pb2.BadRequest()
    return [v.field for detail in status.details if detail.Unpack(bad) for v in bad.field_violations]


def test_typed_fields_name_the_surface_and_policy_and_answer_the_policy_and_sources(gateway) -> None:
    response = recommend(
        gateway, "user1", 5, surface_kind=common_pb2.SURFACE_PRODUCT, policy_kind=common_pb2.POLICY_GREEDY
    )
    assert response.policy == "greedy" and response.policy_kind == common_pb2.POLICY_GREEDY
    assert all(item.source_kind == SOURCES.number(item.source) != 0 for item in response.items)
    assert list(response.degraded) == []
    with pytest.raises(grpc.RpcError) as raised:
        recommend(gateway, "user1", 5, policy="bandit", policy_kind=common_pb2.POLICY_GREEDY)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == ["policy_kind"]


def test_count_zero_means_ten_and_bounds_are_enforced(gateway) -> None:
    assert len(recommend(gateway, "user2", 0).items) == 10
    for kwargs, message in [
        ({"user_id": "", "count": 5}, "user_id must not be empty"),
        ({"user_id": "user2", "count": 10**6}, "count must be between 0 and 100 (0 means 10); got 1000000"),
        ({"user_id": "user2", "count": -1}, "count must be between 0 and 100"),
        ({"user_id": "user2", "count": 5, "surface": "moon"}, "surface must be one of"),
        ({"user_id": "u" * 129, "count": 5}, "user_id must be at most 128 characters"),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            recommend(gateway, **kwargs)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith(message)


def test_unknown_user_gets_popular_items_as_cold_start(suite, gateway) -> None:
    response = recommend(gateway, "someone-new", 5)
    assert response.cold_start is True
    assert list(response.degraded_stages) == []
    assert [i.source for i in response.items] == ["popular"] * 5
    assert all(i.reason.startswith("Popular lately: bought by ") for i in response.items)
    check_reason_facts(suite[0], "someone-new", response)


def _segment_favourites(segment: str) -> list[str]:
    buyers: dict[str, int] = {}
    for user, basket in BASKETS.items():
        if SEGMENTS[user] == segment:
            for item in basket:
                buyers[item] = buyers.get(item, 0) + 1
    return sorted(buyers, key=lambda item: (-buyers[item], item))


def test_a_new_shopper_of_a_known_segment_gets_what_that_segment_buys(suite, gateway) -> None:
    north = recommend(gateway, "new-north", 5, policy="greedy", segment="North")
    south = recommend(gateway, "new-south", 5, policy="greedy", segment="South")
    assert north.cold_start and south.cold_start
    for response, segment in ((north, "North"), (south, "South")):
        assert {i.item_id for i in response.items} <= set(_segment_favourites(segment)[:10])
        assert all(i.reason.startswith(f"Popular in {segment}: bought by ") for i in response.items)
        check_reason_facts(suite[0], "new", response, segment=segment)
    assert [i.item_id for i in north.items] != [i.item_id for i in south.items]
    # a segment the model does not know falls back to everyone's favourites, and says so
    elsewhere = recommend(gateway, "new-elsewhere", 5, policy="greedy", segment="Atlantis")
    assert all(i.reason.startswith("Popular lately") for i in elsewhere.items)
    with pytest.raises(grpc.RpcError) as raised:
        recommend(gateway, "new", 5, segment="x" * 65)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_new_shopper_gets_items_related_to_what_they_are_looking_at(suite, gateway) -> None:
    response = recommend(gateway, "new-viewer", 5, policy="greedy", context_item_ids=["item00"])
    assert response.cold_start is True
    shown = [i.item_id for i in response.items]
    assert "item00" not in shown
    assert sum(item in ITEMS[:10] for item in shown) >= 4  # item00's group
    assert response.items[0].reason == "Often bought together with Title item00, which you are looking at"
    check_reason_facts(suite[0], "new-viewer", response, context=["item00"])
    with pytest.raises(grpc.RpcError) as raised:
        recommend(gateway, "new", 5, context_item_ids=[""])
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_excluded_items_are_left_out(gateway) -> None:
    first = [i.item_id for i in recommend(gateway, "user4", 3).items]
    again = [i.item_id for i in recommend(gateway, "user4", 3, exclude_item_ids=first[:2]).items]
    assert not set(first[:2]) & set(again)


def test_a_purchase_sent_as_feedback_is_excluded_next_time(gateway) -> None:
    stub, metadata = gateway
    shown = recommend(gateway, "user7", 3)
    bought = shown.items[0].item_id
    event = common_pb2.Event(
        event_id="fb-1",
        user_id="user7",
        item_id=bought,
        type=common_pb2.EVENT_TYPE_PURCHASE,
        request_id=shown.request_id,
    )
    answer = stub.RecordFeedback(
        gateway_pb2.RecordFeedbackRequest(events=[event]), metadata=metadata, timeout=10
    )
    assert (answer.summary.accepted, answer.summary.duplicates, answer.rewards_forwarded) == (1, 0, 1)
    again = stub.RecordFeedback(
        gateway_pb2.RecordFeedbackRequest(events=[event]), metadata=metadata, timeout=10
    )
    assert (again.summary.accepted, again.summary.duplicates, again.rewards_forwarded) == (0, 1, 0)
    assert bought not in [i.item_id for i in recommend(gateway, "user7", 10).items]


def test_an_item_the_shopper_reviewed_is_consumed_and_never_recommended_again(gateway) -> None:
    """A rated movie (a review with no purchase) is as consumed as a bought item, low rating or not."""
    stub, metadata = gateway
    shown = [item.item_id for item in recommend(gateway, "user10", 10).items]
    reviewed = shown[:2]
    events = [
        common_pb2.Event(
            event_id=f"review-{item}",
            user_id="user10",
            item_id=item,
            type=common_pb2.EVENT_TYPE_REVIEW,
            rating=rating,
        )
        for item, rating in zip(reviewed, (2, 5), strict=True)
    ]
    answer = stub.RecordFeedback(
        gateway_pb2.RecordFeedbackRequest(events=events), metadata=metadata, timeout=10
    )
    assert answer.summary.accepted == 2
    again = [item.item_id for item in recommend(gateway, "user10", 10).items]
    assert not set(reviewed) & set(again)


def _bandit_version(response) -> int:
    return next(v.version for v in response.model_versions if v.name == "bandit")


def test_a_retry_under_the_callers_request_id_answers_the_logged_slate_and_learns_nothing(gateway) -> None:
    first = recommend(gateway, "user13", 5, policy="bandit", request_id="client-req:13.a")
    assert first.request_id == "client-req:13.a"
    learned = _bandit_version(first)
    again = recommend(gateway, "user13", 5, policy="bandit", request_id="client-req:13.a")
    assert [i.item_id for i in again.items] == [i.item_id for i in first.items]
    assert [i.propensity for i in again.items] == [i.propensity for i in first.items]
    assert _bandit_version(again) == learned
    shadow = recommend(gateway, "user13", 5, policy="bandit", shadow=True)
    assert len(shadow.items) == 5 and _bandit_version(shadow) == learned
    fresh = recommend(gateway, "user13", 5, policy="bandit")
    assert _bandit_version(fresh) > learned  # a real request still learns from its impressions


def test_a_request_id_is_checked_and_never_reused_for_another_shopper(gateway) -> None:
    recommend(gateway, "user16", 3, request_id="shared-id-16")
    for user, request_id in (("user19", "shared-id-16"), ("user19", "no spaces!"), ("user19", "x" * 65)):
        with pytest.raises(grpc.RpcError) as refused:
            recommend(gateway, user, 3, request_id=request_id)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request_id


def test_feedback_rejects_bad_events_with_reasons(gateway) -> None:
    stub, metadata = gateway
    events = [common_pb2.Event(event_id="fb-bad", user_id="user7", item_id="item01")]
    answer = stub.RecordFeedback(
        gateway_pb2.RecordFeedbackRequest(events=events), metadata=metadata, timeout=10
    )
    assert answer.summary.accepted == 0
    assert [r.reason for r in answer.summary.rejected] == [
        "type must be one of VIEW, CLICK, ADD_TO_CART, PURCHASE, REVIEW, LIKE, SHARE, DISMISS"
    ]
    with pytest.raises(grpc.RpcError) as raised:
        stub.RecordFeedback(gateway_pb2.RecordFeedbackRequest(), metadata=metadata, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_callers_need_the_api_key_but_probes_do_not(suite) -> None:
    _, servers = suite
    with grpc.insecure_channel(servers["gateway"].address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        request = gateway_pb2.RecommendRequest(user_id="user1", count=3)
        for metadata in [(), bearer_metadata("wrong-key-wrong-key"), (("authorization", "Basic abc"),)]:
            with pytest.raises(grpc.RpcError) as raised:
                stub.Recommend(request, metadata=metadata, timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.PlanPushCampaign(gateway_pb2.PlanPushCampaignRequest(), timeout=5))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("dead", "sources", "reason"),
    [
        # the fused candidates, whose top item item-kNN found through the shopper's items
        (("ranking",), {"item-knn", "ease", "popular"}, "Often bought together with"),
        (("policy",), {"item-knn", "ease", "popular"}, "Often bought together with"),
        # the gateway's own popular items, ranked (with the ranker's anchor) or not
        (("candidates",), {"popular"}, ""),
        (("candidates", "ranking", "policy"), {"popular"}, "Popular lately: bought by"),
    ],
)
def test_dead_stages_degrade_instead_of_failing(suite, dead, sources, reason) -> None:
    settings, _ = suite
    degraded_gateway = gateway_with_dead(suite, *dead)
    try:
        with grpc.insecure_channel(degraded_gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            response = stub.Recommend(
                gateway_pb2.RecommendRequest(user_id="user1", count=5, policy="greedy"),
                metadata=bearer_metadata(read_key(settings)),
                timeout=10,
            )
    finally:
        degraded_gateway.stop()
    assert list(response.degraded_stages) == list(dead)
    assert [(STAGES.name_of[d.stage], d.source) for d in response.degraded] == [(s, 0) for s in dead]
    assert len(response.items) == 5
    assert response.items[0].source in sources
    assert response.items[0].reason.startswith(reason)
    assert not {i.item_id for i in response.items} & set(BASKETS["user1"])


def test_feedback_is_not_acknowledged_when_profile_is_down(suite) -> None:
    settings, _ = suite
    degraded_gateway = gateway_with_dead(suite, "profile")
    try:
        with grpc.insecure_channel(degraded_gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            event = common_pb2.Event(
                event_id="lost?", user_id="u", item_id="i", type=common_pb2.EVENT_TYPE_CLICK
            )
            with pytest.raises(grpc.RpcError) as raised:
                stub.RecordFeedback(
                    gateway_pb2.RecordFeedbackRequest(events=[event]),
                    metadata=bearer_metadata(read_key(settings)),
                    timeout=10,
                )
    finally:
        degraded_gateway.stop()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "resend the same batch" in raised.value.details()


def test_huge_and_malformed_requests_get_clear_statuses_and_nothing_crashes(suite, gateway) -> None:
    _, servers = suite
    stub, metadata = gateway
    huge = [
        common_pb2.Event(event_id=f"h{n}", user_id="u", item_id="i", type=1, text="x" * 3000)
        for n in range(6000)
    ]
    with pytest.raises(grpc.RpcError) as raised:
        stub.RecordFeedback(gateway_pb2.RecordFeedbackRequest(events=huge), metadata=metadata, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with grpc.insecure_channel(servers["gateway"].address) as channel:
        raw = channel.unary_unary("/recsys.gateway.v1.GatewayService/Recommend")
        with pytest.raises(grpc.RpcError) as raised:
            raw(b"\xff\xff\xff\xff not a protobuf", metadata=metadata, timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith("the request is not a valid protobuf message")
        # a Recommend is a few ids: 100 KB of context items is over its 64 KiB, refused unparsed
        big = gateway_pb2.RecommendRequest(user_id="user1", count=3, context_item_ids=["i" * 100] * 1000)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Recommend(big, metadata=metadata, timeout=5)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "this method takes 65,536" in raised.value.details()
        unknown = channel.unary_unary("/recsys.gateway.v1.GatewayService/Nope")
        with pytest.raises(grpc.RpcError) as raised:
            unknown(b"", metadata=metadata, timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert len(recommend(gateway, "user1", 3).items) == 3  # still serving


def check_reason_facts(settings, user_id, response, context=(), segment=""):
    """Every item has a reason, and every fact behind it holds in the profile, catalog or graph."""

    async def gather():
        clients = SuiteClients(settings.addresses, 10)
        try:
            try:
                profile = (
                    await clients.profile.GetProfile(profile_pb2.GetProfileRequest(user_id=user_id))
                ).profile
            except grpc.aio.AioRpcError:
                profile = profile_pb2.Profile()  # a shopper the profile service has never seen
            ids = {item.item_id for item in response.items}
            ids |= {f.value for item in response.items for f in item.reason_facts if f.kind.endswith("_item")}
            ids |= {f.value for item in response.items for f in item.reason_facts if f.kind == "bought_with"}
            catalog = await clients.items.GetItems(items_pb2.GetItemsRequest(item_ids=sorted(ids)))
            popular = await clients.items.Popular(items_pb2.PopularRequest(count=1000, segment=segment))
            return profile, {i.item_id: i for i in catalog.items}, popular
        finally:
            await clients.close()

    profile, catalog, popular = asyncio.run(gather())
    history = set(profile.recent_item_ids) | set(profile.purchased_item_ids)
    buyers = {item.item_id: item.buyers for item in popular.items}
    band = f"{profile.portrait.price_low:.2f}-{profile.portrait.price_high:.2f}"
    for shown in response.items:
        assert shown.reason and shown.reason_facts, shown
        item = catalog[shown.item_id]
        related = next((catalog[f.value] for f in shown.reason_facts if f.kind.endswith("_item")), None)
        for fact in shown.reason_facts:
            kind, value = fact.kind, fact.value
            if kind == "bought_with":
                assert value in history | set(context) and catalog[value].title in shown.reason
            elif kind == "recent_item":
                assert value in profile.recent_item_ids and related.title in shown.reason
            elif kind == "context_item":
                assert value in context and related.title in shown.reason
            elif kind in ("brand", "category", "attribute"):
                shared = facts_of(item) & facts_of(related)
                assert Fact(kind, value) in shared, (shown, related)
            elif kind == "segment":
                assert value == segment == popular.segment and value in shown.reason
            elif kind == "buyers":
                assert int(value) == buyers[shown.item_id] and value in shown.reason
            elif kind == "favourite_category":
                assert value in {a.name for a in profile.portrait.categories}
                assert value == ">".join(item.category_path)
            elif kind == "price_band":
                assert (
                    value == band and profile.portrait.price_low <= item.price <= profile.portrait.price_high
                )
            elif kind == "purchases":
                assert int(value) == profile.purchase_count > 0
            else:
                raise AssertionError(f"unknown fact kind {kind!r}")


def test_recommend_reasons_rest_on_facts_the_profile_and_catalog_hold(suite, gateway) -> None:
    for user in ("user1", "user2", "user5"):
        check_reason_facts(suite[0], user, recommend(gateway, user, 10))


def test_graph_and_text_reasons_name_facts_the_catalog_and_history_hold(suite, gateway) -> None:
    settings, _ = suite
    branded = [
        common_pb2.Item(
            item_id=f"kg{n}", title=f"Acme thing {n}", brand="Acme", category_path=["Home", f"Shelf{n % 2}"]
        )
        for n in range(6)
    ]
    bought = ["kg0", "kg1"]

    async def fill() -> None:
        clients = SuiteClients(settings.addresses, 10)
        try:
            await clients.items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=branded)]))
            events = [
                common_pb2.Event(
                    event_id=f"kg-user:{item}",
                    user_id="kg-user",
                    item_id=item,
                    type=common_pb2.EVENT_TYPE_CLICK,
                )
                for item in bought
            ]
            await clients.profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=events)]))
        finally:
            await clients.close()

    asyncio.run(fill())
    response = recommend(gateway, "kg-user", 40, policy="greedy")
    check_reason_facts(settings, "kg-user", response)
    graph_reasons = [
        item for item in response.items if {f.kind for f in item.reason_facts} & {"brand", "category"}
    ]
    assert graph_reasons, [item.reason for item in response.items]


def _pending_rewards(settings) -> list[str]:
    with grpc.insecure_channel(settings.addresses["profile"]) as channel:
        found = profile_pb2_grpc.ProfileServiceStub(channel).ListPendingRewards(
            profile_pb2.ListPendingRewardsRequest(limit=5000), timeout=10
        )
    return [event.event_id for event in found.events]


def test_a_reward_acknowledged_while_the_policy_is_down_is_delivered_once_it_is_back(suite, gateway) -> None:
    settings, _ = suite
    shown = recommend(gateway, "user3", 3, policy="greedy")
    event = common_pb2.Event(
        event_id="during-outage",
        user_id="user3",
        item_id=shown.items[0].item_id,
        type=common_pb2.EVENT_TYPE_CLICK,
        request_id=shown.request_id,
    )
    without_policy = gateway_with_dead(suite, "policy")
    try:
        with grpc.insecure_channel(without_policy.address) as channel:
            answer = gateway_pb2_grpc.GatewayServiceStub(channel).RecordFeedback(
                gateway_pb2.RecordFeedbackRequest(events=[event]),
                metadata=bearer_metadata(read_key(settings)),
                timeout=10,
            )
    finally:
        without_policy.stop()
    assert (answer.summary.accepted, answer.rewards_forwarded) == (1, 0)
    assert "during-outage" in _pending_rewards(settings)
    relaying = gateway_with_dead(suite, RECSYS_REWARD_RELAY_S="0.2")
    try:
        deadline = time.monotonic() + 20
        while "during-outage" in _pending_rewards(settings) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        relaying.stop()
    assert "during-outage" not in _pending_rewards(settings)
    with grpc.insecure_channel(settings.addresses["policy"]) as channel:
        again = policy_pb2_grpc.PolicyServiceStub(channel).Reward(
            policy_pb2.RewardRequest(
                request_id=shown.request_id,
                item_id=event.item_id,
                event_type=event.type,
                event_id=event.event_id,
            ),
            timeout=10,
        )
    assert again.duplicate  # the relay delivered it, and it counts once


def test_hung_stages_cost_their_share_of_the_callers_deadline_and_the_answer_comes_in_time(suite) -> None:
    """Three hung stages at a 2 s ceiling each would take 6 s; the caller gives 3 s."""
    settings, _ = suite
    with hung_addresses(3) as (candidates, ranking, policy):
        hung = gateway_with(
            suite,
            {"candidates": candidates, "ranking": ranking, "policy": policy},
            RECSYS_STAGE_DEADLINE_MS="2000",
        )
        try:
            with grpc.insecure_channel(hung.address) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                started = time.monotonic()
                response = stub.Recommend(
                    gateway_pb2.RecommendRequest(user_id="user1", count=5),
                    metadata=bearer_metadata(read_key(settings)),
                    timeout=3,
                )
                elapsed = time.monotonic() - started
        finally:
            hung.stop()
    assert elapsed < 3
    assert {"candidates", "ranking", "policy"} <= set(response.degraded_stages)
    assert len(response.items) == 5 and all(item.source == "popular" for item in response.items)


@pytest.mark.parametrize(
    "bound",
    [
        {"RECSYS_MAX_IN_FLIGHT": "1"},  # every RPC of the process
        {"RECSYS_RECOMMEND_CONCURRENCY": "1"},  # Recommend's admission
    ],
)
def test_calls_beyond_the_in_flight_bound_are_refused_at_once(suite, bound: dict[str, str]) -> None:
    settings, _ = suite
    with hung_addresses(3) as (profile, candidates, ranking):
        bounded = gateway_with(
            suite,
            {"profile": profile, "candidates": candidates, "ranking": ranking},
            RECSYS_STAGE_DEADLINE_MS="5000",
            **bound,
        )
        try:
            with grpc.insecure_channel(bounded.address) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                metadata = bearer_metadata(read_key(settings))
                request = gateway_pb2.RecommendRequest(user_id="user1", count=5)
                busy = stub.Recommend.future(request, metadata=metadata, timeout=5)
                time.sleep(0.5)  # the first call now waits on the hung stages, for most of its 5 s
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as raised:
                    stub.Recommend(request, metadata=metadata, timeout=3)
                refused_in = time.monotonic() - started
                assert busy.result().items  # the admitted call is answered, degraded
        finally:
            bounded.stop()
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused_in < 1.0


def test_while_full_recommend_is_refused_before_its_key_or_its_bytes_are_read(suite) -> None:
    """The early refusal runs before the key check and the parsing: a keyless call with bytes that
    are no RecommendRequest still gets RESOURCE_EXHAUSTED with when to retry; once the admitted
    call is answered, the same keyless call is UNAUTHENTICATED again."""
    settings, _ = suite
    with hung_addresses(3) as (profile, candidates, ranking):
        bounded = gateway_with(
            suite,
            {"profile": profile, "candidates": candidates, "ranking": ranking},
            RECSYS_STAGE_DEADLINE_MS="2000",
            RECSYS_RECOMMEND_CONCURRENCY="1",
        )
        try:
            with grpc.insecure_channel(bounded.address) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                raw = channel.unary_unary("/recsys.gateway.v1.GatewayService/Recommend")
                request = gateway_pb2.RecommendRequest(user_id="user1", count=5)
                busy = stub.Recommend.future(request, metadata=bearer_metadata(read_key(settings)), timeout=5)
                time.sleep(0.5)
                with pytest.raises(grpc.RpcError) as refused:
                    raw(b"\xff\xff not a message", timeout=3)
                assert busy.result().items
                with pytest.raises(grpc.RpcError) as keyless:
                    raw(request.SerializeToString(), timeout=3)
        finally:
            bounded.stop()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = status_pb2.Status.FromString(dict(refused.value.trailing_metadata())["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert keyless.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_stage_that_comes_back_after_an_outage_is_used_again_within_seconds(suite) -> None:
    """gRPC's default reconnect backoff grows towards two minutes: after ten seconds away a stage
    mostly waits several more seconds before it is tried again (the backoff is jittered)."""
    settings, _ = suite
    port = free_port()
    gateway = gateway_with(suite, {"policy": f"127.0.0.1:{port}"})
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)

            def degraded() -> list[str]:
                return list(
                    stub.Recommend(
                        gateway_pb2.RecommendRequest(user_id="user1", count=3),
                        metadata=bearer_metadata(read_key(settings)),
                        timeout=5,
                    ).degraded_stages
                )

            away_until = time.monotonic() + 10
            while time.monotonic() < away_until:
                assert "policy" in degraded()
                time.sleep(0.5)
            # a second policy process on the suite's database, without a metrics endpoint of its own
            alone = dataclasses.replace(settings, metrics_ports={**settings.metrics_ports, "policy": 0})
            policy = ServerThread(build_policy, alone, port)
            try:
                back = time.monotonic()
                while "policy" in degraded():
                    assert time.monotonic() - back < 3, "the gateway has not tried the policy again"
                    time.sleep(0.1)
            finally:
                policy.stop()
    finally:
        gateway.stop()


def test_keys_carry_scopes_and_rates(suite, tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("push-only-key-0123456789 scopes=push\none-a-second-0123456789 scopes=recommend rate=1\n")
    gateway = gateway_with(suite, {}, RECSYS_API_KEYS_FILE=str(keys))
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            request = gateway_pb2.RecommendRequest(user_id="user1", count=3)

            def refused(key: str) -> grpc.RpcError:
                with pytest.raises(grpc.RpcError) as raised:
                    stub.Recommend(request, metadata=bearer_metadata(key), timeout=5)
                return raised.value

            wrong_scope = refused("push-only-key-0123456789")
            assert wrong_scope.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "lacks the 'recommend' scope" in wrong_scope.details()
            push_only = bearer_metadata("push-only-key-0123456789")
            with pytest.raises(grpc.RpcError) as planned:  # the push scope lets it reach validation
                list(stub.PlanPromotions(gateway_pb2.PlanPromotionsRequest(), metadata=push_only, timeout=5))
            assert planned.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as exported:
                export = gateway_pb2.ExportPromotionDecisionsRequest()
                list(stub.ExportPromotionDecisions(export, metadata=push_only, timeout=5))
            assert exported.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "'admin'" in exported.value.details()
            assert stub.Recommend(
                request, metadata=bearer_metadata("one-a-second-0123456789"), timeout=5
            ).items
            over = refused("one-a-second-0123456789")
            assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailer = dict(over.trailing_metadata())["grpc-status-details-bin"]
            status = status_pb2.Status.FromString(trailer)
            retry = error_details_pb2.RetryInfo()
            assert any(detail.Unpack(retry) for detail in status.details)
            assert 0 < retry.retry_delay.ToNanoseconds() <= 1e9
            assert refused("not-a-key-at-all-0123456789").code() == grpc.StatusCode.UNAUTHENTICATED
            # guessing: after FAILED_LIMIT wrong keys from this address, the next ones wait
            codes = [refused(f"guess-{n:04d}-0123456789").code() for n in range(FAILED_LIMIT + 5)]
            assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == FAILED_LIMIT - 1
            assert set(codes[FAILED_LIMIT - 1 :]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert "without a valid API key" in refused("guess-again-0123456789").details()
            time.sleep(1.1)  # the key's own rate: one call a second
            assert stub.Recommend(  # a valid key from the same address is not held back
                request, metadata=bearer_metadata("one-a-second-0123456789"), timeout=5
            ).items
    finally:
        gateway.stop()
