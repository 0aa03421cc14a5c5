import asyncio
import time

from tools.chaos.wakeup import delays_ms, measure, summary


def test_the_probe_reports_its_quantiles_from_its_own_process() -> None:
    started = time.monotonic()
    found = asyncio.run(measure(0.3))
    assert time.monotonic() - started >= 0.3
    assert found.samples > 20  # one sample per 2 ms tick, less what the wake-ups took
    assert 0 <= found.p50_ms <= found.p99_ms


def test_one_wake_up_in_ten_that_comes_late_shows_in_the_tail_not_the_median() -> None:
    late = summary([0.1] * 90 + [30.0] * 10)
    assert (late.p50_ms, late.p99_ms, late.samples) == (0.1, 30.0, 100)
    assert all(delay >= 0 for delay in delays_ms(0.05))
