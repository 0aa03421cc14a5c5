from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, select

from shared.bulk import SQLITE_LOOKUP_CHUNK, lookup_chunks, not_yet_stored, one_of, write_rows
from shared.db import create_db_engine

metadata = MetaData()
tallies = Table(
    "bulk_tallies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False),
)


def _adding(statement):
    return statement.on_conflict_do_update(
        index_elements=[tallies.c.name],
        set_={"count": tallies.c.count + statement.excluded.count, "note": statement.excluded.note},
    )


def _skipping(statement):
    return statement.on_conflict_do_nothing(index_elements=[tallies.c.name]).returning(tallies.c.name)


def test_rows_are_written_and_merged_in_one_statement_with_every_value_as_it_was(database_url: str) -> None:
    engine = create_db_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 12, 7, 12, 30, 15, 250_000, tzinfo=UTC)
    awkward = 'quotes " and \\ backslash, a tab\t, a line\nand ünïcödé 🛒'
    first = [
        {"name": f"n{number}", "count": number, "seen_at": moment + timedelta(hours=number), "note": awkward}
        for number in range(1, 301)
    ]
    try:
        with engine.begin() as connection:
            write_rows(connection, tallies, first)
            write_rows(connection, tallies, [{**first[0], "count": 5, "note": "again"}], _adding)
            write_rows(connection, tallies, [])
        with engine.connect() as connection:
            stored = {row.name: row for row in connection.execute(select(tallies))}
            picked = connection.execute(
                select(tallies.c.name).where(one_of(connection, tallies.c.name, ["n2", "n3", "missing"]))
            ).scalars()
            assert sorted(picked) == ["n2", "n3"]
    finally:
        metadata.drop_all(engine)
        engine.dispose()
    assert len(stored) == 300
    assert (stored["n1"].count, stored["n1"].note) == (6, "again")
    assert stored["n300"].count == 300 and stored["n300"].note == awkward
    seen = stored["n7"].seen_at
    assert (seen if seen.tzinfo else seen.replace(tzinfo=UTC)) == moment + timedelta(hours=7)


def test_an_insert_returns_what_it_stored_and_look_ups_take_as_few_statements_as_the_dialect_allows(
    database_url: str,
) -> None:
    engine = create_db_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 12, 8, tzinfo=UTC)
    rows = [{"name": f"n{number}", "count": 1, "seen_at": moment, "note": ""} for number in range(1200)]
    try:
        with engine.begin() as connection:
            assert len(write_rows(connection, tallies, rows[:700], _skipping).scalars().all()) == 700
            assert sorted(write_rows(connection, tallies, rows[690:710], _skipping).scalars()) == [
                f"n{number}" for number in range(700, 710)
            ]
            names = [row["name"] for row in rows] + ["missing"]
            chunks = list(lookup_chunks(connection, names))
            found = [
                name
                for chunk in chunks
                for name in connection.execute(
                    select(tallies.c.name).where(one_of(connection, tallies.c.name, chunk))
                ).scalars()
            ]
    finally:
        metadata.drop_all(engine)
        engine.dispose()
    assert sorted(found) == sorted(f"n{number}" for number in range(710))
    expected = 1 if engine.dialect.name == "postgresql" else -(-len(names) // SQLITE_LOOKUP_CHUNK)
    assert len(chunks) == expected


def test_rows_already_stored_or_repeated_in_the_batch_are_not_yet_stored_only_once(database_url: str) -> None:
    """More ids than one SQLite look-up takes: stored (name, note) pairs are left out, a pair repeated
    in the batch comes back once, and a row with no name is never recognised."""
    engine = create_db_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 12, 8, tzinfo=UTC)
    total = SQLITE_LOOKUP_CHUNK + 200
    stored = [{"name": f"s{n:04d}", "count": n, "seen_at": moment, "note": "kept"} for n in range(total)]
    try:
        with engine.begin() as connection:
            write_rows(connection, tallies, stored[::2])
        batch = [
            *stored,  # every other one is stored already
            {**stored[1], "count": -1},  # the same key again
            {**stored[2], "note": "changed"},  # a stored name with another note: a new pair
            {"name": "", "count": 0, "seen_at": moment, "note": "kept"},
            {"name": "", "count": 0, "seen_at": moment, "note": "kept"},
        ]
        with engine.connect() as connection:
            fresh = not_yet_stored(connection, tallies, batch, ("name", "note"))
    finally:
        metadata.drop_all(engine)
        engine.dispose()
    expected = [row["name"] for row in stored[1::2]] + ["s0002", "", ""]
    assert [row["name"] for row in fresh] == expected
    assert fresh[0]["count"] == 1  # the first of a repeated pair is the one kept
