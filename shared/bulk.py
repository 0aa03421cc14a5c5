"""Writes and look-ups of many rows, each in one statement.

On PostgreSQL an executemany is one Bind and Execute per row (psycopg pipelines them, but every row
still costs the driver's Python and the server's executor a round of work), and an IN list of a
thousand ids is rendered into the SQL text anew for every call. Here the rows travel as one JSON
document (`INSERT ... SELECT ... FROM json_to_recordset(...)`; psycopg dumps arrays element by
element in Python, orjson does it in C) and ids as one array (`= ANY(...)`): one statement and
one or two parameters however many rows. SQLite runs in process, where executemany is already
a loop in C: there the plain forms are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Text, any_, bindparam, cast, column, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY, JSON
from sqlalchemy.engine import Connection

from shared.db import upsert

Finish = Callable[[Any], Any]
# SQLite binds one parameter per value of an IN list, and older builds allow 999 per statement.
SQLITE_LOOKUP_CHUNK = 500


def _postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _recordset(table: Any, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Any:
    """SELECT over the rows (dicts whose keys are `names`), sent as one JSON document (dumped in C,
    datetimes as RFC 3339, parsed by the server) and typed by the table's own columns."""
    payload = orjson.dumps(list(rows), option=orjson.OPT_NAIVE_UTC).decode()
    document = cast(bindparam("bulk_rows", payload, type_=Text()), JSON)
    typed = [column(name, table.c[name].type) for name in names]
    source = (
        func.json_to_recordset(document).table_valued(*typed).render_derived(name="bulk", with_types=True)
    )
    # WHERE true: without it PostgreSQL would read a following ON CONFLICT as the FROM's join clause.
    return select(*(source.c[name] for name in names)).where(true())


def write_rows(
    connection: Connection, table: Any, rows: Sequence[Mapping[str, Any]], finish: Finish | None = None
) -> Any:
    """Inserts `rows` (dicts with the same keys) into `table`; `finish` turns the dialect's INSERT
    into the statement to run (an ON CONFLICT clause, whose `excluded` refers to the new rows; a
    RETURNING clause). Returns the statement's result, None when there are no rows."""
    if not rows:
        return None
    statement = upsert(connection.engine, table)
    if _postgres(connection):
        names = list(rows[0])
        statement = statement.from_select(names, _recordset(table, names, rows))
        return connection.execute(finish(statement) if finish else statement)
    return connection.execute(finish(statement) if finish else statement, list(rows))


def one_of(connection: Connection, key: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`key IN values`; on PostgreSQL `key = ANY(array)`, one parameter whatever the count."""
    if _postgres(connection):
        return key == any_(bindparam(None, list(values), type_=ARRAY(key.type)))
    return key.in_(list(values))


def lookup_chunks(connection: Connection, values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """`values` in as few look-ups as the dialect allows: all at once on PostgreSQL (one_of binds
    one array), SQLITE_LOOKUP_CHUNK at a time on SQLite."""
    if _postgres(connection):
        if values:
            yield values
        return
    for start in range(0, len(values), SQLITE_LOOKUP_CHUNK):
        yield values[start : start + SQLITE_LOOKUP_CHUNK]


def not_yet_stored(
    connection: Connection, table: Any, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The rows whose `key` columns match no stored row nor an earlier row of the list.

    The first key column identifies a record; rows where it is empty cannot be
    recognised and are always returned. Used so that resending a batch does not
    quarantine the same records twice.
    """
    first = key[0]
    ids = sorted({row[first] for row in rows if row[first]})
    known: set[tuple[Any, ...]] = set()
    columns = [table.c[name] for name in key]
    for chunk in lookup_chunks(connection, ids):
        query = select(*columns).where(one_of(connection, table.c[first], chunk))
        known.update(tuple(found) for found in connection.execute(query))
    fresh = []
    for row in rows:
        identity = tuple(row[name] for name in key)
        if row[first] and identity in known:
            continue
        known.add(identity)
        fresh.append(row)
    return fresh
