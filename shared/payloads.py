"""A rejected record as the text kept beside its reason in quarantine."""

from __future__ import annotations

from google.protobuf import json_format, text_format
from google.protobuf.message import Message


def payload(message: Message) -> str:
    """JSON, or protobuf text where JSON cannot say it (a Timestamp out of range, for one): the
    record that was refused is kept whatever is wrong with it."""
    try:
        return json_format.MessageToJson(message)
    except json_format.SerializeToJsonError:
        return text_format.MessageToString(message)
