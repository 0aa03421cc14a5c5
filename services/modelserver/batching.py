"""Server-side batching: concurrent Predict calls on the same signature run as one call.

Requests queue for at most `max_wait_s` (or until `max_batch` rows); those whose
inputs agree in names, dtypes and trailing shapes are concatenated along the
first dimension, computed once, and the outputs split back by each request's rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Tensors = dict[str, np.ndarray]


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    future: asyncio.Future[Tensors]


def _shape_key(inputs: Tensors) -> tuple:
    return tuple(sorted((name, value.dtype.str, value.shape[1:]) for name, value in inputs.items()))


@dataclass
class Batcher:
    max_batch: int = 64
    max_wait_s: float = 0.002
    _queues: dict[tuple, list[_Pending]] = field(default_factory=dict)
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, key: tuple, compute: Callable[[Tensors], Tensors], inputs: Tensors) -> Tensors:
        """Computes `inputs` (every tensor with a leading batch dimension) with others of `key`."""
        rows = {value.shape[0] for value in inputs.values() if value.ndim > 0}
        if len(rows) != 1 or any(value.ndim == 0 for value in inputs.values()):
            return await asyncio.to_thread(compute, inputs)
        full_key = (key, _shape_key(inputs))
        pending = _Pending(inputs, rows.pop(), asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(full_key, [])
        queue.append(pending)
        if len(queue) == 1:
            asyncio.get_running_loop().call_later(self.max_wait_s, self._flush_soon, full_key, compute)
        elif sum(p.rows for p in queue) >= self.max_batch:
            self._flush_soon(full_key, compute)
        return await pending.future

    def _flush_soon(self, key: tuple, compute: Callable[[Tensors], Tensors]) -> None:
        batch = self._queues.pop(key, [])
        if batch:
            task = asyncio.ensure_future(self._flush(batch, compute))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _flush(self, batch: list[_Pending], compute: Callable[[Tensors], Tensors]) -> None:
        names = list(batch[0].inputs)
        joined = {name: np.concatenate([p.inputs[name] for p in batch]) for name in names}
        try:
            outputs = await asyncio.to_thread(compute, joined)
        except Exception as error:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        total = sum(p.rows for p in batch)
        start = 0
        for pending in batch:
            stop = start + pending.rows
            part = {
                name: value[start:stop] if value.ndim > 0 and value.shape[0] == total else value
                for name, value in outputs.items()
            }
            if not pending.future.done():
                pending.future.set_result(part)
            start = stop
