from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, select

from shared.bulk import one_of, write_rows
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
