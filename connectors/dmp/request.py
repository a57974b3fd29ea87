"""A whole ITI-41 request: metadata, documents, VIHF, envelope, MTOM or inline packaging."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Sequence

from lxml import etree

from cda.metadata import Coded, DocumentEntry, SubmissionSet, XdsAuthor
from connectors.dmp import mtom
from connectors.dmp.ebrim import submit_objects
from connectors.dmp.soap import build_envelope
from connectors.dmp.vihf import VihfIdentity, build_assertion
from connectors.dmp.vocabulary import ACTION_REQUEST, NS

__all__ = ["CONTENT_TYPE_HOSPITALISATION", "build_request", "new_submission_set"]

_XDS = f"{{{NS['xds']}}}"
_XOP = f"{{{NS['xop']}}}"


# SubmissionSet contentTypeCode (JDV_J59): documents of a hospital stay.
CONTENT_TYPE_HOSPITALISATION = Coded("03", "1.2.250.1.213.2.2", "Hospitalisation complète")


def new_submission_set(
    patient_id: str,
    *,
    source_id: str,
    institution_xon: str,
    content_type: Coded = CONTENT_TYPE_HOSPITALISATION,
) -> SubmissionSet:
    """A submission set for one patient and one attempt: a fresh uniqueId and time every call."""
    return SubmissionSet(
        unique_id="2.25." + str(uuid.uuid4().int),
        source_id=source_id,
        patient_id=patient_id,
        submission_time=dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"),
        author=XdsAuthor(person=None, institution=institution_xon),
        content_type=content_type,
    )


def build_request(
    submission_set: SubmissionSet,
    documents: Sequence[tuple[DocumentEntry, bytes]],
    identity: VihfIdentity,
    *,
    to: str | None = None,
    use_mtom: bool = True,
    message_id: str | None = None,
) -> tuple[str, bytes]:
    """(Content-Type, body) of one Provide and Register Document Set-b call for one patient."""
    request = etree.Element(_XDS + "ProvideAndRegisterDocumentSetRequest", nsmap={"xds": NS["xds"]})
    request.append(submit_objects(submission_set, [entry for entry, _ in documents]))
    parts: list[tuple[str, bytes]] = []
    for n, (entry, data) in enumerate(documents, start=1):
        document = etree.SubElement(request, _XDS + "Document", id=entry.entry_uuid)
        if use_mtom:
            content_id = f"doc{n}.{uuid.uuid4().hex}@dmp-backfill"
            etree.SubElement(
                document, _XOP + "Include", nsmap={"xop": NS["xop"]}, href=f"cid:{content_id}"
            )
            parts.append((content_id, data))
        else:
            document.text = base64.b64encode(data).decode("ascii")
    issued = submission_set.submission_time
    assertion = build_assertion(
        identity,
        submission_set.patient_id,
        assertion_id=f"_{uuid.uuid4().hex}",
        issued_at=f"{issued[:4]}-{issued[4:6]}-{issued[6:8]}T{issued[8:10]}:{issued[10:12]}:{issued[12:14]}Z",
    )
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
