"""The checks a DMP makes that the XDS schema cannot: one patient, INS, hash/size, codes, CDA.

Each check returns `RegistryError`s with the IHE code the real registry would use
(`domain/dmp-feeding.md` §5); none touches storage (see `registry.py` for what needs it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping

from lxml import etree

from cda import codes
from cda.ins import INS_OIDS, matricule_problem
from cda.metadata import Coded, DocumentEntry
from cda.untrusted_xml import UnsafeXml, parse_untrusted
from cda.validate import xsd_errors
from connectors.dmp.ebrim import ParsedSubmission
from connectors.dmp.errors import MalformedMessage
from connectors.dmp.request import (
    SIGNATURE_CLASS,
    SIGNATURE_EVENT,
    SIGNATURE_FORMAT,
    SIGNATURE_TYPE,
)
from connectors.dmp.response import RegistryError
from connectors.dmp.vocabulary import NS

__all__ = ["check_submission", "document_payloads", "split_patient_id"]

_XDS = f"{{{NS['xds']}}}"
_XOP = f"{{{NS['xop']}}}"


_METADATA = "XDSRegistryMetadataError"

# XCN shapes the DMP's identifier scheme accepts (PS_IdNat under 1.2.250.1.71.4.2.1): a person
# by RPPS ("8"), ADELI ("0") or staff number ("3" FINESS "/" id); the sending system, type RI.
_FINESS = r"(?:[0-9]{2}|2A|2B)[0-9]{7}"
_PS_ROOT = r"\^\^\^\^\^\^&1\.2\.250\.1\.71\.4\.2\.1&ISO"
PERSON_XCN = re.compile(
    rf"(?:8[0-9]{{11}}|0[0-9][0-9AB][0-9]{{7}})\^[^^]+\^[^^]*{_PS_ROOT}\^D\^\^\^IDNPS"
    rf"|3{_FINESS}/[^^]+\^[^^]+\^[^^]*{_PS_ROOT}\^D\^\^\^EI"
)
SYSTEM_XCN = re.compile(rf"3{_FINESS}/[^^]+\^[^^]+\^[^^]+{_PS_ROOT}\^U\^\^\^RI")
_PID = {
    "PID-5": re.compile(r"[^^|]+\^[^^|]+\^[^|]*\^\^\^\^L"),
    "PID-7": re.compile(r"[0-9]{8}"),
    "PID-8": re.compile(r"[MFU]"),
}
# Which contentTypeCode a document's encounter type (CDA encompassingEncounter/code) allows.
_CONTENT_TYPES = {c.code: c for c in codes.CONTENT_TYPES.values()}
_INPATIENT_CONTENT = frozenset({codes.CONTENT_TYPES["full"].code, codes.CONTENT_TYPES["day"].code})
_OTHER_CONTENT = frozenset({codes.CONTENT_TYPES["external"].code})
_SIGNATURE_CODES = {
    "classCode": SIGNATURE_CLASS,
    "typeCode": SIGNATURE_TYPE,
    "formatCode": SIGNATURE_FORMAT,
}


def split_patient_id(cx: str) -> tuple[str, str] | None:
    """(matricule, oid) of `matricule^^^&oid&ISO^NH`, or None when it is not that shape."""
    matricule, _, rest = cx.partition("^^^&")
    oid, _, tail = rest.partition("&ISO")
    if not matricule or not oid or tail != "^NH":
        return None
    return matricule, oid


def document_payloads(
    request: etree._Element, parts: Mapping[str, bytes]
) -> dict[str, bytes | None]:
    """xds:Document id → its bytes (from its MTOM part or inline base64); None if the part is missing."""
    found: dict[str, bytes | None] = {}
    for document in request.iterfind(_XDS + "Document"):
        doc_id = document.get("id", "")
        include = document.find(_XOP + "Include")
        if include is not None:
            found[doc_id] = parts.get(include.get("href", "").removeprefix("cid:"))
            continue
        try:
            found[doc_id] = base64.b64decode((document.text or "").encode("ascii"), validate=False)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise MalformedMessage(f"xds:Document {doc_id} is not base64") from None
    return found


def _code_in(
    coded: Coded, table: Mapping[str, Coded], what: str, location: str
) -> list[RegistryError]:
    known = table.get(coded.code)
    if known is None or known.scheme != coded.scheme:
        return [
            RegistryError(
                "XDSRegistryMetadataError",
                f"{what} {coded.code} ({coded.scheme}) is not in the value set",
                location,
            )
        ]
    return []


_KIND_TYPES = {k.type_code.code: k for k in codes.DOCUMENT_KINDS.values()}
_VISIBILITY = {
    c.code: c
    for c in (
        codes.CONFIDENTIALITY_NORMAL,
        codes.MASQUE_PS,
        codes.INVISIBLE_PATIENT,
        codes.INVISIBLE_REPRESENTANTS_LEGAUX,
    )
}


def _people(entry: DocumentEntry, location: str) -> list[RegistryError]:
    """The author and legal authenticator in the DMP's identifier scheme; sourcePatientInfo."""
    errors: list[RegistryError] = []
    for what, value in (
        ("authorPerson", entry.author.person),
        ("legalAuthenticator", entry.legal_authenticator),
    ):
        if value is None or not PERSON_XCN.fullmatch(value):
            errors.append(
                RegistryError(
                    _METADATA,
                    f"{what} is missing or not a professional in the DMP's identifier scheme "
                    "(8+RPPS, 0+ADELI or 3+FINESS/staff number, under 1.2.250.1.71.4.2.1)",
                    location,
                )
            )
    fields = dict(v.split("|", 1) for v in entry.source_patient_info if "|" in v)
    for pid, shape in _PID.items():
        if not shape.fullmatch(fields.get(pid, "")):
            errors.append(
                RegistryError(_METADATA, f"sourcePatientInfo has no well-formed {pid}", location)
            )
    return errors


def _signature_entry(entry: DocumentEntry, location: str) -> list[RegistryError]:
    errors = [
        RegistryError(_METADATA, f"the signature entry's {what} is not {expected.code}", location)
        for what, expected, found in (
            (what, expected, getattr(entry, name))
            for (what, expected), name in zip(
                _SIGNATURE_CODES.items(), ("class_code", "type_code", "format_code"), strict=True
            )
        )
        if (found.code, found.scheme) != (expected.code, expected.scheme)
    ]
    if [(c.code, c.scheme) for c in entry.event_codes] != [
        (SIGNATURE_EVENT.code, SIGNATURE_EVENT.scheme)
    ]:
        errors.append(
            RegistryError(
                _METADATA,
                f"the signature entry's eventCode is not {SIGNATURE_EVENT.code}",
                location,
            )
        )
    return errors


def _entry_codes(entry: DocumentEntry, location: str) -> list[RegistryError]:
    errors: list[RegistryError] = _people(entry, location)
    kind = _KIND_TYPES.get(entry.type_code.code)
    if kind is None or entry.type_code.scheme != kind.type_code.scheme:
        errors.append(
            RegistryError(
                "XDSRegistryMetadataError",
                f"typeCode {entry.type_code.code} is not a document type this DMP accepts here",
                location,
            )
        )
    elif entry.class_code.code != kind.class_code.code:
        errors.append(
            RegistryError(
                "XDSRegistryMetadataError",
                f"classCode {entry.class_code.code} does not match typeCode {entry.type_code.code}",
                location,
            )
        )
    if entry.format_code.code != codes.FORMAT_PDF.code:
        errors.append(
            RegistryError(
                "XDSRegistryMetadataError",
                f"formatCode {entry.format_code.code} is not {codes.FORMAT_PDF.code}",
                location,
            )
        )
    errors += _code_in(
        entry.healthcare_facility_type, codes.FACILITY_TYPES, "healthcareFacilityTypeCode", location
    )
    errors += _code_in(
        entry.practice_setting, codes.PRACTICE_SETTINGS, "practiceSettingCode", location
    )
    for coded in entry.confidentiality:
        errors += _code_in(coded, _VISIBILITY, "confidentialityCode", location)
    flags = {c.code for c in entry.confidentiality}
    if "N" not in flags:
        errors.append(
            RegistryError("XDSRegistryMetadataError", "confidentialityCode N is missing", location)
        )
    if {"MASQUE_PS", "INVISIBLE_PATIENT"} <= flags:
        errors.append(
            RegistryError(
                "XDSRegistryMetadataError",
                "MASQUE_PS together with INVISIBLE_PATIENT is refused",
                location,
            )
        )
    if entry.mime_type != "text/xml":
        errors.append(
            RegistryError(
                "XDSRegistryMetadataError",
                f"mimeType {entry.mime_type!r} is not text/xml",
                location,
            )
        )
    return errors


_CDA = "{urn:hl7-org:v3}"


def _cda_problems(
    data: bytes, patient_id: str, type_code: str, *, xsd: bool
) -> tuple[list[tuple[str, str]], str | None]:
    """(IHE code, text) of what is wrong with one CDA; the structure checks always run.

    Structure: well-formed, no DOCTYPE anywhere (on the parsed tree), a ClinicalDocument whose
    recordTarget carries the INS of the XDS patientId (the DMP refuses a document filed under
    another patient: XDSPatientIdDoesNotMatch), and whose `code` is the DocumentEntry's typeCode
    (a biology report may not travel as a discharge letter, nor the reverse). Then the XSD,
    unless the mock was told not to. Second: the document's encounter type code (None when it
    names none).
    """
    try:
        root = parse_untrusted(data)
    except etree.XMLSyntaxError as exc:
        return [("InvalidDocumentContent", f"not well-formed XML: {exc.msg}")], None
    except UnsafeXml as exc:
        return [("InvalidDocumentContent", str(exc))], None
    if root.tag != f"{_CDA}ClinicalDocument":
        return [("InvalidDocumentContent", "the document is not a CDA ClinicalDocument")], None
    code = root.find(f"{_CDA}componentOf/{_CDA}encompassingEncounter/{_CDA}code")
    encounter = code.get("code") if code is not None else None
    ins = split_patient_id(patient_id)
    ids = {
        (el.get("extension"), el.get("root"))
        for el in root.iterfind(f"{_CDA}recordTarget/{_CDA}patientRole/{_CDA}id")
    }
    if ins not in ids:
        return [
            (
                "XDSPatientIdDoesNotMatch",
                "the CDA's recordTarget does not carry the INS of the DocumentEntry's patientId",
            )
        ], encounter
    document_code = root.find(f"{_CDA}code")
    said = document_code.get("code") if document_code is not None else None
    if said != type_code:
        return [
            (
                "XDSRegistryMetadataError",
                f"the DocumentEntry's typeCode {type_code} is not the CDA's code {said}",
            )
        ], encounter
    problems = [("InvalidDocumentContent", p) for p in xsd_errors(root)] if xsd else []
    return problems, encounter


def _submission_set(parsed: ParsedSubmission) -> list[RegistryError]:
    """The set's author is the sending system; its contentTypeCode is a J59 code we know."""
    ss = parsed.submission_set
    errors = []
    if ss.author.person is None or not SYSTEM_XCN.fullmatch(ss.author.person):
        errors.append(
            RegistryError(
                _METADATA,
                "the submission set's authorPerson is missing or not the sending system "
                "(3<FINESS>/<id>^<software>^<model>^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI)",
                "SubmissionSet",
            )
        )
    known = _CONTENT_TYPES.get(ss.content_type.code)
    if known is None or known.scheme != ss.content_type.scheme:
        errors.append(
            RegistryError(
                _METADATA,
                f"contentTypeCode {ss.content_type.code} ({ss.content_type.scheme}) is not a "
                "JDV_J59 code of a hospital stay or visit",
                "SubmissionSet",
            )
        )
    return errors


def check_submission(
    parsed: ParsedSubmission, payloads: Mapping[str, bytes | None], *, check_cda: bool = True
) -> list[RegistryError]:
    """Everything that can be decided from the message alone, in the order a registry reports."""
    errors: list[RegistryError] = []
    described = set(parsed.entries) | set(parsed.signatures)
    for doc_id in sorted(set(payloads) - described):
        errors.append(
            RegistryError(
                "XDSMissingDocumentMetadata", f"document {doc_id} has no DocumentEntry", doc_id
            )
        )
    for entry_id in sorted(described):
        if payloads.get(entry_id) is None:
            errors.append(
                RegistryError(
                    "XDSMissingDocument", f"DocumentEntry {entry_id} has no document", entry_id
                )
            )
    if errors:
        return errors

    set_patient = parsed.submission_set.patient_id
    ins = split_patient_id(set_patient)
    if ins is None or ins[1] not in INS_OIDS or matricule_problem(ins[0]) is not None:
        return [
            RegistryError(
                "XDSUnknownPatientId",
                "the submission set's patientId is not an INS (CX form, INS OID, valid key)",
                "SubmissionSet",
            )
        ]
    errors += _submission_set(parsed)
    encounters: set[str] = set()
    seen: set[str] = set()
    for entry_id, entry in parsed.signatures.items():
        errors += _signature_entry(entry, entry_id)
        data = payloads[entry_id] or b""
        if len(data) != entry.size or hashlib.sha1(data).hexdigest() != entry.hash:
            errors.append(
                RegistryError(
                    "XDSRepositoryMetadataError",
                    "hash/size of the signature document do not match its bytes",
                    entry_id,
                )
            )
    for entry_id, entry in parsed.entries.items():
        if entry.patient_id != set_patient:
            errors.append(
                RegistryError(
                    "XDSPatientIdDoesNotMatch",
                    "a DocumentEntry's patientId differs from the submission set's: one patient per set",
                    entry_id,
                )
            )
        if entry.unique_id in seen:
            errors.append(
                RegistryError(
                    "XDSRepositoryDuplicateUniqueIdInMessage",
                    f"uniqueId {entry.unique_id} appears twice in this message",
                    entry_id,
                )
            )
        seen.add(entry.unique_id)
        data = payloads[entry_id] or b""
        if len(data) != entry.size or hashlib.sha1(data).hexdigest() != entry.hash:
            errors.append(
                RegistryError(
                    "XDSRepositoryMetadataError",
                    f"hash/size of {entry.unique_id} do not match the bytes received ({len(data)} bytes)",
                    entry_id,
                )
            )
            continue
        errors += _entry_codes(entry, entry_id)
        problems, encounter = _cda_problems(
            data, entry.patient_id, entry.type_code.code, xsd=check_cda
        )
        encounters.add(encounter or "")
        if problems:
            code, text = problems[0]
            errors.append(
                RegistryError(code, f"the CDA of {entry.unique_id} is refused: {text}", entry_id)
            )
    content = parsed.submission_set.content_type.code
    if not errors and content in _CONTENT_TYPES:
        # One kind of stay per set: inpatient documents travel under 03/04, the others under 07.
        allowed = [_INPATIENT_CONTENT if e == "IMP" else _OTHER_CONTENT for e in encounters]
        if any(content not in codes_ for codes_ in allowed):
            errors.append(
                RegistryError(
                    _METADATA,
                    f"contentTypeCode {content} does not fit the encounter types of the set's "
                    f"documents ({', '.join(sorted(e or 'none' for e in encounters))})",
                    "SubmissionSet",
                )
            )
    return errors
