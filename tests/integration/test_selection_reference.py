"""The SQL decisions agree, document by document, with a plain-Python reading of DESIGN §5.

`reference_reason` below is written from the contract text, independently of the compiler: it
converts every created_at to an instant (fold=0) and compares instants, checks the INS with
`cda.ins`, reads the PDF bytes in Python. Hypothesis builds small DPIs around the edges (the
depth cut-off to the microsecond, 29 February, the spring gap and the autumn fold, versions out
of order, NULL in every nullable column, Corsican and NIA matricules, shared matricules and ones
that contradict the traits, both DMP environments, cancelled stays and sets, withheld documents,
minors on their 18th birthday under every `[minors]` policy, per-kind depths, unit/specialty/
practice-setting filters and "the N most recent" limits, with ties on created_at) on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.selection import InMemoryLedgerFacts, Reason, Rule, Window, decide
from backfill.selection.paris_time import instant_of, minus_years, wall_clock_of
from backfill.selection.rules import KindRefinement, MinorsPolicy
from cda.ins import INS_OIDS, InsKind, InsTraits, matricule_problem
from connectors.dpi.contract import (
    create_contract,
    dpi_author,
    dpi_document,
    dpi_patient,
    dpi_stay,
    dpi_unit,
)
from tests.integration.selection_support import PDF, insert, matricule

# ---- the reference ------------------------------------------------------------------------------


@dataclass
class World:
    rule: Rule
    as_of: dt.datetime
    window: Window | None
    patients: dict[str, dict[str, Any]]
    units: dict[str, dict[str, Any]]
    authors: dict[str, dict[str, Any]]
    documents: list[dict[str, Any]]
    facts: InMemoryLedgerFacts
    stays: dict[str, dict[str, Any]]
    environment: str


def _blank(value: str | None) -> bool:
    return value is None or value.strip(" \t\r\n\v\f\u00a0") == ""


def _author_ok(author: dict[str, Any] | None) -> bool:
    """Identifiable by the DMP (RPPS, else ADELI, else a staff number) and named."""
    if author is None or _blank(author["family_name"]):
        return False
    blanks = " \t\r\n\v\f\u00a0"
    rpps = (author["rpps"] or "").strip(blanks)
    adeli = (author["adeli"] or "").strip(blanks)
    digits = set("0123456789")
    return (
        (len(rpps) == 11 and set(rpps) <= digits)
        or (
            len(adeli) == 9
            and adeli[0] in digits
            and adeli[1] in digits | {"A", "B"}
            and set(adeli[2:]) <= digits
        )
        or not _blank(author.get("staff_number"))
    )


def _file_reason(uri: str, pdf: bool, max_bytes: int) -> Reason | None:
    path = Path(uri.removeprefix("file://"))
    if not path.is_file():
        return Reason.CONTENT_MISSING
    data = path.read_bytes()
    return _bytes_reason(data, pdf, max_bytes)


def _bytes_reason(data: bytes, pdf: bool, max_bytes: int) -> Reason | None:
    if len(data) == 0:
        return Reason.CONTENT_MISSING
    if len(data) > max_bytes:
        return Reason.CONTENT_TOO_LARGE
    if pdf and (not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]):
        return Reason.CONTENT_CORRUPT
    return None


def _contradicts(patient: dict[str, Any]) -> bool:
    """The matricule's sex digit, birth year and month (when 01–12) against the traits."""
    m, sex, born = patient["ins_matricule"], patient["sex"], patient["birth_date"]
    digit, year, month = m[0], int(m[1:3]), int(m[3:5])
    wrong_sex = (digit in "137" and sex != "M") or (digit in "248" and sex != "F")
    return wrong_sex or year != born.year % 100 or (1 <= month <= 12 and month != born.month)


def is_minor(world: World, patient: dict[str, Any]) -> bool:
    """Under 18 on as_of's Paris day (born on 29 February: 18 on 1 March of a common year)."""
    born = patient["birth_date"]
    if born is None:
        return False
    today = world.as_of.astimezone(_paris()).date()
    if born.month == 2 and born.day == 29:
        eighteenth = dt.date(born.year + 18, 3, 1)
    else:
        eighteenth = born.replace(year=born.year + 18)
    return today < eighteenth


def minor_policy(world: World, doc: dict[str, Any]) -> str | None:
    """The `[minors]` policy that applies to `doc`, or None when its patient is not a minor."""
    patient = world.patients.get(doc["ipp"])
    if patient is None or not is_minor(world, patient):
        return None
    unit = world.units.get(doc["unit_code"]) if doc["unit_code"] else None
    return world.rule.minors.policy_for(
        doc["unit_code"], unit["practice_setting_code"] if unit else None
    )


def _dropped_by_filters(world: World, doc: dict[str, Any]) -> bool:
    """A `[per_kind]` include list that does not list the document's code (none: not listed),
    or an exclude list that does."""
    refinement = world.rule.per_kind.get(doc["kind"])
    if refinement is None:
        return False
    unit = world.units.get(doc["unit_code"]) if doc["unit_code"] else None
    author = world.authors.get(doc["author_id"]) if doc["author_id"] else None
    values = {
        "units": doc["unit_code"],
        "specialties": author["specialty_code"] if author else None,
        "practice_settings": unit["practice_setting_code"] if unit else None,
    }
    for key, value in values.items():
        include, exclude = getattr(refinement, key), getattr(refinement, f"exclude_{key}")
        if include is not None and value not in include:
            return True
        if exclude is not None and value is not None and value in exclude:
            return True
    return False


def beyond_kind_limit(world: World, *, identity: bool) -> set[str]:
    """Document ids past their kind's `latest` for their patient.

    Only documents with no reason the SQL query can know (the ledger's facts and `file:`
    checks come after it) take a place; most recent first, ties by document id descending.
    """
    places: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for doc in world.documents:
        refinement = world.rule.per_kind.get(doc["kind"])
        if refinement is None or refinement.latest is None:
            continue
        if not reference_reasons(world, doc, identity=identity, sql_only=True):
            places.setdefault((doc["ipp"], doc["kind"]), []).append(doc)
    beyond = set()
    for (_, kind), docs in places.items():
        docs.sort(key=lambda o: (o["created_at"], o["document_id"]), reverse=True)
        n = world.rule.per_kind[kind].latest
        beyond.update(o["document_id"] for o in docs[n:])
    return beyond


def reference_reasons(
    world: World, doc: dict[str, Any], *, identity: bool, sql_only: bool = False
) -> set[Reason]:
    """Every reason that applies to `doc` (identity reasons only if `identity`), except
    `beyond_kind_limit`; with `sql_only`, only those the DPI alone can tell (no ledger fact, no
    reading of a `file:` content)."""
    rule, reasons = world.rule, set()
    patient = world.patients.get(doc["ipp"])
    unit = world.units.get(doc["unit_code"]) if doc["unit_code"] else None
    acked = {} if sql_only else world.facts.acked.get(doc["set_id"], {})
    instant = instant_of(doc["created_at"])
    if doc["kind"] not in rule.kinds:
        reasons.add(Reason.KIND_NOT_SELECTED)
    if doc["status"] != "validated":
        reasons.add(Reason.NOT_VALIDATED)
    if any(
        o["set_id"] == doc["set_id"]
        and o["version"] > doc["version"]
        and o["status"] == "validated"
        for o in world.documents
    ):
        reasons.add(Reason.SUPERSEDED_VERSION)
    if doc["sent_live_at"] is not None or doc["version"] in acked:
        reasons.add(Reason.ALREADY_IN_DMP)
    if instant > world.as_of:
        reasons.add(Reason.FUTURE_DATED)
    if world.window is None:
        refinement = rule.per_kind.get(doc["kind"])
        depth = rule.depth_years
        if refinement is not None and refinement.depth_years is not None:
            depth = refinement.depth_years
        assert depth is not None
        cutoff = minus_years(
            world.as_of.astimezone(dt.UTC).astimezone(_paris()).replace(tzinfo=None), depth
        )
        if instant < instant_of(cutoff):
            reasons.add(Reason.OLDER_THAN_DEPTH)
    elif not (world.window.start <= instant < world.window.end):
        reasons.add(Reason.OLDER_THAN_DEPTH)
    if (
        rule.respect_computerization
        and unit is not None
        and unit["computerized_since"] is not None
        and doc["created_at"].date() < unit["computerized_since"]
    ):
        reasons.add(Reason.BEFORE_COMPUTERIZATION)
    if patient is not None and (patient["deceased"] or patient["death_date"] is not None):
        reasons.add(Reason.PATIENT_DECEASED)
    if patient is not None and patient["dmp_opposition"] and rule.local_opposition == "block":
        reasons.add(Reason.PATIENT_OPPOSED)
    if patient is None:
        reasons.add(Reason.IDENTITY_NOT_QUALIFIED)
    elif identity:
        if patient["identity_status"] not in rule.identity_statuses:
            reasons.add(Reason.IDENTITY_NOT_QUALIFIED)
        if patient["identity_doubtful"] or patient["identity_fictitious"]:
            reasons.add(Reason.IDENTITY_DOUBTFUL)
        if not patient["ins_matricule"] or patient["ins_oid"] not in INS_OIDS:
            reasons.add(Reason.INS_MISSING)
        elif matricule_problem(patient["ins_matricule"]) is not None:
            reasons.add(Reason.INS_INVALID)
        traits = InsTraits(*(patient[k] for k in _TRAITS))
        if traits.missing():
            reasons.add(Reason.INS_TRAITS_INCOMPLETE)
        holders = [
            o
            for o in world.patients.values()
            if patient["ins_matricule"] and o["ins_matricule"] == patient["ins_matricule"]
        ]
        if len(holders) > 1:
            reasons.add(Reason.INS_SHARED)
        # Only meaningful (and only reached) for a well-formed matricule and complete traits.
        unreached = {Reason.INS_MISSING, Reason.INS_INVALID, Reason.INS_TRAITS_INCOMPLETE}
        if not reasons & unreached and _contradicts(patient):
            reasons.add(Reason.INS_TRAITS_INCONSISTENT)
    elif patient["identity_fictitious"]:
        reasons.add(Reason.IDENTITY_DOUBTFUL)
    no_dmp = {} if sql_only else world.facts.no_dmp
    if doc["ipp"] in no_dmp and no_dmp[doc["ipp"]] > world.as_of:
        reasons.add(Reason.NO_DMP)
    mime = (doc["mime_type"] or "").lower()
    pdf = mime == "application/pdf"
    if doc["content"] is not None:
        content_reason = _bytes_reason(doc["content"], pdf, rule.max_content_bytes)
    elif _blank(doc["content_uri"]):
        content_reason = Reason.CONTENT_MISSING
    elif sql_only:
        content_reason = None
    else:
        content_reason = _file_reason(doc["content_uri"], pdf, rule.max_content_bytes)
    if content_reason is not None:
        reasons.add(content_reason)
    if doc["mime_type"] is None or mime not in rule.media_types:
        reasons.add(Reason.CONTENT_UNSUPPORTED_FORMAT)
    author = world.authors.get(doc["author_id"]) if doc["author_id"] else None
    legal_id = doc["legal_authenticator_id"]
    if not _author_ok(author) or (
        legal_id is not None and not _author_ok(world.authors.get(legal_id))
    ):
        reasons.add(Reason.AUTHOR_UNKNOWN)
    if doc["masked_ps"] and doc["invisible_patient"]:
        reasons.add(Reason.VISIBILITY_CONFLICT)
    if any(
        o["set_id"] == doc["set_id"]
        and o["version"] < doc["version"]
        and o["sent_live_at"] is not None
        and o["dmp_unique_id"] is None
        for o in world.documents
    ):
        reasons.add(Reason.REPLACEMENT_TARGET_UNKNOWN)
    production = world.environment == "production"
    oid = patient["ins_oid"] if patient is not None else None
    if oid in INS_OIDS and InsKind(oid).is_production != production:
        reasons.add(Reason.INS_WRONG_ENVIRONMENT)
    if doc["withheld"]:
        reasons.add(Reason.DOCUMENT_WITHHELD)
    in_set = [o for o in world.documents if o["set_id"] == doc["set_id"]]
    last = max(in_set, key=lambda o: o["version"])
    if last["status"] == "cancelled" and last["version"] > doc["version"]:
        reasons.add(Reason.SET_WITHDRAWN)
    stay = world.stays.get(doc["stay_id"]) if doc["stay_id"] else None
    if stay is not None and stay["status"] == "cancelled":
        reasons.add(Reason.STAY_CANCELLED)
    if minor_policy(world, doc) == "hold_back":
        reasons.add(Reason.MINOR_HELD_BACK)
    if _dropped_by_filters(world, doc):
        reasons.add(Reason.NOT_RELEVANT)
    return reasons


def _paris() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")


_TRAITS = (
    "birth_family_name",
    "birth_given_names",
    "first_birth_given_name",
    "sex",
    "birth_date",
    "birth_place_code",
)


def reference_replaces(world: World, doc: dict[str, Any]) -> str | None:
    candidates = [
        (o["version"], o["dmp_unique_id"])
        for o in world.documents
        if o["set_id"] == doc["set_id"] and o["version"] < doc["version"] and o["dmp_unique_id"]
    ]
    candidates += [
        (v, uid)
        for v, uid in world.facts.acked.get(doc["set_id"], {}).items()
        if v < doc["version"]
    ]
    if not candidates:
        return None
    best = max(v for v, _ in candidates)
    # When the live feed and we both sent that version, ours is the later word.
    ours = world.facts.acked.get(doc["set_id"], {}).get(best)
    return ours if ours is not None else next(uid for v, uid in candidates if v == best)


def _first(reasons: set[Reason]) -> Reason | None:
    return min(reasons, key=lambda r: r.rank) if reasons else None


# ---- the generated worlds -----------------------------------------------------------------------


def _last_sunday(year: int, month: int) -> dt.date:
    day = dt.date(year, month, 31)
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


OFFSETS = st.one_of(
    st.sampled_from([0, 0, 1, -1, 3600, -3600, 1800, 5400, -5400, 86400, -86400]),
    st.integers(-4 * 3600, 4 * 3600),
)


TEST_OID = "1.2.250.1.213.1.4.10"
PDF_TYPE = "application/pdf"


def mostly(good: object, bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` eleven times in twelve: most rows pass most checks, so every reason gets its turn."""
    return st.integers(0, 11).flatmap(lambda i: bad if i == 0 else st.just(good))


@st.composite
def worlds(draw: st.DrawFn, files: dict[str, str], focus: str | None = None) -> World:
    # Half the worlds vary everything; half keep every value that reasons 1–22 look at good and
    # vary only what the appended reasons (23 on) look at, so that documents reach them.
    # "relevance" worlds keep nearly everything good and vary kinds, units, authors, dates and
    # drafts, so that many documents reach the per-kind filters and limits (30, 31), with ties
    # on created_at.
    focus = focus or draw(st.sampled_from(["everything", "safety"]))
    safety, relevance = focus == "safety", focus == "relevance"
    usual = (lambda good, bad: st.just(good)) if safety or relevance else mostly
    often = (lambda good, bad: st.one_of(st.just(good), bad)) if safety else mostly
    if relevance:
        often = usual
    catch_up = not relevance and draw(st.booleans()) and draw(st.booleans())
    depths = [1, 4, 5, 20] if relevance else [0, 1, 4, 5, 20]
    depth = None if catch_up else draw(st.sampled_from(depths))
    kinds = sorted({"CRH"} | draw(st.sets(st.sampled_from(["LDL", "CR_BIO"]))))
    # The second unit's practice setting: the first's, or one of its own (a filter can tell).
    settings_u2 = draw(st.sampled_from(["X", "Y"]))
    known = {
        "units": ["U1", "U2"],
        "specialties": ["SP1", "SP2"],
        "practice_settings": sorted({"X", settings_u2}),
    }
    per_kind = {
        kind: draw(refinements(known, history=not catch_up))
        for kind in draw(st.sets(st.sampled_from(kinds), min_size=1 if relevance else 0))
    }
    rule = Rule(
        name="generated",
        mode="catch-up" if catch_up else "history",
        kinds=kinds,
        per_kind=per_kind,
        depth_years=depth,
        respect_computerization=draw(st.booleans()),
        media_types=draw(st.sampled_from([["application/pdf"], ["application/pdf", "text/plain"]])),
        max_content_bytes=draw(st.sampled_from([60, 100_000])),
        local_opposition=draw(st.sampled_from(["block", "ask_dmp"])),
        minors=MinorsPolicy(
            default=draw(POLICIES),
            sensitive=draw(POLICIES),
            sensitive_units=draw(st.sampled_from([[], ["U1"], ["U2", "UX"]])),
            units=draw(st.sampled_from([{}, {"U2": "hold_back"}, {"U1": "send"}])),
            practice_settings=draw(
                st.sampled_from([{}, {"X": "invisible_to_legal_representatives"}])
            ),
        ),
    )
    # The reference instant: near a change of clocks, 29 February, or an ordinary day; with a
    # depth, often exactly `depth` years after such a day so the cut-off lands on the edge.
    base_year = draw(st.integers(2001, 2024))
    base_day = draw(
        st.sampled_from(
            [
                _last_sunday(base_year, 3),
                _last_sunday(base_year, 10),
                dt.date(2004 + 4 * (base_year % 5), 2, 29),
                dt.date(base_year, 7, 14),
            ]
        )
    )
    base = dt.datetime.combine(base_day, dt.time(2, 30)) + dt.timedelta(seconds=draw(OFFSETS))
    as_of_wall = base if depth is None else minus_years(base, -depth)
    as_of = instant_of(as_of_wall) + dt.timedelta(microseconds=draw(st.sampled_from([0, 0, 1])))
    window = None
    if catch_up:
        start = instant_of(base - dt.timedelta(hours=draw(st.integers(0, 5))))
        window = Window(
            start, start + dt.timedelta(seconds=draw(st.sampled_from([1, 3600, 7200, 86400])))
        )
    as_of_paris = wall_clock_of(as_of)
    cutoff = minus_years(as_of_paris, depth) if depth is not None else base
    anchors = [as_of_paris, cutoff, base]
    since = draw(
        st.one_of(st.none(), st.sampled_from([cutoff.date(), as_of_paris.date(), base.date()]))
    )
    units = {
        "U1": {
            "unit_code": "U1",
            "name": "U1",
            "practice_setting_code": "X",
            "computerized_since": since,
        },
        "U2": {
            "unit_code": "U2",
            "name": "U2",
            "practice_setting_code": settings_u2,
            "computerized_since": None,
        },
    }
    authors = {
        "A1": {
            "author_id": "A1",
            "rpps": "10000000001",
            "adeli": None,
            "family_name": "DOC",
            "given_name": "T",
            "specialty_code": "SP1",
            "staff_number": None,
        },
        "A2": {
            "author_id": "A2",
            "rpps": draw(st.sampled_from([None, "123", "1000000001 ", "1000000000x"])),
            "adeli": draw(
                st.sampled_from(
                    [None, "", "759912345", "2A9912345", " 2B991234", "2C9912345", "75991234"]
                )
            ),
            "family_name": "DOC",
            "given_name": "T",
            "specialty_code": draw(st.sampled_from([None, "SP1", "SP2"])),
            "staff_number": draw(st.sampled_from([None, "", " \t", "M00017"])),
        },
        "A4": {
            "author_id": "A4",
            "rpps": "10000000003",
            "adeli": None,
            "family_name": "DOC",
            "given_name": "T",
            "specialty_code": draw(st.sampled_from([None, "SP1", "SP2"])),
            "staff_number": None,
        },
        "A3": {
            "author_id": "A3",
            "rpps": "10000000002",
            "adeli": None,
            "family_name": draw(st.sampled_from(["", " ", "\t", "X"])),
            "given_name": "T",
            "specialty_code": "SP2",
            "staff_number": None,
        },
    }
    # Birth dates: an adult, or a minor around the 18th birthday (the day before, of, after).
    near_majority = st.sampled_from([-1, 0, 1]).map(
        lambda delta: (
            minus_years(dt.datetime.combine(as_of_paris.date(), dt.time()), 18).date()
            + dt.timedelta(days=delta)
        )
    )
    patients = {}
    own_matricules = []
    for n in range(draw(st.integers(1, 3))):
        ipp = f"P{n}"
        born = draw(often(dt.date(1980, 2, 29), st.one_of(near_majority, st.just(None))))
        # The patient's own matricule says what the traits say (F, year and month of birth).
        own = matricule(f"2{(born or dt.date(1980, 2, 1)).strftime('%y%m')}75123{n:03d}")
        own_matricules.append(own)
        patients[ipp] = {
            "ipp": ipp,
            "ins_matricule": draw(
                often(own, st.one_of(MATRICULES, st.sampled_from(own_matricules)))
            ),
            "ins_oid": draw(often(TEST_OID, st.sampled_from([*sorted(INS_OIDS), "1.2.3", None]))),
            "identity_status": draw(usual("QUAL", st.sampled_from(["VALI", "PROV", "RECUP"]))),
            "identity_doubtful": draw(usual(False, st.just(True))),
            "identity_fictitious": draw(usual(False, st.just(True))),
            "birth_family_name": draw(usual("NOM", TEXT)),
            "birth_given_names": draw(usual("JEAN PAUL", TEXT)),
            "first_birth_given_name": draw(usual("JEAN", TEXT)),
            "used_family_name": draw(st.sampled_from([None, "X"])),
            "used_given_name": draw(st.sampled_from([None, "X"])),
            "sex": draw(often("F", st.sampled_from(["M", "U", None, "m"]))),
            "birth_date": born,
            "birth_place_code": draw(usual("2A004", st.sampled_from(["99100", "", " ", None]))),
            "deceased": draw(usual(False, st.just(True))),
            "death_date": draw(usual(None, st.just(dt.date(2020, 1, 1)))),
            "dmp_opposition": draw(often(False, st.just(True))),
        }
    stays = {
        "ST1": {"stay_id": "ST1", "ipp": "P0", "encounter_type": "IMP",
                "admitted_at": base, "discharged_at": None, "status": "finished",
                "unit_code": "U1", "hospitalisation": None},
        "ST2": {"stay_id": "ST2", "ipp": "P0", "encounter_type": "EXTERNE",
                "admitted_at": base, "discharged_at": None,
                "status": draw(st.sampled_from(["cancelled", "finished", "planned"])),
                "unit_code": "U2", "hospitalisation": None},
    }  # fmt: skip
    uris = [*files.values(), "file:///nonexistent/x.pdf", "", " ", "https://elsewhere/x.pdf"]
    documents = []
    for n in range(draw(st.integers(3, 8) if relevance else st.integers(1, 6))):
        anchor = draw(st.sampled_from(anchors))
        micro = draw(st.sampled_from([0, 0, 1, -1]))
        created = anchor + dt.timedelta(seconds=draw(OFFSETS), microseconds=micro)
        if safety and depth:
            created = as_of_paris - dt.timedelta(days=draw(st.integers(1, 300)))
        if relevance:  # the same few days: ties; 400 and 800 days: across a 1-year depth
            days = draw(st.sampled_from([1, 2, 2, 3, 30, 400, 800]))
            created = as_of_paris - dt.timedelta(days=days)
        content, uri = draw(usual(PDF, CONTENTS)), None
        if relevance:  # some behind a file: the query counts them, the file check comes after
            content = draw(st.sampled_from([PDF, PDF, PDF, "uri"]))
        if content == "uri":
            content, uri = None, draw(st.sampled_from(uris))
        documents.append(
            {
                "document_id": f"D{n}",
                "set_id": draw(
                    mostly(f"D{n}", st.sampled_from(["S1", "S2"]))
                    if relevance
                    else st.sampled_from(["S1", "S2", f"D{n}"])
                ),
                "version": draw(st.integers(1, 3)),
                "ipp": draw(
                    st.sampled_from(["P0", *patients])
                    if relevance
                    else usual("P0", st.sampled_from([*patients, "PX"]))
                ),
                "stay_id": draw(st.sampled_from([None, "ST1", "ST2", "STX"])),
                "kind": draw(
                    st.sampled_from([*kinds, *kinds, "CR_BIO"])
                    if relevance
                    else usual("CRH", st.sampled_from(["LDL", "CR_BIO"]))
                ),
                "title": "t",
                "created_at": created,
                "status": draw(
                    st.sampled_from(["validated", "validated", "validated", "draft"])
                    if relevance
                    else often("validated", st.sampled_from(["draft", "cancelled"]))
                ),
                "author_id": draw(
                    st.sampled_from(["A1", "A4", "A4", "AX"])
                    if relevance
                    else usual("A1", st.sampled_from(["A2", "A3", "A4", "AX", None]))
                ),
                "legal_authenticator_id": draw(usual(None, st.sampled_from(["A1", "A2", "AX"]))),
                "authenticated_at": None,
                "unit_code": draw(
                    st.sampled_from(["U1", "U2", "U2", "UX", None])
                    if relevance
                    else often("U1", st.sampled_from(["U2", "UX", None]))
                ),
                "mime_type": draw(
                    usual(PDF_TYPE, st.sampled_from(["Application/PDF", "text/plain", None]))
                ),
                "content": content,
                "content_uri": uri,
                "masked_ps": draw(usual(False, st.just(True))),
                "invisible_patient": draw(usual(False, st.just(True))),
                "invisible_legal_rep": draw(st.booleans()),
                "sent_live_at": draw(usual(None, st.just(dt.datetime(2020, 5, 5, 5, 5)))),
                "dmp_unique_id": draw(st.sampled_from([None, None, f"2.25.{n}"])),
                "withheld": draw(often(None, st.sampled_from([True, False]))),
            }
        )
    facts = InMemoryLedgerFacts()
    for doc in documents:
        if draw(st.integers(0, 11)) == 0:
            acked = facts.acked.setdefault(doc["set_id"], {})
            acked[doc["version"]] = f"2.25.9{doc['document_id'][1:]}"
    for ipp in patients:
        if draw(st.integers(0, 11)) == 0:
            facts.no_dmp[ipp] = as_of + dt.timedelta(days=draw(st.sampled_from([-1, 1])))
    # Document ids are unique, and so are (set_id, version) pairs in a sane DPI.
    seen: set[tuple[str, int]] = set()
    unique_docs = []
    for doc in documents:
        if (doc["set_id"], doc["version"]) not in seen:
            seen.add((doc["set_id"], doc["version"]))
            unique_docs.append(doc)
    environment = draw(often("test", st.just("production")))
    return World(
        rule, as_of, window, patients, units, authors, unique_docs, facts, stays, environment
    )


POLICIES = st.sampled_from(["send", "invisible_to_legal_representatives", "hold_back"])


@st.composite
def refinements(draw: st.DrawFn, known: dict[str, list[str]], *, history: bool) -> KindRefinement:
    """A `[per_kind.X]` table: maybe a depth (history rules only), up to two filters on codes
    the generated DPI has, maybe a `latest` limit."""
    values: dict[str, Any] = {}
    if history and draw(st.booleans()):
        values["depth_years"] = draw(st.sampled_from([0, 1, 4, 5, 20]))
    for key in draw(st.sets(st.sampled_from(sorted(known)), max_size=2)):
        codes = draw(st.lists(st.sampled_from(known[key]), min_size=1, max_size=2, unique=True))
        values[key if draw(st.booleans()) else f"exclude_{key}"] = codes
    if draw(st.integers(0, 2)) > 0:
        values["latest"] = draw(st.integers(1, 3))
    return KindRefinement(**values)


MATRICULES = st.one_of(
    st.sampled_from(
        [
            matricule("1800175123456"),
            matricule("280012A123456"),
            matricule("185032B123456"),
            matricule("3800199123456"),  # NIA-like
            matricule("2800275123001"),  # the first patient's own
            matricule("1800275123001"),  # a man's sex digit
            matricule("2810275123001"),  # another year
            matricule("2800375123001"),  # another month
            matricule("2802075123001"),  # month 20: unknown, not compared
            matricule("2809975123001"),  # month 99
            matricule("2805275123001"),  # month 52
            matricule("8800275123001"),  # a temporary number's sex digit (8: F)
            matricule("1800175123456")[:13] + "00",
            "1800175123456",
            "18001751234567x",
            "1800175123456 01",
            "18001752a12345" + "6",
            "",
            None,
        ]
    ),
    st.from_regex(r"\A[0-9]{5}(2A|2B|[0-9]{2})[0-9]{8}\Z"),
)
TEXT = st.sampled_from(["NOM", "JEAN PAUL", "", " ", "\t", None])
CONTENTS = st.sampled_from(
    [
        PDF,
        PDF,
        b"",
        None,
        b"%PDF-1.4 no trailer",
        b"GIF89a" + PDF,
        b"%PDF-" + b"x" * 2000 + b"%%EOF",
        b"%PDF-" + b"%%EOF" + b"x" * 1100,
        b"%PDF-" + b"x" * 1014 + b"%%EOF",  # 1024 bytes: the trailer is just inside
        b"%PDF-" + b"x" * 1015 + b"%%EOF",  # 1025 bytes: the header is outside the last KiB
        "uri",
        "uri",
    ]
)


@pytest.fixture
def content_files(tmp_path: Path) -> dict[str, str]:
    bodies = {
        "good": PDF,
        "empty": b"",
        "corrupt": b"not a pdf at all",
        "big": b"%PDF-" + b"y" * 200 + b"%%EOF",
    }
    files = {}
    for name, body in bodies.items():
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(body)
        files[name] = f"file://{path}"
    return files


TABLES = (dpi_document, dpi_stay, dpi_author, dpi_unit, dpi_patient)


@pytest.fixture
def dpi_engine(database) -> sa.Engine:
    engine = database.engine()
    create_contract(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("focus", [None, "relevance"], ids=["all-reasons", "per-kind"])
def test_sql_decisions_match_the_reference(
    dpi_engine: sa.Engine, content_files: dict[str, str], focus: str | None
) -> None:
    @settings(
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(world=worlds(content_files, focus))
    def check(world: World) -> None:
        with dpi_engine.begin() as conn:
            for table in TABLES:
                conn.execute(table.delete())
            insert(
                conn,
                {
                    "patients": world.patients.values(),
                    "units": world.units.values(),
                    "authors": world.authors.values(),
                    "documents": world.documents,
                    "stays": world.stays.values(),
                },
            )
        decisions = {
            d.document_id: d
            for d in decide(
                dpi_engine,
                world.rule,
                world.as_of,
                window=world.window,
                facts=world.facts,
                identity_aside=True,
                fetch_size=2,
                # The folder of the content files (outside it, or without one: content_missing).
                content_root=Path(content_files["good"].removeprefix("file://")).parent,
                environment=world.environment,  # type: ignore[arg-type]
            )
        }
        assert set(decisions) == {doc["document_id"] for doc in world.documents}
        beyond = beyond_kind_limit(world, identity=True)
        beyond_aside = beyond_kind_limit(world, identity=False)
        limit = {Reason.BEYOND_KIND_LIMIT}
        for doc in world.documents:
            got = decisions[doc["document_id"]]
            reasons = reference_reasons(world, doc, identity=True)
            expected = _first(reasons | (limit if doc["document_id"] in beyond else set()))
            context = (doc["document_id"], doc["created_at"], world.as_of, world.rule.depth_years)
            assert got.reason == expected, context
            reasons = reference_reasons(world, doc, identity=False)
            aside = _first(reasons | (limit if doc["document_id"] in beyond_aside else set()))
            assert got.reason_identity_aside == aside, context
            replaces = reference_replaces(world, doc) if expected is None else None
            assert got.replaces_unique_id == replaces, context
            policy = minor_policy(world, doc)
            assert got.minor == (policy is not None), context
            hide = expected is None and policy == "invisible_to_legal_representatives"
            assert got.hide_from_legal_rep == hide, context
        # The sender's stream: the same selected documents, decided the same, and nothing else.
        sender = list(
            decide(
                dpi_engine,
                world.rule,
                world.as_of,
                window=world.window,
                facts=world.facts,
                fetch_size=2,
                content_root=Path(content_files["good"].removeprefix("file://")).parent,
                environment=world.environment,  # type: ignore[arg-type]
                selected_only=True,
            )
        )
        assert [d.document_id for d in sender] == [k for k, d in decisions.items() if d.selected]
        for d in sender:
            full = decisions[d.document_id]
            assert (d.replaces_unique_id, d.minor, d.hide_from_legal_rep, d.created_at) == (
                full.replaces_unique_id,
                full.minor,
                full.hide_from_legal_rep,
                full.created_at,
            )

    check()
