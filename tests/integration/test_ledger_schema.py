"""The ledger's schema: one model, its readable DDL and its Alembic revisions agree; the engine
creates an empty ledger, refuses one from a newer engine, and never creates one to read it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.errors import LedgerSchemaError
from backfill.ledger import Ledger, migrate
from backfill.ledger.schema import VERSION_TABLE, ledger_ddl, metadata
from backfill.resources import read_sql


def _family(type_: sa.types.TypeEngine[object]) -> str:
    # Reflection gives dialect types (TIMESTAMP, DOUBLE_PRECISION, VARCHAR(64)…): compare families
    # (32- and 64-bit integers alike: SQLite numbers its keys as INTEGER whatever was declared).
    for family, kinds in {
        "json": (sa.JSON,),
        "bool": (sa.Boolean,),
        "datetime": (sa.DateTime,),
        "float": (sa.Float,),
        "int": (sa.Integer,),
        "text": (sa.Text,),
        "string": (sa.String,),
    }.items():
        if isinstance(type_, kinds):
            length = getattr(type_, "length", None)
            return f"string({length})" if family == "string" else family
    if isinstance(type_, sa.types.TypeDecorator):
        return _family(type_.impl_instance)
    return repr(type_)


def _expected() -> dict[str, object]:
    shape: dict[str, object] = {}
    for name, table in sorted(metadata.tables.items()):
        shape[name] = {
            "columns": {c.name: (_family(c.type), c.nullable) for c in table.columns},
            "pk": tuple(c.name for c in table.primary_key.columns),
            "indexes": sorted((i.name, tuple(c.name for c in i.columns)) for i in table.indexes),
            "fks": sorted(
                (fk.parent.name, fk.column.table.name, fk.column.name) for fk in table.foreign_keys
            ),
        }
    return shape


def _reflected(engine: sa.Engine) -> dict[str, object]:
    inspector = sa.inspect(engine)
    shape: dict[str, object] = {}
    for name in sorted(t for t in inspector.get_table_names() if t != VERSION_TABLE):
        shape[name] = {
            "columns": {
                c["name"]: (_family(c["type"]), c["nullable"]) for c in inspector.get_columns(name)
            },
            "pk": tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name)
            ),
            "fks": sorted(
                (fk["constrained_columns"][0], fk["referred_table"], fk["referred_columns"][0])
                for fk in inspector.get_foreign_keys(name)
            ),
        }
    return shape


@pytest.mark.parametrize("source", ["alembic", "sql_file", "model"])
def test_every_definition_creates_the_same_ledger(database, source: str) -> None:
    """Ledger.open (the Alembic revisions), sql/ledger.sql and the Core model agree, column by column."""
    engine = database.engine()
    try:
        if source == "alembic":
            Ledger.open(database.url).close()
        elif source == "sql_file":
            with engine.begin() as conn:
                for statement in ledger_ddl(read_sql("ledger.sql"), engine.dialect.name):
                    conn.execute(sa.text(statement))
        else:
            metadata.create_all(engine)
        assert _reflected(engine) == _expected()
    finally:
        engine.dispose()


def test_an_empty_database_becomes_a_ledger_at_head_and_reopening_changes_nothing(database) -> None:
    Ledger.open(database.url).close()
    engine = database.engine()
    try:
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
        before = _reflected(engine)
        Ledger.open(database.url).close()
        assert _reflected(engine) == before
    finally:
        engine.dispose()


def test_a_ledger_from_a_newer_engine_is_refused_naming_both_revisions(database) -> None:
    Ledger.open(database.url).close()
    engine = database.engine()
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'"))
    engine.dispose()
    for opener in (Ledger.open, Ledger.open_existing):
        with pytest.raises(LedgerSchemaError) as caught:
            opener(database.url)
        message = str(caught.value)
        assert "9999_future" in message
        assert migrate.head_revision() in message
        assert caught.value.exit_code == 2


def test_reading_never_creates_a_ledger(database, tmp_path: Path) -> None:
    assert Ledger.open_existing(database.url) is None
    engine = database.engine()
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    missing = tmp_path / "no" / "ledger.sqlite"
    assert Ledger.open_existing(f"sqlite:///{missing}") is None
    assert not missing.exists()


def test_postgresql_ledger_lives_in_the_current_schema_not_public(postgresql_database) -> None:
    Ledger.open(postgresql_database.url).close()
    engine = postgresql_database.engine()
    try:
        with engine.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            tables = conn.execute(
                sa.text(
                    "SELECT table_schema, count(*) FROM information_schema.tables "
                    "WHERE table_name LIKE 'bf\\_%' AND table_schema IN (:s, 'public') "
                    "GROUP BY table_schema"
                ),
                {"s": schema},
            ).all()
        assert schema != "public"
        assert [tuple(t) for t in tables] == [(schema, len(metadata.tables) + 1)]
    finally:
        engine.dispose()


def test_sqlite_ledger_uses_wal_a_busy_timeout_and_foreign_keys(sqlite_database) -> None:
    with Ledger.open(sqlite_database.url) as ledger, ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # NORMAL (1) in WAL: a commit waits on no disk, so the sender makes its calls on its loop.
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert ledger.writers == 0


def test_postgresql_ledger_commits_without_waiting_for_the_disk_like_sqlite_normal(
    postgresql_database,
) -> None:
    """synchronous_commit off on the engine's writing connections, as SQLite's NORMAL: only a
    server crash may lose the last commits, which the sender then resends under the same ids."""
    with Ledger.open(postgresql_database.url) as ledger, ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        assert ledger.writers > 1
