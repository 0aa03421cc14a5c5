"""Starts every service as its own local process, restarts one that exits, and stops them all cleanly."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ml.artifacts import CANDIDATE_GAN
from shared.auth import ensure_key_file
from shared.authz import TRAINER
from shared.config import MODEL_SERVER, SERVICES, Settings, load_settings
from shared.tls import channel_credentials, open_sync_channel
from tools.certs import ensure_certificates

READY_TIMEOUT_S = 90.0
# A service that exits is started again after a wait that doubles from the first to the most; a
# service that has stayed up STABLE_S starts again from the first wait.
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
STABLE_S = 60.0


class SuiteError(RuntimeError):
    """A service did not come up; the message carries the end of its log."""


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_FREE_PORT = 10_000
_handed_out: set[int] = set()
# Its own source of randomness: model code reseeds the global one (TensorFlow's set_random_seed does),
# which made the same ports come up again and again until none was left to try.
_port_draws = random.SystemRandom()


def _ephemeral_floor() -> int:
    """The first port the kernel hands to outgoing connections (32768 where it cannot be read)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A TCP port free a moment ago on the loopback interface, below the kernel's ephemeral range
    and not handed out before by this process: a port the kernel picks itself can be taken, before
    the server binds it, by any outgoing connection's source port."""
    candidates = range(LOWEST_FREE_PORT, _ephemeral_floor())
    for _ in range(200):
        port = _port_draws.choice(candidates) if len(candidates) > 100 else 0
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = probe.getsockname()[1]
        _handed_out.add(port)
        return port
    raise SuiteError("no free TCP port found on 127.0.0.1")


def free_ports_env() -> dict[str, str]:
    """RECSYS_<SERVICE>_PORT and _METRICS_PORT on free ports, for a suite beside another one."""
    env = {}
    for name in (*SERVICES, MODEL_SERVER):
        env[f"RECSYS_{name.upper()}_PORT"] = str(free_port())
        env[f"RECSYS_{name.upper()}_METRICS_PORT"] = str(free_port())
    return env


def check_health(
    address: str,
    timeout: float = 2.0,
    service: str = "",
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """The serving status name of the service at `address`, or UNREACHABLE (with mTLS on, also
    when `credentials` are not accepted)."""
    with open_sync_channel(address, credentials) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


GATEWAY = "gateway"


@dataclass
class Suite:
    """The running processes of the suite; with `settings.candidate_gan`, also the local model
    server, serving the candidate GAN to the candidates service. With `gateway_replicas` above one,
    the gateway runs as that many processes (gateway, gateway-2, ...), each on its own free ports,
    as the Kubernetes base runs two."""

    settings: Settings
    gateway_replicas: int = 1
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)  # how often each service was restarted
    _env: dict[str, str] = field(default_factory=dict, repr=False)
    _started: dict[str, float] = field(default_factory=dict, repr=False)
    _next_wait: dict[str, float] = field(default_factory=dict, repr=False)
    _due: dict[str, float] = field(default_factory=dict, repr=False)
    _replica_ports: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # (gRPC, metrics)

    @property
    def names(self) -> tuple[str, ...]:
        services = (MODEL_SERVER, *SERVICES) if self.settings.candidate_gan else SERVICES
        return (*services, *self.replica_names)

    @property
    def replica_names(self) -> tuple[str, ...]:
        """The gateway's processes beyond the first."""
        return tuple(f"{GATEWAY}-{number}" for number in range(2, self.gateway_replicas + 1))

    def address(self, name: str) -> str:
        if name in self._replica_ports:
            return f"127.0.0.1:{self._replica_ports[name][0]}"
        return self.settings.addresses[name]

    @property
    def gateway_addresses(self) -> list[str]:
        """Every gateway process's address, the first one's first."""
        return [self.address(GATEWAY), *(self.address(name) for name in self.replica_names)]

    def log_file(self, name: str) -> Path:
        return self.settings.log_dir / f"{name}.log"

    @cached_property
    def credentials(self) -> grpc.ChannelCredentials | None:
        """What the suite's own tools present: the trainer identity's certificate, with mTLS on."""
        return channel_credentials(self.settings, TRAINER)

    def start(self, env: Mapping[str, str] | None = None) -> None:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.tls:
            ensure_certificates(self.settings.tls_dir)
        self._env = {**os.environ, **(env or {}), "RECSYS_HOME": str(self.settings.home)}
        if self.settings.candidate_gan:
            self._env |= {"RECSYS_CANDIDATES_GAN": "1", "RECSYS_MODELSERVER_MODELS": CANDIDATE_GAN}
        self._replica_ports = {name: (free_port(), free_port()) for name in self.replica_names}
        for name in self.names:
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        env, module = self._env, name
        if name in self._replica_ports:
            port, metrics_port = self._replica_ports[name]
            env = {**env, "RECSYS_GATEWAY_PORT": str(port), "RECSYS_GATEWAY_METRICS_PORT": str(metrics_port)}
            module = GATEWAY
        with self.log_file(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{module}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._started[name] = time.monotonic()

    def supervise(self, say: Callable[[str], None], hold: Collection[str] = ()) -> None:
        """One look at every process: one that exited is started again once its wait is over (the
        wait doubles from RESTART_FIRST_S to RESTART_MAX_S while it keeps exiting). A restarted
        service reports SERVING only once it has loaded its models, as at the first start. Those
        named in `hold` stay down (an outage staged on purpose)."""
        now = time.monotonic()
        for name, process in list(self.processes.items()):
            if name in hold:
                continue
            if process.poll() is None:
                if now - self._started[name] >= STABLE_S:
                    self._next_wait.pop(name, None)
                continue
            if name not in self._due:
                wait = self._next_wait.get(name, RESTART_FIRST_S)
                self._next_wait[name] = min(2 * wait, RESTART_MAX_S)
                self._due[name] = now + wait
                say(
                    f"{name} exited with code {process.returncode}; restarting it in {wait:g}s "
                    f"(end of {self.log_file(name)}):\n{self._tail(name, 5)}"
                )
            elif now >= self._due[name]:
                del self._due[name]
                self._spawn(name)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                say(f"{name} restarted (restart {self.restarts[name]})")

    def _tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, only: tuple[str, ...] = ()) -> None:
        """Blocks until every service (or those named in `only`) reports SERVING; raises
        SuiteError otherwise."""
        deadline = time.monotonic() + timeout
        pending = set(only or self.processes)
        while pending:
            for name in sorted(pending):
                process = self.processes[name]
                if process.poll() is not None:
                    raise SuiteError(
                        f"{name} exited with code {process.returncode}; end of "
                        f"{self.log_file(name)}:\n{self._tail(name)}"
                    )
                if check_health(self.address(name), 1.0, credentials=self.credentials) == "SERVING":
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                name = sorted(pending)[0]
                raise SuiteError(
                    f"{name} not ready after {timeout:.0f}s; end of its log:\n{self._tail(name)}"
                )
            if pending:
                time.sleep(0.2)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM to every service, then SIGKILL to any still running after the grace period."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        limit = time.monotonic() + self.settings.shutdown_delay_s + self.settings.shutdown_grace_s + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {name: process.returncode for name, process in self.processes.items()}


@contextmanager
def fresh_suite(home: Path, env: Mapping[str, str]) -> Iterator[tuple[Suite, Settings]]:
    """A whole suite on free ports with its state under `home` and no demo data, for benchmarks and
    simulations; yields once profile and items are ready (the data goes in before the models), and
    stops every process at the end."""
    env = {
        **free_ports_env(),
        "RECSYS_HOME": str(home),
        "RECSYS_DEMO": "0",
        "RECSYS_MODEL_POLL_S": "0.5",
        **env,
    }
    config = load_settings({**os.environ, **env})
    ensure_key_file(config.api_key_file)
    suite = Suite(config)
    suite.start(env)
    try:
        suite.wait_ready(only=("profile", "items"))
        yield suite, config
    finally:
        suite.stop()
