"""The settings every process shares, read from environment variables and checked at start-up.

Every variable is optional; the defaults run the whole suite on one machine
with state under `var/`. A bad value stops the process with one message that
names every offending variable. Each service reads its own section on top of
these (`services/<name>/settings.py`, and `pipelines/settings.py` for training)
with the same `EnvReader`, so a bad setting of one service stops only that
service. Secrets (API keys, database URLs) stay out of `repr`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from shared.models import DEFAULT_KEPT

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
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_API_KEY_RATE = 1000.0


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
    database_urls: Mapping[str, str] = field(repr=False)
    api_keys: tuple[str, ...] = field(repr=False)
    stage_deadline_s: float
    shutdown_delay_s: float
    shutdown_grace_s: float
    model_poll_s: float
    otlp_endpoint: str
    # Whether the suite serves the candidate GAN through the model server: which processes run
    # (the supervisor), which sources candidates asks, what training fits.
    candidate_gan: bool = False
    # Whether a service brings its own tables to the newest schema at start (the local suite), or
    # waits, not ready, until a migration Job has (Kubernetes: pods never migrate, docs/deploy.md).
    migrate_on_start: bool = True
    # Versions of each model that publishing keeps (the newest first); older ones are deleted.
    model_versions_kept: int = DEFAULT_KEPT
    # RPCs one process handles at once; beyond it a call is refused at once with RESOURCE_EXHAUSTED
    # (admission control: an overloaded stage sheds load instead of queueing past every deadline).
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    # A keys file with scopes and rates (shared/keys.py), read again when it changes; None: none
    # besides RECSYS_API_KEYS, or the generated local key file when that is not set either.
    api_keys_file: Path | None = None
    # Calls per second of a key whose line names no rate (every RECSYS_API_KEYS key); 0: no limit.
    api_key_rate: float = DEFAULT_API_KEY_RATE
    # Mutual TLS between processes (shared/tls.py), on unless RECSYS_TLS=off; each identity's
    # certificate, key and CA under `<tls_dir>/<identity>/`.
    tls: bool = True
    tls_dir: Path = Path("tls")
    # The variables these settings were read from; each service reads its own section from them.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def overriding(self, **variables: str) -> Settings:
        """The same settings read again with `variables` set (for a suite started from a tool)."""
        return load_settings({**self.env, **variables})

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


class EnvReader:
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

    def names(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of names (empty when unset)."""
        return tuple(part.strip() for part in self.env.get(name, "").split(",") if part.strip())

    def seed(self, name: str) -> int | None:
        """A seed from 0 to 2**32-1, or None when unset."""
        value = self.number(name, -1, 0, 2**32 - 1)
        return None if value < 0 else int(value)


Section = TypeVar("Section")


def load_section(settings: Settings, read: Callable[[EnvReader], Section]) -> Section:
    """One process's own section, read from the variables `settings` came from; raises
    ConfigError listing every bad variable of that section."""
    reader = EnvReader(settings.env)
    section = read(reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    return section


def default_home() -> Path:
    """Where state lives when RECSYS_HOME is unset: the checkout's var/ when running from a source
    checkout (`make run`), else the user's data directory; the same from any working directory."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and os.access(checkout, os.W_OK):
        return checkout / "var"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "recsys"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Reads the settings; raises ConfigError listing every bad variable."""
    env = os.environ if env is None else env
    read = EnvReader(env)
    home = Path(read.text("RECSYS_HOME", str(default_home()))).expanduser().absolute()
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
        candidate_gan=read.flag("RECSYS_CANDIDATES_GAN", False),
        migrate_on_start=read.flag("RECSYS_MIGRATE_ON_START", True),
        model_versions_kept=int(read.number("RECSYS_MODEL_VERSIONS_KEPT", DEFAULT_KEPT, 1, 1000)),
        max_in_flight=int(read.number("RECSYS_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 1, 100_000)),
        api_keys_file=Path(env["RECSYS_API_KEYS_FILE"]) if env.get("RECSYS_API_KEYS_FILE") else None,
        api_key_rate=read.number("RECSYS_API_KEY_RATE", DEFAULT_API_KEY_RATE, 0, 1_000_000),
        tls=read.flag("RECSYS_TLS", True),
        tls_dir=Path(read.text("RECSYS_TLS_DIR", str(home / "tls"))).expanduser().absolute(),
        env=dict(env),
    )
    if read.problems:
        raise ConfigError(read.problems)
    return settings
