"""One patient's stays and documents over 25 years, as a DPI accumulates them.

Stays get documents by encounter type (an inpatient stay: discharge letter, hospital report,
sometimes an operative report, biology, imaging, prescriptions…), with drafts, cancelled ones and
version chains; documents of the live-feed era may already have been sent to the DMP.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from cda.identifiers import unique_id_for
from connectors.dpi.synthetic.hospital import units_for

__all__ = ["LIVE_FEED_START", "DocumentRow", "StayRow", "make_history"]

# The establishment's live DMP feed started here; earlier documents were never sent.
LIVE_FEED_START = dt.datetime(2021, 6, 1)
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
# Kinds the live feed sends (the programme's "documents de sortie").
_LIVE_KINDS = frozenset(("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG"))

# encounter type → (kind, probability) of the documents a stay of that type produces
_DOCUMENTS_BY_ENCOUNTER = {
    "IMP": (
        ("LDL", 0.9),
        ("CRH", 0.7),
        ("CRO", 0.3),
        ("CR_BIO", 0.8),
        ("CR_IMG", 0.5),
        ("ORDO", 0.7),
    ),
    "AMB": (("CRH", 0.5), ("CR_CONSULT", 0.5), ("CR_BIO", 0.3), ("ORDO", 0.3)),
    "EXTERNE": (("CR_CONSULT", 0.9), ("ORDO", 0.4), ("CR_IMG", 0.2), ("CR_BIO", 0.2)),
    "EMER": (("CR_URG", 0.95), ("CR_BIO", 0.4), ("CR_IMG", 0.3)),
}
_ENCOUNTERS = ("IMP", "AMB", "EXTERNE", "EMER")
_ENCOUNTER_WEIGHTS = (30, 15, 35, 20)


@dataclass(slots=True)
class StayRow:
    stay_id: str
    ipp: str
    encounter_type: str
    admitted_at: dt.datetime
    discharged_at: dt.datetime | None
    status: str
    unit_code: str | None


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


def _minute(rng: random.Random, start: dt.datetime, span_minutes: int) -> dt.datetime:
    return start + dt.timedelta(minutes=rng.randrange(max(1, span_minutes)))


def _stay_length(rng: random.Random, encounter: str) -> dt.timedelta:
    if encounter == "IMP":
        return dt.timedelta(days=rng.choice((1, 2, 3, 4, 5, 7, 9, 14, 21)), hours=rng.randrange(8))
    if encounter == "EMER":
        return dt.timedelta(hours=rng.randrange(2, 14))
    return dt.timedelta(hours=rng.randrange(1, 8))


def make_history(
    rng: random.Random,
    ipp: str,
    *,
    as_of: dt.datetime,
    authors: list[str],
    finess_geo: str,
    born: dt.date | None,
    ensure_recent: bool = False,
) -> tuple[list[StayRow], list[DocumentRow]]:
    """The stays and document versions of one patient, defect-free; PDFs are added later.

    `ensure_recent` adds a consultation of the last months whose report the live feed never sent:
    the patients who carry a deliberate defect get one, so the default rule reaches their defect.
    """
    stays: list[StayRow] = []
    documents: list[DocumentRow] = []
    earliest = as_of - dt.timedelta(days=HISTORY_YEARS * 365)
    if born is not None:
        earliest = max(earliest, dt.datetime.combine(born, dt.time(8)))
    span = max(1, int((as_of - earliest).total_seconds() // 60))
    count = rng.choices((1, 2, 3, 4, 6, 9, 14), (28, 22, 16, 12, 10, 8, 4))[0]
    # Recent years weigh more: a DPI's activity grows, and older stays were often on paper.
    starts = sorted(
        earliest + dt.timedelta(minutes=int(span * (1 - rng.random() ** 1.8))) for _ in range(count)
    )
    for n, admitted in enumerate(starts, start=1):
        encounter = rng.choices(_ENCOUNTERS, _ENCOUNTER_WEIGHTS)[0]
        stay_id = f"{ipp}-S{n:02d}"
        discharged = admitted + _stay_length(rng, encounter)
        status = "finished"
        if discharged > as_of:
            status, discharged = "in_progress", None
        elif rng.random() < 0.01:
            status = "cancelled"
        unit = rng.choice(units_for(encounter))
        stays.append(StayRow(stay_id, ipp, encounter, admitted, discharged, status, unit))
        if status == "finished":
            documents.extend(
                _documents(
                    rng,
                    stays[-1],
                    written_from=discharged,
                    as_of=as_of,
                    authors=authors,
                    finess_geo=finess_geo,
                )  # type: ignore[arg-type]
            )
        elif status == "in_progress" and rng.random() < 0.5:
            documents.extend(
                d
                for d in _documents(
                    rng,
                    stays[-1],
                    written_from=admitted,
                    as_of=as_of,
                    authors=authors,
                    finess_geo=finess_geo,
                )
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
                written_from=admitted,
                as_of=as_of,
                authors=authors,
                finess_geo=finess_geo,
                plain_kind="CR_CONSULT",
            )
        )

    # Some patients come back soon: a stay planned in the coming weeks (DS1.4's priority).
    if rng.random() < 0.06:
        when = as_of.replace(hour=8, minute=0) + dt.timedelta(days=rng.randrange(1, 60))
        encounter = rng.choice(("IMP", "AMB", "EXTERNE"))
        stays.append(
            StayRow(f"{ipp}-S{len(stays) + 1:02d}", ipp, encounter, when, None, "planned",
                    rng.choice(units_for(encounter)))
        )  # fmt: skip
    return stays, documents


def _documents(
    rng: random.Random,
    stay: StayRow,
    *,
    written_from: dt.datetime,
    as_of: dt.datetime,
    authors: list[str],
    finess_geo: str,
    plain_kind: str | None = None,
) -> list[DocumentRow]:
    """The documents of a stay; with `plain_kind`, exactly one of that kind: validated, one
    version, no visibility flag, never sent by the live feed."""
    out: list[DocumentRow] = []
    kinds = [k for k, p in _DOCUMENTS_BY_ENCOUNTER[stay.encounter_type] if rng.random() < p]
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
                and kind in _LIVE_KINDS
                and authenticated >= LIVE_FEED_START
                and authenticated < as_of
                and plain_kind is None
                and rng.random() < 0.55
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
