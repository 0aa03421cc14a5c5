"""A throwaway suite on a copy of the trained local state: chaos and the dashboard check run on it,
so that faults, fuzzed writes and test traffic never touch the real state."""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from pathlib import Path

from shared.config import SERVICES, Settings


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
