"""The programme's usage indicators computed from the DPI: DS1.4 (history) and DS1.1/DS1.2 (live feed).

DS1.4 (seed `000_…`): « Parmi les patients déjà venus, taux de séjours pour lesquels au moins un
document datant d'un ancien séjour a fait l'objet d'une alimentation au DMP, avec une INS
qualifiée. » For a month M:

- denominator: hospitalisation stays (encounter types a setting, default IMP) admitted in M (Paris
  wall-clock; planned and cancelled stays are not admissions) whose patient had an earlier venue
  of any type (not planned, not cancelled) discharged strictly before that admission;
- numerator: those whose patient's identity is qualified and for which at least one document
  attached to such an earlier venue is in the DMP at the end of M: sent live before it
  (`sent_live_at`), or acknowledged by us before it (the ledger's `acked_at`).

Both are ONE SQLAlchemy Core query (`ds14_query`), run inside the DPI's database. The ledger
usually lives elsewhere, so what it knows reaches the query as a temporary table of
(document_id, acked_at) pairs created on the DPI connection (`load_acked`): temporary tables
need no write right on the DPI's own schema, on SQLite (even a read-only file) and PostgreSQL.
`sql/indicator_ds14.sql` is the same query written for people; a test keeps them equal.

DS1.1 / DS1.2: among the hospitalisation stays discharged in M, the share with a discharge letter
(LDL), resp. a discharge prescription (ORDO), attached to the stay, sent by the live feed before
the end of M, with a qualified identity.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from backfill.errors import ConfigError
from backfill.selection import portable_sql as ps
from backfill.selection.paris_time import EARLIEST_DAY, LATEST_DAY, instant_of, wall_clock_of
from cda.ins import INS_OIDS
from connectors.dpi.contract import dpi_document, dpi_patient, dpi_stay

__all__ = [
    "ACKED_TABLE",
    "BREAKDOWN_KEYS",
    "DEFAULT_ENCOUNTER_TYPES",
    "DischargeShare",
    "Ds14",
    "Month",
    "compute_discharge_share",
    "compute_ds14",
    "ds14_query",
    "load_acked",
    "percent",
    "qualified_identity",
]

DEFAULT_ENCOUNTER_TYPES = ("IMP",)


def percent(rate: Fraction | None) -> str:
    """A rate as every output writes it: `32.6 %`, or `—` when it has no denominator."""
    return "—" if rate is None else f"{float(rate) * 100:.1f} %"


# Breakdown of the returning-patient stays; the last four add up to the first.
BREAKDOWN_KEYS = (
    "returning_patient_stays",
    "identity_not_qualified",
    "no_eligible_history",
    "eligible_not_yet_sent",
    "counted",
)
_NOT_VENUES = (
    "planned",
    "cancelled",
)  # a planned stay has not happened; a cancelled one never will


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in Paris wall-clock time: [start, end)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = re.fullmatch(r"\s*(\d{4})-(\d{2})\s*", text)
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ConfigError(f"--month {text!r} is not a month: write YYYY-MM, e.g. 2026-11")
        month = cls(int(match.group(1)), int(match.group(2)))
        if not EARLIEST_DAY <= month.start.date() <= LATEST_DAY:
            raise ConfigError(
                f"--month {text!r} is out of range: months from {EARLIEST_DAY:%Y-%m} to "
                f"{LATEST_DAY:%Y-%m} are accepted"
            )
        return month

    @classmethod
    def of(cls, instant: dt.datetime) -> Month:
        wall = wall_clock_of(instant)
        return cls(wall.year, wall.month)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1)

    @property
    def end(self) -> dt.datetime:
        return dt.datetime(self.year + self.month // 12, self.month % 12 + 1, 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Cut:
    """Where a month's figure is measured: its end, or `now` for the month in progress."""

    month: Month
    until_wall: dt.datetime  # admissions and live sends before this Paris wall-clock time
    until_utc: dt.datetime  # acknowledgements before this UTC time (naive, as the temp table holds)
    month_to_date: bool

    @classmethod
    def of(cls, month: Month, now: dt.datetime) -> Cut:
        end_instant = instant_of(month.end)
        if instant_of(month.start) > now:
            raise ConfigError(f"--month {month} has not started yet")
        until = min(end_instant, now.astimezone(dt.UTC))
        return cls(
            month,
            wall_clock_of(until),
            until.astimezone(dt.UTC).replace(tzinfo=None),
            until < end_instant,
        )


# ---- what the ledger knows, on the DPI's connection ---------------------------------------------

_acked_metadata = sa.MetaData()
ACKED_TABLE = sa.Table(
    "ds14_acked",
    _acked_metadata,
    sa.Column("document_id", sa.String(64), primary_key=True),
    sa.Column("acked_at", sa.DateTime, nullable=False),  # UTC, naive
    prefixes=["TEMPORARY"],
)
_LOAD_BATCH = 10_000


def load_acked(conn: Connection, acked: Iterable[tuple[str, dt.datetime]]) -> int:
    """Create the temporary table on `conn` and fill it with (document_id, acked_at) pairs.

    `acked_at` is an aware instant (or naive UTC). The table lives as long as the connection
    (use one connection for load and query); an earlier one on the same connection is replaced.
    """
    ACKED_TABLE.drop(conn, checkfirst=True)
    ACKED_TABLE.create(conn)
    count = 0
    batch: list[dict[str, Any]] = []
    for document_id, when in acked:
        utc = when if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)
        batch.append({"document_id": document_id, "acked_at": utc})
        if len(batch) >= _LOAD_BATCH:
            conn.execute(ACKED_TABLE.insert(), batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(ACKED_TABLE.insert(), batch)
        count += len(batch)
    return count


# ---- the query ----------------------------------------------------------------------------------


def qualified_identity(p: sa.FromClause) -> ColumnElement[bool]:
    """RNIV status QUAL, neither doubtful nor fictitious, with an INS (matricule and an INS OID)."""
    return sa.and_(
        p.c.identity_status == "QUAL",
        sa.not_(ps.is_true(p.c.identity_doubtful)),
        sa.not_(ps.is_true(p.c.identity_fictitious)),
        p.c.ins_matricule.is_not(None),
        p.c.ins_oid.in_(sorted(INS_OIDS)),
    )


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    one = sa.case((condition, sa.literal(1, sa.Integer())), else_=sa.literal(0, sa.Integer()))
    return sa.func.coalesce(sa.func.sum(one), sa.literal(0, sa.Integer()))


def _sejours_in(
    s: sa.FromClause,
    when: ColumnElement[dt.datetime],
    encounter_types: Sequence[str],
    start: ColumnElement[dt.datetime],
    until: ColumnElement[dt.datetime],
) -> list[ColumnElement[bool]]:
    """Stays of the counted encounter types that happened, with `when` in [start, until)."""
    return [
        s.c.encounter_type.in_(list(encounter_types)),
        s.c.status.not_in(_NOT_VENUES),
        when >= start,
        when < until,
    ]


def ds14_query(
    *,
    encounter_types: Sequence[str],
    eligible_kinds: Sequence[str],
) -> sa.Select[tuple[int, int, int, int, int]]:
    """DS1.4's one query: one row, the counts of BREAKDOWN_KEYS in that order.

    Bound parameters: `until_wall` (the month's end, or now; Paris wall-clock), `until_utc` (the
    same instant in UTC, for acknowledgements), `month_start` (Paris wall-clock). It reads the
    temporary table of `load_acked`, which must exist on the connection (empty is fine).
    """
    s = dpi_stay.alias("s")
    p = dpi_patient.alias("p")
    prev = dpi_stay.alias("prev")
    d = dpi_document.alias("d")
    a = ACKED_TABLE.alias("a")
    month_start = sa.bindparam("month_start", type_=sa.DateTime())
    until_wall = sa.bindparam("until_wall", type_=sa.DateTime())
    until_utc = sa.bindparam("until_utc", type_=sa.DateTime())

    def earlier_venue() -> list[ColumnElement[bool]]:
        return [
            prev.c.ipp == s.c.ipp,
            prev.c.stay_id != s.c.stay_id,
            prev.c.status.not_in(_NOT_VENUES),
            prev.c.discharged_at.is_not(None),
            prev.c.discharged_at < s.c.admitted_at,
        ]

    history = sa.select(sa.literal(1)).select_from(prev).where(*earlier_venue())
    history_documents = (
        sa.select(sa.literal(1))
        .select_from(prev.join(d, d.c.stay_id == prev.c.stay_id))
        .where(*earlier_venue(), d.c.ipp == s.c.ipp)
    )
    in_dmp = sa.or_(
        d.c.sent_live_at < until_wall,
        sa.exists().where(a.c.document_id == d.c.document_id, a.c.acked_at < until_utc),
    )
    sent = history_documents.where(in_dmp).exists()
    eligible = history_documents.where(
        d.c.status == "validated", d.c.kind.in_(list(eligible_kinds))
    ).exists()
    qualified = qualified_identity(p)

    per_stay = (
        sa.select(
            sa.case((qualified, 1), else_=0).label("qualified"),
            sa.case((sent, 1), else_=0).label("sent"),
            sa.case((eligible, 1), else_=0).label("eligible"),
        )
        .select_from(s.outerjoin(p, p.c.ipp == s.c.ipp))
        .where(
            *_sejours_in(s, s.c.admitted_at, encounter_types, month_start, until_wall),
            history.exists(),
        )
        .subquery("returning_stay")
    )
    r = per_stay.c
    return sa.select(
        sa.func.count().label("returning_patient_stays"),
        _count_if(r.qualified == 0).label("identity_not_qualified"),
        _count_if(sa.and_(r.qualified == 1, r.sent == 0, r.eligible == 0)).label(
            "no_eligible_history"
        ),
        _count_if(sa.and_(r.qualified == 1, r.sent == 0, r.eligible == 1)).label(
            "eligible_not_yet_sent"
        ),
        _count_if(sa.and_(r.qualified == 1, r.sent == 1)).label("counted"),
    ).select_from(per_stay)


@dataclass(frozen=True, slots=True)
class Ds14:
    """One month's DS1.4 with its breakdown (DESIGN §11: the indicator JSON)."""

    month: Month
    breakdown: dict[str, int]
    month_to_date: bool
    until: dt.datetime  # aware, UTC
    encounter_types: tuple[str, ...]

    @property
    def denominator(self) -> int:
        return self.breakdown["returning_patient_stays"]

    @property
    def numerator(self) -> int:
        return self.breakdown["counted"]

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.numerator, self.denominator) if self.denominator else None

    def as_json(self) -> dict[str, Any]:
        return {
            "month": str(self.month),
            "denominator": self.denominator,
            "numerator": self.numerator,
            "rate": None if self.rate is None else self.numerator / self.denominator,
            "breakdown": dict(self.breakdown),
            "month_to_date": self.month_to_date,
            "measured_until": self.until.isoformat(),
            "encounter_types": list(self.encounter_types),
        }


def ds14_params(cut: Cut) -> dict[str, dt.datetime]:
    return {
        "month_start": cut.month.start,
        "until_wall": cut.until_wall,
        "until_utc": cut.until_utc,
    }


def compute_ds14(
    conn: Connection,
    month: Month,
    *,
    now: dt.datetime,
    encounter_types: Sequence[str] = DEFAULT_ENCOUNTER_TYPES,
    eligible_kinds: Sequence[str],
    acked: Iterable[tuple[str, dt.datetime]] | None = None,
) -> Ds14:
    """DS1.4 of `month` on the DPI connection `conn`.

    `acked` (document_id, acked_at) pairs are loaded into the temporary table first; None means
    the table is already loaded on this connection (several months, one load).
    """
    if acked is not None:
        load_acked(conn, acked)
    cut = Cut.of(month, now)
    query = ds14_query(encounter_types=encounter_types, eligible_kinds=eligible_kinds)
    row = conn.execute(query, ds14_params(cut)).one()
    return Ds14(
        month,
        dict(zip(BREAKDOWN_KEYS, (int(v) for v in row), strict=True)),
        cut.month_to_date,
        cut.until_utc.replace(tzinfo=dt.UTC),
        tuple(encounter_types),
    )


# ---- DS1.1 / DS1.2: the live feed's discharge documents ----------------------------------------


@dataclass(frozen=True, slots=True)
class DischargeShare:
    """Among the month's discharges, how many have a document of `kind` sent live (qualified INS)."""

    indicator: str
    kind: str
    month: Month
    discharges: int
    with_document: int
    month_to_date: bool

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.with_document, self.discharges) if self.discharges else None


def discharge_share_query(
    *, encounter_types: Sequence[str], kind: str
) -> sa.Select[tuple[int, int]]:
    """(discharges in the month, of which with a `kind` document sent live before the cut)."""
    s = dpi_stay.alias("s")
    p = dpi_patient.alias("p")
    d = dpi_document.alias("d")
    month_start = sa.bindparam("month_start", type_=sa.DateTime())
    until_wall = sa.bindparam("until_wall", type_=sa.DateTime())
    sent = sa.exists().where(
        d.c.stay_id == s.c.stay_id,
        d.c.ipp == s.c.ipp,
        d.c.kind == kind,
        d.c.sent_live_at < until_wall,
    )
    return (
        sa.select(sa.func.count(), _count_if(sa.and_(qualified_identity(p), sent)))
        .select_from(s.outerjoin(p, p.c.ipp == s.c.ipp))
        .where(*_sejours_in(s, s.c.discharged_at, encounter_types, month_start, until_wall))
    )


DISCHARGE_INDICATORS = {"DS1.1": "LDL", "DS1.2": "ORDO"}


def compute_discharge_share(
    conn: Connection,
    indicator: str,
    month: Month,
    *,
    now: dt.datetime,
    encounter_types: Sequence[str] = DEFAULT_ENCOUNTER_TYPES,
) -> DischargeShare:
    kind = DISCHARGE_INDICATORS[indicator]
    cut = Cut.of(month, now)
    query = discharge_share_query(encounter_types=encounter_types, kind=kind)
    total, with_document = conn.execute(
        query, {"month_start": month.start, "until_wall": cut.until_wall}
    ).one()
    return DischargeShare(
        indicator, kind, month, int(total), int(with_document or 0), cut.month_to_date
    )


# ---- one month's figures together ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """DS1.4, DS1.1 and DS1.2 of one month, measured on one DPI connection."""

    ds14: Ds14
    ds11: DischargeShare
    ds12: DischargeShare


def measure_month(
    conn: Connection,
    month: Month,
    *,
    now: dt.datetime,
    encounter_types: Sequence[str],
    eligible_kinds: Sequence[str],
) -> MonthFigures:
    """The three figures of `month`; the acknowledged documents are already loaded on `conn`."""
    return MonthFigures(
        compute_ds14(
            conn, month, now=now, encounter_types=encounter_types, eligible_kinds=eligible_kinds
        ),
        compute_discharge_share(conn, "DS1.1", month, now=now, encounter_types=encounter_types),
        compute_discharge_share(conn, "DS1.2", month, now=now, encounter_types=encounter_types),
    )


def last_complete_month(now: dt.datetime) -> Month:
    return Month.of(now).previous()
