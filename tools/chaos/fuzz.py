"""Fuzzed requests for every RPC of the suite: messages built field by field from the contract with
edge values (negative counts, NaN, out-of-range timestamps, long strings, unknown enum numbers,
deep nesting), bit-flipped and truncated encodings of them, and plain random bytes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

INTS = (0, 1, -1, 2, 7, 100, 10_000, 2**31 - 1, -(2**31), 2**53)
FLOATS = (0.0, 1.0, -1.0, 0.5, 1e308, -1e308, float("inf"), float("-inf"), float("nan"), 5e-324)
# Timestamps and durations far outside what google.protobuf allows (years 1 to 9999).
SECONDS = (0, 1, -1, 1_700_000_000, 253_402_300_800, -62_135_596_801, 2**62, -(2**62))
MAX_DEPTH = 3
_F = FieldDescriptor
UNSIGNED = {_F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_FIXED32, _F.TYPE_FIXED64}
THIRTY_TWO_BITS = {_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_UINT32, _F.TYPE_FIXED32, _F.TYPE_SFIXED32}


@dataclass(frozen=True)
class Fuzzed:
    kind: str  # "built", "flipped", "truncated" or "random"
    payload: bytes


def _text(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.3:
        return ""
    if choice < 0.5:
        return "x" * rng.choice((1, 127, 128, 129, 1000, 5000))
    if choice < 0.7:
        return "".join(
            chr(rng.choice((0x41, 0x20, 0xE9, 0x4E2D, 0x1F600, 0x0))) for _ in range(rng.randint(1, 40))
        )
    return rng.choice(("17850", "22423", "user1", "home", "greedy", "bandit", "zh-CN", "France", " ", "-"))


def _scalar(field: FieldDescriptor, rng: random.Random) -> object:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice(FLOATS)
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == FieldDescriptor.TYPE_STRING:
        return _text(rng)
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice((0, 1, 16, 300)))
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values]
        return rng.choice([*numbers, 99, -1])
    unsigned = kind in UNSIGNED
    bits = 32 if kind in THIRTY_TWO_BITS else 64
    value = rng.choice(INTS)
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return min(max(value, low), high)


def _fill(message: Message, rng: random.Random, depth: int) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        message.seconds = rng.choice(SECONDS)
        message.nanos = rng.choice((0, 1, 999_999_999, 1_000_000_000, -1))
        return
    for field in descriptor.fields:
        if rng.random() < 0.35:
            continue
        repeated = field.is_repeated
        if field.message_type is not None:
            if depth >= MAX_DEPTH:
                continue
            if field.message_type.GetOptions().map_entry:
                _fill_map(getattr(message, field.name), field.message_type, rng)
                continue
            if repeated:
                for _ in range(rng.choice((0, 1, 2, 5))):
                    _fill(getattr(message, field.name).add(), rng, depth + 1)
            else:
                _fill(getattr(message, field.name), rng, depth + 1)
                if not message.HasField(field.name):
                    getattr(message, field.name).SetInParent()
        elif repeated:
            getattr(message, field.name).extend(
                _scalar(field, rng) for _ in range(rng.choice((0, 1, 3, 600)))
            )
        else:
            setattr(message, field.name, _scalar(field, rng))


def _fill_map(target: object, entry: Descriptor, rng: random.Random) -> None:
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    for _ in range(rng.choice((0, 1, 3))):
        key = _scalar(key_field, rng)
        if value_field.message_type is not None:
            _fill(target[key], rng, MAX_DEPTH - 1)  # type: ignore[index]
        else:
            target[key] = _scalar(value_field, rng)  # type: ignore[index]


def fuzzed_requests(input_type: Descriptor, rng: random.Random) -> Iterator[Fuzzed]:
    """An endless stream of request payloads of a method taking `input_type`: mostly messages built
    field by field, some of them damaged, and some plain random bytes."""
    message_class = GetMessageClass(input_type)
    while True:
        roll = rng.random()
        if roll < 0.1:
            yield Fuzzed("random", rng.randbytes(rng.choice((1, 7, 64, 2048))))
            continue
        message = message_class()
        _fill(message, rng, 0)
        encoded = message.SerializeToString()
        if roll < 0.2 and encoded:
            cut = rng.randrange(len(encoded))
            yield Fuzzed("truncated", encoded[:cut])
        elif roll < 0.3 and encoded:
            flipped = bytearray(encoded)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            yield Fuzzed("flipped", bytes(flipped))
        else:
            yield Fuzzed("built", encoded)
