"""The checks a DMP makes that the XDS schema cannot: one patient, INS, hash/size, codes, CDA.

Each check returns `RegistryError`s with the IHE code the real registry would use
(`domain/dmp-feeding.md` §5); none touches storage (see `registry.py` for what needs it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from lxml import etree

from cda import codes
from cda.ins import INS_OIDS, matricule_problem
from cda.metadata import Coded, DocumentEntry
from cda.untrusted_xml import UnsafeXml, parse_untrusted
from cda.validate import xsd_errors
from connectors.dmp.ebrim import ParsedSubmission
from connectors.dmp.errors import MalformedMessage
from connectors.dmp.response import RegistryError
from connectors.dmp.vocabulary import NS

__all__ = ["check_submission", "document_payloads", "split_patient_id"]

_XDS = f"{{{NS['xds']}}}"
_XOP = f"{{{NS['xop']}}}"


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


def _entry_codes(entry: DocumentEntry, location: str) -> list[RegistryError]:
    errors: list[RegistryError] = []
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


def _cda_problems(data: bytes, patient_id: str, *, xsd: bool) -> list[tuple[str, str]]:
    """(IHE code, text) of what is wrong with one CDA; the structure checks always run.

    Structure: well-formed, no DOCTYPE anywhere (on the parsed tree), a ClinicalDocument whose
    recordTarget carries the INS of the XDS patientId (the DMP refuses a document filed under
    another patient: XDSPatientIdDoesNotMatch). Then the XSD, unless the mock was told not to.
    """
    try:
        root = parse_untrusted(data)
    except etree.XMLSyntaxError as exc:
        return [("InvalidDocumentContent", f"not well-formed XML: {exc.msg}")]
    except UnsafeXml as exc:
        return [("InvalidDocumentContent", str(exc))]
    if root.tag != f"{_CDA}ClinicalDocument":
        return [("InvalidDocumentContent", "the document is not a CDA ClinicalDocument")]
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
        ]
    return [("InvalidDocumentContent", problem) for problem in xsd_errors(root)] if xsd else []


def check_submission(
    parsed: ParsedSubmission, payloads: Mapping[str, bytes | None], *, check_cda: bool = True
) -> list[RegistryError]:
    """Everything that can be decided from the message alone, in the order a registry reports."""
    errors: list[RegistryError] = []
    for doc_id in sorted(set(payloads) - set(parsed.entries)):
        errors.append(
            RegistryError(
                "XDSMissingDocumentMetadata", f"document {doc_id} has no DocumentEntry", doc_id
            )
        )
    for entry_id in parsed.entries:
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
    seen: set[str] = set()
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
        problems = _cda_problems(data, entry.patient_id, xsd=check_cda)
        if problems:
            code, text = problems[0]
            errors.append(
                RegistryError(code, f"the CDA of {entry.unique_id} is refused: {text}", entry_id)
            )
    return errors
