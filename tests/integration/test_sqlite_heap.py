"""SQLite's heap limit (`backfill.databases.SQLITE_HEAP_LIMIT`): in force on every SQLite engine
the engine opens, so a run's memory does not grow with its databases, and soft, so a query that
needs more than the limit (a large sort) still answers whole and in order."""

from __future__ import annotations

import sqlalchemy as sa

from backfill.databases import SQLITE_HEAP_LIMIT, open_engine


def test_a_sort_larger_than_sqlites_heap_limit_still_answers_whole_and_in_order(tmp_path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'big.sqlite'}", "DPI", check=False)
    try:
        with engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA soft_heap_limit").scalar() == SQLITE_HEAP_LIMIT
            conn.exec_driver_sql("CREATE TABLE t (k TEXT)")
            # About 12 MiB of keys, in an order the sort must undo.
            conn.execute(
                sa.text("INSERT INTO t VALUES (:k)"),
                [{"k": f"{(i * 7919) % 120_000:06d}" + "x" * 100} for i in range(120_000)],
            )
        with engine.connect() as conn:
            keys = [row[0][:6] for row in conn.exec_driver_sql("SELECT k FROM t ORDER BY k")]
        assert keys == [f"{i:06d}" for i in range(120_000)]
    finally:
        engine.dispose()
