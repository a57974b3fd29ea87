"""The contract promises Oracle and SQL Server "by construction": every query the engine runs on
the DPI compiles for their dialects (SQLAlchemy compiles without a server or a driver), with every
value bound as a parameter, never pasted into the SQL text.

To add a query (e.g. the DS1.4 indicator's), append a `DpiQuery` to `DPI_QUERIES`: it is then
checked for every dialect below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, oracle, postgresql, sqlite
from sqlalchemy.engine import Dialect

from backfill.indicator import discharge_share_query, ds14_query
from backfill.selection import Window, load_rule
from backfill.selection.compiler import compile_decisions, corrupt_pdfs_query
from backfill.visiting import visiting_query

AS_OF = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DpiQuery:
    name: str
    build: Callable[[], sa.ClauseElement]
    bound_values: tuple[object, ...]
    """Values the query must carry as parameters (and so never in its SQL text)."""


DPI_QUERIES = [
    DpiQuery(
        "selection (history rule, identity worklist)",
        lambda: compile_decisions(load_rule("history-5y"), AS_OF, identity_aside=True),
        ("QUAL", "application/pdf"),
    ),
    DpiQuery(
        "selection (catch-up window)",
        lambda: compile_decisions(
            load_rule("catch-up"),
            AS_OF,
            window=Window(AS_OF - dt.timedelta(days=30), AS_OF),
        ),
        ("QUAL", "application/pdf"),
    ),
    DpiQuery(
        "selection (per-kind depth, filters and latest: a window function)",
        lambda: compile_decisions(
            load_rule("history-5y-focused"), AS_OF, identity_aside=True, ordered=False
        ),
        ("QUAL", "application/pdf", "G15_10/SM26", "CR_CONSULT"),
    ),
    DpiQuery(
        "selection (the sender's: only the selected rows, with latest)",
        lambda: compile_decisions(load_rule("history-5y-focused"), AS_OF, selected_only=True),
        ("QUAL", "application/pdf", "CR_CONSULT"),
    ),
    DpiQuery(
        "DS1.4 (indicator)",
        lambda: ds14_query(encounter_types=["IMP", "SEANCE"], eligible_kinds=["CRH", "CR_URG"]),
        ("QUAL", "SEANCE", "CR_URG", "1.2.250.1.213.1.4.10", "planned", "validated"),
    ),
    DpiQuery(
        "DS1.1 (discharge letters sent live)",
        lambda: discharge_share_query(encounter_types=["IMP"], kind="LDL"),
        ("QUAL", "LDL", "IMP"),
    ),
    DpiQuery("visiting patients", visiting_query, ("in_progress", "planned", "cancelled")),
    DpiQuery("inline PDFs checked after the ledger's facts", corrupt_pdfs_query, (1024,)),
]

DIALECTS: dict[str, Callable[[], Dialect]] = {
    "oracle (oracledb)": oracle.oracledb.dialect,
    "oracle (cx_oracle)": oracle.cx_oracle.dialect,
    "mssql (pyodbc)": mssql.pyodbc.dialect,
    "mssql (pymssql)": mssql.pymssql.dialect,
    "postgresql": postgresql.psycopg.dialect,
    "sqlite": sqlite.pysqlite.dialect,
}


@pytest.mark.parametrize("query", DPI_QUERIES, ids=lambda q: q.name)
@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=list(DIALECTS))
def test_query_compiles_for_the_dialect_with_bound_values(
    query: DpiQuery, dialect: Callable[[], Dialect]
) -> None:
    compiled = query.build().compile(dialect=dialect())
    sql = str(compiled)
    params = set(map(str, compiled.params.values()))
    for value in query.bound_values:
        assert str(value) not in sql, f"{value!r} is pasted into the SQL"
        assert str(value) in params or any(str(value) in p for p in params), (
            f"{value!r} is not a bound parameter"
        )
    assert "%PDF" not in sql
