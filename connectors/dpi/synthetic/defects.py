"""Deliberately defective rows, one kind per reason code the engine must give, and their record.

A real DPI holds rows like these (a trait never filled, a mistyped key, a scan that was never
finished); the engine must answer each with its precise reason and never send it. Which row got
which defect is written to the side table `synthetic_defect` (not part of the DPI contract).

Placement is deterministic: in every block of 400 patients, the first `len(PATIENT_DEFECTS)`
patients carry one identity defect each and the next ones one document defect (then one file
defect) on their latest sendable summary document, all made otherwise eligible (qualified INS,
alive, not opposed) so that the defect is what stops them; a DPI of `PLACED` patients already
holds every kind. A further ~0.5 % of documents get a random document defect wherever they fall.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass

from cda.ins import InsKind, compute_key
from connectors.dpi.synthetic.hospital import AUTHOR_WITHOUT_RPPS
from connectors.dpi.synthetic.people import PatientRow, synthetic_matricule
from connectors.dpi.synthetic.records import DocumentRow, StayRow

__all__ = [
    "DOCUMENT_DEFECTS",
    "FILE_DEFECTS",
    "PATIENT_DEFECTS",
    "PLACED",
    "DefectRecord",
    "apply_document_defect",
    "apply_patient_defect",
    "defect_target",
    "document_defect_for",
    "make_eligible",
    "patient_defect_for",
    "random_document_defect",
]

BLOCK = 400

# defect → the reason code the engine must give (DESIGN §5, plus author_unknown and
# visibility_conflict, which the builder finds).
PATIENT_DEFECTS = {
    "ins_no_matricule": "ins_missing",
    "ins_unknown_oid": "ins_missing",
    "ins_bad_key": "ins_invalid",
    "ins_short_matricule": "ins_invalid",
    "traits_no_birth_place": "ins_traits_incomplete",
    "traits_no_first_given_name": "ins_traits_incomplete",
    "traits_sex_unknown": "ins_traits_incomplete",
    # An RNIV duplicate or collision: this patient holds the INS of the patient before it (the
    # slot above, whose own defect comes first for it).
    "ins_shared": "ins_shared",
    "ins_traits_inconsistent": "ins_traits_inconsistent",  # the sex digit says the other sex
    "ins_production_oid": "ins_wrong_environment",  # a production NIR OID in a test DPI
}
DOCUMENT_DEFECTS = {
    "content_null": "content_missing",
    "content_empty": "content_missing",
    "content_text_plain": "content_unsupported_format",
    "pdf_no_header": "content_corrupt",
    "pdf_truncated": "content_corrupt",
    "author_without_rpps": "author_unknown",
    "visibility_conflict": "visibility_conflict",
    "date_in_future": "future_dated",
    "withheld": "document_withheld",
    "latest_cancelled": "set_withdrawn",  # a cancelled version is added on top of the set
    "on_cancelled_stay": "stay_cancelled",  # the document's stay is cancelled
}
# Defects that change other rows than their document: only ever placed, never random.
_STRUCTURAL = frozenset(("latest_cancelled", "on_cancelled_stay"))
# Defects that need a content folder: a `file:` URI to a missing file, or to one over the limit.
FILE_DEFECTS = {
    "file_missing": "content_missing",
    "file_oversize": "content_too_large",
    "file_not_pdf": "content_corrupt",
    "file_empty": "content_missing",
}
_SUMMARY_KINDS = ("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG")
# How many patients a DPI needs to hold every placed defect (file defects included).
PLACED = len(PATIENT_DEFECTS) + len(DOCUMENT_DEFECTS) + len(FILE_DEFECTS)


@dataclass(frozen=True, slots=True)
class DefectRecord:
    """One row of `synthetic_defect`."""

    ipp: str
    document_id: str | None
    defect: str
    expected_reason: str


def patient_defect_for(index: int) -> str | None:
    slot = index % BLOCK
    names = list(PATIENT_DEFECTS)
    return names[slot] if slot < len(names) else None


def document_defect_for(index: int, with_files: bool) -> str | None:
    """The defect of a patient's first summary document, if any (deterministic per index)."""
    names = list(DOCUMENT_DEFECTS) + (list(FILE_DEFECTS) if with_files else [])
    slot = index % BLOCK - len(PATIENT_DEFECTS)
    if 0 <= slot < len(names):
        return names[slot]
    return None


def random_document_defect(rng: random.Random, with_files: bool) -> str | None:
    if rng.random() >= 0.005:
        return None
    names = [n for n in DOCUMENT_DEFECTS if n not in _STRUCTURAL]
    names += list(FILE_DEFECTS) if with_files else []
    return rng.choice(names)


def make_eligible(patient: PatientRow, index: int) -> PatientRow:
    """The same patient made sendable: qualified INS, alive, not opposed, not doubtful.

    A patient without an INS gets patient `index`'s own test matricule, from its traits."""
    clean = dataclasses.replace(
        patient,
        identity_status="QUAL",
        identity_doubtful=False,
        identity_fictitious=False,
        deceased=False,
        death_date=None,
        dmp_opposition=False,
    )
    if clean.ins_matricule is None:
        assert clean.birth_date is not None
        assert clean.birth_place_code is not None
        matricule = synthetic_matricule(clean.sex, clean.birth_date, clean.birth_place_code, index)
        clean = dataclasses.replace(clean, ins_matricule=matricule, ins_oid=InsKind.TEST_NIR.value)
    return clean


def apply_patient_defect(
    patient: PatientRow, defect: str, index: int, shared_matricule: str | None = None
) -> PatientRow:
    """A qualified patient with one identity defect (so that only the defect can exclude them).

    `shared_matricule` is the INS an `ins_shared` patient takes (the previous patient's)."""
    clean = make_eligible(patient, index)
    matricule = clean.ins_matricule or ""
    other_sex = ("1" if matricule[:1] == "2" else "2") + matricule[1:13]
    changes: dict[str, object] = {
        "ins_no_matricule": {"ins_matricule": None},
        "ins_unknown_oid": {"ins_oid": "1.2.250.1.213.1.4.2"},
        "ins_bad_key": {"ins_matricule": matricule[:13] + f"{(int(matricule[13:]) % 97) + 1:02d}"},
        "ins_short_matricule": {"ins_matricule": matricule[:14]},
        "traits_no_birth_place": {"birth_place_code": None},
        "traits_no_first_given_name": {"first_birth_given_name": None},
        "traits_sex_unknown": {"sex": "U"},
        "ins_shared": {"ins_matricule": shared_matricule},
        "ins_traits_inconsistent": {"ins_matricule": other_sex + compute_key(other_sex)},
        "ins_production_oid": {"ins_oid": InsKind.NIR.value},
    }[defect]  # type: ignore[assignment]
    return dataclasses.replace(clean, **changes)  # type: ignore[arg-type]


def defect_target(documents: list[DocumentRow], as_of: dt.datetime) -> DocumentRow | None:
    """The document a planned defect goes on: the most recent summary document that the default
    rule would otherwise send (validated, last version, under four years old, not sent live);
    failing that, the most recent validated summary document."""
    latest: dict[str, int] = {}
    for d in documents:
        latest[d.set_id] = max(latest.get(d.set_id, 0), d.version)
    recent = as_of - dt.timedelta(days=4 * 365)
    candidates = [
        d for d in documents
        if d.kind in _SUMMARY_KINDS and d.status == "validated" and d.version == latest[d.set_id]
        and d.sent_live_at is None and d.created_at >= recent
    ]  # fmt: skip
    if not candidates:
        candidates = [d for d in documents if d.kind in _SUMMARY_KINDS and d.status == "validated"]
    return max(candidates, key=lambda d: d.created_at, default=None)


def apply_document_defect(
    document: DocumentRow, defect: str, stays: list[StayRow] | None = None
) -> list[DocumentRow]:
    """Damage one document row in place; content defects act on the PDF already attached.

    Returns the rows the defect adds (a cancelled version on top of the set), usually none."""
    pdf = document.content or b""
    if defect == "content_null":
        document.content = None
    elif defect == "content_empty":
        document.content = b""
    elif defect == "content_text_plain":
        document.mime_type = "text/plain"
        document.content = f"{document.title}\n(texte brut)\n".encode()
    elif defect == "pdf_no_header":
        document.content = b"\x89PNG\r\n" + pdf[8:]
    elif defect == "pdf_truncated":
        document.content = pdf[: max(0, len(pdf) - 1100)] or b"%PDF-1.4\n"
    elif defect == "author_without_rpps":
        document.author_id = AUTHOR_WITHOUT_RPPS.author_id
        document.legal_authenticator_id = AUTHOR_WITHOUT_RPPS.author_id
    elif defect == "visibility_conflict":
        document.masked_ps = True
        document.invisible_patient = True
    elif defect == "date_in_future":
        # A year typed wrong: 2028 for 2026.
        document.created_at += dt.timedelta(days=730)
    elif defect == "withheld":
        document.withheld = True  # the patient asked that this one not be sent
    elif defect == "latest_cancelled":
        # Signed, then deleted: the set's latest version is a cancellation.
        version = document.version + 1
        return [
            dataclasses.replace(
                document,
                document_id=f"{document.set_id}-V{version}",
                version=version,
                title=f"{document.title} (annulé)",
                created_at=document.created_at + dt.timedelta(hours=2),
                status="cancelled",
                legal_authenticator_id=None,
                authenticated_at=None,
                sent_live_at=None,
                dmp_unique_id=None,
            )
        ]
    elif defect == "on_cancelled_stay":
        for stay in stays or []:
            if stay.stay_id == document.stay_id:
                stay.status = "cancelled"  # the stay was created by mistake, its letter kept
    return []
