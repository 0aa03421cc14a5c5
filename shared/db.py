"""SQLAlchemy 2 engines and Alembic migrations, one set of tables per service.

Each service keeps its migrations in `services/<name>/migrations/` and its own
Alembic version table, so several services may share one PostgreSQL database
while each still owns only its own tables (all prefixed with the service name).
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared.clock import Clock, system_clock
from shared.db_telemetry import instrument


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    """WAL for concurrent readers; synchronous FULL so that an acknowledged write is durable."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime: SQLite returns naive ones, and every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def create_db_engine(url: str) -> Engine:
    """An engine for `url`, traced and measured; SQLite files get their folder created and durable
    settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    instrument(engine)
    return engine


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def _lock_key(service: str) -> int:
    """A stable signed 64-bit key per service for PostgreSQL's advisory locks."""
    return int.from_bytes(
        hashlib.sha256(f"recsys-migrate:{service}".encode()).digest()[:8], "big", signed=True
    )


def _alembic_config(migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    return config


def migrate(engine: Engine, service: str, migrations_dir: Path) -> None:
    """Brings the service's tables to the newest migration.

    On PostgreSQL the upgrade holds a transaction-level advisory lock per service, so that
    replicas or Jobs migrating at once run one after another (the later ones find the schema
    current); the upgrade's DDL commits or rolls back with the lock's transaction.
    """
    config = _alembic_config(migrations_dir)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(service)})
        config.attributes["connection"] = connection
        config.attributes["version_table"] = version_table(service)
        command.upgrade(config, "head")


def schema_behind(engine: Engine, service: str, migrations_dir: Path) -> str | None:
    """None when the database holds the newest revision of the service's migrations; otherwise
    what is there and what is needed, for a service that waits for the migration Job."""
    head = ScriptDirectory.from_config(_alembic_config(migrations_dir)).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(
            connection, opts={"version_table": version_table(service)}
        ).get_current_revision()
    if current == head:
        return None
    return f"{service}'s tables are at revision {current or 'none'}, this release needs {head}"


def run_migrations_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
    )
    with context.begin_transaction():
        context.run_migrations()


# PostgreSQL's SQLSTATEs for a transaction that lost a race and may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def lost_a_race(error: BaseException) -> bool:
    """True for a deadlock or serialization failure: the transaction can run again as it was."""
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def upsert(engine: Engine, table: Any) -> Any:
    """`INSERT ... ON CONFLICT` for the engine's dialect (SQLite and PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


class Store:
    """Base of every service's store: one engine and the service's own migrations."""

    service: str
    migrations: Path

    def __init__(self, url: str, clock: Clock = system_clock) -> None:
        self.engine = create_db_engine(url)
        self.clock = clock  # what "now" is when rows are stamped

    def migrate(self) -> None:
        migrate(self.engine, self.service, self.migrations)

    def schema_behind(self) -> str | None:
        return schema_behind(self.engine, self.service, self.migrations)

    def close(self) -> None:
        self.engine.dispose()
