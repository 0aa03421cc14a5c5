"""Process bootstrap shared by every service.

Start-up: the port opens with health NOT_SERVING, the service's own start-up
(migrations, models) runs, then health turns SERVING; if start-up fails it is
retried and health stays NOT_SERVING. SIGTERM or SIGINT: health turns
NOT_SERVING at once (Watch streams see it), the process waits
RECSYS_SHUTDOWN_DELAY_S so load balancers stop routing, then drains in-flight
calls for up to RECSYS_SHUTDOWN_GRACE_S.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from threadpoolctl import threadpool_limits

from shared import heap, telemetry
from shared.authz import IdentityInterceptor
from shared.clients import STUB_DESCRIPTORS, SuiteClients
from shared.config import ConfigError, Settings, load_settings
from shared.db import Store
from shared.interceptors import AccessLogInterceptor, DrainInterceptor, ErrorMappingInterceptor
from shared.limits import MAX_MESSAGE_BYTES
from shared.metrics import MetricsInterceptor, announce, serve_metrics, watch_loop_lag
from shared.models import ModelWatcher
from shared.reflection import enable_reflection
from shared.tls import identity_files, server_credentials

log = logging.getLogger(__name__)

SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    # Close connections after a while so that Kubernetes spreads long-lived HTTP/2 clients.
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
STARTUP_RETRY_S = 3.0


@dataclass
class ServiceApp:
    """What a service contributes to the shared bootstrap."""

    name: str
    servicers: Sequence[tuple[ServiceDescriptor, Callable[[grpc.aio.Server], None]]]
    startup: Callable[[], Awaitable[None]] | None = None
    background: Sequence[Callable[[], Awaitable[None]]] = ()
    shutdown: Callable[[], Awaitable[None]] | None = None
    interceptors: Sequence[grpc.aio.ServerInterceptor] = field(default_factory=list)
    # Run before every other interceptor, tracing and logging included: only what must stay
    # cheap when the process is saturated (refusing calls over its limit).
    front_interceptors: Sequence[grpc.aio.ServerInterceptor] = field(default_factory=list)
    # The public entry (the gateway): callers present API keys, so a client certificate is asked for
    # but not required, and methods are not authorized by certificate identity.
    public: bool = False


class NotReadyYet(Exception):
    """Start-up waits for something another process provides (a schema, a model): logged in one line."""


class RunningServer:
    """A started server with its health servicer; `stop()` performs the graceful shutdown."""

    def __init__(self, app: ServiceApp, settings: Settings, port: int) -> None:
        self.app = app
        self.settings = settings
        self.port = port
        self.health = health.aio.HealthServicer()
        self.draining = asyncio.Event()
        # With mTLS every internal method is authorized by the caller's certificate identity.
        authorization = [IdentityInterceptor()] if settings.tls and not app.public else []
        self.server = grpc.aio.server(
            interceptors=[
                *app.front_interceptors,
                telemetry.server_interceptor(),
                AccessLogInterceptor(),
                MetricsInterceptor(app.name),
                *authorization,
                *app.interceptors,
                DrainInterceptor(self.draining),
                ErrorMappingInterceptor(),
            ],
            options=SERVER_OPTIONS,
            maximum_concurrent_rpcs=settings.max_in_flight,
        )
        self.ready = asyncio.Event()
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def service_names(self) -> list[str]:
        return [descriptor.full_name for descriptor, _ in self.app.servicers]

    async def _set_all(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def start(self) -> None:
        for _, add in self.app.servicers:
            add(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        enable_reflection(
            self.server, [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        )
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.settings.bind_host}:{self.port}"
        try:
            if self.settings.tls:
                credentials = server_credentials(self.settings, self.app.name, not self.app.public)
                self.port = self.server.add_secure_port(address, credentials)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError as error:
            raise SystemExit(f"{self.app.name}: cannot listen on {address}: {error}") from error
        await self.server.start()
        announce(self.app.name)
        serve_metrics(self.settings.metrics_ports[self.app.name], self.settings.bind_host, self.serving)
        self._tasks.append(asyncio.create_task(watch_loop_lag(self.app.name)))
        log.info(
            "%s listening on %s (%s)", self.app.name, address, "mTLS" if self.settings.tls else "plaintext"
        )
        self._tasks.append(asyncio.create_task(self._become_ready()))

    async def _become_ready(self) -> None:
        while self.app.startup is not None:
            try:
                await self.app.startup()
            except NotReadyYet as waiting:
                log.info("%s not ready: %s; checking again in %ss", self.app.name, waiting, STARTUP_RETRY_S)
            except Exception:
                log.exception("%s start-up failed; retrying in %ss", self.app.name, STARTUP_RETRY_S)
            else:
                break
            await asyncio.sleep(STARTUP_RETRY_S)
        self._tasks.extend(asyncio.create_task(task()) for task in self.app.background)
        heap.settle()  # shared/heap.py: no full collection over the start-up heap under load
        await self._set_all(health_pb2.HealthCheckResponse.SERVING)
        self.ready.set()
        log.info("%s ready", self.app.name)

    def serving(self) -> bool:
        """What the health service says of the whole process: ready, and not shutting down."""
        return self.ready.is_set() and not self.stopping

    async def stop(self) -> None:
        self.stopping = True
        await self.health.enter_graceful_shutdown()
        log.info("%s draining", self.app.name)
        await asyncio.sleep(self.settings.shutdown_delay_s)
        self.draining.set()
        await self.server.stop(self.settings.shutdown_grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.app.shutdown is not None:
            await self.app.shutdown()
        log.info("%s stopped", self.app.name)


async def serve(app: ServiceApp, settings: Settings) -> None:
    """Runs the service until SIGTERM or SIGINT, then shuts down gracefully."""
    running = RunningServer(app, settings, settings.ports[app.name])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await running.start()
    await stop.wait()
    await running.stop()


def one_blas_thread() -> None:
    """One BLAS thread per service process. Requests multiply small matrices, and after each one
    OpenBLAS's worker threads spin for a while: measured on 2 cores, 40 times the CPU of the work
    itself. A service scales with replicas and the event loop's worker threads, not BLAS threads.
    The limit applies to the BLAS libraries loaded so far; the variable, to any loaded later."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    threadpool_limits(limits=1, user_api="blas")


def main(name: str, build: Callable[[Settings], ServiceApp]) -> None:
    """Process entry of a service: settings, logging, tracing, serve."""
    try:
        settings = load_settings()
    except ConfigError as error:
        _exit_on(name, error)
    telemetry.setup_logging(name, settings.log_level)
    provider = telemetry.setup_tracing(name, settings.otlp_endpoint)
    try:
        try:
            app = build(settings)  # reads and checks the service's own settings section
            if settings.tls:
                identity_files(settings, name).read()  # the certificate this process serves with
        except ConfigError as error:
            _exit_on(name, error)
        one_blas_thread()
        asyncio.run(serve(app, settings))
    finally:
        provider.shutdown()


def _exit_on(name: str, error: ConfigError) -> NoReturn:
    print(f"recsys-{name}: {error}", file=sys.stderr)
    raise SystemExit(2) from error


def assemble(
    name: str,
    add_servicer: Callable[[Any, grpc.aio.Server], None],
    servicer: object,
    *,
    store: Store | None = None,
    migrate_on_start: bool = True,
    models: Sequence[ModelWatcher[Any]] = (),
    clients: SuiteClients | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    front_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    dependencies: Sequence[Callable[[], Awaitable[object]]] = (),
    closers: Sequence[Callable[[], Awaitable[None]]] = (),
    background: Sequence[Callable[[], Awaitable[None]]] = (),
    public: bool = False,
) -> ServiceApp:
    """The usual ServiceApp: start-up migrates the store (or, without `migrate_on_start`, waits
    until a migration Job has brought it to this release's schema), loads the models and waits for the
    `dependencies` (each raises until what it waits for is there); the models are watched
    for new versions and the `background` loops run once it is ready; shutdown closes clients,
    `closers` and the engine."""

    async def startup() -> None:
        if store is not None and migrate_on_start:
            await asyncio.to_thread(store.migrate)
        elif store is not None and (behind := await asyncio.to_thread(store.schema_behind)):
            raise NotReadyYet(f"{behind}; run `recsys migrate` (the migration Job)")
        for model in models:
            await model.refresh()
        for dependency in dependencies:
            await dependency()

    async def shutdown() -> None:
        if clients is not None:
            await clients.close()
        for close in closers:
            await close()
        if store is not None:
            store.close()

    return ServiceApp(
        name=name,
        servicers=[(STUB_DESCRIPTORS[name], lambda server: add_servicer(servicer, server))],
        startup=startup,
        background=[*(model.watch for model in models), *background],
        shutdown=shutdown,
        interceptors=list(interceptors),
        front_interceptors=list(front_interceptors),
        public=public,
    )
