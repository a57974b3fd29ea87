"""The identity worklist: patients whose documents only their identity keeps from the DMP.

A line per patient whose documents would be selected if the identity were qualified, not
doubtful, and the INS present, valid and with complete traits (reasons 10–14; a fictitious
identity is never on it). Ordered as the identity-vigilance cell works: patients with a planned
stay first (soonest first), then by most recent stay. Identifiers only: no name, no INS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backfill.outputs import SafeCsvWriter
from backfill.selection.decisions import Decision
from backfill.selection.paris_time import wall_clock_of
from connectors.dpi.contract import dpi_stay

__all__ = ["WORKLIST_COLUMNS", "Worklist", "WorklistLine"]

WORKLIST_COLUMNS = (
    "ipp",
    "identity_status",
    "blocking_reason",
    "documents",
    "next_stay",
    "last_stay",
)
_CHUNK = 500


@dataclass
class WorklistLine:
    ipp: str
    identity_status: str | None
    blocking_reason: str
    documents: int = 0
    next_stay: dt.datetime | None = None
    last_stay: dt.datetime | None = None


class Worklist:
    """Collects worklist patients from the decision stream (one small entry per patient)."""

    def __init__(self) -> None:
        self._lines: dict[str, WorklistLine] = {}

    def add(self, decision: Decision) -> None:
        if not decision.unlocked_by_identity:
            return
        assert decision.reason is not None
        line = self._lines.get(decision.ipp)
        if line is None:
            line = self._lines[decision.ipp] = WorklistLine(
                decision.ipp, decision.identity_status, decision.reason.value
            )
        line.documents += 1

    def collect(self, decisions: Iterable[Decision]) -> Iterator[Decision]:
        for decision in decisions:
            self.add(decision)
            yield decision

    def __len__(self) -> int:
        return len(self._lines)

    def lines(self, bind: Engine | Connection, as_of: dt.datetime) -> list[WorklistLine]:
        """The lines with their stays, in working order."""
        if isinstance(bind, Engine):
            with bind.connect() as conn:
                return self.lines(conn, as_of)
        now = wall_clock_of(as_of)
        ipps = sorted(self._lines)
        s = dpi_stay.c
        for start in range(0, len(ipps), _CHUNK):
            chunk = ipps[start : start + _CHUNK]
            upcoming = sa.case(
                (sa.and_(s.status == "planned", s.admitted_at >= now), s.admitted_at)
            )
            past = sa.case((sa.and_(s.status != "cancelled", s.admitted_at <= now), s.admitted_at))
            query = (
                sa.select(s.ipp, sa.func.min(upcoming), sa.func.max(past))
                .where(s.ipp.in_(chunk))
                .group_by(s.ipp)
            )
            for ipp, next_stay, last_stay in bind.execute(query):
                line = self._lines[ipp]
                line.next_stay, line.last_stay = next_stay, last_stay

        def order(line: WorklistLine) -> tuple[int, float, str]:
            if line.next_stay is not None:
                return (0, (line.next_stay - dt.datetime.min).total_seconds(), line.ipp)
            if line.last_stay is not None:
                return (1, -(line.last_stay - dt.datetime.min).total_seconds(), line.ipp)
            return (2, 0.0, line.ipp)

        return sorted(self._lines.values(), key=order)

    def write_csv(self, handle: IO[str], bind: Engine | Connection, as_of: dt.datetime) -> int:
        writer = SafeCsvWriter(handle)  # staff open it in a spreadsheet: no formulas
        writer.writerow(WORKLIST_COLUMNS)
        lines = self.lines(bind, as_of)
        for line in lines:
            writer.writerow(
                (
                    line.ipp,
                    line.identity_status or "",
                    line.blocking_reason,
                    line.documents,
                    line.next_stay.isoformat() if line.next_stay else "",
                    line.last_stay.isoformat() if line.last_stay else "",
                )
            )
        return len(lines)
