"""Which field an invalid argument names in its BadRequest detail."""

import pytest

from shared.errors import InvalidArgument


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("user_id must not be empty", "user_id"),
        ("events[3].timestamp is out of range", "events[3].timestamp"),
        ("count must be between 1 and 100", "count"),
        ("the request is not a valid protobuf message: truncated", ""),
        ("Surface must be one of home", ""),
    ],
)
def test_the_field_is_the_one_the_message_starts_with(message: str, field: str) -> None:
    assert InvalidArgument(message).field == field


def test_a_named_field_wins() -> None:
    assert InvalidArgument("the window is empty", field="window").field == "window"
