"""PlanPromotions: which shoppers receive which offers, within a budget, aimed by uplift.

The plan reads the offers from the catalog, each category's basket price (the median price of
its products), and every eligible shopper's profile; shoppers who opted out of pushes are not
eligible. With a published uplift model it sends the pairs with the best expected incremental
margin per unit of committed cost (and a share of the budget to random pairs); without one it is
a randomized trial. Either way a random share of shoppers is held out and logged. The decisions
are stored with the features the model saw before any is streamed (ml/promotions/allocate.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import statistics
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import numpy as np

from ml.promotions.allocate import TRIAL, UPLIFT, Candidate, Decision, Rules, allocate
from ml.promotions.features import FEATURES, ShopperFacts, features
from ml.promotions.offers import ACTIVITY, Offer, OfferError, offer_from_item
from ml.promotions.uplift import MODEL, UpliftModel
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from services.gateway.promotions.log import PlanMismatch, PromotionLog, StoredDecision, StoredPlan
from services.gateway.promotions.reasons import reason
from services.gateway.push.log import PushLog
from services.gateway.settings import PromotionConfig
from services.gateway.shoppers import list_page
from shared.clients import SuiteClients
from shared.errors import FailedPrecondition, InvalidArgument, Unavailable, require
from shared.limits import MAX_SEGMENT_LENGTH
from shared.models import latest_version
from shared.timestamps import checked_datetime

logger = logging.getLogger(__name__)

MAX_PLAN_ID = 64
MAX_OFFERS = 100
MAX_PER_SHOPPER_CAP = 10
TRIAL_HOLDOUT_SHARE = 0.5  # a trial learns most from an even split
PAGE = 500  # shoppers listed, read and checked for opt-outs together
CONCURRENCY = 16  # profiles read at once
LIST_DEADLINE_S = 30.0


def _arguments(request: gateway_pb2.PlanPromotionsRequest, cap: int) -> str:
    """The request's arguments as one canonical text: a rerun must ask for the same plan."""
    return json.dumps(
        {
            "offer_ids": list(request.offer_ids),
            "budget": request.budget,
            "per_shopper_cap": cap,
            "window_start": request.window_start.ToJsonString(),
            "window_end": request.window_end.ToJsonString(),
            "segment": request.segment,
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class Checked:
    """A valid request's cap and window."""

    cap: int
    window_start: datetime
    window_end: datetime


def validate(request: gateway_pb2.PlanPromotionsRequest) -> Checked:
    """Checks the request; returns the per-shopper cap and window it asks for."""
    require(
        len(request.plan_id.strip()) > 0 and len(request.plan_id) <= MAX_PLAN_ID,
        f"plan_id must hold 1 to {MAX_PLAN_ID} characters",
    )
    offers = list(request.offer_ids)
    require(0 < len(offers) <= MAX_OFFERS, f"offer_ids must name 1 to {MAX_OFFERS} offers")
    require(all(o.strip() for o in offers), "offer_ids must not hold an empty id")
    require(len(set(offers)) == len(offers), "offer_ids must not name an offer twice")
    require(math.isfinite(request.budget) and request.budget >= 0, "budget must be a finite amount >= 0")
    require(
        0 <= request.per_shopper_cap <= MAX_PER_SHOPPER_CAP,
        f"per_shopper_cap must be 0 (meaning 1) to {MAX_PER_SHOPPER_CAP}",
    )
    require(request.HasField("window_start"), "window_start must be set")
    require(request.HasField("window_end"), "window_end must be set")
    start, end = (
        checked_datetime(request.window_start, "window_start"),
        checked_datetime(request.window_end, "window_end"),
    )
    require(end > start, "window_end must be after window_start: the window is empty")
    require(
        len(request.segment) <= MAX_SEGMENT_LENGTH, f"segment must be at most {MAX_SEGMENT_LENGTH} characters"
    )
    return Checked(request.per_shopper_cap or 1, start, end)


class PromotionPlanner:
    def __init__(
        self,
        clients: SuiteClients,
        log: PromotionLog,
        push_log: PushLog,
        model_dir: Path,
        config: PromotionConfig,
        money: Callable[[float], str],
    ) -> None:
        self.clients = clients
        self.log = log
        self.push_log = push_log
        self.model_dir = model_dir
        self.config = config
        self.money = money
        # Plans being decided in this process, by plan_id, with their arguments: a call cut before
        # its plan is stored leaves the decision running, and the next call for it waits on it.
        self._deciding: dict[str, tuple[str, asyncio.Task[StoredPlan]]] = {}

    async def plan(
        self, request: gateway_pb2.PlanPromotionsRequest
    ) -> AsyncIterator[gateway_pb2.PlanPromotionsResponse]:
        checked = validate(request)
        arguments = _arguments(request, checked.cap)
        try:
            stored = await asyncio.to_thread(self.log.find, request.plan_id, arguments)
        except PlanMismatch as error:
            raise FailedPrecondition(str(error)) from error
        replayed = stored is not None
        if stored is None:
            stored = await self._decided(request, checked, arguments)
        for decision in stored.decisions:
            yield gateway_pb2.PlanPromotionsResponse(
                user_id=decision.user_id,
                offer_id=decision.offer_id,
                sent=decision.sent,
                propensity=decision.propensity,
                expected_incremental_margin=decision.expected_margin,
                reason=decision.reason,
                policy=stored.policy,
                committed=decision.committed,
                replayed=replayed,
                decisions_total=len(stored.decisions),
            )

    async def _decided(
        self, request: gateway_pb2.PlanPromotionsRequest, checked: Checked, arguments: str
    ) -> StoredPlan:
        """The stored plan, decided by a task of its own that outlives the call that started it."""
        running = self._deciding.get(request.plan_id)
        if running is not None and running[0] != arguments:
            raise FailedPrecondition(
                f"plan {request.plan_id!r} is being planned with other arguments; use a new plan_id"
            )
        if running is None:
            task = asyncio.create_task(self._decide_and_store(request, checked, arguments))
            self._deciding[request.plan_id] = (arguments, task)
            task.add_done_callback(lambda done: self._finished(request.plan_id, done))
        else:
            task = running[1]
        return await asyncio.shield(task)

    def _finished(self, plan_id: str, task: asyncio.Task[StoredPlan]) -> None:
        self._deciding.pop(plan_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("promotion plan %s could not be decided: %s", plan_id, task.exception())

    async def _decide_and_store(
        self, request: gateway_pb2.PlanPromotionsRequest, checked: Checked, arguments: str
    ) -> StoredPlan:
        return await asyncio.to_thread(self.log.store, await self._decide(request, checked, arguments))

    async def _decide(
        self, request: gateway_pb2.PlanPromotionsRequest, checked: Checked, arguments: str
    ) -> StoredPlan:
        offers = await self._offers(list(request.offer_ids))
        baskets = await self._basket_prices({offer.category for offer in offers})
        model = await asyncio.to_thread(self._model)
        shoppers = await self._shoppers(request.segment)
        pairs = [(s, o) for s in shoppers for o in offers]
        rows = {(s.user_id, o.offer_id): features(s, o, baskets[o.category]) for s, o in pairs}
        without = with_offer = np.zeros(len(pairs))
        if model is not None and pairs:
            without, with_offer = model.chances(np.stack(list(rows.values())))
        candidates = [
            Candidate(s.user_id, o, baskets[o.category], float(p0), float(p1))
            for (s, o), p0, p1 in zip(pairs, without, with_offer, strict=True)
        ]
        policy = UPLIFT if model is not None else TRIAL
        rules = Rules(
            budget=request.budget,
            per_shopper_cap=checked.cap,
            holdout_share=self.config.holdout_share if model is not None else TRIAL_HOLDOUT_SHARE,
            margin_rate=self.config.margin_rate,
            explore_share=self.config.explore_share,
        )
        chosen = await asyncio.to_thread(allocate, request.plan_id, policy, candidates, rules)
        facts = {s.user_id: s for s in shoppers}
        return StoredPlan(
            plan_id=request.plan_id,
            arguments=arguments,
            policy=policy,
            feature_names=list(FEATURES),
            window_start=checked.window_start,
            window_end=checked.window_end,
            decisions=self._stored(chosen, facts, rows, checked.window_end, model is not None),
        )

    def _stored(
        self,
        chosen: list[Decision],
        facts: dict[str, ShopperFacts],
        rows: dict[tuple[str, str], np.ndarray],
        window_end: datetime,
        modelled: bool,
    ) -> list[StoredDecision]:
        committed = 0.0
        stored = []
        for d in chosen:
            c = d.candidate
            committed += c.offer.committed_cost if d.sent else 0.0
            stored.append(
                StoredDecision(
                    user_id=c.user_id,
                    offer_id=c.offer.offer_id,
                    category=c.offer.category,
                    sent=d.sent,
                    propensity=d.propensity,
                    expected_margin=d.expected_incremental_margin if modelled else 0.0,
                    reason=reason(facts[c.user_id], c.offer, window_end, self.money),
                    committed=committed,
                    features=rows[(c.user_id, c.offer.offer_id)].tolist(),
                    basket_price=c.basket_price,
                    discount=c.offer.discount(c.basket_price),
                    cost=c.offer.cost if c.offer.kind == ACTIVITY else 0.0,
                )
            )
        return stored

    def _model(self) -> UpliftModel | None:
        version = latest_version(self.model_dir, MODEL)
        return None if version is None else UpliftModel.load(self.model_dir / MODEL / str(version))

    async def _offers(self, offer_ids: list[str]) -> list[Offer]:
        try:
            found = await self.clients.items.GetItems(items_pb2.GetItemsRequest(item_ids=offer_ids))
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"the catalog could not be read ({error.code().name}); try again") from error
        if found.missing_item_ids:
            raise InvalidArgument(
                f"offer_ids names items the catalog does not hold: {', '.join(found.missing_item_ids)}",
                field="offer_ids",
            )
        offers = []
        for n, item in enumerate(found.items):
            try:
                offers.append(offer_from_item(item))
            except OfferError as error:
                raise InvalidArgument(str(error), field=f"offer_ids[{n}]") from error
        return offers

    async def _basket_prices(self, categories: set[str]) -> dict[str, float]:
        """The median price of each category's products: the basket an offer is about."""
        prices: dict[str, list[float]] = {category: [] for category in categories}
        try:
            async for batch in self.clients.items.ExportItems(
                items_pb2.ExportItemsRequest(), timeout=LIST_DEADLINE_S
            ):
                for item in batch.items:
                    category = ">".join(item.category_path)
                    if category in prices and item.domain != common_pb2.DOMAIN_PROMOTION and item.price > 0:
                        prices[category].append(item.price)
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"the catalog could not be read ({error.code().name}); try again") from error
        empty = sorted(category for category, found in prices.items() if not found)
        if empty:
            raise InvalidArgument(
                f"no priced product in the offers' categories {', '.join(empty)}: an offer needs a basket",
                field="offer_ids",
            )
        return {category: statistics.median(found) for category, found in prices.items()}

    async def _shoppers(self, segment: str) -> list[ShopperFacts]:
        """Every shopper of the segment who has not opted out, with their profile's facts."""
        shoppers: list[ShopperFacts] = []
        last = ""
        limit = asyncio.Semaphore(CONCURRENCY)

        async def read(user_id: str) -> ShopperFacts:
            async with limit:
                found = await self.clients.profile.GetProfile(profile_pb2.GetProfileRequest(user_id=user_id))
                return ShopperFacts.from_profile(found.profile)

        while True:
            page = list(
                (await list_page(self.clients, segment, last, PAGE, LIST_DEADLINE_S, "try again")).user_ids
            )
            if not page:
                return shoppers
            settings = await asyncio.to_thread(self.push_log.settings_of, page)
            eligible = [u for u in page if not (u in settings and settings[u].opted_out)]
            try:
                shoppers.extend(await asyncio.gather(*(read(u) for u in eligible)))
            except grpc.aio.AioRpcError as error:
                raise Unavailable(
                    f"the profile service could not read a shopper ({error.code().name}); try again"
                ) from error
            last = page[-1]


async def export_decisions(
    log: PromotionLog, request: gateway_pb2.ExportPromotionDecisionsRequest, clock: Callable[[], datetime]
) -> AsyncIterator[gateway_pb2.ExportPromotionDecisionsResponse]:
    """The decisions of every plan whose window has ended, with what the model saw."""
    before = clock()
    if request.HasField("windows_ended_before"):
        before = checked_datetime(request.windows_ended_before, "windows_ended_before")
    for plan, decisions in await asyncio.to_thread(lambda: list(log.ended(before))):
        for d in decisions:
            response = gateway_pb2.ExportPromotionDecisionsResponse(
                plan_id=plan.plan_id,
                user_id=d.user_id,
                offer_id=d.offer_id,
                category=d.category,
                sent=d.sent,
                propensity=d.propensity,
                features=d.features,
                feature_names=plan.feature_names,
                basket_price=d.basket_price,
                discount=d.discount,
                cost=d.cost,
            )
            response.window_start.FromDatetime(plan.window_start)
            response.window_end.FromDatetime(plan.window_end)
            yield response
