"""The visiting mode (`backfill run --visiting`): the patients around a new visit.

A hospital schedules this run every few hours so that a returning patient's history is in the DMP
before or during the stay (the programme's « à l'occasion de la nouvelle venue du patient (en
anticipation de la venue, pendant le séjour…) »). The patients are those with a stay in progress,
a stay admitted today, or a stay planned within the look-ahead (from today to the end of the day
`lookahead_days` days ahead), Paris wall-clock; a cancelled stay brings no one, and a planned stay
whose date has passed is stale data, not a visit. One query over `dpi_stay`, any encounter type:
an emergency visit today is a visit too.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backfill.selection.paris_time import wall_clock_of
from connectors.dpi.contract import dpi_stay

__all__ = ["visiting_ipps", "visiting_query"]


def visiting_query() -> sa.Select[tuple[str]]:
    """Distinct IPPs, ordered; parameters `today` (Paris midnight today) and `horizon` (excluded)."""
    s = dpi_stay.alias("s")
    today = sa.bindparam("today", type_=sa.DateTime())
    tomorrow = sa.bindparam("tomorrow", type_=sa.DateTime())
    horizon = sa.bindparam("horizon", type_=sa.DateTime())
    return (
        sa.select(s.c.ipp)
        .where(
            sa.or_(
                s.c.status == "in_progress",
                sa.and_(
                    s.c.status != "cancelled",
                    s.c.admitted_at >= today,
                    s.c.admitted_at < tomorrow,
                ),
                sa.and_(
                    s.c.status == "planned",
                    s.c.admitted_at >= today,
                    s.c.admitted_at < horizon,
                ),
            )
        )
        .group_by(s.c.ipp)
        .order_by(s.c.ipp)
    )


def visiting_ipps(conn: Connection, now: dt.datetime, lookahead_days: int) -> list[str]:
    """The IPPs visiting at `now` (an aware instant) with a look-ahead of `lookahead_days` days."""
    if lookahead_days < 0:
        raise ValueError("lookahead_days must be 0 or more")
    wall = wall_clock_of(now)
    today = dt.datetime.combine(wall.date(), dt.time())
    # Calendar days in wall-clock time: a DST change inside the look-ahead moves no boundary.
    params = {
        "today": today,
        "tomorrow": today + dt.timedelta(days=1),
        "horizon": today + dt.timedelta(days=lookahead_days + 1),
    }
    return [row[0] for row in conn.execute(visiting_query(), params)]
