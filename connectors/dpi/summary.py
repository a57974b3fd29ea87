"""What a DPI holds, counted: patients, stays, documents by kind and status, identities, defects.

Works on any database that exposes the contract (a real DPI's views or the synthetic one); the
defect counts appear only where the `synthetic_defect` side table exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.dpi.contract import dpi_document, dpi_patient, dpi_stay
from connectors.dpi.synthetic.generator import generation_state, synthetic_defect

__all__ = ["DpiSummary", "summarize"]


@dataclass
class DpiSummary:
    patients: int = 0
    stays: int = 0
    documents: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_identity_status: dict[str, int] = field(default_factory=dict)
    by_encounter_type: dict[str, int] = field(default_factory=dict)
    sent_live: int = 0
    deceased: int = 0
    opposed: int = 0
    defects: dict[str, int] = field(default_factory=dict)
    generation: str | None = None
    """For a synthetic DPI: "complete" or "incomplete (interrupted)"; None for any other DPI."""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _grouped(conn: sa.Connection, column: sa.ColumnElement) -> dict[str, int]:
    rows = conn.execute(sa.select(column, sa.func.count()).group_by(column).order_by(column))
    return {str(key): int(count) for key, count in rows}


def _count(conn: sa.Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    )


def summarize(engine: Engine) -> DpiSummary:
    with engine.connect() as conn:
        summary = DpiSummary(
            patients=_count(conn, dpi_patient),
            stays=_count(conn, dpi_stay),
            documents=_count(conn, dpi_document),
            by_kind=_grouped(conn, dpi_document.c.kind),
            by_status=_grouped(conn, dpi_document.c.status),
            by_identity_status=_grouped(conn, dpi_patient.c.identity_status),
            by_encounter_type=_grouped(conn, dpi_stay.c.encounter_type),
            sent_live=_count(conn, dpi_document, dpi_document.c.sent_live_at.is_not(None)),
            deceased=_count(
                conn,
                dpi_patient,
                sa.or_(dpi_patient.c.deceased, dpi_patient.c.death_date.is_not(None)),
            ),
            opposed=_count(conn, dpi_patient, dpi_patient.c.dmp_opposition),
        )
        if sa.inspect(conn).has_table("synthetic_defect"):
            summary.defects = _grouped(conn, synthetic_defect.c.defect)
        summary.generation = generation_state(conn)
    return summary
