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


def test_a_message_quoting_a_long_input_is_cut_to_fit_the_trailers() -> None:
    """An invalid time zone of 5,000 characters, quoted in the message, made the trailers exceed
    gRPC's 8 KiB and the caller saw RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT."""
    from shared.errors import MAX_MESSAGE_CHARS, InvalidArgument

    error = InvalidArgument("settings[0].time_zone " + repr("x" * 5000) + " is not an IANA time zone")
    assert len(error.message) == MAX_MESSAGE_CHARS and error.message.endswith("…")
    assert len(error.status().SerializeToString()) < 4096
