"""Which patients go first (DESIGN §10): DS1.4 counts the stays of the month.

A patient is *urgent* when one of their stays is in progress, is planned within the next
`lookahead_days`, or was admitted this month (Paris calendar month of `as_of`); urgent patients
go first, then everyone by most recent stay (latest non-cancelled admission up to `as_of`), newest
first. The key comes from one aggregate query over `dpi_stay` per batch of patients, so the
sender never holds the DPI in memory: the decision stream hands over a batch of patients, this
module returns their keys, the ledger keeps them and orders its pending patients by them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backfill.selection.paris_time import wall_clock_of
from connectors.dpi.contract import dpi_stay

__all__ = ["Priority", "patient_priorities", "priority_order"]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Priority:
    urgent: bool
    last_stay_at: dt.datetime | None
    """naive Paris wall clock, like the DPI"""


NO_STAY = Priority(False, None)


def priority_order(ipp: str, priority: Priority) -> tuple[int, float, str]:
    """A sort key: urgent first, then latest stay first (none last), then ipp."""
    if priority.last_stay_at is None:
        return (0 if priority.urgent else 1, float("inf"), ipp)
    stamp = (priority.last_stay_at - dt.datetime(1900, 1, 1)).total_seconds()
    return (0 if priority.urgent else 1, -stamp, ipp)


def patient_priorities(
    conn: Connection, ipps: Collection[str], as_of: dt.datetime, lookahead_days: int
) -> dict[str, Priority]:
    """The priority of each of these patients (a patient without stays: not urgent, no stay)."""
    now = wall_clock_of(as_of)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    horizon = now + dt.timedelta(days=lookahead_days)
    s = dpi_stay.c
    not_cancelled = sa.or_(s.status.is_(None), s.status != "cancelled")
    urgent = sa.case(
        (s.status == "in_progress", 1),
        (sa.and_(s.status == "planned", s.admitted_at >= now, s.admitted_at <= horizon), 1),
        (
            sa.and_(
                not_cancelled,
                s.status != "planned",
                s.admitted_at >= month_start,
                s.admitted_at <= now,
            ),
            1,
        ),
        else_=0,
    )
    happened = sa.case(
        (sa.and_(not_cancelled, s.status != "planned", s.admitted_at <= now), s.admitted_at)
    )
    out = dict.fromkeys(ipps, NO_STAY)
    wanted = sorted(out)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = (
            sa.select(s.ipp, sa.func.max(urgent), sa.func.max(happened))
            .where(s.ipp.in_(chunk))
            .group_by(s.ipp)
        )
        for ipp, is_urgent, last in conn.execute(query):
            out[ipp] = Priority(bool(is_urgent), last)
    return out
