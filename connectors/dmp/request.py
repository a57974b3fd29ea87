"""A whole ITI-41 request: metadata, documents, VIHF, signatures, envelope, MTOM or inline.

    content_type, body = build_request(submission_set, [(entry, cda_bytes), ...], identity,
                                       signer=signer)   # signer: None sends nothing signed

The submission set's author is the sending system (`VihfIdentity.author_person`) unless the set
names one; with a `Signer`, the VIHF is signed and the set carries its XAdES signature entry.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence

from lxml import etree

from cda import codes
from cda.metadata import Coded, DocumentEntry, SubmissionSet, XdsAuthor
from connectors.dmp import mtom
from connectors.dmp.ebrim import SIGNATURE_CLASS_CODE, submit_objects_xml
from connectors.dmp.signing import Signer
from connectors.dmp.soap import build_envelope
from connectors.dmp.vihf import VihfIdentity, assertion_xml, build_assertion
from connectors.dmp.vocabulary import ACTION_REQUEST, NS
from connectors.dmp.xml_text import empty, start

__all__ = [
    "CONTENT_TYPE_HOSPITALISATION",
    "SIGNATURE_CLASS",
    "SIGNATURE_EVENT",
    "SIGNATURE_FORMAT",
    "SIGNATURE_TYPE",
    "build_request",
    "new_submission_set",
    "signature_entry",
]


def _wrapped(tag: str, content: str, *attrs: tuple[str, str]) -> bytes:
    """An element around content already written as XML (ours: base64 or an xop:Include)."""
    return (start(tag, *attrs) + content + f"</{tag}>").encode()


# SubmissionSet contentTypeCode of a full hospitalisation; `cda.codes.content_type` gives the
# code of each kind of stay.
CONTENT_TYPE_HOSPITALISATION = codes.CONTENT_TYPES["full"]


# The codes of the signature entry, as the DMP's clients send them (IHE DSG).
SIGNATURE_CLASS = Coded(SIGNATURE_CLASS_CODE, "URN", "Digital Signature")
SIGNATURE_TYPE = Coded("E1762", "ASTM", "Full Document")
SIGNATURE_FORMAT = Coded("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style")
SIGNATURE_EVENT = Coded("1.2.840.10065.1.12.1.14", "1.2.840.10065.1.12", "Source")


def new_submission_set(
    patient_id: str,
    *,
    source_id: str,
    institution_xon: str,
    content_type: Coded = CONTENT_TYPE_HOSPITALISATION,
    author_person: str | None = None,
) -> SubmissionSet:
    """A submission set for one patient and one attempt: a fresh uniqueId and time every call."""
    return SubmissionSet(
        unique_id="2.25." + str(uuid.uuid4().int),
        source_id=source_id,
        patient_id=patient_id,
        submission_time=dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"),
        author=XdsAuthor(person=author_person, institution=institution_xon),
        content_type=content_type,
    )


def signature_entry(
    submission_set: SubmissionSet, model: DocumentEntry, signature: bytes
) -> DocumentEntry:
    """The DocumentEntry of a submission set's XAdES signature document.

    The patient, source patient and care setting are those of the set's documents (`model`);
    hidden from professionals and the patient, as the DMP's clients send it.
    """
    return DocumentEntry(
        unique_id="2.25." + str(uuid.uuid4().int),
        patient_id=submission_set.patient_id,
        source_patient_id=model.source_patient_id,
        source_patient_info=model.source_patient_info,
        title="Source",
        class_code=SIGNATURE_CLASS,
        type_code=SIGNATURE_TYPE,
        format_code=SIGNATURE_FORMAT,
        confidentiality=(codes.CONFIDENTIALITY_NORMAL, codes.MASQUE_PS, codes.INVISIBLE_PATIENT),
        event_codes=(SIGNATURE_EVENT,),
        healthcare_facility_type=model.healthcare_facility_type,
        practice_setting=model.practice_setting,
        creation_time=submission_set.submission_time,
        service_start=None,
        service_stop=None,
        author=submission_set.author,
        legal_authenticator=None,
        hash=hashlib.sha1(signature).hexdigest(),
        size=len(signature),
        language="art",
        mime_type="text/xml",
    )


def build_request(
    submission_set: SubmissionSet,
    documents: Sequence[tuple[DocumentEntry, bytes]],
    identity: VihfIdentity,
    *,
    to: str | None = None,
    use_mtom: bool = True,
    message_id: str | None = None,
    signer: Signer | None = None,
    symbolic_ids: bool = False,
    prebuilt: Mapping[str, bytes] | None = None,
) -> tuple[str, bytes]:
    """(Content-Type, body) of one Provide and Register Document Set-b call for one patient.

    `symbolic_ids` names the entries `Document01`, `Document02`… (the registry then assigns the
    entryUUIDs) instead of their stable entryUUIDs. `prebuilt`: uniqueId → the entry's
    `ebrim.extrinsic_object`, spliced in rather than built again.
    """
    if submission_set.author.person is None and identity.author_person:
        submission_set = dataclasses.replace(
            submission_set,
            author=dataclasses.replace(submission_set.author, person=identity.author_person),
        )
    entries = [entry for entry, _ in documents]
    ids = (
        [f"Document{n:02d}" for n in range(1, len(entries) + 1)]
        if symbolic_ids
        else [entry.entry_uuid for entry in entries]
    )
    payloads = [(object_id, data) for object_id, (_, data) in zip(ids, documents, strict=True)]
    signature = None
    if signer is not None and entries:
        signed = signer.sign_submission(
            submission_set.unique_id, [(entry.unique_id, data) for entry, data in documents]
        )
        signature = signature_entry(submission_set, entries[0], signed)
        payloads.append(("Signature01", signed))

    pieces = [
        f'<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="{NS["xds"]}">'.encode(),
        submit_objects_xml(
            submission_set, entries, signature=signature, ids=ids, prebuilt=prebuilt
        ),
    ]
    parts: list[tuple[str, bytes]] = []
    for n, (object_id, data) in enumerate(payloads, start=1):
        if use_mtom:
            content_id = f"doc{n}.{uuid.uuid4().hex}@dmp-backfill"
            include = empty("xop:Include", ("xmlns:xop", NS["xop"]), ("href", f"cid:{content_id}"))
            pieces.append(_wrapped("xds:Document", include, ("id", object_id)))
            parts.append((content_id, data))
        else:
            pieces.append(
                _wrapped("xds:Document", base64.b64encode(data).decode("ascii"), ("id", object_id))
            )
    pieces.append(b"</xds:ProvideAndRegisterDocumentSetRequest>")
    request = b"".join(pieces)
    issued = submission_set.submission_time
    issued_at = (
        f"{issued[:4]}-{issued[4:6]}-{issued[6:8]}T{issued[8:10]}:{issued[10:12]}:{issued[12:14]}Z"
    )
    assertion_id, patient_id = f"_{uuid.uuid4().hex}", submission_set.patient_id
    assertion: etree._Element | bytes
    if signer is None:
        assertion = assertion_xml(
            identity, patient_id, assertion_id=assertion_id, issued_at=issued_at
        )
    else:
        assertion = signer.sign_assertion(
            build_assertion(
                identity, patient_id, assertion_id=assertion_id, issued_at=issued_at,
                issuer=signer.subject_dn,
            )
        )  # fmt: skip
    envelope = build_envelope(
        request,
        action=ACTION_REQUEST,
        message_id=message_id or f"urn:uuid:{uuid.uuid4()}",
        to=to,
        security=assertion,
    )
    if not use_mtom:
        return f'application/soap+xml; charset=UTF-8; action="{ACTION_REQUEST}"', envelope
    return mtom.package(envelope, parts, action=ACTION_REQUEST)
