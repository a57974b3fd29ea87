"""The CDA R2 level-1 builder: header of DESIGN §6 and `domain/cda-level1.md` §1, PDF body.

`build_document` is a pure function of its inputs (no clock, no random): the same DPI data gives
the same bytes, hence the same SHA-1, so a resend after a crash is the same document. Elements are
written in the order the CDA schema wants. Bad input raises a `CdaError` carrying the reason code
of DESIGN §5; nothing else escapes.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from cda import codes
from cda.entry import (
    PS_ID_ROOT,
    STRUCT_ID_ROOT,
    document_entry,
    document_title,
    encounter_period,
    ps_identifier,
    service_period,
)
from cda.errors import CdaError, InvalidContent, InvalidDocumentData, ValidationFailed
from cda.identifiers import unique_id_for
from cda.metadata import Coded, DocumentEntry
from cda.model import DocumentInput, Establishment, Patient
from cda.timefmt import hl7_date, hl7_ts
from cda.validate import xsd_errors

__all__ = ["PDF_MEDIA_TYPE", "BuiltDocument", "build_document", "by_content_type", "check_content"]

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
    content_type: Coded = codes.CONTENT_TYPES["external"]
    """The contentTypeCode of the submission sets this document may travel in (its stay's kind)."""

    def __repr__(self) -> str:
        return f"BuiltDocument(unique_id={self.unique_id!r}, size={self.size})"


def by_content_type(
    documents: Iterable[BuiltDocument],
) -> list[tuple[Coded, list[BuiltDocument]]]:
    """One patient's built documents grouped by contentTypeCode, in first-seen order.

    A submission set has one contentTypeCode, so documents of stays of different kinds (a full
    stay, a day case, a consultation) never share one: send each group as its own set(s), with
    its code as the set's content type.
    """
    groups: dict[Coded, list[BuiltDocument]] = {}
    for document in documents:
        groups.setdefault(document.content_type, []).append(document)
    return list(groups.items())


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
    except (TypeError, AttributeError) as exc:
        # A field of the wrong type (a date that is not a date…): bad data, not a crash.
        raise InvalidDocumentData(
            f"document {document.document_id}: a field has the wrong type ({exc})"
        ) from None


def _build(
    document: DocumentInput, patient: Patient, establishment: Establishment, *, xsd_check: bool
) -> BuiltDocument:
    kind = codes.document_kind(document.kind)
    # Second line of defence behind selection: never an INS that is not qualified.
    patient.require_qualified()
    ins = patient.ins()
    patient.traits.require_complete()
    check_content(document.content, document.mime_type)
    if document.masked_ps and document.invisible_patient:
        raise InvalidDocumentData(
            f"document {document.document_id} is both masked from professionals and invisible to "
            "the patient, which the DMP refuses",
            reason="visibility_conflict",
        )
    if not isinstance(document.created_at, dt.datetime):
        raise InvalidDocumentData(f"document {document.document_id} has no date (created_at)")
    if document.version < 1:
        raise InvalidDocumentData(f"document {document.document_id} has version {document.version}")
    if not patient.ipp or not patient.ipp.strip():
        raise InvalidDocumentData(f"document {document.document_id}: the patient has no IPP")
    legal = document.legal_authenticator or document.author
    finess = establishment.finess_geo
    author_id = ps_identifier(document.author, finess).value
    legal_id = ps_identifier(legal, finess).value
    for person in (document.author, legal):
        if not (person.family_name or "").strip():
            raise InvalidDocumentData(
                f"author {person.author_id or '?'} has no family name", reason="author_unknown"
            )
    facility = codes.facility_type(establishment.facility_type_code)
    unit = document.unit
    setting = codes.practice_setting(unit.practice_setting_code if unit else "ETABLISSEMENT")
    stay = document.stay
    encounter = codes.encounter_type(stay.encounter_type) if stay else None
    unique_id = unique_id_for(establishment.finess_geo, document.document_id)
    start, stop = service_period(document)
    stay_start, stay_stop = encounter_period(document)

    # The header is this thread's skeleton for the establishment and for this shape of document
    # (which optional elements it has), every element of which is overwritten below: no tree is
    # built, copied or pruned per document.
    author, specialty = document.author, codes.author_specialty(document.author.specialty_code)
    function = codes.author_function(author.function_code)
    shape = frozenset(
        name
        for name, present in (
            ("used_family", _has_text(patient.used_family_name)),
            ("used_given", _has_text(patient.used_given_name)),
            ("specialty", specialty is not None),
            ("function", function is not None),
            ("author_given", _has_text(author.given_name)),
            ("legal_given", _has_text(legal.given_name)),
            ("event_high", stop is not None),
            ("encounter_high", stay_stop is not None),
            ("replaces", bool(document.replaces)),
            ("stay", stay is not None and encounter is not None),
        )
        if present
    )
    skeleton = _skeleton(establishment, facility, shape, threading.get_ident())
    root, at = skeleton.root, skeleton.slots
    traits = patient.traits

    at["id"].set("root", unique_id)
    _fill_code(at["code"], kind.type_code)
    at["title"].text = document_title(document)
    created = hl7_ts(document.created_at)
    at["effectiveTime"].set("value", created)
    # Versions of one document share its setId; a DPI without sets gives each document its own.
    at["setId"].set("extension", document.set_id or document.document_id)
    at["versionNumber"].set("value", str(document.version))

    # recordTarget: the INS first, then the IPP; all INS traits (cda-level1.md §1.2).
    at["ins"].set("root", ins.oid)
    at["ins"].set("extension", ins.matricule)
    at["ipp"].set("extension", patient.ipp)
    at["family_br"].text = traits.birth_family_name
    at["given"].text = traits.birth_given_names
    at["given_br"].text = traits.first_birth_given_name
    if "used_family" in shape:
        at["family_cl"].text = patient.used_family_name
    if "used_given" in shape:
        at["given_cl"].text = patient.used_given_name
    _fill_code(at["gender"], codes.GENDERS[traits.sex or ""])
    at["birthTime"].set("value", hl7_date(traits.birth_date))  # type: ignore[arg-type]
    at["county"].text = traits.birth_place_code

    if function is not None:
        _fill_code(at["author_function"], function)
    at["author_time"].set("value", created)
    at["author_id"].set("extension", author_id)
    if specialty is not None:
        _fill_code(at["author_code"], specialty)
    if "author_given" in shape:
        at["author_given"].text = author.given_name
    at["author_family"].text = author.family_name

    at["legal_time"].set(
        "value", hl7_ts(document.authenticated_at) if document.authenticated_at else created
    )
    at["legal_id"].set("extension", legal_id)
    if "legal_given" in shape:
        at["legal_given"].text = legal.given_name
    at["legal_family"].text = legal.family_name

    at["event_low"].set("value", hl7_ts(start))
    at["encounter_low"].set("value", hl7_ts(stay_start))
    if stop is not None:
        at["event_high"].set("value", hl7_ts(stop))
    if stay_stop is not None:
        at["encounter_high"].set("value", hl7_ts(stay_stop))
    at["performer_id"].set("extension", author_id)
    _fill_code(at["setting"], setting)
    if document.replaces:
        at["parent_id"].set("root", document.replaces)
    if stay is not None and encounter is not None:
        at["encounter_id"].set("extension", stay.stay_id)
        _fill_code(at["encounter_code"], encounter)

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
    return BuiltDocument(
        xml=xml,
        unique_id=unique_id,
        sha1=sha1,
        size=len(xml),
        entry=entry,
        content_type=codes.content_type(
            stay.encounter_type if stay else None,
            partial=bool(stay and stay.hospitalisation == "partial"),
        ),
    )


# Which elements each optional part of the header is made of.
_OPTIONAL_SLOTS = {
    "used_family": ("family_cl",),
    "used_given": ("given_cl",),
    "specialty": ("author_code",),
    "author_given": ("author_given",),
    "legal_given": ("legal_given",),
    "function": ("author_function",),
    "event_high": ("event_high",),
    "encounter_high": ("encounter_high",),
    "replaces": ("related", "parent_id"),
    "stay": ("encounter_id", "encounter_code"),
}


@dataclass(frozen=True, slots=True)
class _Skeleton:
    """The header elements of one shape of document, and the variable ones by name."""

    root: etree._Element
    slots: dict[str, etree._Element]


@functools.lru_cache(maxsize=1024)
def _skeleton(
    establishment: Establishment, facility: Coded, shape: frozenset[str], thread: int
) -> _Skeleton:
    # One tree per thread (it is filled in place) and per shape (so nothing is added or removed).
    slots: dict[str, etree._Element] = {}

    def slot(name: str, element: etree._Element) -> etree._Element:
        slots[name] = element
        return element

    def coded(parent: etree._Element, tag: str) -> etree._Element:
        return _el(parent, tag, code="", codeSystem="", displayName="")

    def person(parent: etree._Element, tag: str, prefix: str) -> None:
        name = _el(_el(parent, tag), "name")
        slot(f"{prefix}_given", _el(name, "given"))
        slot(f"{prefix}_family", _el(name, "family"))

    def period(parent: etree._Element, prefix: str) -> None:
        effective = _el(parent, "effectiveTime")
        slot(f"{prefix}_low", _el(effective, "low", value=""))
        slot(f"{prefix}_high", _el(effective, "high", value=""))

    root = etree.Element(_V3 + "ClinicalDocument", nsmap={None: NS})
    _el(root, "realmCode", code="FR")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in TEMPLATE_IDS:
        _el(root, "templateId", root=template)
    slot("id", _el(root, "id", root=""))
    slot("code", coded(root, "code"))
    slot("title", _el(root, "title"))
    slot("effectiveTime", _el(root, "effectiveTime", value=""))
    _coded(root, "confidentialityCode", codes.CONFIDENTIALITY_NORMAL)
    _el(root, "languageCode", code="fr-FR")
    slot("setId", _el(root, "setId", root=establishment.document_set_oid, extension=""))
    slot("versionNumber", _el(root, "versionNumber", value=""))

    role = _el(_el(root, "recordTarget"), "patientRole")
    slot("ins", _el(role, "id", root="", extension=""))
    slot("ipp", _el(role, "id", root=establishment.ipp_oid, extension=""))
    patient = _el(role, "patient")
    name = _el(patient, "name")
    slot("family_br", _el(name, "family", qualifier="BR"))
    slot("given", _el(name, "given"))
    slot("given_br", _el(name, "given", qualifier="BR"))
    slot("family_cl", _el(name, "family", qualifier="CL"))
    slot("given_cl", _el(name, "given", qualifier="CL"))
    slot("gender", coded(patient, "administrativeGenderCode"))
    slot("birthTime", _el(patient, "birthTime", value=""))
    place = _el(_el(patient, "birthplace"), "place")
    slot("county", _el(_el(place, "addr"), "county"))

    author = _el(root, "author")
    slot("author_function", coded(author, "functionCode"))
    slot("author_time", _el(author, "time", value=""))
    assigned = _el(author, "assignedAuthor")
    slot("author_id", _el(assigned, "id", root=PS_ID_ROOT, extension=""))
    slot("author_code", coded(assigned, "code"))
    person(assigned, "assignedPerson", "author")
    _organization(assigned, "representedOrganization", establishment)

    custodian = _el(_el(root, "custodian"), "assignedCustodian")
    _organization(custodian, "representedCustodianOrganization", establishment)

    legal = _el(root, "legalAuthenticator")
    slot("legal_time", _el(legal, "time", value=""))
    _el(legal, "signatureCode", code="S")
    entity = _el(legal, "assignedEntity")
    slot("legal_id", _el(entity, "id", root=PS_ID_ROOT, extension=""))
    person(entity, "assignedPerson", "legal")

    event = _el(_el(root, "documentationOf"), "serviceEvent")
    period(event, "event")
    performer = _el(_el(event, "performer", typeCode="PRF"), "assignedEntity")
    slot("performer_id", _el(performer, "id", root=PS_ID_ROOT, extension=""))
    organization = _organization(performer, "representedOrganization", establishment)
    slot("setting", coded(organization, "standardIndustryClassCode"))

    related = slot("related", _el(root, "relatedDocument", typeCode="RPLC"))
    slot("parent_id", _el(_el(related, "parentDocument"), "id", root=""))

    encounter = _el(_el(root, "componentOf"), "encompassingEncounter")
    slot("encounter_id", _el(encounter, "id", root=establishment.stay_oid, extension=""))
    slot("encounter_code", coded(encounter, "code"))
    period(encounter, "encounter")
    _coded(_el(_el(encounter, "location"), "healthCareFacility"), "code", facility)

    body = _el(_el(root, "component"), "nonXMLBody")
    # The base64 body is spliced into the serialised header instead of going through the tree:
    # its alphabet needs no escaping and the schema types it as plain text, so validating and
    # serialising the header with a short placeholder checks the same thing at a fraction of the
    # cost of copying, scanning and escaping the whole PDF three times.
    _el(
        body, "text", mediaType=PDF_MEDIA_TYPE, representation="B64"
    ).text = _BODY_PLACEHOLDER.decode("ascii")

    for part, names in _OPTIONAL_SLOTS.items():
        if part not in shape:
            for name in names:
                element = slots.pop(name)
                if element.getparent() is not None:
                    element.getparent().remove(element)
    return _Skeleton(root, slots)


def _has_text(value: str | None) -> bool:
    return value is not None and bool(value.strip())


def _fill_code(element: etree._Element, value: Coded) -> None:
    element.set("code", value.code)
    element.set("codeSystem", value.scheme)
    element.set("displayName", value.display)


def _el(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, _V3 + tag, attributes)


def _coded(parent: etree._Element, tag: str, value: Coded) -> etree._Element:
    return _el(parent, tag, code=value.code, codeSystem=value.scheme, displayName=value.display)


def _organization(parent: etree._Element, tag: str, establishment: Establishment) -> etree._Element:
    organization = _el(parent, tag)
    _el(organization, "id", root=STRUCT_ID_ROOT, extension=establishment.struct_id)
    _el(organization, "name").text = establishment.name
    return organization
