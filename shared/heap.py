"""Keeping the cyclic garbage collector off the request path.

A full collection walks every tracked object: in a serving process that is the modules, models
and caches loaded at start-up, and under load such a collection stalled the gateway's event loop
50 to 240 ms at a time, every few seconds, and every call waiting on the loop paid for it. Once a
process is ready, and again after it swaps in a new model version, `settle` collects once and
moves what is alive out of the collector's sight (gc.freeze); objects made later are collected as
before. Unfreezing first lets the model just replaced be collected, cycles included, instead of
staying frozen for good.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()
