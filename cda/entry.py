"""The XDS DocumentEntry of a built document, derived from the same inputs as its CDA.

The mapping follows `domain/dmp-feeding.md` §2: codes from the CDA header, times in UTC,
people as XCN and the establishment as XON, hash and size of the CDA file as sent.
"""

from __future__ import annotations

import datetime as dt

from cda import codes
from cda.ins import INS
from cda.metadata import Coded, DocumentEntry, XdsAuthor
from cda.model import Author, DocumentInput, Establishment, Patient
from cda.timefmt import to_instant, xds_dtm

__all__ = [
    "PS_ID_ROOT",
    "STRUCT_ID_ROOT",
    "confidentiality_codes",
    "document_entry",
    "hl7v2_escape",
    "xcn",
    "xon",
]

PS_ID_ROOT = "1.2.250.1.71.4.2.1"
STRUCT_ID_ROOT = "1.2.250.1.71.4.2.2"

# HL7 v2 escape sequences, backslash first so the others are not escaped twice.
_V2_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def hl7v2_escape(text: str) -> str:
    """A value safe to put in one component of an HL7 v2 field (XCN, XON, CX)."""
    for raw, escaped in _V2_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def xcn(person: Author) -> str:
    """XCN of a professional identified by their RPPS (PS_IdNat "8"+RPPS, type IDNPS)."""
    return (
        f"{person.ps_id}^{hl7v2_escape(person.family_name)}^{hl7v2_escape(person.given_name or '')}"
        f"^^^^^^&{PS_ID_ROOT}&ISO^D^^^IDNPS"
    )


def xon(establishment: Establishment) -> str:
    """XON of the establishment (Struct_IdNat "1"+FINESS, type IDNST)."""
    return (
        f"{hl7v2_escape(establishment.name)}^^^^^&{STRUCT_ID_ROOT}&ISO^IDNST^^^"
        f"{establishment.struct_id}"
    )


def confidentiality_codes(document: DocumentInput) -> tuple[Coded, ...]:
    """N, plus the DMP visibility codes the document's flags ask for."""
    found = [codes.CONFIDENTIALITY_NORMAL]
    if document.masked_ps:
        found.append(codes.MASQUE_PS)
    if document.invisible_patient:
        found.append(codes.INVISIBLE_PATIENT)
    if document.invisible_legal_rep:
        found.append(codes.INVISIBLE_REPRESENTANTS_LEGAUX)
    return tuple(found)


def document_entry(
    *,
    document: DocumentInput,
    patient: Patient,
    ins: INS,
    establishment: Establishment,
    unique_id: str,
    sha1: str,
    size: int,
) -> DocumentEntry:
    """The DocumentEntry of a CDA file whose uniqueId, SHA-1 (hex) and size are given."""
    kind = codes.document_kind(document.kind)
    unit = document.unit
    legal = document.legal_authenticator or document.author
    start, stop = service_period(document)
    return DocumentEntry(
        unique_id=unique_id,
        patient_id=ins.as_cx(),
        source_patient_id=f"{hl7v2_escape(patient.ipp)}^^^&{establishment.ipp_oid}&ISO^PI",
        title=document_title(document),
        class_code=kind.class_code,
        type_code=kind.type_code,
        format_code=codes.FORMAT_PDF,
        confidentiality=confidentiality_codes(document),
        healthcare_facility_type=codes.facility_type(establishment.facility_type_code),
        practice_setting=codes.practice_setting(
            unit.practice_setting_code if unit else "ETABLISSEMENT"
        ),
        creation_time=xds_dtm(document.created_at),
        service_start=xds_dtm(start),
        service_stop=xds_dtm(stop) if stop is not None else None,
        author=XdsAuthor(
            person=xcn(document.author),
            institution=xon(establishment),
            specialty=codes.author_specialty(document.author.specialty_code),
        ),
        legal_authenticator=xcn(legal),
        hash=sha1,
        size=size,
        replaces=document.replaces,
    )


def document_title(document: DocumentInput) -> str:
    """The document's own title, or its kind's name when the DPI has none."""
    title = " ".join(document.title.split()) if document.title else ""
    return title or codes.document_kind(document.kind).type_code.display


def service_period(document: DocumentInput) -> tuple[dt.datetime, dt.datetime | None]:
    """Start and stop of the care the document reports: the stay, else the document's own date.

    The stop is left out unless it is after the start: the CDA datatype rules refuse an interval
    whose low and high are equal, and a stop before the start is bad data, not a period.
    """
    stay = document.stay
    if stay is None:
        return document.created_at, None
    start, stop = stay.admitted_at, stay.discharged_at
    if stop is not None and to_instant(stop) <= to_instant(start):
        stop = None
    return start, stop
