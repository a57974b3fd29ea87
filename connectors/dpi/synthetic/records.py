"""One patient's stays and documents over 25 years, as a DPI accumulates them.

Stays get documents by kind of stay (a full hospitalisation: discharge letter, hospital report,
biology, imaging, prescriptions, an operative report in a surgical unit; a day case — IMP, partial
hospitalisation — the same, a surgical one its letter and operative report; sessions, outpatient
and emergency visits their own), with drafts, cancelled ones and version chains; documents of the
live-feed era may already have been sent to the DMP. Units fit the patient (sex, age at
admission), and nothing happens after a patient's death.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from cda.identifiers import unique_id_for
from connectors.dpi.contract import DEFAULT_LIVE_FEED_KINDS
from connectors.dpi.synthetic.hospital import SURGICAL_UNITS, units_for

__all__ = [
    "LIVE_FEED_SHARES",
    "LIVE_FEED_START",
    "DocumentRow",
    "LiveFeed",
    "StayRow",
    "make_history",
]

# The establishment's live DMP feed started here by default; earlier documents were never sent.
LIVE_FEED_START = dt.datetime(2021, 6, 1)
# Of the validated documents of each kind the live feed sends, the share it did send: discharge
# letters and prescriptions well above the programme's DS1.1/DS1.2 targets, others lower.
LIVE_FEED_SHARES: dict[str, float] = {
    "LDL": 0.85,
    "ORDO": 0.75,
    "CRO": 0.7,
    "CRH": 0.55,
    "CR_CONSULT": 0.45,
    "CR_URG": 0.55,
    "CR_BIO": 0.8,
    "CR_IMG": 0.65,
}


@dataclass(frozen=True, slots=True)
class LiveFeed:
    """What the establishment's live DMP feed sent: from `since`, these kinds at these shares."""

    since: dt.datetime = LIVE_FEED_START
    kinds: frozenset[str] = frozenset(DEFAULT_LIVE_FEED_KINDS)
    shares: tuple[tuple[str, float], ...] = tuple(LIVE_FEED_SHARES.items())

    def share(self, kind: str) -> float:
        if kind not in self.kinds:
            return 0.0
        return dict(self.shares).get(kind, 0.5)


HISTORY_YEARS = 25

_TITLES = {
    "LDL": "Lettre de liaison de sortie",
    "CRH": "Compte rendu d'hospitalisation",
    "CRO": "Compte rendu opératoire",
    "CR_CONSULT": "Compte rendu de consultation",
    "CR_URG": "Compte rendu de passage aux urgences",
    "CR_BIO": "Compte rendu de biologie",
    "CR_IMG": "Compte rendu d'imagerie",
    "ORDO": "Ordonnance de sortie",
    "OTHER": "Courrier",
}
# kind of stay → (kind, probability) of the documents it produces. DAY is a day case: encounter
# type IMP with hospitalisation "partial" (JDV_J142: AMB is care outside the establishment).
_DOCUMENTS_BY_STAY = {
    "IMP": (
        ("LDL", 0.9),
        ("CRH", 0.7),
        ("CR_BIO", 0.8),
        ("CR_IMG", 0.5),
        ("ORDO", 0.7),
    ),
    "DAY": (("LDL", 0.85), ("CRH", 0.3), ("CR_BIO", 0.4), ("CR_IMG", 0.2), ("ORDO", 0.5)),
    "SEANCE": (("CR_CONSULT", 0.3), ("CR_BIO", 0.5), ("ORDO", 0.2)),
    "EXTERNE": (("CR_CONSULT", 0.9), ("ORDO", 0.4), ("CR_IMG", 0.2), ("CR_BIO", 0.2)),
    "EMER": (("CR_URG", 0.95), ("CR_BIO", 0.4), ("CR_IMG", 0.3)),
}
# An operative report, by kind of stay, in a surgical unit (elsewhere: rarely, e.g. a biopsy).
_OPERATIVE_REPORT = {"IMP": (0.7, 0.04), "DAY": (0.95, 0.1)}
_STAY_KINDS = ("IMP", "DAY", "EXTERNE", "EMER", "SEANCE")
_STAY_WEIGHTS = (24, 14, 35, 20, 7)
# kind of stay → (dpi_stay.encounter_type, dpi_stay.hospitalisation)
_ENCOUNTER_OF = {
    "IMP": ("IMP", "full"),
    "DAY": ("IMP", "partial"),
    "EXTERNE": ("EXTERNE", None),
    "EMER": ("EMER", None),
    "SEANCE": ("SEANCE", None),
}


@dataclass(slots=True)
class StayRow:
    stay_id: str
    ipp: str
    encounter_type: str
    admitted_at: dt.datetime
    discharged_at: dt.datetime | None
    status: str
    unit_code: str | None
    hospitalisation: str | None = None


@dataclass(slots=True)
class DocumentRow:
    document_id: str
    set_id: str
    version: int
    ipp: str
    stay_id: str | None
    kind: str
    title: str
    created_at: dt.datetime
    status: str
    author_id: str | None
    legal_authenticator_id: str | None
    authenticated_at: dt.datetime | None
    unit_code: str | None
    mime_type: str | None
    content: bytes | None
    content_uri: str | None
    masked_ps: bool
    invisible_patient: bool
    invisible_legal_rep: bool
    sent_live_at: dt.datetime | None
    dmp_unique_id: str | None
    withheld: bool | None = None


def _minute(rng: random.Random, start: dt.datetime, span_minutes: int) -> dt.datetime:
    return start + dt.timedelta(minutes=rng.randrange(max(1, span_minutes)))


def _stay_length(rng: random.Random, stay_kind: str) -> dt.timedelta:
    if stay_kind == "IMP":
        return dt.timedelta(days=rng.choice((1, 2, 3, 4, 5, 7, 9, 14, 21)), hours=rng.randrange(8))
    if stay_kind == "EMER":
        return dt.timedelta(hours=rng.randrange(2, 14))
    if stay_kind == "DAY":
        return dt.timedelta(hours=rng.randrange(4, 11))
    return dt.timedelta(hours=rng.randrange(1, 8))


def _age(born: dt.date | None, when: dt.datetime) -> float | None:
    return None if born is None else (when.date() - born).days / 365.25


def make_history(
    rng: random.Random,
    ipp: str,
    *,
    as_of: dt.datetime,
    authors: list[str],
    finess_geo: str,
    born: dt.date | None,
    sex: str | None = None,
    died: dt.date | None = None,
    deceased: bool = False,
    ensure_recent: bool = False,
    live_feed: LiveFeed = LiveFeed(),
) -> tuple[list[StayRow], list[DocumentRow]]:
    """The stays and document versions of one patient, defect-free; PDFs are added later.

    Nothing starts after `died` (a patient who died in hospital is discharged that day); a
    deceased patient has nothing planned or in progress. `ensure_recent` adds a consultation of
    the last months whose report the live feed never sent: the patients who carry a deliberate
    defect get one, so the default rule reaches their defect.
    """
    stays: list[StayRow] = []
    documents: list[DocumentRow] = []
    earliest = as_of - dt.timedelta(days=HISTORY_YEARS * 365)
    if born is not None:
        earliest = max(earliest, dt.datetime.combine(born, dt.time(8)))
    end = as_of
    if died is not None:
        end = max(earliest, min(as_of, dt.datetime.combine(died, dt.time(8))))
    elif deceased:
        # Died on a day the DPI does not know: not within its last year, as far as it shows.
        end = max(earliest, as_of - dt.timedelta(days=365))
    span = max(1, int((end - earliest).total_seconds() // 60))
    count = rng.choices((1, 2, 3, 4, 6, 9, 14), (28, 22, 16, 12, 10, 8, 4))[0]
    # Recent years weigh more: a DPI's activity grows, and older stays were often on paper.
    starts = sorted(
        earliest + dt.timedelta(minutes=int(span * (1 - rng.random() ** 1.8))) for _ in range(count)
    )
    write = {"as_of": as_of, "authors": authors, "finess_geo": finess_geo, "live_feed": live_feed}
    for n, admitted in enumerate(starts, start=1):
        stay_kind = rng.choices(_STAY_KINDS, _STAY_WEIGHTS)[0]
        encounter, hospitalisation = _ENCOUNTER_OF[stay_kind]
        stay_id = f"{ipp}-S{n:02d}"
        discharged: dt.datetime | None = admitted + _stay_length(rng, stay_kind)
        status = "finished"
        limit = as_of if died is None else dt.datetime.combine(died, dt.time(23, 59))
        if discharged > limit and died is not None:
            discharged = max(admitted, min(limit, as_of))  # died during the stay
        elif discharged > as_of:
            status, discharged = "in_progress", None
        elif rng.random() < 0.01:
            status = "cancelled"
        unit = rng.choice(units_for(stay_kind, sex, _age(born, admitted)))
        stays.append(
            StayRow(stay_id, ipp, encounter, admitted, discharged, status, unit, hospitalisation)
        )
        if status == "finished" or (status == "cancelled" and rng.random() < 0.3):
            # A cancelled stay sometimes keeps documents filed on it by mistake.
            documents.extend(
                _documents(rng, stays[-1], stay_kind, written_from=discharged or admitted, **write)  # type: ignore[arg-type]
            )
        elif status == "in_progress" and rng.random() < 0.5:
            documents.extend(
                d
                for d in _documents(rng, stays[-1], stay_kind, written_from=admitted, **write)  # type: ignore[arg-type]
                if d.kind == "CR_BIO"
            )

    if ensure_recent:
        admitted = as_of - dt.timedelta(days=rng.randrange(20, 300), minutes=rng.randrange(600))
        stay = StayRow(f"{ipp}-S{len(stays) + 1:02d}", ipp, "EXTERNE", admitted,
                       admitted + dt.timedelta(hours=1), "finished", "CONSULT")  # fmt: skip
        stays.append(stay)
        documents.extend(
            _documents(
                rng,
                stay,
                "EXTERNE",
                written_from=admitted,
                plain_kind="CR_CONSULT",
                **write,  # type: ignore[arg-type]
            )
        )

    # Some patients come back soon: a stay planned in the coming weeks (DS1.4's priority).
    if rng.random() < 0.06 and died is None and not deceased:
        when = as_of.replace(hour=8, minute=0) + dt.timedelta(days=rng.randrange(1, 60))
        stay_kind = rng.choice(("IMP", "DAY", "EXTERNE"))
        encounter, hospitalisation = _ENCOUNTER_OF[stay_kind]
        unit = rng.choice(units_for(stay_kind, sex, _age(born, when)))
        stays.append(
            StayRow(f"{ipp}-S{len(stays) + 1:02d}", ipp, encounter, when, None, "planned", unit,
                    hospitalisation)
        )  # fmt: skip
    return stays, documents


def _documents(
    rng: random.Random,
    stay: StayRow,
    stay_kind: str,
    *,
    written_from: dt.datetime,
    as_of: dt.datetime,
    authors: list[str],
    finess_geo: str,
    live_feed: LiveFeed,
    plain_kind: str | None = None,
) -> list[DocumentRow]:
    """The documents of a stay; with `plain_kind`, exactly one of that kind: validated, one
    version, no visibility flag, never sent by the live feed."""
    out: list[DocumentRow] = []
    kinds = [k for k, p in _DOCUMENTS_BY_STAY[stay_kind] if rng.random() < p]
    if stay_kind in _OPERATIVE_REPORT:
        surgical, other = _OPERATIVE_REPORT[stay_kind]
        if rng.random() < (surgical if stay.unit_code in SURGICAL_UNITS else other):
            kinds.insert(1, "CRO")
    if rng.random() < 0.01:
        kinds.append("OTHER")
    if plain_kind is not None:
        kinds = [plain_kind]
    for index, kind in enumerate(kinds, start=1):
        set_id = f"{stay.stay_id}-D{index}"
        author = rng.choice(authors)
        created = _minute(rng, written_from, 3 * 24 * 60)
        if created > as_of:
            created = as_of - dt.timedelta(minutes=rng.randrange(1, 60))
        versions = rng.choices((1, 2, 3), (90, 8, 2))[0]
        roll = rng.random()
        last_status = "draft" if roll < 0.025 else "cancelled" if roll < 0.035 else "validated"
        masked = rng.random() < 0.01
        invisible_patient = not masked and rng.random() < 0.005
        invisible_rep = rng.random() < 0.002
        if plain_kind is not None:
            versions, last_status, masked, invisible_patient, invisible_rep = (
                1,
                "validated",
                False,
                False,
                False,
            )
        for version in range(1, versions + 1):
            document_id = f"{set_id}-V{version}"
            status = last_status if version == versions else "validated"
            authenticated = created + dt.timedelta(hours=rng.randrange(1, 48))
            sent = None
            if (
                status == "validated"
                and authenticated >= live_feed.since
                and authenticated < as_of
                and plain_kind is None
                and rng.random() < live_feed.share(kind)
            ):
                sent = authenticated + dt.timedelta(minutes=rng.randrange(5, 600))
                sent = min(sent, as_of)
            out.append(
                DocumentRow(
                    document_id=document_id,
                    set_id=set_id,
                    version=version,
                    ipp=stay.ipp,
                    stay_id=stay.stay_id,
                    kind=kind,
                    title=_TITLES[kind] + ("" if version == 1 else f" (version {version})"),
                    created_at=created,
                    status=status,
                    author_id=author,
                    legal_authenticator_id=author if status == "validated" else None,
                    authenticated_at=authenticated if status == "validated" else None,
                    unit_code=stay.unit_code,
                    mime_type="application/pdf",
                    content=None,
                    content_uri=None,
                    masked_ps=masked,
                    invisible_patient=invisible_patient,
                    invisible_legal_rep=invisible_rep,
                    sent_live_at=sent,
                    dmp_unique_id=unique_id_for(finess_geo, document_id) if sent else None,
                )
            )
            # A correction comes days to weeks later.
            created = min(as_of, created + dt.timedelta(days=rng.randrange(1, 30)))
    return out
