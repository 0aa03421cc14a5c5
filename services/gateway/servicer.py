"""GatewayService RPCs: the public entry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway.admission import Admission
from services.gateway.feedback import FeedbackRecorder
from services.gateway.promotions.log import PromotionLog
from services.gateway.promotions.planner import PromotionPlanner, export_decisions
from services.gateway.push.log import PushLog
from services.gateway.push.planner import PushPlanner
from services.gateway.push.settings import validate_settings
from services.gateway.recommend import Recommender


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        recommender: Recommender,
        feedback: FeedbackRecorder,
        pushes: PushPlanner,
        push_log: PushLog,
        admission: Admission,
        promotions: PromotionPlanner,
        promotion_log: PromotionLog,
    ) -> None:
        self.recommender = recommender
        self.admission = admission
        self.feedback = feedback
        self.pushes = pushes
        self.push_log = push_log
        self.promotions = promotions
        self.promotion_log = promotion_log

    async def Recommend(
        self, request: gateway_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RecommendResponse:
        with self.admission.admit():
            return await self.recommender.recommend(request, context.time_remaining())

    async def RecordFeedback(
        self, request: gateway_pb2.RecordFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RecordFeedbackResponse:
        return await self.feedback.record(request)

    async def GeneratePush(
        self, request: gateway_pb2.GeneratePushRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GeneratePushResponse:
        return await self.pushes.generate(request)

    async def PlanPushCampaign(
        self, request: gateway_pb2.PlanPushCampaignRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.PlanPushCampaignResponse]:
        async for response in self.pushes.campaign(request):
            yield response

    async def UpdatePushSettings(
        self, request: gateway_pb2.UpdatePushSettingsRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.UpdatePushSettingsResponse:
        entries = validate_settings(list(request.settings))
        stored = await asyncio.to_thread(self.push_log.save_settings, entries)
        return gateway_pb2.UpdatePushSettingsResponse(stored=stored)

    async def PlanPromotions(
        self, request: gateway_pb2.PlanPromotionsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.PlanPromotionsResponse]:
        async for response in self.promotions.plan(request):
            yield response

    async def ExportPromotionDecisions(
        self, request: gateway_pb2.ExportPromotionDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.ExportPromotionDecisionsResponse]:
        async for response in export_decisions(self.promotion_log, request, self.promotion_log.clock):
            yield response
