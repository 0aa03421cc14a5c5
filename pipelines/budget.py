"""The training run's time budget (RECSYS_TRAIN_MAX_MINUTES), shared among its steps.

Each step may run until the run's end minus what the steps after it are promised (their
`reserve`, a share of the budget): a run that fits its budget is never cut, and a slow step eats
into the steps after it only down to their promised shares. The steps that learn by epochs (the
candidate GAN, the user VAE, the ranker's networks) stop at their deadline with the best they
have and say so; the others are not cut. The last CLOSING_SHARE of the budget is promised to no
step: it is for what runs past a deadline (the epoch in flight when it passed, the last export and
publishing), so that the run as a whole ends within its budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ml.deadline import Deadline

# Measured on a wide catalog: the last step ended 9 s past its deadline and the command 8 s after
# that (a 10-minute budget); 5% is 30 s of it.
CLOSING_SHARE = 0.05


@dataclass(frozen=True)
class RunBudget:
    seconds: float | None  # None: no budget
    reserves: Mapping[str, float]  # step name -> share of `seconds` kept for it while earlier steps run
    steps: Sequence[str]  # this run's steps, in the order they run
    started: float = field(default_factory=time.monotonic)

    def deadline(self, step: str) -> Deadline:
        """When `step` has to be done: the run's end less what the steps after it are promised."""
        if self.seconds is None:
            return None
        later = self.steps[self.steps.index(step) + 1 :] if step in self.steps else ()
        promised = CLOSING_SHARE + sum(self.reserves.get(name, 0.0) for name in later)
        return self.started + self.seconds * (1.0 - promised)

    def describe(self) -> str:
        if self.seconds is None:
            return "no time budget (RECSYS_TRAIN_MAX_MINUTES=0)"
        return f"a time budget of {self.seconds / 60:g} minutes (RECSYS_TRAIN_MAX_MINUTES)"
