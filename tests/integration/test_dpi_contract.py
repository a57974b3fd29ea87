"""The DDL file people run and the Core tables the engine queries describe the same five relations."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backfill.resources import read_sql
from connectors.dpi import contract


def _shape(engine: sa.Engine) -> dict[str, object]:
    inspector = sa.inspect(engine)
    shape: dict[str, object] = {}
    for table in sorted(contract.metadata.tables):
        columns = {
            c["name"]: (_generic(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
        }
        pk = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        indexes = sorted(
            (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
        )
        shape[table] = {"columns": columns, "pk": pk, "indexes": indexes}
    return shape


def _generic(type_: sa.types.TypeEngine[object]) -> str:
    # Compare by family: reflection gives dialect types (BYTEA, TIMESTAMP, VARCHAR(64)…).
    for family, names in {
        "binary": (sa.LargeBinary, sa.types._Binary),
        "bool": (sa.Boolean,),
        "datetime": (sa.DateTime,),
        "date": (sa.Date,),
        "int": (sa.Integer,),
        "string": (sa.String,),
    }.items():
        if isinstance(type_, names):
            length = getattr(type_, "length", None)
            return f"{family}({length})" if family == "string" else family
    return repr(type_)


def _expected_shape() -> dict[str, object]:
    shape: dict[str, object] = {}
    for name, table in sorted(contract.metadata.tables.items()):
        shape[name] = {
            "columns": {c.name: (_generic(c.type), c.nullable) for c in table.columns},
            "pk": tuple(c.name for c in table.primary_key.columns),
            "indexes": sorted((i.name, tuple(c.name for c in i.columns)) for i in table.indexes),
        }
    return shape


@pytest.mark.parametrize("source", ["sql_file", "core_tables"])
def test_both_definitions_create_the_contract(database, source: str) -> None:
    """Created from sql/dpi_contract.sql or from the Core tables, the reflected schema is the contract."""
    engine = database.engine()
    try:
        contract.create_contract(
            engine, read_sql("dpi_contract.sql") if source == "sql_file" else None
        )
        assert _shape(engine) == _expected_shape()
    finally:
        engine.dispose()


def test_contract_holds_exactly_the_five_relations_of_design() -> None:
    """The contract names are exact: five relations, no more."""
    assert sorted(contract.metadata.tables) == [
        "dpi_author",
        "dpi_document",
        "dpi_patient",
        "dpi_stay",
        "dpi_unit",
    ]


def test_binary_column_round_trips_bytes(database) -> None:
    """PDF bytes written through the contract come back identical on every backend."""
    engine = database.engine()
    try:
        contract.create_contract(engine, read_sql("dpi_contract.sql"))
        payload = bytes(range(256)) * 4
        with engine.begin() as conn:
            conn.execute(
                contract.dpi_document.insert(),
                [
                    {
                        "document_id": "D1",
                        "set_id": "S1",
                        "version": 1,
                        "ipp": "P1",
                        "kind": "LDL",
                        "title": "t",
                        "created_at": dt.datetime(2024, 3, 31, 2, 30),
                        "status": "validated",
                        "content": payload,
                        "masked_ps": False,
                        "invisible_patient": False,
                        "invisible_legal_rep": False,
                    }
                ],
            )
            got = conn.execute(sa.select(contract.dpi_document.c.content)).scalar_one()
        assert bytes(got) == payload
    finally:
        engine.dispose()
