import asyncio

import grpc
import pytest

from recsys.gateway.v1 import gateway_pb2
from shared.replicas import Replicas
from tools.chaos.overload import Tally, _Caller, offered
from tools.chaos.refuser import RefusingServer


def test_the_refusal_floor_refuses_every_call_from_a_process_of_its_own_and_stops_with_it() -> None:
    server = RefusingServer()

    async def check() -> tuple[grpc.StatusCode, Tally]:
        async with server as stub:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Recommend(gateway_pb2.RecommendRequest(user_id="u1"), timeout=5)
            caller = _Caller(Replicas([stub], hedging=None), "key", ["u1", "u2"], 2.0)
            return refused.value.code(), await offered(caller, 40.0, 0.5)

    code, tally = asyncio.run(check())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(tally.refusal_ms) == tally.codes["RESOURCE_EXHAUSTED"] >= 15  # 40 a second for 0.5 s
    assert 0 < tally.refusal_quantile(0.5) <= tally.refusal_quantile(0.99)
    assert server.process.returncode is not None
