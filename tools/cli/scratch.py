"""A throwaway suite on a copy of the trained local state: chaos and the dashboard check run on it,
so that faults, fuzzed writes and test traffic never touch the real state."""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer

from pipelines.progress import console, errors
from shared.config import SERVICES, Settings
from tools.cli.bench_load import SHOPPER_EVENTS, SUITE_READY_S, trained
from tools.cli.common import settings
from tools.cli.supervisor import Suite, free_ports_env
from tools.importers import online_retail


def copy_state(source: Settings, home: Path) -> None:
    """The trained models and a consistent copy of every SQLite database (the backup API)."""
    shutil.copytree(source.model_dir, home / "models")
    (home / "db").mkdir(parents=True)
    for name in SERVICES:
        path = Path(source.database_url(name).removeprefix("sqlite:///"))
        if path.exists():
            with sqlite3.connect(path) as original, sqlite3.connect(home / "db" / f"{name}.sqlite") as copy:
                original.backup(copy)


def keys_file(home: Path) -> dict[str, str]:
    """Fresh API keys, written to `home/api-keys`: admin (no quota), push, and a recommend key
    allowed one call per 10 s (over its quota at once)."""
    keys = {
        "admin": secrets.token_urlsafe(32),
        "push": secrets.token_urlsafe(32),
        "slow": secrets.token_urlsafe(32),
    }
    lines = [f"{keys['admin']} scopes=admin rate=0", f"{keys['push']} scopes=push"]
    lines.append(f"{keys['slow']} scopes=recommend rate=0.1")
    (home / "api-keys").write_text("\n".join(lines) + "\n")
    return keys


def scratch_variables(home: Path, ports: dict[str, str]) -> dict[str, str]:
    """The suite's environment on `home`'s copy: free ports, the candidate GAN, mTLS, the keys file."""
    return {
        **ports,
        "RECSYS_HOME": str(home),
        "RECSYS_DEMO": "0",
        "RECSYS_CANDIDATES_GAN": "1",
        "RECSYS_API_KEYS": "",
        "RECSYS_API_KEYS_FILE": str(home / "api-keys"),
        "RECSYS_TLS": "on",
        "RECSYS_TLS_DIR": str(home / "tls"),
        **{
            f"RECSYS_{name.upper()}_DATABASE_URL": f"sqlite:///{home / 'db' / f'{name}.sqlite'}"
            for name in SERVICES
        },
    }


def sqlite_only(base: Settings) -> list[str]:
    """The services whose state is not in local SQLite (a copy cannot be made of them)."""
    return [name for name in SERVICES if not base.database_url(name).startswith("sqlite:///")]


def copyable_state(what: str) -> Settings:
    """The local settings, when their trained state can be copied for `what` (a throwaway suite);
    else a one-line error and exit code 1 (nothing trained yet) or 2 (state outside SQLite)."""
    base = settings()
    if not trained(base):
        errors.print(f"[red]no trained models in {base.model_dir}[/red]: run `make run` once, then stop it")
        raise typer.Exit(1)
    elsewhere = sqlite_only(base)
    if elsewhere:
        errors.print(
            f"[red]{', '.join(elsewhere)} keep their state outside SQLite[/red]: {what} runs on a copy of "
            "the local SQLite state; unset RECSYS_DATABASE_URL and RECSYS_<SERVICE>_DATABASE_URL"
        )
        raise typer.Exit(2)
    return base


@dataclass(frozen=True)
class Scratch:
    """A running throwaway suite: its settings, API keys, ports and the demo shoppers to ask for."""

    suite: Suite
    config: Settings
    keys: dict[str, str]
    ports: dict[str, str]
    users: list[str]


@contextmanager
def scratch_suite(base: Settings, home: Path, label: str, gateway_replicas: int = 1) -> Iterator[Scratch]:
    """Every process (the model server included, the gateway as `gateway_replicas` processes) on a
    copy of `base`'s state in `home`, on free ports, ready; stopped on exit."""
    copy_state(base, home)
    keys = keys_file(home)
    ports = free_ports_env()
    variables = scratch_variables(home, ports)
    config = base.overriding(**variables)
    users = sorted({e.user_id for e in online_retail.read_events(online_retail.DEFAULT_PATH, SHOPPER_EVENTS)})
    suite = Suite(config, gateway_replicas)
    suite.start(variables)
    try:
        console.print(f"{label} on a copy of {base.home} in {home}; waiting for every process")
        suite.wait_ready(timeout=SUITE_READY_S, only=suite.names)
        yield Scratch(suite, config, keys, ports, users)
    finally:
        suite.stop()
