"""A null pipeline of the suite's shape: a gateway that answers Recommend by calling four stages
one after another, each in its own process, each replying 4 KB and doing no work. It measures what
gRPC, asyncio and the processes cost on this machine, the floor under the suite's own figures.

    python -m tools.bench.null_pipeline stage --port P
    python -m tools.bench.null_pipeline gateway --port P --stages HOST:PORT,HOST:PORT,...
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from tools.cli.supervisor import check_health, free_port

RECOMMEND = "/recsys.gateway.v1.GatewayService/Recommend"
STAGE = "/recsys.bench.NullStage/Call"
STAGE_COUNT = 4
REPLY = bytes(4096)
READY_TIMEOUT_S = 30.0


def _identity(data: bytes) -> bytes:
    return data


def _handler(method: str, behaviour: object) -> grpc.GenericRpcHandler:
    service, name = method.rsplit("/", 1)
    return grpc.method_handlers_generic_handler(
        service.strip("/"),
        {name: grpc.unary_unary_rpc_method_handler(behaviour, _identity, _identity)},
    )


async def _serve(port: int, handler: grpc.GenericRpcHandler) -> None:
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _stage(port: int) -> None:
    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return REPLY

    await _serve(port, _handler(STAGE, call))


async def _gateway(port: int, stages: list[str]) -> None:
    calls = [grpc.aio.insecure_channel(a).unary_unary(STAGE, _identity, _identity) for a in stages]

    async def recommend(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        for call in calls:
            await call(request, timeout=5)
        return b""  # an empty RecommendResponse

    await _serve(port, _handler(RECOMMEND, recommend))


@contextmanager
def null_pipeline() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """Starts the null pipeline's five processes on free ports; yields the gateway's address and
    the processes, and stops them at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str) -> None:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tools.bench.null_pipeline", *args],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    try:
        stages = [f"127.0.0.1:{free_port()}" for _ in range(STAGE_COUNT)]
        for address in stages:
            spawn("stage", "--port", address.rsplit(":", 1)[1])
        gateway = f"127.0.0.1:{free_port()}"
        spawn("gateway", "--port", gateway.rsplit(":", 1)[1], "--stages", ",".join(stages))
        _wait_serving([*stages, gateway], processes)
        yield gateway, processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _wait_serving(addresses: list[str], processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    for address in addresses:
        while check_health(address, 1.0) != "SERVING":
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                raise RuntimeError(f"the null pipeline did not start ({address} not serving)")
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("role", choices=("stage", "gateway"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stages", default="", help="the stages' addresses, comma-separated (gateway)")
    arguments = parser.parse_args()
    if arguments.role == "stage":
        asyncio.run(_stage(arguments.port))
    else:
        asyncio.run(_gateway(arguments.port, arguments.stages.split(",")))


if __name__ == "__main__":
    main()
