"""A rule and a reference instant → ONE SQLAlchemy Core query giving every DPI document version its decision.

The query reads only the contract tables (`connectors.dpi.contract`), binds every value, and
returns per document the rank of the first failing reason the DPI can decide (0 = none), in the
contract order of `reasons.Reason`. The reasons only the ledger or the file system knows (4 when
acknowledged by us, 15, and the checks of `file:` contents) are merged afterwards by
`decisions`. Times: created_at is Paris wall-clock; the bounds are computed once in Python as
wall-clock sets (`paris_time.wall_clock_after`) so the comparison in SQL is exactly "the
document's instant (fold=0) against the bound instant".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from backfill.selection import portable_sql as ps
from backfill.selection.paris_time import (
    WallClockSet,
    instant_of,
    minus_years,
    wall_clock_after,
    wall_clock_of,
)
from backfill.selection.reasons import Reason
from backfill.selection.rules import Rule
from cda.ins import INS_OIDS
from connectors.dpi.contract import dpi_author, dpi_document, dpi_patient, dpi_unit

__all__ = ["PDF_MEDIA_TYPE", "TimeBounds", "Window", "compile_decisions", "time_bounds"]

PDF_MEDIA_TYPE = "application/pdf"
PDF_HEAD = b"%PDF-"
PDF_TRAILER = b"%%EOF"
PDF_TRAILER_WINDOW = 1024


@dataclass(frozen=True, slots=True)
class Window:
    """A catch-up window on created_at: from `start` (included) to `end` (excluded), instants."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """The wall-clock sets the query compares created_at with."""

    not_future: WallClockSet  # complement: created_at after as_of
    kept_from: WallClockSet  # created_at at or after the depth cut-off / window start
    window_end: WallClockSet | None  # created_at at or after the window's end (excluded)


def time_bounds(rule: Rule, as_of: dt.datetime, window: Window | None = None) -> TimeBounds:
    """The bounds for this rule at `as_of`; a catch-up rule needs a `window`."""
    future = wall_clock_after(as_of, inclusive=False)
    if rule.is_catch_up:
        if window is None:
            raise ValueError(f"the rule {rule.name} is a catch-up rule: give a --from/--to window")
        return TimeBounds(
            future,
            wall_clock_after(window.start, inclusive=True),
            wall_clock_after(window.end, inclusive=True),
        )
    assert rule.depth_years is not None
    cutoff = instant_of(minus_years(wall_clock_of(as_of), rule.depth_years))
    return TimeBounds(future, wall_clock_after(cutoff, inclusive=True), None)


def _in_set(column: ColumnElement[dt.datetime], wall: WallClockSet) -> ColumnElement[bool]:
    low = sa.literal(wall.low, sa.DateTime())
    condition = column >= low if wall.low_inclusive else column > low
    if wall.hole_start is not None and wall.hole_end is not None:
        end = sa.literal(wall.hole_end, sa.DateTime())
        in_hole = sa.and_(
            column >= sa.literal(wall.hole_start, sa.DateTime()),
            column <= end if wall.hole_end_inclusive else column < end,
        )
        condition = sa.and_(condition, sa.not_(in_hole))
    return condition


def _rpps_ok(rpps: ColumnElement[str]) -> ColumnElement[bool]:
    return sa.and_(rpps.is_not(None), ps.matches(ps.trimmed(rpps), [ps.DIGIT] * 11))


def compile_decisions(
    rule: Rule,
    as_of: dt.datetime,
    *,
    window: Window | None = None,
    identity_aside: bool = False,
    ordered: bool = True,
) -> sa.Select[tuple[object, ...]]:
    """The decision query. Columns: see `decisions.Decision`; `rank` is 0 or a reason's rank.

    With `identity_aside`, a second column `rank_identity_aside` ranks each document as if its
    patient's identity were qualified with complete INS traits (the identity worklist). A
    fictitious identity stays blocking there: the identity-vigilance cell does not "fix" it.
    """
    bounds = time_bounds(rule, as_of, window)
    d = dpi_document.alias("d")
    p = dpi_patient.alias("p")
    u = dpi_unit.alias("u")
    author = dpi_author.alias("a")
    legal = dpi_author.alias("la")
    later = dpi_document.alias("later")
    earlier = dpi_document.alias("earlier")

    superseded = sa.exists().where(
        later.c.set_id == d.c.set_id,
        later.c.version > d.c.version,
        later.c.status == "validated",
    )
    if bounds.window_end is None:
        outside = sa.not_(_in_set(d.c.created_at, bounds.kept_from))
    else:
        outside = sa.or_(
            sa.not_(_in_set(d.c.created_at, bounds.kept_from)),
            _in_set(d.c.created_at, bounds.window_end),
        )
    before_computerization: ColumnElement[bool] = sa.false()
    if rule.respect_computerization:
        # Timestamp against date: the cut-off day itself (from its midnight) is kept.
        before_computerization = sa.and_(
            u.c.computerized_since.is_not(None), d.c.created_at < u.c.computerized_since
        )
    matricule = p.c.ins_matricule
    has_content = d.c.content.is_not(None)
    content_size = ps.byte_length(d.c.content)
    mime = sa.func.lower(d.c.mime_type)
    author_unknown = sa.or_(
        d.c.author_id.is_(None),
        author.c.author_id.is_(None),
        sa.not_(_rpps_ok(author.c.rpps)),
        ps.is_blank(author.c.family_name),
        sa.and_(
            d.c.legal_authenticator_id.is_not(None),
            sa.or_(
                legal.c.author_id.is_(None),
                sa.not_(_rpps_ok(legal.c.rpps)),
                ps.is_blank(legal.c.family_name),
            ),
        ),
    )

    before_identity: list[tuple[ColumnElement[bool], Reason]] = [
        (d.c.kind.not_in(rule.kinds), Reason.KIND_NOT_SELECTED),
        (sa.or_(d.c.status.is_(None), d.c.status != "validated"), Reason.NOT_VALIDATED),
        (superseded, Reason.SUPERSEDED_VERSION),
        (d.c.sent_live_at.is_not(None), Reason.ALREADY_IN_DMP),
        (_in_set(d.c.created_at, bounds.not_future), Reason.FUTURE_DATED),
        (outside, Reason.OLDER_THAN_DEPTH),
        (before_computerization, Reason.BEFORE_COMPUTERIZATION),
        (
            sa.or_(ps.is_true(p.c.deceased), p.c.death_date.is_not(None)),
            Reason.PATIENT_DECEASED,
        ),
        (ps.is_true(p.c.dmp_opposition), Reason.PATIENT_OPPOSED),
    ]
    identity: list[tuple[ColumnElement[bool], Reason]] = [
        (
            sa.or_(
                p.c.identity_status.is_(None), p.c.identity_status.not_in(rule.identity_statuses)
            ),
            Reason.IDENTITY_NOT_QUALIFIED,
        ),
        (
            sa.or_(ps.is_true(p.c.identity_doubtful), ps.is_true(p.c.identity_fictitious)),
            Reason.IDENTITY_DOUBTFUL,
        ),
        (
            sa.or_(
                matricule.is_(None),
                matricule == "",
                p.c.ins_oid.is_(None),
                p.c.ins_oid.not_in(sorted(INS_OIDS)),
            ),
            Reason.INS_MISSING,
        ),
        # Two branches, in this order: the key is computed only on a well-shaped matricule.
        (sa.not_(ps.ins_shape_ok(matricule)), Reason.INS_INVALID),
        (sa.not_(ps.ins_key_matches(matricule)), Reason.INS_INVALID),
        (
            sa.or_(
                ps.is_blank(p.c.birth_family_name),
                ps.is_blank(p.c.birth_given_names),
                ps.is_blank(p.c.first_birth_given_name),
                ps.is_blank(p.c.birth_place_code),
                p.c.sex.is_(None),
                p.c.sex.not_in(["M", "F"]),
                p.c.birth_date.is_(None),
            ),
            Reason.INS_TRAITS_INCOMPLETE,
        ),
    ]
    after_identity: list[tuple[ColumnElement[bool], Reason]] = [
        (
            sa.or_(
                sa.and_(sa.not_(has_content), ps.is_blank(d.c.content_uri)),
                sa.and_(has_content, content_size == 0),
            ),
            Reason.CONTENT_MISSING,
        ),
        (sa.or_(mime.is_(None), mime.not_in(rule.media_types)), Reason.CONTENT_UNSUPPORTED_FORMAT),
        (
            sa.and_(has_content, content_size > rule.max_content_bytes),
            Reason.CONTENT_TOO_LARGE,
        ),
        (
            sa.and_(
                has_content,
                mime == PDF_MEDIA_TYPE,
                sa.or_(
                    sa.not_(ps.blob_head_is(d.c.content, PDF_HEAD)),
                    sa.not_(ps.blob_tail_contains(d.c.content, PDF_TRAILER, PDF_TRAILER_WINDOW)),
                ),
            ),
            Reason.CONTENT_CORRUPT,
        ),
        (author_unknown, Reason.AUTHOR_UNKNOWN),
        (
            sa.and_(ps.is_true(d.c.masked_ps), ps.is_true(d.c.invisible_patient)),
            Reason.VISIBILITY_CONFLICT,
        ),
        # An earlier version went out with the live feed but its uniqueId was not recorded:
        # this version could only be sent as a second original beside it, never as its RPLC.
        (
            sa.and_(
                d.c.version > 1,
                sa.exists().where(
                    earlier.c.set_id == d.c.set_id,
                    earlier.c.version < d.c.version,
                    earlier.c.sent_live_at.is_not(None),
                    earlier.c.dmp_unique_id.is_(None),
                ),
            ),
            Reason.REPLACEMENT_TARGET_UNKNOWN,
        ),
    ]

    def ranked(branches: list[tuple[ColumnElement[bool], Reason]]) -> ColumnElement[int]:
        whens = [(cond, sa.literal(reason.rank, sa.Integer())) for cond, reason in branches]
        return sa.case(*whens, else_=sa.literal(0, sa.Integer()))

    # The uniqueId of the latest earlier version the live feed sent. Versions start at 1, so a
    # first version skips the lookup (most documents: it costs a quarter of the query otherwise).
    replaces = sa.case(
        (
            d.c.version > 1,
            sa.select(earlier.c.dmp_unique_id)
            .where(
                earlier.c.set_id == d.c.set_id,
                earlier.c.version < d.c.version,
                earlier.c.dmp_unique_id.is_not(None),
            )
            .order_by(earlier.c.version.desc())
            .limit(1)
            .scalar_subquery(),
        )
    )
    columns: list[ColumnElement[object]] = [
        d.c.document_id,
        d.c.set_id,
        d.c.version,
        d.c.ipp,
        d.c.stay_id,
        d.c.kind,
        d.c.created_at,
        d.c.mime_type,
        d.c.content_uri,
        has_content.label("has_content"),
        p.c.identity_status,
        ranked(before_identity + identity + after_identity).label("rank"),
        replaces.label("replaces_unique_id"),
    ]
    if identity_aside:
        still_blocking = [
            (p.c.ipp.is_(None), Reason.IDENTITY_NOT_QUALIFIED),
            (ps.is_true(p.c.identity_fictitious), Reason.IDENTITY_DOUBTFUL),
        ]
        columns.append(
            ranked(before_identity + still_blocking + after_identity).label("rank_identity_aside")
        )
    query = (
        sa.select(*columns)
        .select_from(d)
        .outerjoin(p, p.c.ipp == d.c.ipp)
        .outerjoin(u, u.c.unit_code == d.c.unit_code)
        .outerjoin(author, author.c.author_id == d.c.author_id)
        .outerjoin(legal, legal.c.author_id == d.c.legal_authenticator_id)
    )
    if ordered:
        # One patient's documents together (the unit of work), reproducible order.
        query = query.order_by(d.c.ipp, d.c.set_id, d.c.version, d.c.document_id)
    return query
