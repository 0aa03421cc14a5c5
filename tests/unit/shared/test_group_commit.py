"""Group commit: every item written once, together when they arrive together, results in order."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.group_commit import GroupCommit


def test_items_arriving_together_share_batches_and_each_gets_its_own_result() -> None:
    written: list[list[int]] = []
    lock = threading.Lock()

    def write(batch: list[int]) -> list[int]:
        time.sleep(0.02)  # a commit's fsync: the others queue up meanwhile
        with lock:
            written.append(batch)
        return [item * 10 for item in batch]

    commits = GroupCommit(write, max_batch=16)
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(commits.submit, range(200)))
    assert results == [item * 10 for item in range(200)]
    assert sorted(item for batch in written for item in batch) == list(range(200))
    assert max(len(batch) for batch in written) > 1  # grouped
    assert max(len(batch) for batch in written) <= 16
    assert commits.batches == len(written) < 200


def test_one_item_alone_is_written_at_once() -> None:
    commits = GroupCommit(lambda batch: [f"stored {item}" for item in batch])
    assert commits.submit("a") == "stored a"
    assert commits.submit("b") == "stored b"
    assert commits.batches == 2


def test_a_failed_write_fails_every_item_of_its_batch_and_the_next_batch_is_written() -> None:
    calls = []

    def write(batch: list[str]) -> list[str]:
        calls.append(batch)
        if "bad" in batch:
            raise ValueError("refused")
        return batch

    commits = GroupCommit(write)
    with pytest.raises(ValueError, match="refused"):
        commits.submit("bad")
    assert commits.submit("good") == "good"
    assert calls == [["bad"], ["good"]]
