"""ITI-18 Registry Stored Query on the wire: `AdhocQueryRequest` and `AdhocQueryResponse`, both ways.

Shared by the client (find the entryUUID the DMP assigned to a document, list a patient's
documents) and the mock's registry door. Two stored queries (ITI TF-2a §3.18.4.1.2.3.7):

    GetDocuments   by $XDSDocumentEntryUniqueId or $XDSDocumentEntryEntryUUID
    FindDocuments  by $XDSDocumentEntryPatientId and $XDSDocumentEntryStatus

and the return types ObjectRef (entryUUIDs only) and LeafClass (the entries, with hash, size,
status). Slot values follow the stored-query syntax: a string in single quotes, a list in
parentheses: `('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from cda.specs import find_specs
from connectors.dmp.errors import MalformedMessage, MetadataProblem
from connectors.dmp.response import RegistryError, append_errors, read_errors
from connectors.dmp.soap import build_envelope
from connectors.dmp.vihf import VihfIdentity, assertion_xml
from connectors.dmp.vocabulary import NS, XDS

__all__ = [
    "ACTION_QUERY",
    "ACTION_QUERY_RESPONSE",
    "FIND_DOCUMENTS",
    "GET_DOCUMENTS",
    "FoundDocument",
    "QueryOutcome",
    "StoredQuery",
    "build_query",
    "build_query_request",
    "build_query_response",
    "find_documents",
    "get_documents",
    "query_errors",
    "query_schema",
    "read_query",
    "read_query_response",
]

ACTION_QUERY = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_QUERY_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
RETURN_TYPES = ("ObjectRef", "LeafClass")

UNIQUE_ID = "$XDSDocumentEntryUniqueId"
ENTRY_UUID = "$XDSDocumentEntryEntryUUID"
PATIENT_ID = "$XDSDocumentEntryPatientId"
STATUS = "$XDSDocumentEntryStatus"

_QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
_Q = f"{{{_QUERY_NS}}}"
_RIM = f"{{{NS['rim']}}}"
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class StoredQuery:
    query_id: str
    parameters: Mapping[str, tuple[str, ...]]
    """Slot name → the values it holds (unquoted)."""
    return_type: str = "ObjectRef"


def get_documents(
    *,
    unique_ids: Sequence[str] = (),
    entry_uuids: Sequence[str] = (),
    return_type: str = "ObjectRef",
) -> StoredQuery:
    """GetDocuments: the entries with these uniqueIds, or with these entryUUIDs (one or the other)."""
    if bool(unique_ids) == bool(entry_uuids):
        raise ValueError("GetDocuments takes uniqueIds or entryUUIDs, one of the two")
    name, values = (UNIQUE_ID, unique_ids) if unique_ids else (ENTRY_UUID, entry_uuids)
    return StoredQuery(GET_DOCUMENTS, {name: tuple(values)}, return_type)


def find_documents(
    patient_id: str,
    *,
    statuses: Sequence[str] = (XDS.APPROVED,),
    return_type: str = "LeafClass",
) -> StoredQuery:
    """FindDocuments: a patient's entries in these statuses (Approved by default)."""
    return StoredQuery(
        FIND_DOCUMENTS, {PATIENT_ID: (patient_id,), STATUS: tuple(statuses)}, return_type
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def build_query(query: StoredQuery) -> etree._Element:
    """The `query:AdhocQueryRequest` of one stored query."""
    if query.return_type not in RETURN_TYPES:
        raise ValueError(f"returnType {query.return_type!r} is not one of {RETURN_TYPES}")
    request = etree.Element(_Q + "AdhocQueryRequest", nsmap={"query": _QUERY_NS, "rim": NS["rim"]})
    etree.SubElement(
        request, _Q + "ResponseOption", returnType=query.return_type,
        returnComposedObjects="true",
    )  # fmt: skip
    adhoc = etree.SubElement(request, _RIM + "AdhocQuery", id=query.query_id)
    for name, values in query.parameters.items():
        slot = etree.SubElement(adhoc, _RIM + "Slot", name=name)
        value_list = etree.SubElement(slot, _RIM + "ValueList")
        # The patient id is a single value; the others are lists.
        text = (
            _quote(values[0])
            if name == PATIENT_ID
            else "(" + ",".join(_quote(v) for v in values) + ")"
        )
        etree.SubElement(value_list, _RIM + "Value").text = text
    return request


def build_query_request(
    query: StoredQuery,
    identity: VihfIdentity,
    patient_id: str,
    *,
    to: str | None = None,
    message_id: str | None = None,
) -> tuple[str, bytes]:
    """(Content-Type, body) of one ITI-18 call; the VIHF names `patient_id` as its resource."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assertion = assertion_xml(
        identity, patient_id, assertion_id=f"_{uuid.uuid4().hex}", issued_at=now
    )
    envelope = build_envelope(
        build_query(query),
        action=ACTION_QUERY,
        message_id=message_id or f"urn:uuid:{uuid.uuid4()}",
        to=to,
        security=assertion,
    )
    return f'application/soap+xml; charset=UTF-8; action="{ACTION_QUERY}"', envelope


def read_query(request: etree._Element) -> StoredQuery:
    """A stored query back from its AdhocQueryRequest; MetadataProblem with the IHE code if wrong."""
    if request.tag != _Q + "AdhocQueryRequest":
        raise MalformedMessage(
            f"expected an AdhocQueryRequest, got {etree.QName(request).localname!r}"
        )
    option = request.find(_Q + "ResponseOption")
    return_type = option.get("returnType", "RegistryObject") if option is not None else ""
    if return_type not in RETURN_TYPES:
        raise MetadataProblem(
            "XDSRegistryError", f"returnType {return_type!r} is not served (ObjectRef, LeafClass)"
        )
    adhoc = request.find(_RIM + "AdhocQuery")
    query_id = adhoc.get("id", "") if adhoc is not None else ""
    if query_id not in (GET_DOCUMENTS, FIND_DOCUMENTS):
        raise MetadataProblem("XDSUnknownStoredQuery", f"stored query {query_id!r} is not served")
    parameters: dict[str, tuple[str, ...]] = {}
    for slot in adhoc.iterfind(_RIM + "Slot"):  # type: ignore[union-attr]
        name = slot.get("name", "")
        if name in parameters:
            raise MetadataProblem("XDSStoredQueryParamNumber", f"parameter {name} is repeated")
        texts = [v.text or "" for v in slot.iterfind(f"{_RIM}ValueList/{_RIM}Value")]
        values = tuple(m.group(1).replace("''", "'") for t in texts for m in _QUOTED.finditer(t))
        if not values:
            raise MetadataProblem(
                "XDSRegistryError", f"parameter {name} has no quoted value: {texts!r}"
            )
        parameters[name] = values
    if query_id == GET_DOCUMENTS:
        given = [p for p in (UNIQUE_ID, ENTRY_UUID) if p in parameters]
        if len(given) != 1:
            raise MetadataProblem(
                "XDSStoredQueryParamNumber",
                f"GetDocuments needs exactly one of {UNIQUE_ID} and {ENTRY_UUID}",
            )
    elif PATIENT_ID not in parameters or STATUS not in parameters:
        raise MetadataProblem(
            "XDSStoredQueryParamNumber", f"FindDocuments needs {PATIENT_ID} and {STATUS}"
        )
    elif len(parameters[PATIENT_ID]) != 1:
        raise MetadataProblem("XDSStoredQueryParamNumber", f"{PATIENT_ID} takes one value")
    return StoredQuery(query_id, parameters, return_type)


# ---- the answer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundDocument:
    """One DocumentEntry the registry holds; ObjectRef answers carry the entryUUID only."""

    entry_uuid: str
    unique_id: str | None = None
    patient_id: str | None = field(default=None, repr=False)
    hash: str | None = None
    size: int | None = None
    status: str | None = None
    """`Approved` or `Deprecated` (the short name of the ebRIM status URN)."""


@dataclass(frozen=True)
class QueryOutcome:
    success: bool
    documents: tuple[FoundDocument, ...] = ()
    errors: tuple[RegistryError, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors if e.severity == XDS.ERROR)


_STATUS_URN = "urn:oasis:names:tc:ebxml-regrep:StatusType:"
PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def build_query_response(
    documents: Sequence[FoundDocument],
    return_type: str,
    errors: Sequence[RegistryError] = (),
) -> etree._Element:
    failed = any(e.severity == XDS.ERROR for e in errors)
    response = etree.Element(
        _Q + "AdhocQueryResponse",
        nsmap={"query": _QUERY_NS, "rim": NS["rim"], "rs": NS["rs"]},
        status=XDS.FAILURE if failed else XDS.SUCCESS,
    )
    append_errors(response, errors)
    objects = etree.SubElement(response, _RIM + "RegistryObjectList")
    for document in [] if failed else documents:
        if return_type == "ObjectRef":
            etree.SubElement(objects, _RIM + "ObjectRef", id=document.entry_uuid)
            continue
        entry = etree.SubElement(
            objects, _RIM + "ExtrinsicObject", id=document.entry_uuid, mimeType="text/xml",
            objectType=XDS.STABLE_ENTRY, status=_STATUS_URN + (document.status or "Approved"),
        )  # fmt: skip
        for name, value in (("hash", document.hash), ("size", document.size)):
            if value is not None:
                slot = etree.SubElement(entry, _RIM + "Slot", name=name)
                etree.SubElement(
                    etree.SubElement(slot, _RIM + "ValueList"), _RIM + "Value"
                ).text = str(value)
        for n, (scheme, value, label) in enumerate(
            (
                (XDS.DE_PATIENT_ID, document.patient_id, "XDSDocumentEntry.patientId"),
                (XDS.DE_UNIQUE_ID, document.unique_id, "XDSDocumentEntry.uniqueId"),
            ),
            start=1,
        ):
            if value is None:
                continue
            external = etree.SubElement(
                entry, _RIM + "ExternalIdentifier", id=f"ei-{document.entry_uuid}-{n}",
                registryObject=document.entry_uuid, identificationScheme=scheme, value=value,
                objectType=XDS.OT_EXTERNAL_ID,
            )  # fmt: skip
            name_el = etree.SubElement(external, _RIM + "Name")
            etree.SubElement(name_el, _RIM + "LocalizedString", value=label)
    return response


def _slot(obj: etree._Element, name: str) -> str | None:
    value = obj.find(f"{_RIM}Slot[@name='{name}']/{_RIM}ValueList/{_RIM}Value")
    return (value.text or "").strip() if value is not None else None


def _external(obj: etree._Element, scheme: str) -> str | None:
    for external in obj.iterfind(_RIM + "ExternalIdentifier"):
        if external.get("identificationScheme") == scheme:
            return external.get("value")
    return None


def read_query_response(element: etree._Element) -> QueryOutcome:
    """An AdhocQueryResponse as found documents (MalformedMessage when it is not one)."""
    if element.tag != _Q + "AdhocQueryResponse":
        raise MalformedMessage(
            f"expected an AdhocQueryResponse, got {etree.QName(element).localname!r}"
        )
    status = element.get("status")
    if status not in (XDS.SUCCESS, XDS.FAILURE, PARTIAL_SUCCESS):
        raise MalformedMessage(f"AdhocQueryResponse status {status!r} is not a response status")
    errors = read_errors(element)
    objects = element.find(_RIM + "RegistryObjectList")
    found: list[FoundDocument] = []
    for obj in objects if objects is not None else ():
        if obj.tag == _RIM + "ObjectRef":
            found.append(FoundDocument(obj.get("id", "")))
        elif obj.tag == _RIM + "ExtrinsicObject":
            size = _slot(obj, "size")
            found.append(
                FoundDocument(
                    entry_uuid=obj.get("id", ""),
                    unique_id=_external(obj, XDS.DE_UNIQUE_ID),
                    patient_id=_external(obj, XDS.DE_PATIENT_ID),
                    hash=(_slot(obj, "hash") or "").lower() or None,
                    size=int(size) if size and size.isdigit() else None,
                    status=(obj.get("status") or "").removeprefix(_STATUS_URN) or None,
                )
            )
    return QueryOutcome(status != XDS.FAILURE, tuple(found), errors)


@functools.cache
def query_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(find_specs().xds_spec / "schema/ebRS/query.xsd")))


def query_errors(element: etree._Element) -> list[str]:
    """XSD failures of an AdhocQueryRequest or AdhocQueryResponse (ebRS 3.0 query.xsd)."""
    schema = query_schema()
    if schema.validate(element):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log][:20]
