import pytest

from shared.deadlines import MIN_CALL_S, downstream_timeout


class _Context:
    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining


@pytest.mark.parametrize(
    ("remaining", "ceiling", "expected"),
    [
        (None, 0.8, 0.8),  # no deadline: the call's own default
        (10.0, 0.8, 0.8),  # plenty left: never more than the default
        (0.2, 0.8, 0.2 - 0.01 - 0.02),  # what is left, less the reply's part
        (0.005, 0.8, MIN_CALL_S),  # nothing left: the call fails at once
    ],
)
def test_a_downstream_call_gets_what_the_caller_left_less_the_reply_within_its_default(
    remaining: float | None, ceiling: float, expected: float
) -> None:
    assert downstream_timeout(_Context(remaining), ceiling) == pytest.approx(expected)  # type: ignore[arg-type]
