"""The floor under a refusal's latency, measured beside the overload: a process that serves the
gateway's Recommend and refuses every call at once (RESOURCE_EXHAUSTED, unread, as the gateway's
EarlyRefusal does), called by the same client process, at a share of the same offered rate. What it
takes is what the machine and the caller add to any refusal: waking the client and a server process,
and the client's own event loop, busy with the overload it is offering. Plaintext over loopback (the
gateway's public port speaks TLS).

    python -m tools.chaos.refuser    # serves until killed; prints "ready PORT" once listening
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.errors import ResourceExhausted
from shared.interceptors import abort_with

READY = "ready"
REFUSAL = ResourceExhausted("the refusal floor refuses every call", 0.05)
SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


async def _refuse(requests: Any, context: grpc.aio.ServicerContext) -> None:
    await abort_with(context, REFUSAL)


async def serve() -> None:
    # Request-streaming, like the gateway's refusal: the call is refused before its message is read.
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Recommend": grpc.stream_unary_rpc_method_handler(_refuse)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")  # the kernel's choice: no race for a free port
    await server.start()
    print(READY, port, flush=True)
    await server.wait_for_termination()


class RefusingServer:
    """`async with RefusingServer() as stub`: the refuser in a process of its own, and a stub to it."""

    async def __aenter__(self) -> gateway_pb2_grpc.GatewayServiceStub:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tools.chaos.refuser", stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        said = (await self.process.stdout.readline()).decode().split()
        if len(said) != 2 or said[0] != READY:
            self.process.kill()
            raise RuntimeError(f"the refusal floor's server did not start: {' '.join(said) or 'no output'}")
        port = int(said[1])
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return gateway_pb2_grpc.GatewayServiceStub(self._channel)

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()
        self.process.kill()
        await self.process.wait()


if __name__ == "__main__":
    asyncio.run(serve())
