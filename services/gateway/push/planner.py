"""GeneratePush and PlanPushCampaign: choose, write and time each shopper's push.

The item comes from the Recommend pipeline itself (surface "push", items
pushed within the dedupe window left out), so the policy logs the decision and
is rewarded when the shopper opens (CLICK) or buys (PURCHASE) with the push's
request_id. Among the slate items that are in stock and that the ranker is
confident enough about, the first with a real occasion (news, a completed
purchase, a cross-domain link) becomes the push; only when none has one is the
first plain top pick sent, since an occasion is what makes a push worth its
interruption. Its send time is the shopper's best local hour outside quiet
hours, and the fatigue rules are checked again when it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.log import CampaignMismatch, Outcome, PushLog, UserSettings
from services.gateway.push.occasions import TOP_PICK, PushFacts, occasions
from services.gateway.push.templates import (
    LANGUAGES,
    OCCASIONS,
    SlotMissing,
    TooLong,
    language_of,
    reason,
    render,
)
from services.gateway.push.timing import QuietHours, send_time
from services.gateway.recommend import Choice, Decision, Recommender
from services.gateway.settings import CURRENCY_SYMBOLS, PushConfig
from services.gateway.shoppers import list_page
from services.gateway.typed_fields import resolved_policy
from shared import metrics
from shared.clients import SuiteClients
from shared.closed_sets import PUSH_TEMPLATES
from shared.errors import FailedPrecondition, require
from shared.limits import MAX_ID_LENGTH, MAX_SEGMENT_LENGTH

log = logging.getLogger(__name__)

SLATE = 10  # items the pipeline offers each push
MAX_CAMPAIGN_ID = 64
CAMPAIGN_PAGE = 200  # shoppers read, planned and stored together
CAMPAIGN_CONCURRENCY = 8  # shoppers planned at once
LIST_DEADLINE_S = 10.0


def money_format(currency: str) -> Callable[[float], str]:
    symbol = CURRENCY_SYMBOLS[currency]
    return lambda amount: f"{symbol}{amount:,.2f}"


def _language(tag: str) -> str:
    language = language_of(tag)
    require(language is not None, f"language {tag!r} is not supported: use one of {', '.join(LANGUAGES)}")
    return language  # type: ignore[return-value]


class PushPlanner:
    def __init__(
        self, recommender: Recommender, push_log: PushLog, clients: SuiteClients, config: PushConfig
    ) -> None:
        self.recommender = recommender
        self.push_log = push_log
        self.clients = clients
        self.config = config
        self.quiet = QuietHours(config.quiet_start, config.quiet_end)
        self.money = money_format(config.currency)
        # Every outcome's series from the start, at 0: a rate needs a first sample before the first push.
        for occasion in OCCASIONS:
            for language in LANGUAGES:
                metrics.PUSHES.labels("planned", occasion, language)
        metrics.PUSHES.labels("skipped", "", "")

    async def generate(self, request: gateway_pb2.GeneratePushRequest) -> gateway_pb2.GeneratePushResponse:
        require(bool(request.user_id.strip()), "user_id must not be empty")
        require(len(request.user_id) <= MAX_ID_LENGTH, f"user_id must be at most {MAX_ID_LENGTH} characters")
        language = _language(request.language) if request.language else ""
        found = await asyncio.to_thread(self.push_log.settings_of, [request.user_id])
        settings = found.get(request.user_id)
        outcome = await self._plan(request.user_id, language, settings, "", resolved_policy(request))
        if not outcome.retry:
            outcome = (await asyncio.to_thread(self.push_log.record, [outcome]))[0]
        self._count(outcome)
        return gateway_pb2.GeneratePushResponse(push=outcome.push, skip_reason=outcome.skip_reason)

    async def campaign(
        self, request: gateway_pb2.PlanPushCampaignRequest
    ) -> AsyncIterator[gateway_pb2.PlanPushCampaignResponse]:
        campaign_id = request.campaign_id
        require(
            len(campaign_id.strip()) > 0 and len(campaign_id) <= MAX_CAMPAIGN_ID,
            f"campaign_id must hold 1 to {MAX_CAMPAIGN_ID} characters",
        )
        require(
            len(request.segment) <= MAX_SEGMENT_LENGTH,
            f"segment must be at most {MAX_SEGMENT_LENGTH} characters",
        )
        try:
            await asyncio.to_thread(self.push_log.open_campaign, campaign_id, request.segment)
        except CampaignMismatch as error:
            raise FailedPrecondition(str(error)) from error
        last, total = "", 0
        while True:
            page = await list_page(
                self.clients,
                request.segment,
                last,
                CAMPAIGN_PAGE,
                LIST_DEADLINE_S,
                "rerun the same campaign_id to resume",
            )
            if not page.user_ids:
                return
            total = total or page.total  # only the first page carries it
            async for response in self._plan_page(campaign_id, list(page.user_ids), total):
                yield response
            last = page.user_ids[-1]

    async def _plan_page(
        self, campaign_id: str, user_ids: list[str], total: int
    ) -> AsyncIterator[gateway_pb2.PlanPushCampaignResponse]:
        known = await asyncio.to_thread(self.push_log.campaign_outcomes, campaign_id, user_ids)
        for user_id in user_ids:
            if user_id in known:
                yield self._campaign_response(known[user_id], total, replayed=True)
        fresh = [user_id for user_id in user_ids if user_id not in known]
        if not fresh:
            return
        settings = await asyncio.to_thread(self.push_log.settings_of, fresh)
        limit = asyncio.Semaphore(CAMPAIGN_CONCURRENCY)

        async def plan(user_id: str) -> Outcome:
            async with limit:
                try:
                    return await self._plan(user_id, "", settings.get(user_id), campaign_id)
                except Exception as error:  # one shopper's failure must not end the campaign
                    log.exception("campaign %s could not plan %s", campaign_id, user_id)
                    return Outcome(user_id, skip_reason=f"could not plan: {error}", retry=True)

        planned = await asyncio.gather(*(plan(user_id) for user_id in fresh))
        stored = iter(
            await asyncio.to_thread(self.push_log.record, [o for o in planned if not o.retry], campaign_id)
        )
        for outcome in planned:
            final = outcome if outcome.retry else next(stored)
            self._count(final)
            yield self._campaign_response(final, total, replayed=False)

    @staticmethod
    def _campaign_response(
        outcome: Outcome, total: int, replayed: bool
    ) -> gateway_pb2.PlanPushCampaignResponse:
        return gateway_pb2.PlanPushCampaignResponse(
            push=outcome.push,
            user_id=outcome.user_id,
            skip_reason=outcome.skip_reason,
            users_total=total,
            replayed=replayed,
        )

    @staticmethod
    def _count(outcome: Outcome) -> None:
        if outcome.push is not None:
            metrics.PUSHES.labels("planned", outcome.push.template, outcome.push.language).inc()
        else:
            metrics.PUSHES.labels("skipped", "", "").inc()

    async def _plan(
        self, user_id: str, language: str, settings: UserSettings | None, campaign_id: str, policy: str = ""
    ) -> Outcome:
        """The push for one shopper, or why none (not yet checked against the stored pushes)."""
        if settings is not None and settings.opted_out:
            return Outcome(user_id, skip_reason="opted out")
        language = language or language_of(settings.language if settings else "") or "en"
        now = self.push_log.clock()
        pushed = await asyncio.to_thread(self.push_log.recently_pushed, user_id, now)
        decision = await self.recommender.decide(
            gateway_pb2.RecommendRequest(
                user_id=user_id,
                count=SLATE,
                surface="push",
                exclude_item_ids=sorted(pushed),
                policy=policy,
            )
        )
        if decision.progress.cold_start:
            return Outcome(user_id, skip_reason="the shopper has no events yet")
        confidence = decision.confidence()
        if not confidence or "profile" in decision.progress.degraded:
            # without the ranker there is no confidence, without the profile no history nor active hours
            stages = ", ".join(decision.progress.degraded) or "ranking"
            return Outcome(user_id, skip_reason=f"not planned: {stages} degraded", retry=True)
        zone = ZoneInfo((settings.time_zone if settings else "") or self.config.time_zone)
        # the minute within the hour: stable per campaign, or per day for single pushes
        key = f"{campaign_id or now.date().isoformat()}:{user_id}"
        when = send_time(now, decision.progress.portrait.hour_shares, zone, self.quiet, key)
        best, unwritten = 0.0, ""
        top_pick: gateway_pb2.PushMessage | None = None
        for choice in decision.slate:
            item = decision.catalog.get(choice.item_id)
            if item is None or item.stock_status == common_pb2.STOCK_STATUS_OUT_OF_STOCK:
                continue
            probability = confidence.get(choice.item_id, 0.0)
            best = max(best, probability)
            if probability < self.config.min_confidence:
                continue
            push, unwritten = self._write(decision, choice, language, now, when, probability)
            if push is None:
                continue
            push.campaign_id = campaign_id
            if push.template != TOP_PICK:
                return Outcome(user_id, push)
            top_pick = top_pick or push
        if top_pick is not None:
            return Outcome(user_id, top_pick)
        if best < self.config.min_confidence:
            return Outcome(
                user_id,
                skip_reason=f"no item reaches the minimum confidence {self.config.min_confidence:g} "
                f"(best {best:.4f})",
            )
        return Outcome(user_id, skip_reason=f"no confident item could be written about: {unwritten}")

    def _write(
        self,
        decision: Decision,
        choice: Choice,
        language: str,
        now: datetime,
        when: datetime,
        probability: float,
    ) -> tuple[gateway_pb2.PushMessage | None, str]:
        """The message for the item's first occasion whose template can be written, or None and why."""
        progress = decision.progress
        facts = PushFacts(
            evidence=decision.evidence(choice),
            purchased=progress.purchased,
            recent=frozenset(progress.history),
            now=now,
            fresh=timedelta(days=self.config.fresh_days),
            money=self.money,
        )
        why = "no fact at hand for the item"
        for occasion in occasions(facts):
            try:
                sentence = reason(occasion.reason_key, language, occasion.slots)
                text = render(occasion.name, language, {**occasion.slots, "reason": sentence})
            except (SlotMissing, TooLong) as problem:
                why = f"{occasion.name}: {problem}"
                continue
            push_id = uuid.uuid4().hex
            push = gateway_pb2.PushMessage(
                push_id=push_id,
                user_id=decision.user_id,
                item_ids=[choice.item_id],
                title=text.title,
                body=text.body,
                deep_link=self.config.deep_link.format(
                    item_id=quote(choice.item_id, safe=""),
                    push_id=push_id,
                    request_id=progress.request_id,
                    user_id=quote(decision.user_id, safe=""),
                ),
                template=occasion.name,
                template_kind=PUSH_TEMPLATES.number(occasion.name),
                reason=sentence,
                language=language,
                reason_facts=[gateway_pb2.ReasonFact(kind=k, value=v) for k, v in occasion.facts],
                confidence=probability,
                request_id=progress.request_id,
            )
            push.send_time.FromDatetime(when)
            return push, ""
        return None, why
