"""GatewayService RPCs: the public entry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway.feedback import FeedbackRecorder
from services.gateway.recommend import Recommender
from shared.errors import Unimplemented


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, recommender: Recommender, feedback: FeedbackRecorder) -> None:
        self.recommender = recommender
        self.feedback = feedback

    async def Recommend(
        self, request: gateway_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RecommendResponse:
        return await self.recommender.recommend(request)

    async def RecordFeedback(
        self, request: gateway_pb2.RecordFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RecordFeedbackResponse:
        return await self.feedback.record(request)

    async def GeneratePush(
        self, request: gateway_pb2.GeneratePushRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GeneratePushResponse:
        raise Unimplemented("GeneratePush is not implemented yet")

    async def PlanPushCampaign(
        self, request: gateway_pb2.PlanPushCampaignRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.PlanPushCampaignResponse]:
        raise Unimplemented("PlanPushCampaign is not implemented yet")
        yield  # an async generator, as every server-streaming method
