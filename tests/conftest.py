"""Fixtures shared by all tests: state folders and databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("RECSYS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_unreachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    """The PostgreSQL server for tests: required in CI, skipped with a message elsewhere."""
    problem = _postgres_unreachable()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem}); set RECSYS_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL: {message}")
        pytest.skip(message)
    return POSTGRES_URL


@contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections live in a new schema, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_base_url: str) -> Iterator[str]:
    with fresh_schema(postgres_base_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Every persistence test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.sqlite"
    return request.getfixturevalue("postgres_url")
