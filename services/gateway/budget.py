"""The caller's deadline as one request's budget, shared among the stages still to run.

Each stage gets an equal share of what is left for the stages not yet run, and
never more than RECSYS_STAGE_DEADLINE_MS: a hung stage costs its share, the
later stages still get theirs, and time is kept back to answer from what the
stages produced. A caller that sets no deadline gets each stage's ceiling.
gRPC sends each stage's timeout downstream as that call's deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Kept back from the caller's deadline to build and send the answer: when the last stage (the
# policy) hangs, the fallback slate, its reasons and the request log still have to fit in it on a
# busy machine, where a process may wake tens of ms late. With 5 ms + 5%, up to 2% of the calls
# answered over a hung policy came late; with 10 ms + 10%, up to 2.6% in one phase of `make chaos`
# (answered 33 ms before a 300 ms deadline, every one of them).
ANSWER_RESERVE_S = 0.01
ANSWER_SHARE = 0.2
# The shortest timeout a stage is called with; below it the call fails at once and the stage degrades.
MIN_STAGE_S = 0.001


@dataclass(frozen=True)
class Budget:
    ceiling_s: float  # the most one stage may take
    ends_at: float | None = None  # time.monotonic() by which the stages must be done; None: no deadline

    @classmethod
    def of(cls, time_remaining: float | None, ceiling_s: float) -> Budget:
        """The budget of a request whose caller left `time_remaining` seconds (None: no deadline)."""
        if time_remaining is None:
            return cls(ceiling_s)
        reserve = ANSWER_RESERVE_S + ANSWER_SHARE * time_remaining
        return cls(ceiling_s, time.monotonic() + time_remaining - reserve)

    def stage(self, stages_left: int) -> float:
        """The timeout of the next stage, when `stages_left` stages (it included) are still to run."""
        if self.ends_at is None:
            return self.ceiling_s
        left = self.ends_at - time.monotonic()
        return max(min(self.ceiling_s, left / max(stages_left, 1)), MIN_STAGE_S)
