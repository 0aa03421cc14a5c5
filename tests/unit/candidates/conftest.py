"""One small exported candidate GAN, shared by the tests that serve it."""

import pytest

from ml.gan.model import GanConfig
from ml.gan.train import fit_gan
from shared.models import publish
from tests.support import make_settings
from tests.unit.candidates.simulated import simulated, snapshot_of


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    users, items, matrix = simulated(shoppers=200, items=120)
    trained = fit_gan(snapshot_of(users, items, matrix), GanConfig(max_epochs=2, min_epochs=1, top_n=30))
    settings = make_settings(str(tmp_path_factory.mktemp("gan")), RECSYS_MODEL_POLL_S="0.2")
    version = publish(settings.model_dir, "candidate_gan", trained.save)
    return settings, settings.model_dir / "candidate_gan" / str(version), trained
