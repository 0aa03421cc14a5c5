"""The training run's time budget: each step may use what the steps after it are not promised."""

import dataclasses
import time

import pytest

from ml.ease import EASE
from pipelines.budget import CLOSING_SHARE, RunBudget
from pipelines.settings import TRAIN_MAX_MINUTES, training_settings
from pipelines.train import GAN_REFIT, REFIT_PACE, TRAINERS, TrainingRun, views_plan
from tests.support import make_settings
from tests.unit.ml.test_validation import returning_shop

RESERVES = {"ease": 0.2, "candidates": 0.1, "ranking": 0.4}


def test_a_step_runs_until_the_end_less_what_later_steps_are_promised() -> None:
    budget = RunBudget(600.0, RESERVES, ["popularity", "ease", "candidates", "ranking"], started=1000.0)
    assert budget.deadline("popularity") == pytest.approx(1000 + 600 * (1 - 0.7 - CLOSING_SHARE))
    assert budget.deadline("ease") == pytest.approx(1000 + 600 * (1 - 0.5 - CLOSING_SHARE))
    assert budget.deadline("candidates") == pytest.approx(1000 + 600 * (1 - 0.4 - CLOSING_SHARE))
    assert budget.deadline("ranking") == pytest.approx(1600 - 600 * CLOSING_SHARE)


def test_only_the_steps_of_the_run_are_promised_time() -> None:
    budget = RunBudget(600.0, RESERVES, ["ease", "ranking"], started=0.0)
    assert budget.deadline("ease") == pytest.approx(600 * (0.6 - CLOSING_SHARE))


def test_no_budget_no_deadline() -> None:
    assert RunBudget(None, RESERVES, ["ease"]).deadline("ease") is None


def test_the_budget_is_ten_minutes_unless_set_and_zero_is_none(tmp_path) -> None:
    assert training_settings(make_settings(str(tmp_path))).max_minutes == TRAIN_MAX_MINUTES
    assert training_settings(make_settings(str(tmp_path), RECSYS_TRAIN_MAX_MINUTES="0")).max_minutes is None
    assert training_settings(make_settings(str(tmp_path), RECSYS_TRAIN_MAX_MINUTES="2.5")).max_minutes == 2.5


def test_the_gan_gets_what_the_run_leaves_until_its_refit_step_must_be_done(tmp_path) -> None:
    training = training_settings(make_settings(str(tmp_path), RECSYS_TRAIN_MAX_MINUTES="1"))
    steps = [EASE, GAN_REFIT, "ranking"]
    budget = RunBudget(60.0, {name: trainer.reserve for name, trainer in TRAINERS.items()}, steps)
    run = TrainingRun(returning_shop(), training, tmp_path, budget, step=EASE)
    refit_done_by = 60 * (1 - TRAINERS["ranking"].reserve - CLOSING_SHARE) / 60
    assert run.gan_minutes() == pytest.approx(refit_done_by, abs=0.01)  # the carve's GAN, in validation
    assert run.gan_minutes(spent_s=12.0) == pytest.approx(refit_done_by + 0.2, abs=0.01)  # the refit
    roomy = dataclasses.replace(budget, seconds=6000.0)
    assert TrainingRun(returning_shop(), training, tmp_path, roomy).gan_minutes() == training.gan_max_minutes


def test_the_ranker_refits_its_views_on_everything_only_when_the_budget_leaves_room(tmp_path) -> None:
    training = training_settings(make_settings(str(tmp_path)))
    reserves = {name: trainer.reserve for name, trainer in TRAINERS.items()}

    def plan(seconds: float | None) -> tuple[bool, float | None]:
        run = TrainingRun(returning_shop(), training, tmp_path, RunBudget(seconds, reserves, ["ranking"]))
        run.step = "ranking"
        return views_plan(run, carve_views_s=10.0)

    assert plan(None) == (True, None)
    roomy, networks_until = plan(600.0)
    assert roomy and networks_until == pytest.approx(
        time.monotonic() + 600 * (1 - CLOSING_SHARE) - REFIT_PACE * 10, abs=1
    )
    short, networks_until = plan(20.0)
    assert not short and networks_until == pytest.approx(time.monotonic() + 20 * (1 - CLOSING_SHARE), abs=1)
