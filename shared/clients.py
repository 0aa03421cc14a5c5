"""Channels to the suite's services: deadlines, retries, keepalive and tracing on every call.

Which methods are retried is read from the contract itself: a method whose
proto declares `idempotency_level` NO_SIDE_EFFECTS or IDEMPOTENT is retried on
UNAVAILABLE through the channel's service config; every other call is tried once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.items.v1 import items_pb2, items_pb2_grpc
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from shared import telemetry
from shared.config import Settings
from shared.tls import ClientCertificate, client_certificate

STUB_DESCRIPTORS: dict[str, ServiceDescriptor] = {
    "gateway": gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"],
    "profile": profile_pb2.DESCRIPTOR.services_by_name["ProfileService"],
    "items": items_pb2.DESCRIPTOR.services_by_name["ItemsService"],
    "candidates": candidates_pb2.DESCRIPTOR.services_by_name["CandidatesService"],
    "ranking": ranking_pb2.DESCRIPTOR.services_by_name["RankingService"],
    "policy": policy_pb2.DESCRIPTOR.services_by_name["PolicyService"],
}

RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SAFE_TO_RETRY = (MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT)
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
]
# After a certificate renewal, how long a retired channel's calls may run before it is closed.
RETIRE_GRACE_S = 60.0
# A stage that comes back is used again within about a second: gRPC's default backoff grows to two
# minutes, so after a long outage the gateway kept degrading for most of a minute.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def retryable_methods(service: ServiceDescriptor) -> list[str]:
    return [
        method.name for method in service.methods if method.GetOptions().idempotency_level in SAFE_TO_RETRY
    ]


def service_config(services: Iterable[ServiceDescriptor], also_retry: Iterable[tuple[str, str]] = ()) -> str:
    """The channel service config JSON that retries idempotent methods on UNAVAILABLE.

    `also_retry` names (service, method) pairs of contracts that do not declare
    their idempotency, such as TensorFlow Serving's read-only methods.
    """
    names = [
        {"service": service.full_name, "method": method}
        for service in services
        for method in retryable_methods(service)
    ] + [{"service": service, "method": method} for service, method in also_retry]
    config: dict[str, Any] = {"methodConfig": []}
    if names:
        config["methodConfig"].append({"name": names, "retryPolicy": RETRY_POLICY})
    return json.dumps(config)


class _DefaultDeadline:
    """Gives every call without a timeout the default deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.timeout is not None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            self.seconds,
            details.metadata,
            details.credentials,
            details.wait_for_ready,
        )


class _UnaryUnaryDeadline(_DefaultDeadline, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _UnaryStreamDeadline(_DefaultDeadline, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _StreamUnaryDeadline(_DefaultDeadline, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


def open_channel(
    target: str,
    services: Iterable[ServiceDescriptor],
    default_deadline_s: float,
    also_retry: Iterable[tuple[str, str]] = (),
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """A channel with retries, keepalive, deadline and tracing: mutual TLS with `credentials`
    (shared/tls.py), else plaintext."""
    interceptors: list[grpc.aio.ClientInterceptor] = [
        *telemetry.client_interceptors(),
        _UnaryUnaryDeadline(default_deadline_s),
        _UnaryStreamDeadline(default_deadline_s),
        _StreamUnaryDeadline(default_deadline_s),
    ]
    options = [
        ("grpc.service_config", service_config(services, also_retry)),
        ("grpc.enable_retries", 1),
        *KEEPALIVE_OPTIONS,
        *RECONNECT_OPTIONS,
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


class Renewal:
    """The credentials a client opens channels with. With a renewing `certificate`, `current` also
    says when it was renewed, and retires the channels opened before: each closes after
    RETIRE_GRACE_S (its calls in flight finish), or at once on `close`."""

    def __init__(
        self, credentials: grpc.ChannelCredentials | None, certificate: ClientCertificate | None
    ) -> None:
        self.credentials = credentials
        self.certificate = certificate
        self._generation = certificate.generation if certificate else 0
        self._closing: dict[asyncio.Task[None], grpc.aio.Channel] = {}

    def current(self, opened: Iterable[grpc.aio.Channel]) -> tuple[grpc.ChannelCredentials | None, bool]:
        """(credentials for a new channel, whether the `opened` channels were just retired)."""
        if self.certificate is None:
            return self.credentials, False
        credentials = self.certificate.credentials()
        if self.certificate.generation == self._generation:
            return credentials, False
        self._generation = self.certificate.generation
        for channel in opened:
            task = asyncio.get_running_loop().create_task(channel.close(grace=RETIRE_GRACE_S))
            self._closing[task] = channel
            task.add_done_callback(self._closing.pop)
        return credentials, True

    async def close(self) -> None:
        for task, channel in list(self._closing.items()):
            task.cancel()
            await channel.close()


class SuiteClients:
    """Lazily opened stubs for the suite's services, one channel per service. With `credentials`,
    every channel is mutual TLS as the identity they name; with `certificate` instead, the channels
    follow its renewals: once it is renewed, new calls open new channels and the old ones close
    after RETIRE_GRACE_S (their calls in flight finish)."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        default_deadline_s: float,
        credentials: grpc.ChannelCredentials | None = None,
        certificate: ClientCertificate | None = None,
    ) -> None:
        self.addresses = addresses
        self.default_deadline_s = default_deadline_s
        self._renewal = Renewal(credentials, certificate)
        self._channels: dict[str, grpc.aio.Channel] = {}

    @classmethod
    def of(cls, settings: Settings, identity: str, default_deadline_s: float) -> SuiteClients:
        """Clients of the suite `settings` describe, calling as `identity` when mTLS is on."""
        return cls(settings.addresses, default_deadline_s, certificate=client_certificate(settings, identity))

    def channel(self, name: str) -> grpc.aio.Channel:
        credentials, renewed = self._renewal.current(self._channels.values())
        if renewed:
            self._channels.clear()
        if name not in self._channels:
            self._channels[name] = open_channel(
                self.addresses[name],
                [STUB_DESCRIPTORS[name]],
                self.default_deadline_s,
                credentials=credentials,
            )
        return self._channels[name]

    @property
    def gateway(self) -> gateway_pb2_grpc.GatewayServiceStub:
        return gateway_pb2_grpc.GatewayServiceStub(self.channel("gateway"))

    @property
    def profile(self) -> profile_pb2_grpc.ProfileServiceStub:
        return profile_pb2_grpc.ProfileServiceStub(self.channel("profile"))

    @property
    def items(self) -> items_pb2_grpc.ItemsServiceStub:
        return items_pb2_grpc.ItemsServiceStub(self.channel("items"))

    @property
    def candidates(self) -> candidates_pb2_grpc.CandidatesServiceStub:
        return candidates_pb2_grpc.CandidatesServiceStub(self.channel("candidates"))

    @property
    def ranking(self) -> ranking_pb2_grpc.RankingServiceStub:
        return ranking_pb2_grpc.RankingServiceStub(self.channel("ranking"))

    @property
    def policy(self) -> policy_pb2_grpc.PolicyServiceStub:
        return policy_pb2_grpc.PolicyServiceStub(self.channel("policy"))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        await self._renewal.close()
