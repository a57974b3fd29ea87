"""A rule and a reference instant → ONE SQLAlchemy Core query giving every DPI document version its decision.

The query reads only the contract tables (`connectors.dpi.contract`), binds every value, and
returns per document the rank of the first failing reason the DPI can decide (0 = none), in the
contract order of `reasons.Reason`. The reasons only the ledger or the file system knows (4 when
acknowledged by us, 15, and the checks of `file:` contents) are merged afterwards by
`decisions`, and so is the PDF check of inline contents (`pdf_checked_in_query` says where
not). Times: created_at is Paris wall-clock; the bounds are computed once in Python as
wall-clock sets (`paris_time.wall_clock_after`) so the comparison in SQL is exactly "the
document's instant (fold=0) against the bound instant".

Optional contract columns (`contract.OPTIONAL_COLUMNS`) are named only when the DPI has them
(`present`, reflected by the caller); a missing one reads as NULL.

A rule's per-kind refinements (`Rule.per_kind`) are branches of the same CASE (a depth per
kind in `older_than_depth`, the filters as `not_relevant`); `latest = N` wraps that query in
one more SELECT numbering, per patient and kind, the rows the CASE selects (ROW_NUMBER, most
recent first): the rows numbered above N are `beyond_kind_limit`. Without `latest` the query
has no window and no wrapping.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

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
from backfill.selection.rules import AGE_OF_MAJORITY, MinorPolicy, MinorsPolicy, Rule
from cda.ins import INS_OIDS, InsKind
from connectors.dpi.contract import dpi_author, dpi_document, dpi_patient, dpi_stay, dpi_unit

__all__ = [
    "PDF_MEDIA_TYPE",
    "Environment",
    "TimeBounds",
    "Window",
    "compile_decisions",
    "corrupt_pdfs_query",
    "foreign_ins_oids",
    "minor_born_after",
    "pdf_checked_in_query",
    "pdf_corrupt",
    "time_bounds",
]

Environment = Literal["test", "production"]

PDF_MEDIA_TYPE = "application/pdf"
PDF_HEAD = b"%PDF-"
PDF_TRAILER = b"%%EOF"
PDF_TRAILER_WINDOW = 1024


def pdf_corrupt(content: ColumnElement[bytes]) -> ColumnElement[bool]:
    """An inline PDF that does not start with `%PDF-` or lacks `%%EOF` in its last KiB."""
    return sa.or_(
        sa.not_(ps.blob_head_is(content, PDF_HEAD)),
        sa.not_(ps.blob_tail_contains(content, PDF_TRAILER, PDF_TRAILER_WINDOW)),
    )


def _kind_limits(rule: Rule) -> dict[str, int]:
    """`[per_kind.X] latest = N` of the rule: kind → N."""
    return {kind: r.latest for kind, r in rule.per_kind.items() if r.latest is not None}


def pdf_checked_in_query(rule: Rule) -> frozenset[str]:
    """The kinds whose inline PDFs the decision query checks itself: those with a `latest`
    limit, since a corrupt PDF must not take one of the N places (`decisions` checks the rest)."""
    return frozenset(_kind_limits(rule))


def corrupt_pdfs_query() -> sa.Select[tuple[str]]:
    """Of the documents `ids` (an expanding parameter), those whose inline PDF is corrupt."""
    d = dpi_document.c
    return sa.select(d.document_id).where(
        d.document_id.in_(sa.bindparam("ids", expanding=True)), pdf_corrupt(d.content)
    )


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
    # Kinds whose own depth (`[per_kind.X] depth_years`) differs from the rule's: their cut-off.
    kind_kept_from: dict[str, WallClockSet] = field(default_factory=dict)


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

    def kept_from(years: int) -> WallClockSet:
        cutoff = instant_of(minus_years(wall_clock_of(as_of), years))
        return wall_clock_after(cutoff, inclusive=True)

    own = {
        kind: kept_from(depth)
        for kind in rule.kinds
        if (depth := rule.depth_for(kind)) is not None and depth != rule.depth_years
    }
    return TimeBounds(future, kept_from(rule.depth_years), None, own)


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


def foreign_ins_oids(environment: Environment) -> list[str]:
    """The INS authority OIDs a DMP of this environment must never receive."""
    production = environment == "production"
    return sorted(k.value for k in InsKind if k.is_production != production)


def minor_born_after(as_of: dt.datetime) -> dt.date:
    """A patient born after this day is a minor on `as_of`'s Paris day (18th birthday not yet)."""
    today = wall_clock_of(as_of).date()
    try:
        return today.replace(year=today.year - AGE_OF_MAJORITY)
    except ValueError:  # 29 February: the birthday of someone born on 29 Feb is 1 March
        return today.replace(year=today.year - AGE_OF_MAJORITY, day=28)


_POLICY_CODES: dict[MinorPolicy, int] = {
    "send": 0,
    "invisible_to_legal_representatives": 1,
    "hold_back": 2,
}


def _minor_policy(
    minors: MinorsPolicy, unit_code: ColumnElement[str], setting: ColumnElement[str]
) -> ColumnElement[int]:
    """The `[minors]` policy of a document's unit as 0 send, 1 invisible, 2 hold back (SQL)."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[int]]] = []

    def code(policy: MinorPolicy) -> ColumnElement[int]:
        return sa.literal(_POLICY_CODES[policy], sa.Integer())

    for policy in _POLICY_CODES:  # unit overrides, grouped by policy (one IN each)
        units = sorted(u for u, p in minors.units.items() if p == policy)
        if units:
            whens.append((unit_code.in_(units), code(policy)))
    if minors.sensitive_units:
        whens.append((unit_code.in_(sorted(minors.sensitive_units)), code(minors.sensitive)))
    for policy in _POLICY_CODES:
        settings = sorted(s for s, p in minors.practice_settings.items() if p == policy)
        if settings:
            whens.append((setting.in_(settings), code(policy)))
    if not whens:
        return code(minors.default)
    return sa.case(*whens, else_=code(minors.default))


def _identified(person: sa.FromClause, present: frozenset[str]) -> ColumnElement[bool]:
    """The DMP can identify this professional: RPPS, else ADELI, else a staff number.

    The same rule as `cda.entry.ps_identifier` (RPPS 11 digits; ADELI a digit, a digit or A/B,
    seven digits; any non-blank staff number).
    """
    rpps, adeli = person.c.rpps, person.c.adeli
    shapes = [
        sa.and_(rpps.is_not(None), ps.matches(ps.trimmed(rpps), [ps.DIGIT] * 11)),
        sa.and_(
            adeli.is_not(None),
            ps.matches(ps.trimmed(adeli), [ps.DIGIT, ps.DIGIT + "AB", *[ps.DIGIT] * 7]),
        ),
    ]
    if "dpi_author.staff_number" in present:  # an optional contract column
        shapes.append(sa.not_(ps.is_blank(person.c.staff_number)))
    return sa.or_(*shapes)


# The NIR's sex digit: 1 and 2, and the same parity for the provisional series (3/4 for people
# born abroad being registered, 7/8 for the temporary numbers of the health insurance).
_MALE_DIGITS = ["1", "3", "7"]
_FEMALE_DIGITS = ["2", "4", "8"]


def _matricule_contradicts_traits(p: sa.Alias) -> ColumnElement[bool]:
    """What the matricule encodes (sex, year and month of birth) against the patient's traits.

    The month is compared only when it is 01–12: the NIR carries documented special values
    (20 and up, 30 and up, 50 and up, 99) for births whose month is unknown, and those say
    nothing. Sex digits other than the six above are not compared.
    """
    matricule = p.c.ins_matricule
    sex_digit = sa.func.substr(matricule, 1, 1, type_=sa.String())
    year = sa.cast(sa.func.substr(matricule, 2, 2, type_=sa.String()), sa.Integer())
    month = sa.cast(sa.func.substr(matricule, 4, 2, type_=sa.String()), sa.Integer())
    birth_year = sa.extract("year", p.c.birth_date)
    birth_month = sa.extract("month", p.c.birth_date)
    return sa.or_(
        sa.and_(sex_digit.in_(_MALE_DIGITS), p.c.sex != "M"),
        sa.and_(sex_digit.in_(_FEMALE_DIGITS), p.c.sex != "F"),
        year != birth_year % sa.literal(100, sa.Integer()),
        sa.and_(month >= 1, month <= 12, month != birth_month),
    )


def compile_decisions(
    rule: Rule,
    as_of: dt.datetime,
    *,
    window: Window | None = None,
    identity_aside: bool = False,
    ordered: bool = True,
    environment: Environment = "test",
    present: frozenset[str] = frozenset(),
    selected_only: bool = False,
) -> sa.Select[tuple[object, ...]]:
    """The decision query. Columns: see `decisions.Decision`; `rank` is 0 or a reason's rank.

    With `selected_only`, only the rows it selects (rank 0): the sender's stream, which keeps
    nothing else (the facts merged afterwards can only turn a row down, never select one).

    With `identity_aside`, a second column `rank_identity_aside` ranks each document as if its
    patient's identity were qualified with complete INS traits, held by this IPP alone and
    consistent with its matricule (the identity worklist). A fictitious identity stays blocking
    there: the identity-vigilance cell does not "fix" it. `environment` is the DMP's (`[dmp]
    environment`): the INS OIDs of the other one are refused. `present` names the optional
    contract columns the DPI has (`contract.present_optional_columns`).
    """
    bounds = time_bounds(rule, as_of, window)
    d = dpi_document.alias("d")
    p = dpi_patient.alias("p")
    u = dpi_unit.alias("u")
    s = dpi_stay.alias("s")
    author = dpi_author.alias("a")
    legal = dpi_author.alias("la")
    later = dpi_document.alias("later")
    earlier = dpi_document.alias("earlier")
    latest = dpi_document.alias("latest")
    after_latest = dpi_document.alias("after_latest")
    holders = dpi_patient.alias("holders")
    # Matricules held by more than one IPP (an RNIV duplicate or collision): one aggregate over
    # dpi_patient, joined once, instead of a lookup per row on a column a view has no index on.
    shared = (
        sa.select(holders.c.ins_matricule.label("matricule"))
        .where(holders.c.ins_matricule.is_not(None), holders.c.ins_matricule != "")
        .group_by(holders.c.ins_matricule)
        .having(sa.func.count(holders.c.ipp) > 1)
        .subquery("shared")
    )

    superseded = sa.exists().where(
        later.c.set_id == d.c.set_id,
        later.c.version > d.c.version,
        later.c.status == "validated",
    )
    if bounds.window_end is None:
        outside = sa.not_(_in_set(d.c.created_at, bounds.kept_from))
        if bounds.kind_kept_from:
            # A kind with its own depth is compared with its own cut-off, the others with the
            # rule's (AND/OR, not a CASE: Oracle and SQL Server have no boolean CASE value).
            own = sorted(bounds.kind_kept_from)
            outside = sa.or_(
                sa.and_(d.c.kind.not_in(own), outside),
                *(
                    sa.and_(
                        d.c.kind == kind,
                        sa.not_(_in_set(d.c.created_at, bounds.kind_kept_from[kind])),
                    )
                    for kind in own
                ),
            )
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
    checked_in_query = pdf_checked_in_query(rule)
    has_content = ps.blob_present(d.c.content)
    content_size = ps.byte_length(d.c.content)
    mime = sa.func.lower(d.c.mime_type)
    author_unknown = sa.or_(
        d.c.author_id.is_(None),
        author.c.author_id.is_(None),
        sa.not_(_identified(author, present)),
        ps.is_blank(author.c.family_name),
        sa.and_(
            d.c.legal_authenticator_id.is_not(None),
            sa.or_(
                legal.c.author_id.is_(None),
                sa.not_(_identified(legal, present)),
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
    ]
    if rule.local_opposition == "block":
        before_identity.append((ps.is_true(p.c.dmp_opposition), Reason.PATIENT_OPPOSED))
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
        # Reading a PDF's tail reads the whole blob: done here only where a kind's `latest`
        # limit needs it before numbering; `decisions` checks the others' after the ledger's
        # facts, so a rerun does not read again every PDF already acknowledged.
        *(
            [
                (
                    sa.and_(
                        has_content,
                        mime == PDF_MEDIA_TYPE,
                        d.c.kind.in_(sorted(checked_in_query)),
                        pdf_corrupt(d.c.content),
                    ),
                    Reason.CONTENT_CORRUPT,
                )
            ]
            if checked_in_query
            else []
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
    identity_appended: list[tuple[ColumnElement[bool], Reason]] = [
        (shared.c.matricule.is_not(None), Reason.INS_SHARED),
        # Reached only with a well-shaped matricule (ins_invalid comes first) and M/F sex.
        (_matricule_contradicts_traits(p), Reason.INS_TRAITS_INCONSISTENT),
    ]
    withheld: ColumnElement[bool] = sa.false()
    if "dpi_document.withheld" in present:
        withheld = ps.is_true(d.c.withheld)
    born_after = minor_born_after(as_of)
    minor = sa.and_(p.c.birth_date.is_not(None), p.c.birth_date > sa.literal(born_after, sa.Date()))
    policy = _minor_policy(rule.minors, d.c.unit_code, u.c.practice_setting_code)
    set_withdrawn = sa.exists().where(
        latest.c.set_id == d.c.set_id,
        latest.c.version > d.c.version,
        latest.c.status == "cancelled",
        ~sa.exists().where(
            after_latest.c.set_id == latest.c.set_id, after_latest.c.version > latest.c.version
        ),
    )
    appended: list[tuple[ColumnElement[bool], Reason]] = [
        (p.c.ins_oid.in_(foreign_ins_oids(environment)), Reason.INS_WRONG_ENVIRONMENT),
        (withheld, Reason.DOCUMENT_WITHHELD),
        (set_withdrawn, Reason.SET_WITHDRAWN),
        (s.c.status == "cancelled", Reason.STAY_CANCELLED),
        (sa.and_(minor, policy == _POLICY_CODES["hold_back"]), Reason.MINOR_HELD_BACK),
    ]
    irrelevant = _not_relevant(rule, d.c.kind, d.c.unit_code, author.c.specialty_code, u)
    if irrelevant is not None:
        appended.append((irrelevant, Reason.NOT_RELEVANT))

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
    first_reason = ranked(
        before_identity + identity + after_identity + identity_appended + appended
    )
    columns: list[ColumnElement[object]] = [
        d.c.document_id,
        d.c.set_id,
        d.c.version,
        d.c.ipp,
        d.c.stay_id,
        d.c.kind,
        # Read as it is stored: a text DPI column may hold a value that is no date, and the
        # driver's own conversion would end the whole stream; `decisions` reads it, row by row.
        sa.type_coerce(d.c.created_at, sa.String).label("created_at"),
        d.c.mime_type,
        d.c.content_uri,
        has_content.label("has_content"),
        p.c.identity_status,
        first_reason.label("rank"),
        replaces.label("replaces_unique_id"),
        minor.label("minor"),
        sa.and_(minor, policy == _POLICY_CODES["invisible_to_legal_representatives"]).label(
            "hide_from_legal_rep"
        ),
    ]
    if identity_aside:
        still_blocking = [
            (p.c.ipp.is_(None), Reason.IDENTITY_NOT_QUALIFIED),
            (ps.is_true(p.c.identity_fictitious), Reason.IDENTITY_DOUBTFUL),
        ]
        columns.append(
            ranked(before_identity + still_blocking + after_identity + appended).label(
                "rank_identity_aside"
            )
        )
    query = (
        sa.select(*columns)
        .select_from(d)
        .outerjoin(p, p.c.ipp == d.c.ipp)
        .outerjoin(u, u.c.unit_code == d.c.unit_code)
        .outerjoin(author, author.c.author_id == d.c.author_id)
        .outerjoin(legal, legal.c.author_id == d.c.legal_authenticator_id)
        .outerjoin(s, s.c.stay_id == d.c.stay_id)
        .outerjoin(shared, shared.c.matricule == p.c.ins_matricule)
    )
    limits = _kind_limits(rule)
    if limits:
        return _limited(
            query,
            limits,
            identity_aside=identity_aside,
            ordered=ordered,
            selected_only=selected_only,
        )
    if selected_only:
        # The CASE again in WHERE: evaluated once a row, and once more for the few selected.
        query = query.where(first_reason == 0)
    if ordered:
        # One patient's documents together (the unit of work), reproducible order.
        query = query.order_by(d.c.ipp, d.c.set_id, d.c.version, d.c.document_id)
    return query


def _not_relevant(
    rule: Rule,
    kind: ColumnElement[str],
    unit_code: ColumnElement[str],
    specialty: ColumnElement[str],
    unit: sa.Alias,
) -> ColumnElement[bool] | None:
    """A per-kind filter of the rule drops the document (None: the rule has no filter)."""
    columns = {
        "dpi_document.unit_code": unit_code,
        "dpi_author.specialty_code": specialty,
        "dpi_unit.practice_setting_code": unit.c.practice_setting_code,
    }
    per_kind = []
    for name, refinement in sorted(rule.per_kind.items()):
        dropped = []
        for key, column_name, codes in refinement.filters:
            column = columns[column_name]
            if key.startswith("exclude_"):
                # NULL IN (…) is NULL, which a CASE branch reads as false: no code, not excluded.
                dropped.append(column.in_(sorted(codes)))
            else:  # an include list: no code is not among the listed codes
                dropped.append(sa.or_(column.is_(None), column.not_in(sorted(codes))))
        if dropped:
            per_kind.append(sa.and_(kind == name, sa.or_(*dropped)))
    return sa.or_(*per_kind) if per_kind else None


def _limited(
    query: sa.Select[tuple[object, ...]],
    limits: dict[str, int],
    *,
    identity_aside: bool,
    ordered: bool,
    selected_only: bool,
) -> sa.Select[tuple[object, ...]]:
    """`query` with `beyond_kind_limit` for the rows past the `limits[kind]` most recent.

    Rows are numbered per (ipp, kind, rank): partitioning by the rank puts the rows the query
    selects (rank 0) in partitions of their own, so only they use up the N places. Most recent
    first: created_at descending, then document_id descending in binary order (the same on
    every database whatever its collation).
    """
    # OFFSET 0 keeps PostgreSQL from flattening the subquery, which would paste the whole rank
    # CASE into the window's key and both branches of the outer CASE: evaluated three times a
    # row instead of once (measured: half the speed at 1 000 000 documents).
    inner = query.suffix_with("OFFSET 0", dialect="postgresql").subquery("decided")
    c = inner.c
    beyond = sa.literal(Reason.BEYOND_KIND_LIMIT.rank, sa.Integer())
    limit = sa.case(
        *((c.kind == kind, sa.literal(n, sa.Integer())) for kind, n in sorted(limits.items()))
    )

    def limited(rank: ColumnElement[int]) -> ColumnElement[int]:
        place = sa.func.row_number().over(
            partition_by=(c.ipp, c.kind, rank),
            order_by=(c.created_at.desc(), ps.binary_order(c.document_id).desc()),
        )
        # `limit` is NULL for a kind without one: the comparison is not true, the rank stays.
        return sa.case((sa.and_(rank == 0, place > limit), beyond), else_=rank)

    columns: list[ColumnElement[object]] = []
    for column in inner.c:
        if column.name == "rank":
            columns.append(limited(column).label("rank"))
        elif column.name == "rank_identity_aside" and identity_aside:
            columns.append(limited(column).label("rank_identity_aside"))
        else:
            columns.append(column)
    outer = sa.select(*columns).select_from(inner)
    if selected_only:
        # A window function cannot be filtered on where it is computed: one more level.
        numbered = outer.subquery("numbered")
        outer = sa.select(*numbered.c).where(numbered.c.rank == 0)
        c = numbered.c
    if ordered:
        outer = outer.order_by(c.ipp, c.set_id, c.version, c.document_id)
    return outer
