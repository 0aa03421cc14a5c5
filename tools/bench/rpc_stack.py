"""What one hop between the suite's processes costs, apart from the work behind it: a Rank call that
a server in a process of its own answers with an empty reply, through bare gRPC (no options, no
interceptors) and through the suite's own server stack and client channel (shared/server.py: tracing,
access log, metrics, authorization, drain, error mapping; shared/clients.py: retries, deadline,
tracing), in plaintext and with the mutual TLS the suite runs with. CPU milliseconds per call of the
calling process and of the server, read alternately in one run, so that a busy machine slows every
variant alike.

    python -m tools.bench.rpc_stack serve bare|stack    # prints "ready PORT" once listening
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from shared.clients import STUB_DESCRIPTORS, open_channel
from shared.config import load_settings
from shared.tls import channel_credentials
from tools.bench.cpu import cpu_seconds
from tools.certs import ensure_certificates
from tools.cli.supervisor import free_ports_env

READY = "ready"
SERVICE = "ranking"
CALLER = "gateway"  # the identity the suite lets call Rank
DEADLINE_S = 2.0
WARM_UP_CALLS = 200
VARIANTS = ("bare gRPC", "suite stack, plaintext", "suite stack, mutual TLS")


class _Empty(ranking_pb2_grpc.RankingServiceServicer):
    async def Rank(
        self, request: ranking_pb2.RankRequest, context: grpc.aio.ServicerContext
    ) -> ranking_pb2.RankResponse:
        return ranking_pb2.RankResponse()


async def _serve_bare() -> None:
    server = grpc.aio.server()
    ranking_pb2_grpc.add_RankingServiceServicer_to_server(_Empty(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(READY, port, flush=True)
    await server.wait_for_termination()


async def _serve_stack() -> None:
    from shared import telemetry
    from shared.server import RunningServer, assemble

    settings = load_settings()
    telemetry.setup_logging(SERVICE, settings.log_level)
    telemetry.setup_tracing(SERVICE, settings.otlp_endpoint)
    app = assemble(SERVICE, ranking_pb2_grpc.add_RankingServiceServicer_to_server, _Empty())
    running = RunningServer(app, settings, 0)
    await running.start()
    await running.ready.wait()
    print(READY, running.port, flush=True)
    await asyncio.Event().wait()


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[str]
    port: int


@contextmanager
def _server(mode: str, env: dict[str, str], log: Path) -> Iterator[Server]:
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.rpc_stack", "serve", mode],
            stdout=subprocess.PIPE,
            stderr=stderr,  # the access log goes to a file, as in the suite
            text=True,
            env={**os.environ, **env},
        )
    try:
        assert process.stdout is not None
        said = process.stdout.readline().split()
        if len(said) != 2 or said[0] != READY:
            raise RuntimeError(
                f"the {mode} server did not start; the end of its log:\n{log.read_text()[-2000:]}"
            )
        yield Server(process, int(said[1]))
    finally:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Block:
    """One variant's calls in one round: CPU seconds of the caller and the server, and wall time."""

    calls: int
    client_s: float
    server_s: float
    wall_s: float


async def _block(channel: grpc.aio.Channel, server_pid: int, calls: int, concurrency: int) -> Block:
    stub = ranking_pb2_grpc.RankingServiceStub(channel)
    request = ranking_pb2.RankRequest(user_id="u")
    for _ in range(WARM_UP_CALLS):
        await stub.Rank(request, timeout=DEADLINE_S)
    server_before, client_before, started = cpu_seconds(server_pid), time.process_time(), time.perf_counter()

    async def caller(count: int) -> None:
        for _ in range(count):
            await stub.Rank(request, timeout=DEADLINE_S)

    share = calls // concurrency
    await asyncio.gather(*(caller(share) for _ in range(concurrency)))
    return Block(
        share * concurrency,
        time.process_time() - client_before,
        cpu_seconds(server_pid) - server_before,
        time.perf_counter() - started,
    )


@dataclass(frozen=True)
class VariantCost:
    name: str
    client_ms: float  # median over rounds of the caller's CPU milliseconds per call
    server_ms: float
    wall_ms: float

    @property
    def total_ms(self) -> float:
        return self.client_ms + self.server_ms


def _median_cost(name: str, blocks: list[Block]) -> VariantCost:
    def per_call(value: Callable[[Block], float]) -> float:
        return statistics.median(value(block) / block.calls * 1000 for block in blocks)

    return VariantCost(
        name, per_call(lambda b: b.client_s), per_call(lambda b: b.server_s), per_call(lambda b: b.wall_s)
    )


async def _measure(
    channels: dict[str, Callable[[], grpc.aio.Channel]],
    pids: dict[str, int],
    calls: int,
    rounds: int,
    concurrency: int,
) -> list[VariantCost]:
    blocks: dict[str, list[Block]] = {name: [] for name in channels}
    for _ in range(rounds):
        for name, open_one in channels.items():
            async with open_one() as channel:
                blocks[name].append(await _block(channel, pids[name], calls, concurrency))
    return [_median_cost(name, found) for name, found in blocks.items()]


def measure(calls: int, rounds: int, concurrency: int) -> list[VariantCost]:
    """Each variant's median cost per call over `rounds` rounds of `calls` calls, taken in turn."""
    with tempfile.TemporaryDirectory(prefix="recsys-rpc-stack-") as folder:
        return _measured_in(Path(folder), calls, rounds, concurrency)


def _measured_in(home: Path, calls: int, rounds: int, concurrency: int) -> list[VariantCost]:
    """`measure` with the certificates, settings and servers' logs under `home`."""
    from shared import telemetry

    ensure_certificates(home / "tls")
    base = {**free_ports_env(), "RECSYS_HOME": str(home), "RECSYS_TLS_DIR": str(home / "tls")}
    plaintext, mutual = {**base, "RECSYS_TLS": "off"}, {**base, "RECSYS_TLS": "on"}
    credentials = channel_credentials(load_settings(mutual), CALLER)
    telemetry.setup_tracing("rpc-stack", "")  # the client interceptors' spans, as in a service
    ranking = [STUB_DESCRIPTORS[SERVICE]]
    with (
        _server("bare", {}, home / "bare.log") as bare,
        _server("stack", plaintext, home / "plaintext.log") as stack,
        _server("stack", {**mutual, **free_ports_env()}, home / "tls.log") as secure,
    ):
        channels: dict[str, Callable[[], grpc.aio.Channel]] = {
            VARIANTS[0]: lambda: grpc.aio.insecure_channel(f"127.0.0.1:{bare.port}"),
            VARIANTS[1]: lambda: open_channel(f"127.0.0.1:{stack.port}", ranking, DEADLINE_S),
            VARIANTS[2]: lambda: open_channel(
                f"127.0.0.1:{secure.port}", ranking, DEADLINE_S, credentials=credentials
            ),
        }
        pids = dict(zip(VARIANTS, (bare.process.pid, stack.process.pid, secure.process.pid), strict=True))
        return asyncio.run(_measure(channels, pids, calls, rounds, concurrency))


if __name__ == "__main__":
    if sys.argv[1:3] == ["serve", "bare"]:
        asyncio.run(_serve_bare())
    elif sys.argv[1:3] == ["serve", "stack"]:
        asyncio.run(_serve_stack())
    else:
        raise SystemExit(__doc__)
