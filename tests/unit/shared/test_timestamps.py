"""Callers' Timestamps read as datetimes: the same moment as protobuf's own conversion, or None."""

from datetime import UTC

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from shared.timestamps import MAX_SECONDS, MIN_SECONDS, to_datetime


def test_the_moment_is_protobufs_own_across_the_whole_range() -> None:
    rng = np.random.default_rng(0)
    edges = [(MIN_SECONDS, 0), (MAX_SECONDS, 999_999_999), (0, 0), (-1, 999_999_999), (1, 999)]
    drawn = zip(
        rng.integers(MIN_SECONDS, MAX_SECONDS, 2000).tolist(),
        rng.integers(0, 10**9, 2000).tolist(),
        strict=True,
    )
    for seconds, nanos in [*edges, *drawn]:
        stamp = Timestamp(seconds=seconds, nanos=nanos)
        assert to_datetime(stamp) == stamp.ToDatetime(UTC)


def test_a_moment_out_of_range_is_none() -> None:
    for seconds, nanos in [(MIN_SECONDS - 1, 0), (MAX_SECONDS + 1, 0), (0, -1), (0, 10**9)]:
        assert to_datetime(Timestamp(seconds=seconds, nanos=nanos)) is None
