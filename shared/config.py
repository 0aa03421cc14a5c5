"""Settings of every process, read from environment variables and checked at start-up.

Every variable is optional; the defaults run the whole suite on one machine
with state under `var/`. A bad value stops the process with one message that
names every offending variable.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared import sources

SERVICES: tuple[str, ...] = ("gateway", "profile", "items", "candidates", "ranking", "policy")
# The local stand-in for TF Serving; in Kubernetes the real one answers at the same address.
MODEL_SERVER = "modelserver"
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 50051,
    "profile": 50052,
    "items": 50053,
    "candidates": 50054,
    "ranking": 50055,
    "policy": 50056,
    MODEL_SERVER: 8500,
}
DEFAULT_METRICS_PORTS: dict[str, int] = {
    **{name: DEFAULT_PORTS[name] - 50051 + 9451 for name in SERVICES},
    MODEL_SERVER: 9457,
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Weight of each retrieval source in the reciprocal-rank fusion of their lists. These and the
# popularity half-life were chosen on October 2011, the last month of retail-temporal's
# training part, with models fitted on the months before (never on the test period).
DEFAULT_CANDIDATE_WEIGHTS: dict[str, float] = {
    sources.GENERATOR: 1.0,
    sources.ITEM_KNN: 0.5,
    sources.POPULAR: 0.75,
    sources.ITEM_TEXT: 0.25,
    sources.KNOWLEDGE_GRAPH: 0.25,
}
# Share of the candidate list each source is guaranteed, whatever the fusion says.
DEFAULT_CANDIDATE_QUOTAS: dict[str, float] = {
    sources.GENERATOR: 0.1,
    sources.ITEM_KNN: 0.1,
    sources.POPULAR: 0.1,
    sources.ITEM_TEXT: 0.05,
    sources.KNOWLEDGE_GRAPH: 0.05,
}


POLICY_KINDS = ("greedy", "epsilon-greedy", "bandit")
DEFAULT_POLICY_SHARES: dict[str, float] = {"bandit": 1.0}
# Reward of each event type that answers a recommendation (DISMISS is negative feedback).
DEFAULT_REWARD_WEIGHTS: dict[str, float] = {
    "view": 0.0,
    "click": 1.0,
    "add_to_cart": 3.0,
    "purchase": 10.0,
    "review": 0.0,
    "like": 1.0,
    "share": 2.0,
    "dismiss": -2.0,
}
# Weights of the strategy fusion (docs/policy.md): each score is standardized over the request's
# candidates first, so the weights compare like with like.
DEFAULT_FUSION_WEIGHTS: dict[str, float] = {"ranker": 0.3, "generator": 0.0, "margin": 0.0, "bandit": 1.0}


@dataclass(frozen=True)
class PolicySettings:
    """How the policy service chooses slates and learns (docs/policy.md)."""

    shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_POLICY_SHARES))
    salt: str = "recsys"
    reward_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARD_WEIGHTS))
    fusion_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FUSION_WEIGHTS))
    epsilon: float = 0.2
    bandit_alpha: float = 1.0
    temperature: float = 0.3
    diversity: float = 0.3
    category_cap: int = 0
    consider: int = 50
    propensity_samples: int = 300
    seed: int | None = None  # of the slate draws; None: fresh entropy at each start


# Fields a push deep link may name (RECSYS_PUSH_DEEP_LINK).
DEEP_LINK_FIELDS = ("item_id", "push_id", "request_id", "user_id")
CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "CNY": "¥", "JPY": "¥"}


@dataclass(frozen=True)
class PushConfig:
    """The push rules and how messages are written and timed (docs/push.md)."""

    daily_cap: int = 2  # pushes per shopper in any 24 hours
    weekly_cap: int = 5  # pushes per shopper in any 7 days
    dedupe_days: float = 14.0  # no item pushed twice to a shopper within this many days
    min_confidence: float = 0.01  # below it, the ranker is not sure enough: no push
    quiet_start: int = 22  # local hour quiet hours start
    quiet_end: int = 8  # local hour quiet hours end
    time_zone: str = "UTC"  # for shoppers whose settings name none
    deep_link: str = "shop://item/{item_id}?push_id={push_id}&request_id={request_id}"
    currency: str = "GBP"
    fresh_days: float = 14.0  # how recent a listing, price drop or restock must be to be news


class ConfigError(Exception):
    """One or more environment variables have unusable values."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems))


@dataclass(frozen=True)
class Settings:
    """Everything a process of the suite may be configured with."""

    home: Path
    demo: bool
    log_level: str
    bind_host: str
    ports: Mapping[str, int]
    metrics_ports: Mapping[str, int]
    addresses: Mapping[str, str]
    database_urls: Mapping[str, str]
    api_keys: tuple[str, ...]
    stage_deadline_s: float
    shutdown_delay_s: float
    shutdown_grace_s: float
    model_poll_s: float
    otlp_endpoint: str
    served_models: tuple[str, ...] = ()
    candidate_gan: bool = False
    model_server_deadline_s: float = 0.3
    candidate_quotas: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CANDIDATE_QUOTAS))
    candidate_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CANDIDATE_WEIGHTS))
    popularity_half_life_days: float = 3.0
    profile_half_life_days: float = 30.0
    gan_mixed_precision: bool = False
    # "learned": the published ranker (co-occurrence until one exists); "baseline": always co-occurrence.
    ranker: str = "learned"
    # Feature groups `recsys train ranking` leaves out (services/ranking/features.GROUPS): a served ablation.
    ranker_left_out: tuple[str, ...] = ()
    # Seed of the ranker's training (initialization, batch order, the early-stopping share).
    ranker_seed: int = 0
    policy: PolicySettings = field(default_factory=PolicySettings)
    push: PushConfig = field(default_factory=PushConfig)

    @property
    def model_dir(self) -> Path:
        """TF Serving layout: `<model_dir>/<name>/<version>/`."""
        return self.home / "models"

    @property
    def snapshot_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def api_key_file(self) -> Path:
        return self.home / "api-key"

    def database_url(self, service: str) -> str:
        return self.database_urls[service]


class _Reader:
    """Reads typed values from an environment mapping and collects every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, default).strip() or default

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}={raw!r} must be between {low:g} and {high:g}")
            return default
        return value

    def port(self, name: str, default: int) -> int:
        return int(self.number(name, default, 1, 65535))

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name}={raw!r} must be one of 1/0, true/false, yes/no, on/off")
        return default

    def shares(
        self,
        name: str,
        default: Mapping[str, float],
        allowed: tuple[str, ...],
        most: float = 1.0,
        low: float = 0.0,
        high: float = 1.0,
    ) -> dict[str, float]:
        """`name=value,...` pairs with known names and values from `low` to `high`; names left
        out keep their default, and all of them sum to at most `most`."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return dict(default)
        found: dict[str, float] = {}
        for pair in raw.split(","):
            key, _, value = pair.partition("=")
            key = key.strip()
            try:
                share = float(value)
            except ValueError:
                share = float("nan")
            if key not in allowed or not low <= share <= high:
                self.problems.append(
                    f"{name}: {pair.strip()!r} must be <name>=<value from {low:g} to {high:g}>, "
                    f"the name one of {', '.join(allowed)}"
                )
                return dict(default)
            found[key] = share
        merged = {**default, **found}
        if sum(merged.values()) > most + 1e-9:
            self.problems.append(f"{name}: the shares sum to {sum(merged.values()):g}, more than {most:g}")
            return dict(default)
        return merged

    def choice(
        self, name: str, default: str, allowed: tuple[str, ...], case: Callable[[str], str] = str.upper
    ) -> str:
        """A word out of `allowed`, compared after `case` (upper-case unless told)."""
        value = case(self.text(name, default))
        if value not in allowed:
            self.problems.append(f"{name}={value!r} must be one of {', '.join(allowed)}")
            return default
        return value


RANKERS = ("learned", "baseline")


def _policy_settings(read: _Reader) -> PolicySettings:
    shares = read.shares("RECSYS_POLICIES", {}, POLICY_KINDS) or dict(DEFAULT_POLICY_SHARES)
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        read.problems.append(
            f"RECSYS_POLICIES: the shares must sum to 1; they sum to {sum(shares.values()):g}"
        )
    return PolicySettings(
        shares=shares,
        salt=read.text("RECSYS_POLICY_SALT", "recsys"),
        reward_weights=read.shares(
            "RECSYS_REWARD_WEIGHTS",
            DEFAULT_REWARD_WEIGHTS,
            tuple(DEFAULT_REWARD_WEIGHTS),
            most=float("inf"),
            low=-100.0,
            high=100.0,
        ),
        fusion_weights=read.shares(
            "RECSYS_FUSION_WEIGHTS",
            DEFAULT_FUSION_WEIGHTS,
            tuple(DEFAULT_FUSION_WEIGHTS),
            most=float("inf"),
            high=100.0,
        ),
        epsilon=read.number("RECSYS_POLICY_EPSILON", 0.2, 0, 1),
        bandit_alpha=read.number("RECSYS_BANDIT_ALPHA", 1.0, 0, 100),
        temperature=read.number("RECSYS_BANDIT_TEMPERATURE", 0.3, 0.01, 100),
        diversity=read.number("RECSYS_POLICY_DIVERSITY", 0.3, 0, 10),
        category_cap=int(read.number("RECSYS_POLICY_CATEGORY_CAP", 0, 0, 1000)),
        consider=int(read.number("RECSYS_POLICY_CONSIDER", 50, 1, 1000)),
        propensity_samples=int(read.number("RECSYS_POLICY_PROPENSITY_SAMPLES", 300, 10, 100_000)),
        seed=_optional_seed(read.number("RECSYS_POLICY_SEED", -1, 0, 2**32 - 1)),
    )


def _optional_seed(value: float) -> int | None:
    """-1 (unset) means no seed."""
    return None if value < 0 else int(value)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Reads the settings; raises ConfigError listing every bad variable."""
    env = os.environ if env is None else env
    read = _Reader(env)
    home = Path(read.text("RECSYS_HOME", "var")).absolute()
    processes = (*SERVICES, MODEL_SERVER)
    ports = {name: read.port(f"RECSYS_{name.upper()}_PORT", DEFAULT_PORTS[name]) for name in processes}
    everywhere = read.number("RECSYS_METRICS_PORT", -1, 0, 65535)  # unset: one port per service
    metrics_ports = {
        name: int(
            read.number(
                f"RECSYS_{name.upper()}_METRICS_PORT",
                everywhere if everywhere >= 0 else DEFAULT_METRICS_PORTS[name],
                0,
                65535,
            )
        )
        for name in processes
    }
    addresses = {
        name: read.text(f"RECSYS_{name.upper()}_ADDR", f"127.0.0.1:{ports[name]}") for name in processes
    }
    shared_url = read.text("RECSYS_DATABASE_URL", "")
    database_urls = {
        name: read.text(
            f"RECSYS_{name.upper()}_DATABASE_URL",
            shared_url or f"sqlite:///{home / 'db' / f'{name}.sqlite'}",
        )
        for name in SERVICES
    }
    for name, url in database_urls.items():
        if "://" not in url:
            read.problems.append(f"database URL for {name} ({url!r}) is not a SQLAlchemy URL")
    api_keys = tuple(key.strip() for key in env.get("RECSYS_API_KEYS", "").split(",") if key.strip())
    if any(len(key) < 16 for key in api_keys):
        read.problems.append("RECSYS_API_KEYS: every key must have at least 16 characters")
    settings = Settings(
        home=home,
        demo=read.flag("RECSYS_DEMO", True),
        log_level=read.choice("RECSYS_LOG_LEVEL", "INFO", LOG_LEVELS),
        bind_host=read.text("RECSYS_BIND_HOST", "127.0.0.1"),
        ports=ports,
        metrics_ports=metrics_ports,
        addresses=addresses,
        database_urls=database_urls,
        api_keys=api_keys,
        stage_deadline_s=read.number("RECSYS_STAGE_DEADLINE_MS", 800, 1, 60_000) / 1000,
        shutdown_delay_s=read.number("RECSYS_SHUTDOWN_DELAY_S", 1.0, 0, 60),
        shutdown_grace_s=read.number("RECSYS_SHUTDOWN_GRACE_S", 5.0, 0, 300),
        model_poll_s=read.number("RECSYS_MODEL_POLL_S", 2.0, 0.1, 3600),
        otlp_endpoint=read.text("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        served_models=tuple(
            name.strip() for name in env.get("RECSYS_MODELSERVER_MODELS", "").split(",") if name.strip()
        ),
        candidate_gan=read.flag("RECSYS_CANDIDATES_GAN", False),
        model_server_deadline_s=read.number("RECSYS_MODELSERVER_DEADLINE_MS", 300, 1, 60_000) / 1000,
        gan_mixed_precision=read.flag("RECSYS_GAN_MIXED_PRECISION", False),
        candidate_quotas=read.shares(
            "RECSYS_CANDIDATES_QUOTAS", DEFAULT_CANDIDATE_QUOTAS, tuple(DEFAULT_CANDIDATE_QUOTAS)
        ),
        candidate_weights=read.shares(
            "RECSYS_CANDIDATES_WEIGHTS",
            DEFAULT_CANDIDATE_WEIGHTS,
            tuple(DEFAULT_CANDIDATE_WEIGHTS),
            most=len(DEFAULT_CANDIDATE_WEIGHTS),
        ),
        popularity_half_life_days=read.number("RECSYS_POPULARITY_HALF_LIFE_DAYS", 3.0, 0, 3650),
        profile_half_life_days=read.number("RECSYS_PROFILE_HALF_LIFE_DAYS", 30.0, 0.01, 3650),
        ranker=read.choice("RECSYS_RANKER", "learned", RANKERS, str.lower),
        ranker_left_out=tuple(
            name.strip() for name in read.text("RECSYS_RANKER_LEFT_OUT", "").split(",") if name.strip()
        ),
        ranker_seed=int(read.number("RECSYS_RANKER_SEED", 0, 0, 2**32 - 1)),
        policy=_policy_settings(read),
        push=_push_config(read),
    )
    if read.problems:
        raise ConfigError(read.problems)
    return settings


def _quiet_hours(read: _Reader) -> tuple[int, int]:
    raw = read.text("RECSYS_PUSH_QUIET_HOURS", "22-8")
    start, _, end = raw.partition("-")
    try:
        hours = (int(start), int(end))
    except ValueError:
        hours = (-1, -1)
    if not all(0 <= hour <= 23 for hour in hours):
        read.problems.append(
            f"RECSYS_PUSH_QUIET_HOURS={raw!r} must be <start>-<end> local hours 0-23, e.g. 22-8"
        )
        return 22, 8
    return hours


def _push_config(read: _Reader) -> PushConfig:
    quiet_start, quiet_end = _quiet_hours(read)
    time_zone = read.text("RECSYS_PUSH_TIME_ZONE", "UTC")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        read.problems.append(
            f"RECSYS_PUSH_TIME_ZONE={time_zone!r} is not an IANA time zone (e.g. Europe/London)"
        )
        time_zone = "UTC"
    deep_link = read.text("RECSYS_PUSH_DEEP_LINK", PushConfig.deep_link)
    try:
        named = {name for _, name, _, _ in string.Formatter().parse(deep_link) if name is not None}
    except ValueError:
        named = {"?"}
    if not named <= set(DEEP_LINK_FIELDS) or "item_id" not in named:
        read.problems.append(
            f"RECSYS_PUSH_DEEP_LINK={deep_link!r} must name {{item_id}} and may name only "
            + ", ".join(f"{{{name}}}" for name in DEEP_LINK_FIELDS)
        )
        deep_link = PushConfig.deep_link
    return PushConfig(
        daily_cap=int(read.number("RECSYS_PUSH_DAILY_CAP", 2, 0, 100)),
        weekly_cap=int(read.number("RECSYS_PUSH_WEEKLY_CAP", 5, 0, 700)),
        dedupe_days=read.number("RECSYS_PUSH_DEDUPE_DAYS", 14, 0, 365),
        min_confidence=read.number("RECSYS_PUSH_MIN_CONFIDENCE", 0.01, 0, 1),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        time_zone=time_zone,
        deep_link=deep_link,
        currency=read.choice("RECSYS_CURRENCY", "GBP", tuple(CURRENCY_SYMBOLS)),
        fresh_days=read.number("RECSYS_PUSH_FRESH_DAYS", 14, 0, 365),
    )
