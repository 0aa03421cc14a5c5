"""The load benchmark's parts: the generator against the null pipeline, CPU and stage readings."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from prometheus_client import start_http_server

from shared import metrics
from tools.bench.cpu import cpu_seconds, cpu_snapshot, cpu_used
from tools.bench.load import NOT_SENT, Caller, PhaseResult, closed_loop, open_loop
from tools.bench.null_pipeline import null_pipeline
from tools.bench.stages import generated_totals, reused_share, stage_ms


def test_the_generator_answers_every_call_of_both_loops_through_the_null_pipeline() -> None:
    with null_pipeline() as (address, processes):
        pids = {str(n): p.pid for n, p in enumerate(processes)}

        async def run() -> tuple[PhaseResult, PhaseResult]:
            caller = Caller(address, (), ["a", "b", "c"], 10)
            try:
                closed = PhaseResult("null", "concurrency 1", None)
                await closed_loop(caller, closed, 20)
                opened = PhaseResult("null", "40 rps", 40)
                before = cpu_snapshot(pids)
                await open_loop(caller, opened, 40, 1.0)
                opened.cpu_s = cpu_used(before, cpu_snapshot(pids))
                return closed, opened
            finally:
                await caller.close()

        closed, opened = asyncio.run(run())
    assert closed.answered == 20 and not closed.errors
    assert opened.answered == 40 and not opened.errors and NOT_SENT not in opened.errors
    assert 0 < opened.achieved_rps <= 40.5 and opened.goodput_rps == opened.achieved_rps
    assert opened.p50 <= opened.quantile(0.99) <= opened.quantile(0.999)
    assert sum(opened.cpu_s.values()) > 0  # five processes did the work
    summary = opened.summary()
    assert summary["answered"] == 40 and summary["errors"] == {}


def test_a_calls_latency_counts_from_when_it_was_due() -> None:
    async def run() -> PhaseResult:
        caller = Caller("127.0.0.1:1", (), ["a"], 10)  # nothing listens: every call fails fast
        result = PhaseResult("nowhere", "10 rps", 10)
        try:
            await open_loop(caller, result, 10, 0.5)
        finally:
            await caller.close()
        return result

    result = asyncio.run(run())
    assert result.answered == 0 and result.errors["UNAVAILABLE"] == 5
    assert result.achieved_rps == 0.0


def test_cpu_seconds_grow_with_work_and_are_zero_for_a_process_that_is_gone() -> None:
    spin = "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    time.sleep(0.7)
    assert cpu_seconds(busy.pid) > 0.05  # it spun (a loaded machine may give it little of the time)
    busy.wait()
    assert cpu_seconds(busy.pid) == 0.0  # reaped: no /proc entry


def test_stage_means_are_taken_between_two_readings() -> None:
    before = {"profile": (1.0, 100.0), "ranking": (2.0, 100.0)}
    after = {"profile": (1.5, 200.0), "ranking": (2.0, 100.0), "policy": (0.3, 100.0)}
    assert stage_ms(before, after) == {"profile": 5.0, "policy": 3.0}


def test_the_reused_share_of_generated_lists_is_read_from_the_candidates_counter() -> None:
    server, thread = start_http_server(0, addr="127.0.0.1")
    try:
        port = server.server_address[1]
        before = generated_totals(port)
        metrics.GENERATED_LISTS.labels("reused").inc(3)
        metrics.GENERATED_LISTS.labels("asked").inc()
        after = generated_totals(port)
    finally:
        server.shutdown()
        thread.join()
    assert set(after) == {"reused", "asked"}
    assert reused_share(before, after) == 0.75
    assert reused_share(after, after) is None  # no list was needed
    assert generated_totals(port) == {}  # nothing answers any more
