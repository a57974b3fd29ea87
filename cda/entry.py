"""The XDS DocumentEntry of a built document, derived from the same inputs as its CDA.

The mapping follows `domain/dmp-feeding.md` §2: codes from the CDA header, times in UTC,
people as XCN and the establishment as XON, hash and size of the CDA file as sent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cda import codes
from cda.errors import InvalidDocumentData
from cda.ins import INS, InsTraits
from cda.metadata import Coded, DocumentEntry, XdsAuthor
from cda.model import Author, DocumentInput, Establishment, Patient
from cda.timefmt import hl7_date, to_instant, xds_dtm

__all__ = [
    "ADELI_PATTERN",
    "PS_ID_ROOT",
    "RPPS_PATTERN",
    "STRUCT_ID_ROOT",
    "PsIdentifier",
    "confidentiality_codes",
    "document_entry",
    "hl7v2_escape",
    "ps_identifier",
    "source_patient_info",
    "system_xcn",
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


# The shapes the DMP's PS_IdNat accepts (selection's SQL and its reference predicate say the same).
RPPS_PATTERN = re.compile(r"[0-9]{11}")
ADELI_PATTERN = re.compile(r"[0-9][0-9AB][0-9]{7}")  # department (2A/2B in Corsica), 7 digits
_BLANKS = " \t\r\n\v\f\u00a0"


@dataclass(frozen=True, slots=True)
class PsIdentifier:
    """A person's PS_IdNat (extension under 1.2.250.1.71.4.2.1) and the XCN identifier type."""

    value: str
    type_code: str
    """IDNPS for a national number (RPPS, ADELI), EI for an establishment's staff number."""


def ps_identifier(person: Author, finess: str) -> PsIdentifier:
    """The identifier the DMP knows this person by: RPPS, else ADELI, else the staff number.

    `author_unknown` when the DPI gives none of them in a usable shape.
    """
    rpps = (person.rpps or "").strip(_BLANKS)
    if RPPS_PATTERN.fullmatch(rpps):
        return PsIdentifier("8" + rpps, "IDNPS")
    adeli = (person.adeli or "").strip(_BLANKS)
    if ADELI_PATTERN.fullmatch(adeli):
        return PsIdentifier("0" + adeli, "IDNPS")
    staff = (person.staff_number or "").strip(_BLANKS)
    if staff:
        return PsIdentifier(f"3{finess}/{staff}", "EI")
    raise InvalidDocumentData(
        f"author {person.author_id or '?'} has no RPPS (11 digits), no ADELI (9 characters) "
        "and no staff number: the DMP cannot identify them",
        reason="author_unknown",
    )


def xcn(person: Author, finess: str) -> str:
    """XCN of a professional: their PS_IdNat, names, the PS authority and the identifier type."""
    identifier = ps_identifier(person, finess)
    return (
        f"{hl7v2_escape(identifier.value)}^{hl7v2_escape(person.family_name)}"
        f"^{hl7v2_escape(person.given_name or '')}^^^^^^&{PS_ID_ROOT}&ISO^D^^^{identifier.type_code}"
    )


def system_xcn(finess: str, local_id: str, software: str, model: str) -> str:
    """XCN of the sending software as an author (an automated system, type RI).

    `3<FINESS>/<local id>^<software>^<model>^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI`: the
    SubmissionSet author of an automated sender (`domain/dmp-feeding.md` §7).
    """
    return (
        f"3{finess}/{hl7v2_escape(local_id)}^{hl7v2_escape(software)}^{hl7v2_escape(model)}"
        f"^^^^^^&{PS_ID_ROOT}&ISO^U^^^RI"
    )


def source_patient_info(traits: InsTraits) -> tuple[str, ...]:
    """sourcePatientInfo: PID-5 birth name and given names, PID-7 birth date, PID-8 sex.

    PID-5 is an XPN of type L (the birth name): family, first given name, the other given names.
    """
    first = traits.first_birth_given_name or ""
    given = (traits.birth_given_names or "").split()
    others = " ".join(given[1:] if given[:1] == [first] else [g for g in given if g != first])
    name = (
        f"{hl7v2_escape(traits.birth_family_name or '')}^{hl7v2_escape(first)}"
        f"^{hl7v2_escape(others)}^^^^L"
    )
    return (
        f"PID-5|{name}",
        f"PID-7|{hl7_date(traits.birth_date)}",  # type: ignore[arg-type]
        f"PID-8|{traits.sex or 'U'}",
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
    function = codes.author_function(document.author.function_code)
    finess = establishment.finess_geo
    return DocumentEntry(
        unique_id=unique_id,
        patient_id=ins.as_cx(),
        source_patient_id=f"{hl7v2_escape(patient.ipp)}^^^&{establishment.ipp_oid}&ISO^PI",
        source_patient_info=source_patient_info(patient.traits),
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
            person=xcn(document.author, finess),
            institution=xon(establishment),
            specialty=codes.author_specialty(document.author.specialty_code),
            role=f"{function.code}^{function.display}^{function.scheme}" if function else None,
        ),
        legal_authenticator=xcn(legal, finess),
        hash=sha1,
        size=size,
        replaces=document.replaces,
    )


def document_title(document: DocumentInput) -> str:
    """The document's own title, or its kind's name when the DPI has none."""
    title = " ".join(document.title.split()) if document.title else ""
    return title or codes.document_kind(document.kind).type_code.display


def service_period(document: DocumentInput) -> tuple[dt.datetime, dt.datetime | None]:
    """Start and stop of the care the document reports.

    An operative report reports the operation: its date when the DPI has it (no stop: an
    operation has one date here). Otherwise the stay, else the document's own date.
    """
    if document.kind == "CRO" and document.operated_at is not None:
        return document.operated_at, None
    return encounter_period(document)


def encounter_period(document: DocumentInput) -> tuple[dt.datetime, dt.datetime | None]:
    """Start and stop of the stay the document belongs to, else the document's own date.

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
