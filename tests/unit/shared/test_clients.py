"""Client channels: retries only where the contract says a method is idempotent; default deadlines."""

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from shared.clients import STUB_DESCRIPTORS, open_channel, retryable_methods, service_config
from shared.server import ServiceApp
from tests.support import ServerThread, make_settings


def test_retry_config_follows_idempotency_declared_in_the_protos() -> None:
    gateway = STUB_DESCRIPTORS["gateway"]
    # Recommend logs a decision and learns: a caller retries it with its own request_id, not the channel.
    assert set(retryable_methods(gateway)) == {"RecordFeedback", "UpdatePushSettings"}
    config = json.loads(service_config([gateway]))
    (method_config,) = config["methodConfig"]
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    names = {entry["method"] for entry in method_config["name"]}
    assert "GeneratePush" not in names and "PlanPushCampaign" not in names  # each plans pushes
    assert "Recommend" not in names


class FlakyProfile(profile_pb2_grpc.ProfileServiceServicer):
    """Answers UNAVAILABLE to the first call, then succeeds; sleeps on GetHistory."""

    def __init__(self) -> None:
        self.calls = 0

    async def GetProfile(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return profile_pb2.GetProfileResponse(profile=profile_pb2.Profile(user_id=request.user_id))

    async def GetHistory(self, request, context):  # type: ignore[no-untyped-def]
        await asyncio.sleep(2)
        return profile_pb2.GetHistoryResponse()


class FlakyGateway(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def GeneratePush(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "not now")


@pytest.fixture
def flaky(tmp_path: Path):
    profile, gateway = FlakyProfile(), FlakyGateway()
    app = ServiceApp(
        name="profile",
        servicers=[
            (
                STUB_DESCRIPTORS["profile"],
                lambda s: profile_pb2_grpc.add_ProfileServiceServicer_to_server(profile, s),
            ),
            (
                STUB_DESCRIPTORS["gateway"],
                lambda s: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(gateway, s),
            ),
        ],
    )
    server = ServerThread(lambda settings: app, make_settings(str(tmp_path)))
    yield server, profile, gateway
    server.stop()


def test_idempotent_call_is_retried_on_unavailable(flaky) -> None:
    server, profile, _ = flaky

    async def call() -> str:
        channel = open_channel(server.address, [STUB_DESCRIPTORS["profile"]], 5.0)
        async with channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            response = await stub.GetProfile(profile_pb2.GetProfileRequest(user_id="u1"))
            return response.profile.user_id

    assert asyncio.run(call()) == "u1"
    assert profile.calls == 2


def test_non_idempotent_call_is_tried_once(flaky) -> None:
    server, _, gateway = flaky

    async def call() -> grpc.StatusCode:
        channel = open_channel(server.address, [STUB_DESCRIPTORS["gateway"]], 5.0)
        async with channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GeneratePush(gateway_pb2.GeneratePushRequest(user_id="u1"))
            return raised.value.code()

    assert asyncio.run(call()) == grpc.StatusCode.UNAVAILABLE
    assert gateway.calls == 1


def test_every_call_gets_the_default_deadline(flaky) -> None:
    server, _, _ = flaky

    async def call() -> grpc.StatusCode:
        channel = open_channel(server.address, [STUB_DESCRIPTORS["profile"]], 0.2)
        async with channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetHistory(profile_pb2.GetHistoryRequest(user_id="u1"))
            return raised.value.code()

    assert asyncio.run(call()) == grpc.StatusCode.DEADLINE_EXCEEDED
