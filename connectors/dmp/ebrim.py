"""XDS metadata as ebRIM 3.0: `DocumentEntry` / `SubmissionSet` to `lcm:SubmitObjectsRequest`, and back.

Element order inside every rim object follows the schema (Slot*, Name?, Classification*,
ExternalIdentifier*), association types are full URNs, and every object carries its objectType,
so a request we write passes both the XSD and the checks the XSD cannot make. Reading is the
mirror image and reports what is missing as a `MetadataProblem` with the IHE error code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from cda.metadata import Coded, DocumentEntry, SubmissionSet, XdsAuthor, entry_uuid_for
from connectors.dmp.errors import MetadataProblem
from connectors.dmp.vocabulary import NS, XDS

__all__ = [
    "SIGNATURE_CLASS_CODE",
    "SIGNATURE_ID",
    "SUBMISSION_SET_ID",
    "ParsedSubmission",
    "extrinsic_object",
    "parse_submit_objects",
    "submit_objects",
]

_RIM = f"{{{NS['rim']}}}"
_LCM = f"{{{NS['lcm']}}}"
SUBMISSION_SET_ID = "SubmissionSet01"
SIGNATURE_ID = "Signature01"
# classCode of the submission set's signature entry (IHE DSG, as the DMP's clients send it).
SIGNATURE_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
METADATA_ERROR = "XDSRegistryMetadataError"
# Fragments of our own making (`extrinsic_object`), read back without entities or network.
_FRAGMENTS = etree.XMLParser(resolve_entities=False, no_network=True)


def _el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, _RIM + tag, attrs)


def _slot(parent: etree._Element, name: str, *values: str) -> None:
    value_list = _el(_el(parent, "Slot", name=name), "ValueList")
    for value in values:
        _el(value_list, "Value").text = value


def _name(parent: etree._Element, text: str) -> None:
    _el(_el(parent, "Name"), "LocalizedString", value=text)


def _coded(parent: etree._Element, scheme: str, owner: str, coded: Coded, n: int) -> None:
    node = _el(
        parent, "Classification", id=f"cl-{owner}-{n}", classifiedObject=owner,
        classificationScheme=scheme, nodeRepresentation=coded.code, objectType=XDS.OT_CLASSIFICATION,
    )  # fmt: skip
    _slot(node, "codingScheme", coded.scheme)
    _name(node, coded.display)


def _author(parent: etree._Element, scheme: str, owner: str, author: XdsAuthor, n: int) -> None:
    node = _el(
        parent, "Classification", id=f"cl-{owner}-{n}", classifiedObject=owner,
        classificationScheme=scheme, nodeRepresentation="", objectType=XDS.OT_CLASSIFICATION,
    )  # fmt: skip
    if author.person:
        _slot(node, "authorPerson", author.person)
    if author.institution:
        _slot(node, "authorInstitution", author.institution)
    if author.role:
        _slot(node, "authorRole", author.role)
    if author.specialty:
        s = author.specialty
        _slot(node, "authorSpecialty", f"{s.code}^{s.display}^{s.scheme}")


def _external_id(
    parent: etree._Element, scheme: str, owner: str, value: str, label: str, n: int
) -> None:
    node = _el(
        parent, "ExternalIdentifier", id=f"ei-{owner}-{n}", registryObject=owner,
        identificationScheme=scheme, value=value, objectType=XDS.OT_EXTERNAL_ID,
    )  # fmt: skip
    _name(node, label)


def submit_objects(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    *,
    signature: DocumentEntry | None = None,
    ids: Sequence[str] | None = None,
    prebuilt: Mapping[str, bytes] | None = None,
) -> etree._Element:
    """The `lcm:SubmitObjectsRequest` of one submission set and its document entries.

    Each ExtrinsicObject's id is `ids[n]` (symbolic ids such as `Document01` are allowed, the
    registry assigns entryUUIDs), by default the entry's stable entryUUID; the matching
    `xds:Document` must carry the same id. An entry with `replaces` gets an RPLC association to
    the replaced entry's entryUUID. A `signature` entry (the XAdES of the set) is a member of
    the set and `signs` it. `prebuilt` maps an entry's uniqueId to `extrinsic_object(entry)` of
    that very entry, taken as it is where the object's id is the entry's entryUUID.
    """
    object_ids = list(ids) if ids is not None else [entry.entry_uuid for entry in entries]
    request = etree.Element(
        _LCM + "SubmitObjectsRequest", nsmap={"lcm": NS["lcm"], "rim": NS["rim"]}
    )
    objects = _el(request, "RegistryObjectList")
    ss = _el(objects, "RegistryPackage", id=SUBMISSION_SET_ID, objectType=XDS.OT_REGISTRY_PACKAGE)
    _slot(ss, "submissionTime", submission_set.submission_time)
    _name(ss, submission_set.title)
    _author(ss, XDS.SS_AUTHOR, SUBMISSION_SET_ID, submission_set.author, 1)
    _coded(ss, XDS.SS_CONTENT_TYPE, SUBMISSION_SET_ID, submission_set.content_type, 2)
    for n, (scheme, value, label) in enumerate(
        (
            (XDS.SS_UNIQUE_ID, submission_set.unique_id, "XDSSubmissionSet.uniqueId"),
            (XDS.SS_SOURCE_ID, submission_set.source_id, "XDSSubmissionSet.sourceId"),
            (XDS.SS_PATIENT_ID, submission_set.patient_id, "XDSSubmissionSet.patientId"),
        ),
        start=1,
    ):
        _external_id(ss, scheme, SUBMISSION_SET_ID, value, label, n)
    _el(
        objects, "Classification", id="cl-ss-node", classifiedObject=SUBMISSION_SET_ID,
        classificationNode=XDS.SUBMISSION_SET_NODE, objectType=XDS.OT_CLASSIFICATION,
    )  # fmt: skip

    members = list(zip(object_ids, entries, strict=True))
    if signature is not None:
        members.append((SIGNATURE_ID, signature))
    for owner, entry in members:
        fragment = prebuilt.get(entry.unique_id) if prebuilt and owner == entry.entry_uuid else None
        if fragment is not None:
            objects.append(etree.fromstring(fragment, _FRAGMENTS))
        else:
            _extrinsic_object(objects, owner, entry)

    for n, (owner, entry) in enumerate(members, start=1):
        member = _el(
            objects, "Association", id=f"as-member-{n}", associationType=XDS.HAS_MEMBER,
            sourceObject=SUBMISSION_SET_ID, targetObject=owner, objectType=XDS.OT_ASSOCIATION,
        )  # fmt: skip
        _slot(member, "SubmissionSetStatus", "Original")
        if entry.replaces or entry.replaces_entry_uuid:
            target = entry.replaces_entry_uuid or entry_uuid_for(entry.replaces or "")
            _el(
                objects, "Association", id=f"as-rplc-{n}", associationType=XDS.RPLC,
                sourceObject=owner, targetObject=target,
                objectType=XDS.OT_ASSOCIATION,
            )  # fmt: skip
    if signature is not None:
        _el(
            objects, "Association", id="as-signs", associationType=XDS.SIGNS,
            sourceObject=SIGNATURE_ID, targetObject=SUBMISSION_SET_ID, objectType=XDS.OT_ASSOCIATION,
        )  # fmt: skip
    return request


def extrinsic_object(entry: DocumentEntry) -> bytes:
    """The ExtrinsicObject of `entry` under its entryUUID, serialized, for `submit_objects(prebuilt=…)`.

    It is most of a request's metadata and a function of the entry alone: the sender builds it
    with the CDA, in its build workers, and its own process only splices it in (RPLC and the
    set's membership are associations, built per attempt)."""
    holder = etree.Element(_RIM + "RegistryObjectList", nsmap={"rim": NS["rim"]})
    _extrinsic_object(holder, entry.entry_uuid, entry)
    return etree.tostring(holder[0])


def _extrinsic_object(objects: etree._Element, owner: str, entry: DocumentEntry) -> None:
    eo = _el(
        objects, "ExtrinsicObject", id=owner, mimeType=entry.mime_type, objectType=XDS.STABLE_ENTRY
    )
    _slot(eo, "creationTime", entry.creation_time)
    _slot(eo, "languageCode", entry.language)
    if entry.service_start:
        _slot(eo, "serviceStartTime", entry.service_start)
    if entry.service_stop:
        _slot(eo, "serviceStopTime", entry.service_stop)
    _slot(eo, "sourcePatientId", entry.source_patient_id)
    if entry.source_patient_info:
        _slot(eo, "sourcePatientInfo", *entry.source_patient_info)
    if entry.legal_authenticator:
        _slot(eo, "legalAuthenticator", entry.legal_authenticator)
    _slot(eo, "hash", entry.hash)
    _slot(eo, "size", str(entry.size))
    _name(eo, entry.title)
    coded: list[tuple[str, Coded]] = [(XDS.DE_CLASS, entry.class_code)]
    coded += [(XDS.DE_CONFIDENTIALITY, c) for c in entry.confidentiality]
    coded += [(XDS.DE_EVENT, c) for c in entry.event_codes]
    coded += [
        (XDS.DE_FORMAT, entry.format_code),
        (XDS.DE_FACILITY_TYPE, entry.healthcare_facility_type),
        (XDS.DE_PRACTICE_SETTING, entry.practice_setting),
        (XDS.DE_TYPE, entry.type_code),
    ]
    _author(eo, XDS.DE_AUTHOR, owner, entry.author, 1)
    for n, (scheme, value) in enumerate(coded, start=2):
        _coded(eo, scheme, owner, value, n)
    _external_id(eo, XDS.DE_PATIENT_ID, owner, entry.patient_id, "XDSDocumentEntry.patientId", 1)
    _external_id(eo, XDS.DE_UNIQUE_ID, owner, entry.unique_id, "XDSDocumentEntry.uniqueId", 2)


# ---- reading --------------------------------------------------------------------------------


@dataclass
class ParsedSubmission:
    """What a SubmitObjectsRequest says: the set, its entries (by ExtrinsicObject id), replacements."""

    submission_set: SubmissionSet
    entries: dict[str, DocumentEntry]
    replacements: dict[str, str] = field(default_factory=dict)
    """ExtrinsicObject id → entryUUID of the entry it replaces (RPLC)."""
    signatures: dict[str, DocumentEntry] = field(default_factory=dict)
    """The signature entries (classCode Digital Signature), kept out of `entries`."""
    signs: set[str] = field(default_factory=set)
    """Ids of the objects that a `signs` association says sign the submission set."""


def _slots(obj: etree._Element) -> dict[str, list[str]]:
    return {
        s.get("name", ""): [v.text or "" for v in s.iterfind(f"{_RIM}ValueList/{_RIM}Value")]
        for s in obj.iterfind(_RIM + "Slot")
    }


def _one(
    slots: dict[str, list[str]], name: str, where: str, *, required: bool = True
) -> str | None:
    values = slots.get(name)
    if not values:
        if required:
            raise MetadataProblem(METADATA_ERROR, f"{where}: slot {name} is missing", where)
        return None
    if len(values) > 1:
        raise MetadataProblem(
            METADATA_ERROR, f"{where}: slot {name} has {len(values)} values", where
        )
    return values[0]


def _display(obj: etree._Element) -> str:
    found = obj.find(f"{_RIM}Name/{_RIM}LocalizedString")
    return found.get("value", "") if found is not None else ""


def _classifications(obj: etree._Element, scheme: str) -> list[etree._Element]:
    return [
        c for c in obj.iterfind(_RIM + "Classification") if c.get("classificationScheme") == scheme
    ]


def _read_coded(obj: etree._Element, scheme: str, label: str, where: str) -> list[Coded]:
    out = []
    for node in _classifications(obj, scheme):
        code = node.get("nodeRepresentation") or ""
        coding = _one(_slots(node), "codingScheme", f"{where} {label}")
        if not code:
            raise MetadataProblem(METADATA_ERROR, f"{where}: {label} has no code", where)
        out.append(Coded(code, coding or "", _display(node)))
    return out


def _exactly_one(obj: etree._Element, scheme: str, label: str, where: str) -> Coded:
    found = _read_coded(obj, scheme, label, where)
    if len(found) != 1:
        raise MetadataProblem(
            METADATA_ERROR, f"{where}: {len(found)} {label} where one is required", where
        )
    return found[0]


def _read_author(obj: etree._Element, scheme: str, where: str) -> XdsAuthor:
    nodes = _classifications(obj, scheme)
    if len(nodes) != 1:
        raise MetadataProblem(
            METADATA_ERROR, f"{where}: {len(nodes)} authors where one is expected", where
        )
    slots = _slots(nodes[0])
    specialty = None
    if raw := _one(slots, "authorSpecialty", where, required=False):
        parts = raw.split("^")
        specialty = Coded(
            parts[0], parts[2] if len(parts) > 2 else "", parts[1] if len(parts) > 1 else ""
        )
    return XdsAuthor(
        person=_one(slots, "authorPerson", where, required=False),
        institution=_one(slots, "authorInstitution", where, required=False),
        specialty=specialty,
        role=_one(slots, "authorRole", where, required=False),
    )


def _external(obj: etree._Element, scheme: str, label: str, where: str) -> str:
    found = [
        e.get("value", "")
        for e in obj.iterfind(_RIM + "ExternalIdentifier")
        if e.get("identificationScheme") == scheme
    ]
    if len(found) != 1 or not found[0]:
        raise MetadataProblem(METADATA_ERROR, f"{where}: {label} is missing or repeated", where)
    return found[0]


def parse_submit_objects(request: etree._Element) -> ParsedSubmission:
    """Read a `lcm:SubmitObjectsRequest`; raises MetadataProblem naming the first broken rule."""
    objects = request.find(_RIM + "RegistryObjectList")
    if objects is None:
        raise MetadataProblem(METADATA_ERROR, "no RegistryObjectList")
    packages = objects.findall(_RIM + "RegistryPackage")
    labelled = {
        c.get("classifiedObject")
        for c in objects.iterfind(_RIM + "Classification")
        if c.get("classificationNode") == XDS.SUBMISSION_SET_NODE
    } | {
        p.get("id")
        for p in packages
        for c in p.iterfind(_RIM + "Classification")
        if c.get("classificationNode") == XDS.SUBMISSION_SET_NODE
    }
    sets = [p for p in packages if p.get("id") in labelled]
    if len(sets) != 1:
        raise MetadataProblem(METADATA_ERROR, f"{len(sets)} submission sets where one is required")
    ss = sets[0]
    ss_id = ss.get("id", "")
    where = "SubmissionSet"
    ss_slots = _slots(ss)
    submission_set = SubmissionSet(
        unique_id=_external(ss, XDS.SS_UNIQUE_ID, "uniqueId", where),
        source_id=_external(ss, XDS.SS_SOURCE_ID, "sourceId", where),
        patient_id=_external(ss, XDS.SS_PATIENT_ID, "patientId", where),
        submission_time=_one(ss_slots, "submissionTime", where) or "",
        author=_read_author(ss, XDS.SS_AUTHOR, where),
        content_type=_exactly_one(ss, XDS.SS_CONTENT_TYPE, "contentTypeCode", where),
        title=_display(ss),
    )

    entries: dict[str, DocumentEntry] = {}
    for eo in objects.iterfind(_RIM + "ExtrinsicObject"):
        eo_id = eo.get("id", "")
        where = f"DocumentEntry {eo_id}"
        if eo_id in entries:
            raise MetadataProblem(
                METADATA_ERROR, f"two ExtrinsicObjects have the id {eo_id}", eo_id
            )
        if eo.get("objectType") != XDS.STABLE_ENTRY:
            raise MetadataProblem(
                METADATA_ERROR, f"{where}: objectType is not the stable DocumentEntry type", eo_id
            )
        slots = _slots(eo)
        size_text = _one(slots, "size", where) or ""
        if not size_text.isdigit():
            raise MetadataProblem(
                METADATA_ERROR, f"{where}: size {size_text!r} is not a number", eo_id
            )
        confidentiality = _read_coded(eo, XDS.DE_CONFIDENTIALITY, "confidentialityCode", where)
        if not confidentiality:
            raise MetadataProblem(METADATA_ERROR, f"{where}: no confidentialityCode", eo_id)
        entries[eo_id] = DocumentEntry(
            source_patient_info=tuple(slots.get("sourcePatientInfo", ())),
            event_codes=tuple(_read_coded(eo, XDS.DE_EVENT, "eventCodeList", where)),
            unique_id=_external(eo, XDS.DE_UNIQUE_ID, "uniqueId", where),
            patient_id=_external(eo, XDS.DE_PATIENT_ID, "patientId", where),
            source_patient_id=_one(slots, "sourcePatientId", where) or "",
            title=_display(eo),
            class_code=_exactly_one(eo, XDS.DE_CLASS, "classCode", where),
            type_code=_exactly_one(eo, XDS.DE_TYPE, "typeCode", where),
            format_code=_exactly_one(eo, XDS.DE_FORMAT, "formatCode", where),
            confidentiality=tuple(confidentiality),
            healthcare_facility_type=_exactly_one(
                eo, XDS.DE_FACILITY_TYPE, "healthcareFacilityTypeCode", where
            ),
            practice_setting=_exactly_one(
                eo, XDS.DE_PRACTICE_SETTING, "practiceSettingCode", where
            ),
            creation_time=_one(slots, "creationTime", where) or "",
            service_start=_one(slots, "serviceStartTime", where, required=False),
            service_stop=_one(slots, "serviceStopTime", where, required=False),
            author=_read_author(eo, XDS.DE_AUTHOR, where),
            legal_authenticator=_one(slots, "legalAuthenticator", where, required=False),
            hash=(_one(slots, "hash", where) or "").lower(),
            size=int(size_text),
            language=_one(slots, "languageCode", where) or "",
            mime_type=eo.get("mimeType", ""),
        )

    members: set[str] = set()
    signs: set[str] = set()
    replacements: dict[str, str] = {}
    for assoc in objects.iterfind(_RIM + "Association"):
        kind, source, target = (
            assoc.get(k, "") for k in ("associationType", "sourceObject", "targetObject")
        )
        if kind == XDS.HAS_MEMBER and source == ss_id:
            members.add(target)
        elif kind == XDS.SIGNS and target == ss_id:
            signs.add(source)
        elif kind == XDS.RPLC:
            if source not in entries or not target.startswith("urn:uuid:"):
                raise MetadataProblem(
                    METADATA_ERROR,
                    f"RPLC association {assoc.get('id')}: source must be an entry of this set and target an entryUUID",
                )
            replacements[source] = target
        else:
            raise MetadataProblem(
                METADATA_ERROR,
                f"association {assoc.get('id')}: type {kind!r} is not supported here (full URNs required)",
            )
    if missing := sorted(set(entries) - members):
        raise MetadataProblem(
            METADATA_ERROR,
            f"DocumentEntry {missing[0]} is not a member of the submission set",
            missing[0],
        )
    signatures = {
        eo_id: entry
        for eo_id, entry in entries.items()
        if entry.class_code.code == SIGNATURE_CLASS_CODE
    }
    for eo_id in signatures:
        del entries[eo_id]
    return ParsedSubmission(submission_set, entries, replacements, signatures, signs)
