"""The DPI contract as SQLAlchemy Core tables, and the DDL file they must agree with.

`sql/dpi_contract.sql` is the text people read and run; these tables are what the engine
queries. `tests/integration/test_dpi_contract.py` creates the schema from each one, reflects it
and compares, on SQLite and on PostgreSQL.

Optional columns (`OPTIONAL_COLUMNS`) were added to the contract after DPIs were mapped onto it:
the synthetic DPI and the DDL file have them, a DPI view may not. Whoever queries them asks
`present_optional_columns` first and reads a missing one as NULL.
"""

from __future__ import annotations

import re
import weakref

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoSuchTableError

__all__ = [
    "DEFAULT_LIVE_FEED_KINDS",
    "DOCUMENT_KINDS",
    "DOCUMENT_STATUSES",
    "ENCOUNTER_TYPES",
    "HOSPITALISATION_TYPES",
    "IDENTITY_STATUSES",
    "OPTIONAL_COLUMNS",
    "STAY_STATUSES",
    "contract_ddl",
    "create_contract",
    "dpi_author",
    "dpi_document",
    "dpi_patient",
    "dpi_stay",
    "dpi_unit",
    "metadata",
    "present_optional_columns",
    "table_columns",
]

IDENTITY_STATUSES = ("PROV", "RECUP", "VALI", "QUAL")
# JDV_J142: IMP is hospitalisation in the establishment, full or partial (a day case is IMP), HAD
# included; SEANCE a session (dialysis, chemotherapy…); AMB is care *outside* the establishment.
ENCOUNTER_TYPES = ("IMP", "EMER", "EXTERNE", "SEANCE", "AMB")
# dpi_stay.hospitalisation (optional): for an IMP stay, full or partial (day or night hospital).
HOSPITALISATION_TYPES = ("full", "partial")
STAY_STATUSES = ("planned", "in_progress", "finished", "cancelled")
DOCUMENT_KINDS = ("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG", "CR_BIO", "CR_IMG", "ORDO", "OTHER")
DOCUMENT_STATUSES = ("draft", "validated", "cancelled")
# What a live DMP feed sends by default (`[live_feed] kinds`): the programme's "documents de
# sortie" (discharge letter, prescription, operative report), reports, biology and imaging.
DEFAULT_LIVE_FEED_KINDS = ("LDL", "ORDO", "CRO", "CRH", "CR_CONSULT", "CR_URG", "CR_BIO", "CR_IMG")

metadata = MetaData()

dpi_patient = Table(
    "dpi_patient",
    metadata,
    Column("ipp", String(64), primary_key=True),
    Column("ins_matricule", String(32)),
    Column("ins_oid", String(64)),
    Column("identity_status", String(8), nullable=False),
    Column("identity_doubtful", Boolean, nullable=False),
    Column("identity_fictitious", Boolean, nullable=False),
    Column("birth_family_name", String(200)),
    Column("birth_given_names", String(300)),
    Column("first_birth_given_name", String(200)),
    Column("used_family_name", String(200)),
    Column("used_given_name", String(200)),
    Column("sex", String(1)),
    Column("birth_date", Date),
    Column("birth_place_code", String(5)),
    Column("deceased", Boolean, nullable=False),
    Column("death_date", Date),
    Column("dmp_opposition", Boolean, nullable=False),
    # Selection looks for INS matricules held by two patients: without this index the database
    # groups every patient in memory at each run (SQLite: about 1 MiB per 16 000 patients).
    Index("ix_dpi_patient_ins_matricule", "ins_matricule"),
)

dpi_unit = Table(
    "dpi_unit",
    metadata,
    Column("unit_code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("practice_setting_code", String(64), nullable=False),
    Column("computerized_since", Date),
)

dpi_author = Table(
    "dpi_author",
    metadata,
    Column("author_id", String(64), primary_key=True),
    Column("rpps", String(11)),
    Column("adeli", String(9)),
    Column("family_name", String(200), nullable=False),
    Column("given_name", String(200), nullable=False),
    Column("specialty_code", String(64)),
    Column("staff_number", String(64)),
)

dpi_stay = Table(
    "dpi_stay",
    metadata,
    Column("stay_id", String(64), primary_key=True),
    Column("ipp", String(64), nullable=False),
    Column("encounter_type", String(16), nullable=False),
    Column("admitted_at", DateTime, nullable=False),
    Column("discharged_at", DateTime),
    Column("status", String(16), nullable=False),
    Column("unit_code", String(64)),
    Column("hospitalisation", String(16)),
    Index("ix_dpi_stay_ipp", "ipp"),
)

dpi_document = Table(
    "dpi_document",
    metadata,
    Column("document_id", String(64), primary_key=True),
    Column("set_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("ipp", String(64), nullable=False),
    Column("stay_id", String(64)),
    Column("kind", String(16), nullable=False),
    Column("title", String(500), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("author_id", String(64)),
    Column("legal_authenticator_id", String(64)),
    Column("authenticated_at", DateTime),
    Column("unit_code", String(64)),
    Column("mime_type", String(100)),
    Column("masked_ps", Boolean, nullable=False),
    Column("invisible_patient", Boolean, nullable=False),
    Column("invisible_legal_rep", Boolean, nullable=False),
    Column("sent_live_at", DateTime),
    Column("dmp_unique_id", String(128)),
    Column("withheld", Boolean),
    Column("author_function", String(16)),
    Column("operated_at", DateTime),
    # The contents last (see sql/dpi_contract.sql): SQLite walks a large value's overflow pages
    # to reach any column stored after it, and selection reads every row's other columns.
    Column("content_uri", String(1000)),
    Column("content", LargeBinary),
    Index("ix_dpi_document_ipp", "ipp"),
    Index("ix_dpi_document_set", "set_id", "version"),
)

# Columns a DPI view may lack (added to the contract later); absent means NULL for every row.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "dpi_stay": ("hospitalisation",),
    "dpi_document": ("withheld", "author_function", "operated_at"),
    "dpi_author": ("staff_number",),
}


def present_optional_columns(bind: Engine | Connection) -> frozenset[str]:
    """The optional columns this DPI offers, as `table.column` names.

    Reflected once per engine: a sender reads the DPI for every patient, and reflecting the
    tables each time cost more than the reading itself."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    known = _PRESENT.get(engine)
    if known is not None:
        return known
    inspector = inspect(bind)
    present = set()
    for table, columns in OPTIONAL_COLUMNS.items():
        try:
            names = {c["name"].lower() for c in inspector.get_columns(table)}
        except NoSuchTableError:
            continue
        present.update(f"{table}.{c}" for c in columns if c in names)
    _PRESENT[engine] = found = frozenset(present)
    return found


_PRESENT: weakref.WeakKeyDictionary[Engine, frozenset[str]] = weakref.WeakKeyDictionary()


def table_columns(table: Table, present: frozenset[str]) -> list[Column]:  # type: ignore[type-arg]
    """The table's columns a query may name: every required one, and the optional ones present."""
    optional = OPTIONAL_COLUMNS.get(table.name, ())
    return [c for c in table.c if c.name not in optional or f"{table.name}.{c.name}" in present]


# The only non-portable type name in the DDL file.
_BINARY_BY_DIALECT = {"postgresql": "BYTEA", "mssql": "VARBINARY(MAX)"}


def contract_ddl(sql_text: str, dialect: str) -> list[str]:
    """The statements of the DDL file's text, with the binary type named for `dialect`.

    The caller reads the file (`backfill.resources.read_sql("dpi_contract.sql")`): connectors
    do not import the engine.
    """
    text = re.sub(r"--[^\n]*", "", sql_text)
    binary = _BINARY_BY_DIALECT.get(dialect)
    if binary is not None:
        text = re.sub(r"\bBLOB\b", binary, text)
    return [stmt.strip() for stmt in text.split(";") if stmt.strip()]


def create_contract(bind: Engine | Connection, sql_text: str | None = None) -> None:
    """Create the five relations as tables (the synthetic DPI, tests).

    From the Core tables by default; from the DDL file's text when given. Both give the same
    schema (tested). Existing tables are an error: a DPI is never silently reused.
    """
    if sql_text is None:
        metadata.create_all(bind, checkfirst=False)
        return
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            create_contract(conn, sql_text)
        return
    for stmt in contract_ddl(sql_text, bind.dialect.name):
        bind.execute(text(stmt))
