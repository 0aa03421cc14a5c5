"""GeneratePush, PlanPushCampaign and UpdatePushSettings on the simulated suite, over real gRPC."""

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from services.gateway.push.log import pushes
from services.gateway.push.settings import MAX_SETTINGS
from services.gateway.push.templates import LANGUAGES, LIMITS, OCCASIONS
from services.gateway.push.timing import QuietHours
from services.gateway.store import GatewayStore
from shared.auth import bearer_metadata, read_key
from shared.clients import SuiteClients
from shared.limits import MAX_ID_LENGTH
from tests.unit.gateway.suite import BASKETS, ITEMS, SEGMENTS, gateway_with_dead, recommend

QUIET = QuietHours(22, 8)


def _call(settings, work):
    async def run():
        clients = SuiteClients(settings.addresses, 10)
        try:
            return await work(clients)
        finally:
            await clients.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def priced(suite):
    """Every item priced 4.00, then the second group dropped to 3.00 (a fresh price drop)."""
    settings, _ = suite

    async def work(clients):
        for prices in ({i: 4.0 for i in ITEMS}, {i: 3.0 for i in ITEMS[10:20]}):
            items = [common_pb2.Item(item_id=i, title=f"Title {i}", price=p) for i, p in prices.items()]
            await clients.items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=items)]))

    _call(settings, work)
    return settings


def generate(gateway, user_id, language="", policy=""):
    stub, metadata = gateway
    return stub.GeneratePush(
        gateway_pb2.GeneratePushRequest(user_id=user_id, language=language, policy=policy),
        metadata=metadata,
        timeout=20,
    )


def settings_of(gateway, *entries):
    stub, metadata = gateway
    return stub.UpdatePushSettings(
        gateway_pb2.UpdatePushSettingsRequest(settings=list(entries)), metadata=metadata, timeout=10
    )


def check_push(settings, push, zone="UTC"):
    """The message fits, is timed well, and every fact behind it holds in the profile or catalog."""

    async def work(clients):
        profile = (
            await clients.profile.GetProfile(profile_pb2.GetProfileRequest(user_id=push.user_id))
        ).profile
        ids = sorted(
            {*push.item_ids, *(f.value for f in push.reason_facts if f.kind.endswith("_item"))}
            | {f.value for f in push.reason_facts if f.kind == "bought_with"}
        )
        catalog = await clients.items.GetItems(items_pb2.GetItemsRequest(item_ids=ids))
        popular = await clients.items.Popular(items_pb2.PopularRequest(count=1000))
        return profile, {i.item_id: i for i in catalog.items}, popular

    profile, catalog, popular = _call(settings, work)
    title_limit, body_limit = LIMITS[push.language]
    assert push.template in OCCASIONS and push.push_id and push.request_id
    assert 0 < len(push.title) <= title_limit and 0 < len(push.body) <= body_limit and push.reason
    assert "{" not in push.title + push.body
    (item_id,) = push.item_ids
    assert item_id not in profile.purchased_item_ids
    assert item_id in push.deep_link and push.request_id in push.deep_link
    item = catalog[item_id]
    assert item.title in push.body or "…" in push.body
    when = push.send_time.ToDatetime(tzinfo=UTC)
    assert when > datetime.now(UTC) - timedelta(seconds=5)
    assert when.astimezone(ZoneInfo(zone)).hour not in QUIET
    assert 0 < push.confidence <= 1
    buyers = {i.item_id: i.buyers for i in popular.items}
    assert push.reason_facts
    for fact in push.reason_facts:
        kind, value = fact.kind, fact.value
        if kind == "bought_with":
            assert value in profile.purchased_item_ids or value in profile.recent_item_ids
        elif kind == "recent_item":
            assert value in profile.recent_item_ids
        elif kind == "price_drop":
            assert f"{item.previous_price:.2f}" == value and item.previous_price > item.price
        elif kind in ("new_arrival", "back_in_stock"):
            stamp = item.listed_time if kind == "new_arrival" else item.restocked_time
            assert stamp.ToDatetime().date().isoformat() == value
        elif kind == "buyers":
            assert int(value) == buyers[item_id]
        elif kind == "segment":
            assert value in set(SEGMENTS.values())
        elif kind == "purchases":
            assert int(value) == profile.purchase_count
        elif kind == "favourite_category":
            assert value in {a.name for a in profile.portrait.categories}
        elif kind == "price_band":
            assert profile.portrait.price_low <= item.price <= profile.portrait.price_high
        else:
            raise AssertionError(f"unexpected fact {kind}={value}")


def test_every_push_outcome_is_a_series_from_the_start(suite) -> None:
    """The dashboard's pushes panel rates these counters: each needs a sample before its first push."""
    for occasion in OCCASIONS:
        for language in LANGUAGES:
            labels = {"outcome": "planned", "template": occasion, "language": language}
            assert REGISTRY.get_sample_value("recsys_pushes_total", labels) is not None
    skipped = {"outcome": "skipped", "template": "", "language": ""}
    assert REGISTRY.get_sample_value("recsys_pushes_total", skipped) is not None


def test_a_push_is_written_in_each_language_from_facts_that_hold(priced, gateway) -> None:
    answers = [generate(gateway, "user1"), generate(gateway, "user2", "zh-Hans")]
    assert all(a.HasField("push") for a in answers), [a.skip_reason for a in answers]
    english, chinese = (a.push for a in answers)
    assert english.language == "en" and chinese.language == "zh-CN"
    check_push(priced, english)
    check_push(priced, chinese)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.body)


def test_a_price_drop_down_the_slate_beats_a_top_pick_and_names_both_prices(priced, gateway) -> None:
    # A shopper who only looked at a first-group item: no purchase to complete, and the greedy
    # policy's slate (the ranker's order) opens with first-group items, whose prices did not drop,
    # before second-group ones, whose prices did.
    look = common_pb2.Event(
        event_id="looker:item05", user_id="looker", item_id="item05", type=common_pb2.EVENT_TYPE_VIEW
    )
    _call(priced, lambda c: c.profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=[look])])))
    slate = [i.item_id for i in recommend(gateway, "looker", 10, surface="push", policy="greedy").items]
    dropped = set(ITEMS[10:20])
    assert slate[0] not in dropped and dropped & set(slate[1:]), slate
    push = generate(gateway, "looker", policy="greedy").push
    assert push.template == "price_drop" and push.item_ids[0] in dropped, push
    assert push.template_kind == gateway_pb2.PUSH_TEMPLATE_PRICE_DROP
    assert "£3.00" in push.body and "£4.00" in push.body
    assert ("price_drop", "4.00") in {(f.kind, f.value) for f in push.reason_facts}
    check_push(priced, push)


def test_every_shopper_shown_an_item_sees_its_one_list_price(priced, gateway) -> None:
    """Personalization chooses what a shopper sees, never what they pay: each price is the catalog's."""
    seen: dict[str, set[float]] = {}
    for user in [*BASKETS, "a-new-shopper"]:
        for policy in ("greedy", "bandit"):
            for item in recommend(gateway, user, 10, policy=policy).items:
                seen.setdefault(item.item_id, set()).add(item.price)
    found = _call(priced, lambda c: c.items.GetItems(items_pb2.GetItemsRequest(item_ids=sorted(seen)))).items
    catalog = {item.item_id: item.price for item in found}
    assert len(seen) > 15 and {3.0, 4.0} <= set(catalog.values())
    assert all(prices == {catalog[item]} for item, prices in seen.items())


def test_caps_and_the_dedupe_window_hold_across_calls(priced, gateway) -> None:
    first, second, third = (generate(gateway, "user10") for _ in range(3))
    assert first.push.item_ids != second.push.item_ids  # no item twice within the dedupe window
    assert not third.HasField("push") and third.skip_reason == "daily cap reached (2 per 24 hours)"


def test_opted_out_and_unknown_shoppers_get_no_push_with_a_reason(priced, gateway) -> None:
    settings_of(gateway, gateway_pb2.PushSettings(user_id="user7", opted_out=True))
    assert generate(gateway, "user7").skip_reason == "opted out"
    assert generate(gateway, "stranger").skip_reason == "the shopper has no events yet"


def test_the_most_settings_one_call_may_hold_are_stored(priced, gateway) -> None:
    """10,000 entries of the longest ids: the contract's bound, not the request size limit, decides
    (a 64 KB limit refused 2,000 entries with RESOURCE_EXHAUSTED)."""
    entries = [
        gateway_pb2.PushSettings(
            user_id=f"{n:05d}".rjust(MAX_ID_LENGTH, "s"),
            language="zh-CN",
            time_zone="America/Argentina/Buenos_Aires",
        )
        for n in range(MAX_SETTINGS)
    ]
    assert settings_of(gateway, *entries).stored == MAX_SETTINGS


def test_a_shoppers_language_and_time_zone_settings_are_used(priced, gateway) -> None:
    settings_of(gateway, gateway_pb2.PushSettings(user_id="user8", language="zh", time_zone="Asia/Shanghai"))
    push = generate(gateway, "user8").push
    assert push.language == "zh-CN"
    check_push(priced, push, zone="Asia/Shanghai")


def test_bad_push_requests_get_invalid_argument(gateway) -> None:
    stub, metadata = gateway
    bad_calls = [
        lambda: generate(gateway, ""),
        lambda: generate(gateway, "user1", "fr"),
        lambda: generate(gateway, "user1", policy="oracle"),
        lambda: settings_of(gateway, gateway_pb2.PushSettings(user_id="u", time_zone="Mars/Olympus")),
        # a name too long for the file system: was INTERNAL (found by `make chaos`)
        lambda: settings_of(gateway, gateway_pb2.PushSettings(user_id="u", time_zone="x" * 5000)),
        lambda: settings_of(gateway, gateway_pb2.PushSettings(user_id="u", language="klingon")),
        lambda: settings_of(gateway),
        lambda: list(
            stub.PlanPushCampaign(gateway_pb2.PlanPushCampaignRequest(), metadata=metadata, timeout=5)
        ),
    ]
    for call in bad_calls:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()


def _campaign(gateway, campaign_id, segment):
    stub, metadata = gateway
    request = gateway_pb2.PlanPushCampaignRequest(campaign_id=campaign_id, segment=segment)
    return list(stub.PlanPushCampaign(request, metadata=metadata, timeout=60))


def test_a_campaign_covers_its_segment_once_and_a_rerun_duplicates_nothing(priced, gateway) -> None:
    settings_of(gateway, gateway_pb2.PushSettings(user_id="user3", opted_out=True))
    north = sorted(user for user, segment in SEGMENTS.items() if segment == "North")
    first = _campaign(gateway, "north-1", "North")
    assert [r.user_id for r in first] == north and {r.users_total for r in first} == {len(north)}
    assert not any(r.replayed for r in first)
    by_user = {r.user_id: r for r in first}
    assert by_user["user3"].skip_reason == "opted out"
    planned = [r.push for r in first if r.HasField("push")]
    assert len(planned) >= len(north) // 2
    for push in planned:
        assert push.campaign_id == "north-1"
        check_push(priced, push)
    again = _campaign(gateway, "north-1", "North")
    assert all(r.replayed for r in again)
    assert [(r.user_id, r.push.push_id, r.skip_reason) for r in again] == [
        (r.user_id, r.push.push_id, r.skip_reason) for r in first
    ]
    store = GatewayStore(priced.database_url("gateway"))
    with store.engine.connect() as connection:
        logged = connection.execute(
            select(pushes.c.user_id).where(pushes.c.campaign_id == "north-1")
        ).scalars()
        assert sorted(logged) == sorted(p.user_id for p in planned)  # one push per shopper, logged once
    store.close()
    with pytest.raises(grpc.RpcError) as raised:
        _campaign(gateway, "north-1", "South")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_opening_and_buying_a_push_marks_it_and_rewards_the_policy(priced, gateway) -> None:
    push = generate(gateway, "user13").push
    stub, metadata = gateway
    events = [
        common_pb2.Event(
            event_id=f"push-{push.push_id}-{kind}",
            user_id="user13",
            item_id=push.item_ids[0],
            type=kind,
            request_id=push.request_id,
            surface="push",
            price=3.0,
        )
        for kind in (common_pb2.EVENT_TYPE_CLICK, common_pb2.EVENT_TYPE_PURCHASE)
    ]
    answer = stub.RecordFeedback(
        gateway_pb2.RecordFeedbackRequest(events=events), metadata=metadata, timeout=10
    )
    assert answer.rewards_forwarded == 2
    store = GatewayStore(priced.database_url("gateway"))
    with store.engine.connect() as connection:
        row = connection.execute(select(pushes).where(pushes.c.push_id == push.push_id)).one()
    store.close()
    assert row.opened_at is not None and row.converted_at is not None


def test_no_push_while_a_stage_it_needs_is_down_and_a_rerun_plans_it(priced, suite, gateway) -> None:
    outcomes = {}
    for dead in ("ranking", "profile"):
        degraded = gateway_with_dead(suite, dead)
        try:
            with grpc.insecure_channel(degraded.address) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                metadata = bearer_metadata(read_key(priced))
                answer = stub.GeneratePush(
                    gateway_pb2.GeneratePushRequest(user_id="user16"), metadata=metadata, timeout=20
                )
                assert not answer.HasField("push") and answer.skip_reason == f"not planned: {dead} degraded"
                request = gateway_pb2.PlanPushCampaignRequest(campaign_id="stages-down", segment="South")
                try:
                    outcomes[dead] = list(stub.PlanPushCampaign(request, metadata=metadata, timeout=60))
                except grpc.RpcError as error:
                    outcomes[dead] = error
        finally:
            degraded.stop()
    skipped = {o.skip_reason for o in outcomes["ranking"]}
    assert "not planned: ranking degraded" in skipped
    # on a loaded machine another stage may miss its deadline too; the skip then names both
    assert all(r == "opted out" or (r.startswith("not planned: ") and "ranking" in r) for r in skipped)
    # without the profile service the shoppers cannot even be listed: the campaign stops, resumable
    assert outcomes["profile"].code() == grpc.StatusCode.UNAVAILABLE
    assert "rerun the same campaign_id" in outcomes["profile"].details()
    # the degraded skips were not stored: once the stages are back, the same campaign plans those shoppers
    again = {o.user_id: o for o in _campaign(gateway, "stages-down", "South")}
    for first in outcomes["ranking"]:
        assert again[first.user_id].replayed == (first.skip_reason == "opted out")
    assert any(o.HasField("push") for o in again.values())


def test_no_push_below_the_minimum_confidence(priced, suite) -> None:
    strict = gateway_with_dead(suite, RECSYS_PUSH_MIN_CONFIDENCE="0.999", RECSYS_STAGE_DEADLINE_MS="5000")
    try:
        with grpc.insecure_channel(strict.address) as channel:
            answer = gateway_pb2_grpc.GatewayServiceStub(channel).GeneratePush(
                gateway_pb2.GeneratePushRequest(user_id="user19"),
                metadata=bearer_metadata(read_key(priced)),
                timeout=20,
            )
    finally:
        strict.stop()
    assert not answer.HasField("push")
    assert answer.skip_reason.startswith("no item reaches the minimum confidence 0.999 (best 0.")
