"""Settling the heap: what is alive is set aside from the collector, and what was set aside before
can be collected again, cycles included."""

import gc
import weakref

from shared import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settled_objects_are_frozen_and_a_replaced_one_is_collected_at_the_next_settle() -> None:
    try:
        old = Node()
        gone = weakref.ref(old)
        heap.settle()
        assert gc.get_freeze_count() > 0
        del old  # the model replaced by a new version
        gc.collect()
        assert gone() is not None  # frozen: full collections do not walk it
        heap.settle()
        assert gone() is None
    finally:
        gc.unfreeze()
