"""Group commit: writes submitted from many threads share one transaction when they arrive together.

A submitter that finds no batch being written writes every waiting item, its own included, in one
call; the others wait, and when a batch is done the next waiting submitter writes the next one. At
concurrency 1 each item is its own batch; under load one commit serves many. `submit` returns only
once its item is written, so whatever a caller acknowledges is durable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64


class GroupCommit(Generic[T, R]):
    def __init__(self, write: Callable[[list[T]], Sequence[R]], max_batch: int = MAX_BATCH) -> None:
        """`write` stores a batch and returns one result per item, in order; if it raises, every
        item of the batch gets the exception."""
        self._write = write
        self._max_batch = max_batch
        self._condition = threading.Condition()
        self._pending: list[tuple[T, Future[R]]] = []
        self._writing = False
        self.batches = 0  # batches written so far (for tests and metrics)

    def submit(self, item: T) -> R:
        """Writes `item` (in a batch with whatever else waits) and returns its result."""
        future: Future[R] = Future()
        with self._condition:
            self._pending.append((item, future))
            while not future.done():
                if self._writing:
                    self._condition.wait()
                    continue
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                self._writing = True
                self._condition.release()
                try:
                    self._run(batch)
                finally:
                    self._condition.acquire()
                    self._writing = False
                    self._condition.notify_all()
        return future.result()

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._write([item for item, _ in batch])
        except Exception as error:
            for _, future in batch:
                future.set_exception(error)
            return
        finally:
            self.batches += 1
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
