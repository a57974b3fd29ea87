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
from connectors.dmp.xml_text import element, empty, start

__all__ = [
    "SIGNATURE_CLASS_CODE",
    "SIGNATURE_ID",
    "SUBMISSION_SET_ID",
    "ParsedSubmission",
    "extrinsic_object",
    "parse_submit_objects",
    "submit_objects",
    "submit_objects_xml",
]

_RIM = f"{{{NS['rim']}}}"
SUBMISSION_SET_ID = "SubmissionSet01"
SIGNATURE_ID = "Signature01"
# classCode of the submission set's signature entry (IHE DSG, as the DMP's clients send it).
SIGNATURE_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
METADATA_ERROR = "XDSRegistryMetadataError"
# What we wrote ourselves, read back as a tree without entities or network.
_FRAGMENTS = etree.XMLParser(resolve_entities=False, no_network=True)


_R = "rim:"
_RIM_DECLARATION = f' xmlns:rim="{NS["rim"]}"'


def _slot(out: list[str], name: str, *values: str) -> None:
    out.append(start(_R + "Slot", ("name", name)) + "<rim:ValueList>")
    out.extend(element(_R + "Value", value) for value in values)
    out.append("</rim:ValueList></rim:Slot>")


def _name(out: list[str], label: str) -> None:
    out.append("<rim:Name>" + empty(_R + "LocalizedString", ("value", label)) + "</rim:Name>")


def _coded(out: list[str], scheme: str, owner: str, coded: Coded, n: int) -> None:
    out.append(start(
        _R + "Classification", ("id", f"cl-{owner}-{n}"), ("classifiedObject", owner),
        ("classificationScheme", scheme), ("nodeRepresentation", coded.code),
        ("objectType", XDS.OT_CLASSIFICATION),
    ))  # fmt: skip
    _slot(out, "codingScheme", coded.scheme)
    _name(out, coded.display)
    out.append("</rim:Classification>")


def _author(out: list[str], scheme: str, owner: str, author: XdsAuthor, n: int) -> None:
    out.append(start(
        _R + "Classification", ("id", f"cl-{owner}-{n}"), ("classifiedObject", owner),
        ("classificationScheme", scheme), ("nodeRepresentation", ""),
        ("objectType", XDS.OT_CLASSIFICATION),
    ))  # fmt: skip
    if author.person:
        _slot(out, "authorPerson", author.person)
    if author.institution:
        _slot(out, "authorInstitution", author.institution)
    if author.role:
        _slot(out, "authorRole", author.role)
    if author.specialty:
        s = author.specialty
        _slot(out, "authorSpecialty", f"{s.code}^{s.display}^{s.scheme}")
    out.append("</rim:Classification>")


def _external_id(out: list[str], scheme: str, owner: str, value: str, label: str, n: int) -> None:
    out.append(start(
        _R + "ExternalIdentifier", ("id", f"ei-{owner}-{n}"), ("registryObject", owner),
        ("identificationScheme", scheme), ("value", value), ("objectType", XDS.OT_EXTERNAL_ID),
    ))  # fmt: skip
    _name(out, label)
    out.append("</rim:ExternalIdentifier>")


def _association(id_: str, kind: str, source: str, target: str, *, status: str = "") -> str:
    attrs = (
        ("id", id_), ("associationType", kind), ("sourceObject", source),
        ("targetObject", target), ("objectType", XDS.OT_ASSOCIATION),
    )  # fmt: skip
    if not status:
        return empty(_R + "Association", *attrs)
    slot: list[str] = []
    _slot(slot, "SubmissionSetStatus", status)
    return start(_R + "Association", *attrs) + "".join(slot) + "</rim:Association>"


def submit_objects_xml(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    *,
    signature: DocumentEntry | None = None,
    ids: Sequence[str] | None = None,
    prebuilt: Mapping[str, bytes] | None = None,
) -> bytes:
    """The `lcm:SubmitObjectsRequest` of one submission set and its document entries, serialized.

    Each ExtrinsicObject's id is `ids[n]` (symbolic ids such as `Document01` are allowed, the
    registry assigns entryUUIDs), by default the entry's stable entryUUID; the matching
    `xds:Document` must carry the same id. An entry with `replaces` gets an RPLC association to
    the replaced entry's entryUUID. A `signature` entry (the XAdES of the set) is a member of
    the set and `signs` it. `prebuilt` maps an entry's uniqueId to `extrinsic_object(entry)` of
    that very entry, taken as it is where the object's id is the entry's entryUUID.
    """
    object_ids = list(ids) if ids is not None else [entry.entry_uuid for entry in entries]
    out = [
        f'<lcm:SubmitObjectsRequest xmlns:lcm="{NS["lcm"]}"{_RIM_DECLARATION}>',
        "<rim:RegistryObjectList>",
        start(
            _R + "RegistryPackage",
            ("id", SUBMISSION_SET_ID),
            ("objectType", XDS.OT_REGISTRY_PACKAGE),
        ),
    ]
    _slot(out, "submissionTime", submission_set.submission_time)
    _name(out, submission_set.title)
    _author(out, XDS.SS_AUTHOR, SUBMISSION_SET_ID, submission_set.author, 1)
    _coded(out, XDS.SS_CONTENT_TYPE, SUBMISSION_SET_ID, submission_set.content_type, 2)
    for n, (scheme, value, label) in enumerate(
        (
            (XDS.SS_UNIQUE_ID, submission_set.unique_id, "XDSSubmissionSet.uniqueId"),
            (XDS.SS_SOURCE_ID, submission_set.source_id, "XDSSubmissionSet.sourceId"),
            (XDS.SS_PATIENT_ID, submission_set.patient_id, "XDSSubmissionSet.patientId"),
        ),
        start=1,
    ):
        _external_id(out, scheme, SUBMISSION_SET_ID, value, label, n)
    out.append("</rim:RegistryPackage>")
    out.append(empty(
        _R + "Classification", ("id", "cl-ss-node"), ("classifiedObject", SUBMISSION_SET_ID),
        ("classificationNode", XDS.SUBMISSION_SET_NODE), ("objectType", XDS.OT_CLASSIFICATION),
    ))  # fmt: skip

    members = list(zip(object_ids, entries, strict=True))
    if signature is not None:
        members.append((SIGNATURE_ID, signature))
    chunks = ["".join(out).encode()]
    for owner, entry in members:
        fragment = prebuilt.get(entry.unique_id) if prebuilt and owner == entry.entry_uuid else None
        if fragment is not None and fragment.startswith(_FRAGMENT_START):
            # Our own bytes (`extrinsic_object`): its namespace declaration is the root's.
            chunks.append(b"<rim:ExtrinsicObject" + fragment[len(_FRAGMENT_START) :])
        else:
            chunks.append(_extrinsic_object(owner, entry).encode())

    out = []
    for n, (owner, entry) in enumerate(members, start=1):
        out.append(_association(
            f"as-member-{n}", XDS.HAS_MEMBER, SUBMISSION_SET_ID, owner, status="Original"
        ))  # fmt: skip
        if entry.replaces or entry.replaces_entry_uuid:
            target = entry.replaces_entry_uuid or entry_uuid_for(entry.replaces or "")
            out.append(_association(f"as-rplc-{n}", XDS.RPLC, owner, target))
    if signature is not None:
        out.append(_association("as-signs", XDS.SIGNS, SIGNATURE_ID, SUBMISSION_SET_ID))
    out.append("</rim:RegistryObjectList></lcm:SubmitObjectsRequest>")
    chunks.append("".join(out).encode())
    return b"".join(chunks)


def submit_objects(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    *,
    signature: DocumentEntry | None = None,
    ids: Sequence[str] | None = None,
    prebuilt: Mapping[str, bytes] | None = None,
) -> etree._Element:
    """`submit_objects_xml` as an element, for a caller that reads or changes it."""
    return etree.fromstring(
        submit_objects_xml(
            submission_set, entries, signature=signature, ids=ids, prebuilt=prebuilt
        ),
        _FRAGMENTS,
    )


_FRAGMENT_START = b"<rim:ExtrinsicObject" + _RIM_DECLARATION.encode()


def extrinsic_object(entry: DocumentEntry) -> bytes:
    """The ExtrinsicObject of `entry` under its entryUUID, serialized, for `submit_objects(prebuilt=…)`.

    It is most of a request's metadata and a function of the entry alone: the sender builds it
    with the CDA, in its build workers, and its own process only splices it in (RPLC and the
    set's membership are associations, built per attempt). It declares its namespace, so it
    reads on its own too."""
    return (
        _FRAGMENT_START
        + _extrinsic_object(entry.entry_uuid, entry).encode()[len("<rim:ExtrinsicObject") :]
    )


def _extrinsic_object(owner: str, entry: DocumentEntry) -> str:
    out = [
        start(
            _R + "ExtrinsicObject", ("id", owner), ("mimeType", entry.mime_type),
            ("objectType", XDS.STABLE_ENTRY),
        )
    ]  # fmt: skip
    _slot(out, "creationTime", entry.creation_time)
    _slot(out, "languageCode", entry.language)
    if entry.service_start:
        _slot(out, "serviceStartTime", entry.service_start)
    if entry.service_stop:
        _slot(out, "serviceStopTime", entry.service_stop)
    _slot(out, "sourcePatientId", entry.source_patient_id)
    if entry.source_patient_info:
        _slot(out, "sourcePatientInfo", *entry.source_patient_info)
    if entry.legal_authenticator:
        _slot(out, "legalAuthenticator", entry.legal_authenticator)
    _slot(out, "hash", entry.hash)
    _slot(out, "size", str(entry.size))
    _name(out, entry.title)
    coded: list[tuple[str, Coded]] = [(XDS.DE_CLASS, entry.class_code)]
    coded += [(XDS.DE_CONFIDENTIALITY, c) for c in entry.confidentiality]
    coded += [(XDS.DE_EVENT, c) for c in entry.event_codes]
    coded += [
        (XDS.DE_FORMAT, entry.format_code),
        (XDS.DE_FACILITY_TYPE, entry.healthcare_facility_type),
        (XDS.DE_PRACTICE_SETTING, entry.practice_setting),
        (XDS.DE_TYPE, entry.type_code),
    ]
    _author(out, XDS.DE_AUTHOR, owner, entry.author, 1)
    for n, (scheme, value) in enumerate(coded, start=2):
        _coded(out, scheme, owner, value, n)
    _external_id(out, XDS.DE_PATIENT_ID, owner, entry.patient_id, "XDSDocumentEntry.patientId", 1)
    _external_id(out, XDS.DE_UNIQUE_ID, owner, entry.unique_id, "XDSDocumentEntry.uniqueId", 2)
    out.append("</rim:ExtrinsicObject>")
    return "".join(out)


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
