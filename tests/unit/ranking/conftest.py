"""A ranker trained once per session on simulated shoppers (a tiny network: seconds on CPU)."""

from dataclasses import dataclass

import pytest

from ml.candidates_offline import SourcesConfig
from ml.ranking.config import RankerConfig
from ml.ranking.gate import PublishGate
from ml.ranking.train import TrainedRanker, fit_ranker, training_lists
from ml.snapshot import Snapshot
from ml.validation import TIME, Held, carve
from tests.unit.ranking.simulated_shop import simulated_snapshot

TINY = RankerConfig(dim=8, hidden=(16,), max_epochs=20, members=2)
# The simulated shop is small: the fixture's ranker is kept whatever its gain (the gate has its own tests).
ANY = PublishGate(min_training_lists=1, min_validation_lists=1, require_gain=False)


@dataclass(frozen=True)
class SimulatedRanker:
    trained: TrainedRanker
    earlier: Snapshot
    held_out: dict[str, Held]


@pytest.fixture(scope="session")
def simulated_ranker() -> SimulatedRanker:
    """Trained on the first 75% of the simulated clicks and purchases; the rest is held out. The shop
    is one where each shopper's own taste decides (regime "taste"): there the candidate order, led by
    co-purchases and popularity, leaves to the ranker's features what they can learn."""
    settings = SourcesConfig()
    carved = carve(simulated_snapshot(500, 150, 60, regime="taste"), TIME, share=0.25)
    earlier, held_out = carved.fit, carved.held
    lists, vocabulary = training_lists(earlier, settings, None, validation=carve(earlier, TIME))
    return SimulatedRanker(
        fit_ranker(earlier, settings, lists, vocabulary, TINY, gate=ANY), earlier, held_out
    )
