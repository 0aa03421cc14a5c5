"""PlanPromotions over real gRPC: profile, items and the gateway in-process on SQLite, a small
promotion catalog, shoppers with histories, one who opted out; a trial plan before any model, an
uplift plan once one is published, replays, clear refusals, and the export the trainer reads."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from typer.testing import CliRunner

from ml.promotions.features import FEATURES
from ml.promotions.uplift import MODEL, LoggedOutcome, UpliftModel
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from services.gateway.app import build as build_gateway
from services.gateway.promotions.log import PromotionLog
from services.gateway.promotions.planner import PromotionPlanner
from services.gateway.push.log import PushLog
from services.gateway.settings import PromotionConfig, PushConfig
from services.gateway.store import GatewayStore
from services.items.app import build as build_items
from services.profile.app import build as build_profile
from shared.auth import bearer_metadata, read_key
from shared.clients import SuiteClients
from shared.models import publish
from tests.support import ServerThread, make_settings, suite_env
from tests.unit.gateway.test_gateway import field_violations
from tools.cli.main import app

SHOPPERS = [f"shopper{n:02d}" for n in range(40)]
OPTED_OUT = "shopper00"
KITCHEN = [f"kitchen{n}" for n in range(10)]
TOOLS = [f"tools{n}" for n in range(10)]
OFFERS = [
    common_pb2.Item(
        item_id="coupon-kitchen",
        title="20% off Kitchen",
        category_path=["Home", "Kitchen"],
        domain=common_pb2.DOMAIN_PROMOTION,
        kind="coupon",
        attributes={"percent_off": "0.2", "max_discount": "2"},
    ),
    common_pb2.Item(
        item_id="workshop-tools",
        title="Tools workshop",
        category_path=["Garden", "Tools"],
        domain=common_pb2.DOMAIN_PROMOTION,
        kind="activity",
        attributes={"cost": "0.5", "capacity": "3"},
    ),
    common_pb2.Item(
        item_id="coupon-broken",
        title="Broken coupon",
        category_path=["Home", "Kitchen"],
        domain=common_pb2.DOMAIN_PROMOTION,
        kind="coupon",
        attributes={"percent_off": "20%", "max_discount": "2"},
    ),
]
START = datetime(2030, 1, 6, tzinfo=UTC)


async def _fill(settings) -> None:
    clients = SuiteClients(settings.addresses, 10)
    try:
        products = [
            common_pb2.Item(item_id=i, title=i, price=4.0 + n, category_path=path)
            for group, path in ((KITCHEN, ["Home", "Kitchen"]), (TOOLS, ["Garden", "Tools"]))
            for n, i in enumerate(group)
        ]
        await clients.items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=[*products, *OFFERS])]))
        events = [
            common_pb2.Event(
                event_id=f"{user}:{k}",
                user_id=user,
                item_id=(KITCHEN if u % 2 else TOOLS)[(u + k) % 10],
                type=common_pb2.EVENT_TYPE_PURCHASE,
                price=4.0 + (u + k) % 10,
            )
            for u, user in enumerate(SHOPPERS)
            for k in range(3)
        ]
        await clients.profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=events)]))
    finally:
        await clients.close()


@pytest.fixture(scope="module")
def promo_suite(tmp_path_factory):
    home = tmp_path_factory.mktemp("promo-home")
    settings = make_settings(str(home), **suite_env())
    servers = {
        name: ServerThread(build, settings, settings.ports[name])
        for name, build in (("profile", build_profile), ("items", build_items), ("gateway", build_gateway))
    }
    try:
        asyncio.run(_fill(settings))
        with grpc.insecure_channel(servers["gateway"].address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            metadata = bearer_metadata(read_key(settings))
            stub.UpdatePushSettings(
                gateway_pb2.UpdatePushSettingsRequest(
                    settings=[gateway_pb2.PushSettings(user_id=OPTED_OUT, opted_out=True)]
                ),
                metadata=metadata,
            )
            yield settings, stub, metadata
    finally:
        for server in servers.values():
            server.stop()


def _request(
    plan_id: str,
    budget: float = 6.0,
    offers=("coupon-kitchen", "workshop-tools"),
    days: float = 7,
    start: datetime = START,
):
    request = gateway_pb2.PlanPromotionsRequest(plan_id=plan_id, offer_ids=list(offers), budget=budget)
    request.window_start.FromDatetime(start)
    request.window_end.FromDatetime(start + timedelta(days=days))
    return request


def _plan(promo_suite, request) -> list[gateway_pb2.PlanPromotionsResponse]:
    _, stub, metadata = promo_suite
    return list(stub.PlanPromotions(request, metadata=metadata, timeout=60))


def _committed(decisions) -> float:
    costs = {"coupon-kitchen": 2.0, "workshop-tools": 0.5}
    return sum(costs[d.offer_id] for d in decisions if d.sent)


def test_before_any_model_the_plan_is_a_randomized_trial_within_its_budget(promo_suite) -> None:
    decisions = _plan(promo_suite, _request("trial-1", budget=6.0))
    assert decisions and {d.policy for d in decisions} == {"trial"}
    assert {d.propensity for d in decisions} == {0.5}
    assert {d.sent for d in decisions} == {True, False}  # half of the shoppers are held out
    assert _committed(decisions) <= 6.0 and decisions[-1].committed == pytest.approx(_committed(decisions))
    assert OPTED_OUT not in {d.user_id for d in decisions}
    assert sum(d.sent for d in decisions if d.offer_id == "workshop-tools") <= 3  # its capacity
    assert len({d.user_id for d in decisions}) == len(decisions)  # one offer per shopper
    coupon = next(d for d in decisions if d.offer_id == "coupon-kitchen")
    assert "20% off Kitchen, up to £2.00, until 13 Jan" in coupon.reason


def test_the_same_plan_id_replays_and_other_arguments_are_refused(promo_suite) -> None:
    first = _plan(promo_suite, _request("replay-1"))
    again = _plan(promo_suite, _request("replay-1"))
    assert [(d.user_id, d.offer_id, d.sent) for d in again] == [
        (d.user_id, d.offer_id, d.sent) for d in first
    ]
    assert all(d.replayed for d in again) and not any(d.replayed for d in first)
    with pytest.raises(grpc.RpcError) as raised:
        _plan(promo_suite, _request("replay-1", budget=7.0))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: setattr(r, "budget", -1.0), "budget"),
        (lambda r: setattr(r, "budget", float("inf")), "budget"),
        (lambda r: r.offer_ids.append("no-such-offer"), "offer_ids"),
        (lambda r: r.offer_ids.append("kitchen1"), "offer_ids[2]"),
        (lambda r: r.offer_ids.append("coupon-broken"), "offer_ids[2]"),
        (lambda r: r.window_end.CopyFrom(r.window_start), "window_end"),
        (lambda r: r.ClearField("window_start"), "window_start"),
        (lambda r: setattr(r.window_start, "seconds", -(2**44)), "window_start"),
        (lambda r: setattr(r, "plan_id", ""), "plan_id"),
        (lambda r: setattr(r, "per_shopper_cap", 11), "per_shopper_cap"),
    ],
)
def test_bad_plans_are_invalid_arguments_naming_the_field(promo_suite, change, field) -> None:
    request = _request("bad")
    change(request)
    with pytest.raises(grpc.RpcError) as raised:
        _plan(promo_suite, request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == [field]


def _publish_model(settings) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURES)))
    x[:, 0] = 1.0
    sent = rng.random(2000) < 0.5
    affinity = FEATURES.index("category_affinity")
    bought = rng.random(2000) < 0.1 + sent * (0.3 / (1 + np.exp(-3 * x[:, affinity])))
    model = UpliftModel.fit([LoggedOutcome(x[n], bool(sent[n]), 0.5, bool(bought[n])) for n in range(2000)])
    publish(settings.model_dir, MODEL, model.save)


def test_with_a_published_model_the_plan_aims_by_uplift_and_logs_what_it_saw(promo_suite) -> None:
    settings, stub, metadata = promo_suite
    _publish_model(settings)
    decisions = _plan(promo_suite, _request("uplift-1", budget=20.0))
    assert decisions and {d.policy for d in decisions} == {"uplift"}
    assert all(d.propensity == pytest.approx(0.9) for d in decisions)
    assert _committed(decisions) <= 20.0
    assert any(d.expected_incremental_margin > 0 for d in decisions)
    assert OPTED_OUT not in {d.user_id for d in decisions}
    ended = timestamp_pb2.Timestamp()
    ended.FromDatetime(START + timedelta(days=30))
    exported = list(
        stub.ExportPromotionDecisions(
            gateway_pb2.ExportPromotionDecisionsRequest(windows_ended_before=ended),
            metadata=metadata,
            timeout=30,
        )
    )
    mine = [e for e in exported if e.plan_id == "uplift-1"]
    assert len(mine) == len(decisions)
    assert all(len(e.features) == len(FEATURES) and list(e.feature_names) == list(FEATURES) for e in mine)
    assert {e.category for e in mine} <= {"Home>Kitchen", "Garden>Tools"}
    not_yet = timestamp_pb2.Timestamp()
    not_yet.FromDatetime(START)
    early = stub.ExportPromotionDecisions(
        gateway_pb2.ExportPromotionDecisionsRequest(windows_ended_before=not_yet),
        metadata=metadata,
        timeout=30,
    )
    assert not [e for e in early if e.plan_id == "uplift-1"]


def test_recsys_promo_plan_writes_the_decisions_and_says_how_to_read_them_again(
    promo_suite, tmp_path, monkeypatch
) -> None:
    settings, _, _ = promo_suite
    for name, value in settings.env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "plan.csv"
    arguments = [
        "promo", "plan", "--offer", "coupon-kitchen", "--plan-id", "cli-1",
        "--start", "2030-01-06", "--days", "7", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, [*arguments, "--budget=4"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows and {row["offer_id"] for row in rows} == {"coupon-kitchen"}
    assert sum(row["sent"] == "True" for row in rows) == 2  # 4 of budget, 2 per coupon
    assert "recsys promo plan --plan-id cli-1 --offer coupon-kitchen --budget 4" in result.output
    refused = CliRunner().invoke(app, [*arguments, "--budget=-1"], terminal_width=200)
    assert refused.exit_code == 1 and "INVALID_ARGUMENT" in refused.output


def test_recsys_promo_train_reads_the_ended_plans_and_says_when_they_are_too_few(
    promo_suite, monkeypatch
) -> None:
    settings, _, _ = promo_suite
    ended = _plan(
        promo_suite, _request("ended-1", budget=6.0, days=1, start=datetime(2025, 1, 6, tzinfo=UTC))
    )
    for name, value in settings.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["promo", "train"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"{len(ended)} logged decisions of ended plans" in result.output
    assert "not trained:" in result.output and "uplift needs 200" in result.output


class CountingPlanner(PromotionPlanner):
    """The gateway's planner, counting the plans it decides (and slow to start each, so that a
    call can be cut while its plan is being decided)."""

    decided = 0

    async def _decide(self, request, checked, arguments):
        type(self).decided += 1
        await asyncio.sleep(0.3)
        return await super()._decide(request, checked, arguments)


def test_a_call_cut_while_its_plan_is_decided_leaves_the_decision_to_the_next_call(promo_suite) -> None:
    settings, _, _ = promo_suite

    async def scenario() -> list[gateway_pb2.PlanPromotionsResponse]:
        clients = SuiteClients(settings.addresses, 10)
        store = GatewayStore(settings.database_url("gateway"))
        planner = CountingPlanner(
            clients,
            PromotionLog(store),
            PushLog(store, PushConfig()),
            settings.model_dir,
            PromotionConfig(),
            str,
        )
        try:
            request = _request("cut-1", start=datetime(2031, 1, 6, tzinfo=UTC))
            first = asyncio.create_task(_drain(planner.plan(request)))
            await asyncio.sleep(0.1)  # the decision has started
            first.cancel()  # the caller went away (a deadline, a cut connection)
            return await _drain(planner.plan(request))
        finally:
            await clients.close()
            store.close()

    decisions = asyncio.run(scenario())
    assert decisions and CountingPlanner.decided == 1


async def _drain(stream) -> list:
    return [item async for item in stream]
