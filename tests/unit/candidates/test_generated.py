"""The generator's lists kept for reuse: only for the version the model server serves, as it said
lately, and at most as many as configured."""

import asyncio

from prometheus_client import REGISTRY

from services.candidates.generated import Generated, GeneratedLists, ServedVersion, history_key


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("recsys_candidates_generated_lists_total", {"outcome": outcome}) or 0.0


def test_the_served_version_is_read_in_the_background_and_trusted_for_a_while() -> None:
    now = [0.0]
    answers: list[int | Exception] = [3, 4, RuntimeError("the model server is away")]
    asked: list[float] = []

    async def read() -> int | None:
        asked.append(now[0])
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def settle(served: ServedVersion) -> None:
        if served._reading is not None:
            await asyncio.wait([served._reading])

    async def scenario() -> None:
        served = ServedVersion(read, poll_s=1.0, trust_s=5.0, clock=lambda: now[0])
        assert served.current() is None  # asked now, not waited for
        await settle(served)
        assert served.current() == 3
        now[0] = 0.5
        assert served.current() == 3 and asked == [0.0]  # not due: not asked again
        now[0] = 1.2
        assert served.current() == 3  # due: answered from what it knows while it asks
        await settle(served)
        assert served.current() == 4 and asked == [0.0, 1.2]
        now[0] = 2.5
        served.current()
        await settle(served)  # the model server does not answer: the version read at 1.2 holds
        assert served.current() == 4
        now[0] = 6.3  # more than trust_s since the last answer: not known any more
        assert served.current() is None

    asyncio.run(scenario())


def test_a_list_is_reused_only_for_its_history_and_version_and_the_oldest_leave_first() -> None:
    kept = GeneratedLists(capacity=2)
    first = Generated.of(7, ["a", "b"], [0.9, 0.5], 0.4)
    kept.put(("x",), first)
    kept.put(("y",), Generated.of(7, ["c"], [0.8], 0.3))
    reused, asked = _count("reused"), _count("asked")

    assert kept.get(("x",), 7) is first
    assert kept.get(("x",), 8) is None  # another version is served now
    assert kept.get(("x",), None) is None  # the served version is not known
    assert kept.get(("x", "y"), 7) is None  # another history
    assert (_count("reused") - reused, _count("asked") - asked) == (1, 3)
    # ids that join into the same text are still different histories
    assert history_key(("a\x1fb",)) != history_key(("a", "b"))

    kept.get(("x",), 7)  # x used last: y leaves first
    kept.put(("z",), Generated.of(7, ["d"], [0.7], 0.2))
    assert len(kept) == 2
    assert kept.get(("y",), 7) is None
    assert kept.get(("x",), 7) is first and kept.get(("z",), 7) is not None
