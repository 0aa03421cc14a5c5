"""The shared bootstrap: readiness follows start-up, graceful shutdown, error mapping, reflection."""

import asyncio
import threading
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from shared.clients import STUB_DESCRIPTORS
from shared.errors import NotFound, Unavailable, require
from shared.server import ServiceApp
from tests.support import HealthWatch, ServerThread, make_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PROFILE = "recsys.profile.v1.ProfileService"


class Failing(profile_pb2_grpc.ProfileServiceServicer):
    async def GetProfile(self, request, context):  # type: ignore[no-untyped-def]
        if request.user_id == "missing":
            raise NotFound("no such user")
        if request.user_id == "":
            require(False, "user_id must not be empty")
        if request.user_id == "busy":
            raise Unavailable("try again")
        raise ZeroDivisionError("boom")

    async def ExportEvents(self, request, context):  # type: ignore[no-untyped-def]
        yield profile_pb2.ExportEventsResponse()
        raise NotFound("gone midway")


class Endless(profile_pb2_grpc.ProfileServiceServicer):
    """A stream longer than any drain window: one batch every 50 ms, forever."""

    async def ExportEvents(self, request, context):  # type: ignore[no-untyped-def]
        while True:
            yield profile_pb2.ExportEventsResponse()
            await asyncio.sleep(0.05)


def _app(servicer: profile_pb2_grpc.ProfileServiceServicer, startup=None) -> ServiceApp:
    return ServiceApp(
        name="profile",
        servicers=[
            (
                STUB_DESCRIPTORS["profile"],
                lambda s: profile_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, s),
            )
        ],
        startup=startup,
    )


def _status(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


def _details(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.Status details of a failed call, as (kind, summary); its code and message
    agree with the call's."""
    trailer = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(trailer)
    assert (status.code, status.message) == (error.code().value[0], error.details())
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.append(("ErrorInfo", f"{info.reason} {info.domain}"))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [("BadRequest", f"{v.field}: {v.description}") for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found.append(("RetryInfo", f"{retry.retry_delay.ToTimedelta().total_seconds()}s"))
    return found


def test_errors_become_clear_statuses(tmp_path: Path) -> None:
    server = ServerThread(lambda s: _app(Failing()), make_settings(str(tmp_path)))
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            with pytest.raises(grpc.RpcError) as missing:
                stub.GetProfile(profile_pb2.GetProfileRequest(user_id="missing"), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            assert missing.value.details() == "no such user"
            assert _details(missing.value) == [("ErrorInfo", "NOT_FOUND recsys")]
            with pytest.raises(grpc.RpcError) as invalid:
                stub.GetProfile(profile_pb2.GetProfileRequest(user_id=""), timeout=5)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _details(invalid.value) == [
                ("ErrorInfo", "INVALID_ARGUMENT recsys"),
                ("BadRequest", "user_id: user_id must not be empty"),
            ]
            with pytest.raises(grpc.RpcError) as busy:
                stub.GetProfile(profile_pb2.GetProfileRequest(user_id="busy"), timeout=5)
            assert _details(busy.value) == [("ErrorInfo", "UNAVAILABLE recsys"), ("RetryInfo", "1.0s")]
            with pytest.raises(grpc.RpcError) as crashed:
                stub.GetProfile(profile_pb2.GetProfileRequest(user_id="x"), timeout=5)
            assert crashed.value.code() == grpc.StatusCode.INTERNAL
            assert "ZeroDivisionError" in crashed.value.details()
            stream = stub.ExportEvents(profile_pb2.ExportEventsRequest(), timeout=5)
            with pytest.raises(grpc.RpcError) as midway:
                list(stream)
            assert midway.value.code() == grpc.StatusCode.NOT_FOUND
            # The server is still healthy after all of that.
            assert _status(server.address) == SERVING
    finally:
        server.stop()


def test_health_stays_not_serving_until_startup_succeeds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("shared.server.STARTUP_RETRY_S", 0.05)
    gate = threading.Event()
    attempts = []

    async def startup() -> None:
        attempts.append(1)
        if not gate.is_set():
            raise ConnectionError("database not reachable yet")

    settings = make_settings(str(tmp_path))
    server = ServerThread.__new__(ServerThread)
    server.loop = asyncio.new_event_loop()
    server.thread = threading.Thread(target=server.loop.run_forever, daemon=True)
    server.thread.start()
    server.settings = settings

    async def start():
        from shared.server import RunningServer

        running = RunningServer(_app(Failing(), startup), settings, 0)
        await running.start()
        return running

    server.running = server.run(start())
    try:
        assert _status(server.address) == NOT_SERVING
        assert _status(server.address, PROFILE) == NOT_SERVING
        gate.set()
        server.run(asyncio.wait_for(server.running.ready.wait(), 5))
        assert len(attempts) >= 2
        assert _status(server.address) == SERVING
        assert _status(server.address, PROFILE) == SERVING
    finally:
        server.stop()


def test_shutdown_turns_watch_not_serving_before_the_server_stops(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), RECSYS_SHUTDOWN_DELAY_S="0.5")
    server = ServerThread(lambda s: _app(Failing()), settings)
    watch = HealthWatch(server.address, PROFILE)
    watch.wait_first()
    assert watch.seen == [SERVING]
    server.stop()
    assert watch.finish()[:2] == [SERVING, NOT_SERVING]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_the_service_and_health(tmp_path: Path, version: str) -> None:
    """Under both names of the reflection service (current tools ask v1 first)."""
    server = ServerThread(lambda s: _app(Failing()), make_settings(str(tmp_path)))
    try:
        with grpc.insecure_channel(server.address) as channel:
            info = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            ask = [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=PROFILE),
            ]
            answers = list(info(iter(ask), timeout=5))
        names = {s.name for s in answers[0].list_services_response.service}
        assert {PROFILE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names
        assert answers[1].file_descriptor_response.file_descriptor_proto
    finally:
        server.stop()


def test_a_stream_still_running_at_shutdown_ends_cleanly_with_how_to_resume(tmp_path: Path, caplog) -> None:
    settings = make_settings(str(tmp_path), RECSYS_SHUTDOWN_DELAY_S="0.2", RECSYS_SHUTDOWN_GRACE_S="5")
    server = ServerThread(lambda s: _app(Endless()), settings)
    received: list[object] = []
    ended: list[grpc.RpcError] = []

    def read() -> None:
        with grpc.insecure_channel(server.address) as channel:
            stream = profile_pb2_grpc.ProfileServiceStub(channel).ExportEvents(
                profile_pb2.ExportEventsRequest(), timeout=30
            )
            try:
                for batch in stream:
                    received.append(batch)
            except grpc.RpcError as error:
                ended.append(error)

    reader = threading.Thread(target=read)
    with caplog.at_level("INFO"):
        reader.start()
        while len(received) < 3:
            threading.Event().wait(0.05)
        server.stop()
        reader.join(timeout=10)
    assert ended and ended[0].code() == grpc.StatusCode.UNAVAILABLE
    assert f"the stream ended after {len(received)} messages: call again to resume" in ended[0].details()
    assert "stream ended by shutdown" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (None, "OK"),
        (asyncio.CancelledError(), "CANCELLED"),
        (GeneratorExit(), "CANCELLED"),
        (KeyError(), "UNKNOWN"),
    ],
)
def test_a_call_the_caller_abandons_is_counted_cancelled_not_unknown(raised, status) -> None:
    """A stream whose reader stops (found by `make chaos`) was counted UNKNOWN, an error ratio alert."""
    from types import SimpleNamespace

    from shared.interceptors import TimedCall

    seen: list[str] = []

    class Recorded(TimedCall):
        def finish(self, status: str, seconds: float) -> None:
            seen.append(status)

    async def run() -> None:
        call = Recorded("/m", SimpleNamespace(code=lambda: None))
        await call.__aenter__()
        await call.__aexit__(type(raised) if raised else None, raised, None)

    asyncio.run(run())
    assert seen == [status]
