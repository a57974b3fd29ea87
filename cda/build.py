"""The CDA R2 level-1 builder: header of DESIGN §6 and `domain/cda-level1.md` §1, PDF body.

`build_document` is a pure function of its inputs (no clock, no random): the same DPI data gives
the same bytes, hence the same SHA-1, so a resend after a crash is the same document. Elements are
written in the order the CDA schema wants. Bad input raises a `CdaError` carrying the reason code
of DESIGN §5; nothing else escapes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass

from lxml import etree

from cda import codes
from cda.entry import PS_ID_ROOT, STRUCT_ID_ROOT, document_entry, document_title, service_period
from cda.errors import CdaError, InvalidContent, InvalidDocumentData, ValidationFailed
from cda.identifiers import unique_id_for
from cda.metadata import Coded, DocumentEntry
from cda.model import Author, DocumentInput, Establishment, Patient
from cda.timefmt import hl7_date, hl7_ts
from cda.validate import xsd_errors

__all__ = ["PDF_MEDIA_TYPE", "BuiltDocument", "build_document", "check_content"]

NS = "urn:hl7-org:v3"
_V3 = f"{{{NS}}}"
PDF_MEDIA_TYPE = "application/pdf"
TEMPLATE_IDS = ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", "1.3.6.1.4.1.19376.1.2.20")
_PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Stands for the base64 body while the header is checked and serialised. The body is the last text
# of the document, so the last occurrence is the one replaced, whatever a title may hold.
_BODY_PLACEHOLDER = b"@@B64BODY@@"


@dataclass(frozen=True, slots=True)
class BuiltDocument:
    """A CDA file ready to send: its bytes, identity, hash and XDS entry."""

    xml: bytes
    unique_id: str
    sha1: str
    size: int
    entry: DocumentEntry

    def __repr__(self) -> str:
        return f"BuiltDocument(unique_id={self.unique_id!r}, size={self.size})"


def check_content(content: bytes | None, mime_type: str | None) -> None:
    """Refuse a body that is not a usable PDF, with the content_* reason of DESIGN §5."""
    if not content:
        raise InvalidContent("content_missing", "the document has no content")
    if (mime_type or "").split(";")[0].strip().lower() != PDF_MEDIA_TYPE:
        raise InvalidContent(
            "content_unsupported_format",
            f"the content is {mime_type or 'of unknown type'}, only {PDF_MEDIA_TYPE} is sent",
        )
    if not content.startswith(b"%PDF-") or b"%%EOF" not in content[-1024:]:
        raise InvalidContent(
            "content_corrupt",
            "the content is not a complete PDF (no %PDF- header or no %%EOF at the end)",
        )


def build_document(
    document: DocumentInput,
    patient: Patient,
    establishment: Establishment,
    *,
    xsd_check: bool = True,
) -> BuiltDocument:
    """Write the CDA of one document version and derive its DocumentEntry.

    With `xsd_check` the tree is validated against CDA_extended.xsd before it is returned
    (ValidationFailed otherwise).
    """
    try:
        return _build(document, patient, establishment, xsd_check=xsd_check)
    except CdaError:
        raise
    except ValueError as exc:
        # lxml refuses control characters and lone surrogates in text and attributes.
        raise InvalidDocumentData(
            f"document {document.document_id}: a text field holds characters XML cannot carry "
            f"({type(exc).__name__})"
        ) from None


def _build(
    document: DocumentInput, patient: Patient, establishment: Establishment, *, xsd_check: bool
) -> BuiltDocument:
    kind = codes.document_kind(document.kind)
    ins = patient.ins()
    patient.traits.require_complete()
    check_content(document.content, document.mime_type)
    if document.masked_ps and document.invisible_patient:
        raise InvalidDocumentData(
            f"document {document.document_id} is both masked from professionals and invisible to "
            "the patient, which the DMP refuses",
            reason="visibility_conflict",
        )
    if document.version < 1:
        raise InvalidDocumentData(f"document {document.document_id} has version {document.version}")
    legal = document.legal_authenticator or document.author
    author_id, legal_id = document.author.ps_id, legal.ps_id
    facility = codes.facility_type(establishment.facility_type_code)
    unit = document.unit
    setting = codes.practice_setting(unit.practice_setting_code if unit else "ETABLISSEMENT")
    stay = document.stay
    encounter = codes.encounter_type(stay.encounter_type) if stay else None
    unique_id = unique_id_for(establishment.finess_geo, document.document_id)
    start, stop = service_period(document)

    root = etree.Element(_V3 + "ClinicalDocument", nsmap={None: NS})
    _el(root, "realmCode", code="FR")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in TEMPLATE_IDS:
        _el(root, "templateId", root=template)
    _el(root, "id", root=unique_id)
    _coded(root, "code", kind.type_code)
    _el(root, "title").text = document_title(document)
    _el(root, "effectiveTime", value=hl7_ts(document.created_at))
    _coded(root, "confidentialityCode", codes.CONFIDENTIALITY_NORMAL)
    _el(root, "languageCode", code="fr-FR")
    _el(root, "setId", root=establishment.document_set_oid, extension=document.set_id)
    _el(root, "versionNumber", value=str(document.version))

    # recordTarget: the INS first, then the IPP; all INS traits (cda-level1.md §1.2).
    role = _el(_el(root, "recordTarget"), "patientRole")
    _el(role, "id", root=ins.oid, extension=ins.matricule)
    _el(role, "id", root=establishment.ipp_oid, extension=patient.ipp)
    person = _el(role, "patient")
    traits = patient.traits
    name = _el(person, "name")
    _el(name, "family", qualifier="BR").text = traits.birth_family_name
    _el(name, "given").text = traits.birth_given_names
    _el(name, "given", qualifier="BR").text = traits.first_birth_given_name
    if patient.used_family_name and patient.used_family_name.strip():
        _el(name, "family", qualifier="CL").text = patient.used_family_name
    if patient.used_given_name and patient.used_given_name.strip():
        _el(name, "given", qualifier="CL").text = patient.used_given_name
    _coded(person, "administrativeGenderCode", codes.GENDERS[traits.sex or ""])
    _el(person, "birthTime", value=hl7_date(traits.birth_date))  # type: ignore[arg-type]
    place = _el(_el(person, "birthplace"), "place")
    _el(_el(place, "addr"), "county").text = traits.birth_place_code

    author = _el(root, "author")
    _el(author, "time", value=hl7_ts(document.created_at))
    assigned = _el(author, "assignedAuthor")
    _el(assigned, "id", root=PS_ID_ROOT, extension=author_id)
    specialty = codes.author_specialty(document.author.specialty_code)
    if specialty is not None:
        _coded(assigned, "code", specialty)
    _person(assigned, "assignedPerson", document.author)
    _organization(assigned, "representedOrganization", establishment)

    custodian = _el(_el(root, "custodian"), "assignedCustodian")
    _organization(custodian, "representedCustodianOrganization", establishment)

    legal_el = _el(root, "legalAuthenticator")
    _el(legal_el, "time", value=hl7_ts(document.authenticated_at or document.created_at))
    _el(legal_el, "signatureCode", code="S")
    entity = _el(legal_el, "assignedEntity")
    _el(entity, "id", root=PS_ID_ROOT, extension=legal_id)
    _person(entity, "assignedPerson", legal)

    event = _el(_el(root, "documentationOf"), "serviceEvent")
    _period(event, start, stop)
    performer = _el(event, "performer", typeCode="PRF")
    performer_entity = _el(performer, "assignedEntity")
    _el(performer_entity, "id", root=PS_ID_ROOT, extension=author_id)
    organization = _organization(performer_entity, "representedOrganization", establishment)
    _coded(organization, "standardIndustryClassCode", setting)

    if document.replaces:
        related = _el(root, "relatedDocument", typeCode="RPLC")
        _el(_el(related, "parentDocument"), "id", root=document.replaces)

    encompassing = _el(_el(root, "componentOf"), "encompassingEncounter")
    if stay is not None and encounter is not None:
        _el(encompassing, "id", root=establishment.stay_oid, extension=stay.stay_id)
        _coded(encompassing, "code", encounter)
    _period(encompassing, start, stop)
    facility_el = _el(_el(encompassing, "location"), "healthCareFacility")
    _coded(facility_el, "code", facility)

    body = _el(_el(root, "component"), "nonXMLBody")
    # The base64 body is spliced into the serialised header instead of going through the tree:
    # its alphabet needs no escaping and the schema types it as plain text, so validating and
    # serialising the header with a short placeholder checks the same thing at a fraction of the
    # cost of copying, scanning and escaping the whole PDF three times.
    _el(
        body, "text", mediaType=PDF_MEDIA_TYPE, representation="B64"
    ).text = _BODY_PLACEHOLDER.decode()

    if xsd_check:
        failures = xsd_errors(root)
        if failures:
            raise ValidationFailed(failures)

    head, _, tail = etree.tostring(
        root, encoding="UTF-8", xml_declaration=False, pretty_print=True
    ).rpartition(_BODY_PLACEHOLDER)
    xml = b"".join((_PROLOG, head, base64.b64encode(document.content), tail))
    sha1 = hashlib.sha1(xml).hexdigest()  # XDS mandates SHA-1
    entry = document_entry(
        document=document,
        patient=patient,
        ins=ins,
        establishment=establishment,
        unique_id=unique_id,
        sha1=sha1,
        size=len(xml),
    )
    return BuiltDocument(xml=xml, unique_id=unique_id, sha1=sha1, size=len(xml), entry=entry)


def _el(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, _V3 + tag, attributes)


def _coded(parent: etree._Element, tag: str, value: Coded) -> etree._Element:
    return _el(parent, tag, code=value.code, codeSystem=value.scheme, displayName=value.display)


def _person(parent: etree._Element, tag: str, person: Author) -> None:
    name = _el(_el(parent, tag), "name")
    if person.given_name and person.given_name.strip():
        _el(name, "given").text = person.given_name
    _el(name, "family").text = person.family_name


def _organization(parent: etree._Element, tag: str, establishment: Establishment) -> etree._Element:
    organization = _el(parent, tag)
    _el(organization, "id", root=STRUCT_ID_ROOT, extension=establishment.struct_id)
    _el(organization, "name").text = establishment.name
    return organization


def _period(parent: etree._Element, start: dt.datetime, stop: dt.datetime | None) -> None:
    period = _el(parent, "effectiveTime")
    _el(period, "low", value=hl7_ts(start))
    if stop is not None:
        _el(period, "high", value=hl7_ts(stop))
