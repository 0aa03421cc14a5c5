from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from pipelines.settings import read_training_settings
from services.candidates.settings import read_candidates_settings
from services.gateway.settings import read_gateway_settings
from services.policy.settings import read_policy_settings
from services.ranking.settings import read_ranking_settings
from shared.config import DEFAULT_PORTS, ConfigError, EnvReader, load_section, load_settings

S = TypeVar("S")


def section(env: dict[str, str], read: Callable[[EnvReader], S]) -> S:
    """A service's own section as that service reads it at start-up."""
    return load_section(load_settings(env), read)


def test_defaults_put_all_state_under_home(tmp_path: Path) -> None:
    settings = load_settings({"RECSYS_HOME": str(tmp_path)})
    assert settings.ports == DEFAULT_PORTS
    assert settings.addresses["ranking"] == "127.0.0.1:50055"
    assert settings.database_url("profile") == f"sqlite:///{tmp_path}/db/profile.sqlite"
    assert settings.model_dir == tmp_path / "models"
    assert settings.api_key_file == tmp_path / "api-key"
    assert settings.demo is True


def test_overrides_per_service_and_shared_database(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "RECSYS_HOME": str(tmp_path),
            "RECSYS_GATEWAY_PORT": "6000",
            "RECSYS_DATABASE_URL": "postgresql+psycopg://db/shop",
            "RECSYS_POLICY_DATABASE_URL": "sqlite:////tmp/policy.sqlite",
            "RECSYS_DEMO": "0",
            "RECSYS_STAGE_DEADLINE_MS": "250",
        }
    )
    assert settings.ports["gateway"] == 6000
    assert settings.addresses["gateway"] == "127.0.0.1:6000"
    assert settings.database_url("items") == "postgresql+psycopg://db/shop"
    assert settings.database_url("policy") == "sqlite:////tmp/policy.sqlite"
    assert settings.demo is False
    assert settings.stage_deadline_s == 0.25


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {
                "RECSYS_GATEWAY_PORT": "70000",
                "RECSYS_DEMO": "maybe",
                "RECSYS_STAGE_DEADLINE_MS": "fast",
                "RECSYS_LOG_LEVEL": "loud",
                "RECSYS_ITEMS_DATABASE_URL": "items.db",
                "RECSYS_API_KEYS": "short",
            }
        )
    message = str(raised.value)
    for name in (
        "RECSYS_GATEWAY_PORT",
        "RECSYS_DEMO",
        "RECSYS_STAGE_DEADLINE_MS",
        "RECSYS_LOG_LEVEL",
        "items",
        "RECSYS_API_KEYS",
    ):
        assert name in message
    assert len(raised.value.problems) == 6


def test_candidate_weights_and_quotas_keep_defaults_for_sources_left_out() -> None:
    fusion = section(
        {"RECSYS_CANDIDATES_WEIGHTS": "popular=0.2", "RECSYS_CANDIDATES_QUOTAS": "candidate-gan=0.5"},
        read_candidates_settings,
    ).fusion
    assert fusion is not None
    assert fusion.weights == {
        "candidate-gan": 1.0,
        "item-knn": 0.5,
        "ease": 1.0,
        "popular": 0.2,
        "item-text": 0.25,
        "knowledge-graph": 0.25,
    }
    assert fusion.quotas == {
        "candidate-gan": 0.5,
        "item-knn": 0.1,
        "ease": 0.1,
        "popular": 0.1,
        "item-text": 0.05,
        "knowledge-graph": 0.05,
    }


def test_without_fusion_variables_the_candidates_follow_what_training_chose() -> None:
    assert section({}, read_candidates_settings).fusion is None


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("RECSYS_CANDIDATES_QUOTAS", "candidate-gan=0.9,popular=0.3", "sum to 1.5, more than 1"),
        (
            "RECSYS_CANDIDATES_QUOTAS",
            "trending=0.2",
            "the name one of candidate-gan, item-knn, ease, popular, item-text, knowledge-graph",
        ),
        (
            "RECSYS_CANDIDATES_WEIGHTS",
            "item-knn=lots",
            "'item-knn=lots' must be <name>=<value from 0 to 1>",
        ),
        ("RECSYS_POPULARITY_HALF_LIFE_DAYS", "-1", "must be between 0 and 3650"),
    ],
)
def test_bad_candidate_settings_are_named(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        section({variable: value}, read_training_settings)
    assert variable in str(raised.value) and problem in str(raised.value)


def test_the_ranker_switch_takes_learned_or_baseline_in_any_case() -> None:
    assert section({}, read_ranking_settings).ranker == "learned"
    assert section({"RECSYS_RANKER": "Baseline"}, read_ranking_settings).ranker == "baseline"
    with pytest.raises(ConfigError, match="RECSYS_RANKER='magic' must be one of learned, baseline"):
        section({"RECSYS_RANKER": "magic"}, read_ranking_settings)


def test_the_ranker_seed_defaults_to_zero_and_must_not_be_negative() -> None:
    assert section({}, read_training_settings).ranker_seed == 0
    assert section({"RECSYS_RANKER_SEED": "3"}, read_training_settings).ranker_seed == 3
    with pytest.raises(ConfigError, match="RECSYS_RANKER_SEED='-1' must be between 0"):
        section({"RECSYS_RANKER_SEED": "-1"}, read_training_settings)


def test_training_refuses_unknown_feature_groups_to_leave_out() -> None:
    assert section({"RECSYS_RANKER_LEFT_OUT": "vae"}, read_training_settings).ranker_left_out == ("vae",)
    with pytest.raises(ConfigError, match="unknown feature groups \\['colour'\\]"):
        section({"RECSYS_RANKER_LEFT_OUT": "vae,colour"}, read_training_settings)


def test_policy_settings_default_to_the_bandit_and_read_shares_and_weights() -> None:
    default = section({}, read_policy_settings)
    assert default.shares == {"bandit": 1.0}
    assert default.reward_weights["purchase"] == 10.0 and default.reward_weights["dismiss"] < 0
    policy = section(
        {
            "RECSYS_POLICIES": "greedy=0.5,epsilon-greedy=0.25,bandit=0.25",
            "RECSYS_REWARD_WEIGHTS": "purchase=5,dismiss=-1",
            "RECSYS_FUSION_WEIGHTS": "ranker=0.5,margin=2",
            "RECSYS_POLICY_EPSILON": "0.1",
        },
        read_policy_settings,
    )
    assert policy.shares == {"greedy": 0.5, "epsilon-greedy": 0.25, "bandit": 0.25}
    assert policy.reward_weights["purchase"] == 5.0 and policy.reward_weights["click"] == 1.0
    assert policy.fusion_weights == {"ranker": 0.5, "generator": 0.0, "margin": 2.0, "bandit": 1.0}
    assert policy.epsilon == 0.1


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("RECSYS_POLICIES", "greedy=0.5", "the shares must sum to 1; they sum to 0.5"),
        ("RECSYS_POLICIES", "thompson=1", "the name one of greedy, epsilon-greedy, bandit"),
        ("RECSYS_REWARD_WEIGHTS", "purchase=much", "must be <name>=<value from -100 to 100>"),
        ("RECSYS_POLICY_EPSILON", "1.5", "must be between 0 and 1"),
    ],
)
def test_bad_policy_settings_are_named(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        section({variable: value}, read_policy_settings)
    assert variable in str(raised.value) and problem in str(raised.value)


def test_the_policy_seed_is_unset_by_default_and_checked() -> None:
    assert section({}, read_policy_settings).seed is None
    assert section({"RECSYS_POLICY_SEED": "7"}, read_policy_settings).seed == 7
    with pytest.raises(ConfigError, match="RECSYS_POLICY_SEED='-3' must be between 0"):
        section({"RECSYS_POLICY_SEED": "-3"}, read_policy_settings)


def test_a_bad_setting_of_one_service_stops_only_that_service() -> None:
    env = {"RECSYS_PUSH_DAILY_CAP": "lots", "RECSYS_POLICY_EPSILON": "2"}
    settings = load_settings(env)  # the shared part is fine
    assert load_section(settings, read_ranking_settings).ranker == "learned"
    assert load_section(settings, read_candidates_settings).model_server_deadline_s == 0.3
    with pytest.raises(ConfigError) as gateway:
        load_section(settings, read_gateway_settings)
    assert gateway.value.problems == ["RECSYS_PUSH_DAILY_CAP='lots' is not a number"]
    with pytest.raises(ConfigError, match="RECSYS_POLICY_EPSILON"):
        load_section(settings, read_policy_settings)


def test_secrets_stay_out_of_repr() -> None:
    key = "k3y-that-must-not-leak-0123456789"
    settings = load_settings(
        {"RECSYS_API_KEYS": key, "RECSYS_DATABASE_URL": "postgresql+psycopg://shop:hunter2@db/shop"}
    )
    assert settings.api_keys == (key,)
    shown = repr(settings)
    assert key not in shown and "hunter2" not in shown
    assert "RECSYS_API_KEYS" not in shown  # the environment it came from is not shown either
