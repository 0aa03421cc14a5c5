from tools.bench.rpc_stack import VARIANTS, measure


def test_each_variant_is_called_and_its_caller_and_server_cpu_read_from_their_own_processes() -> None:
    costs = measure(calls=120, rounds=1, concurrency=2)
    assert [cost.name for cost in costs] == list(VARIANTS)
    for cost in costs:
        # every call costs both sides something
        assert cost.client_ms > 0 and cost.server_ms > 0, cost
        assert cost.total_ms == cost.client_ms + cost.server_ms
