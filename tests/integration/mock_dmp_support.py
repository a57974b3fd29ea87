"""Helpers for talking to the mock DMP over TCP in tests: send, read the answer, variants of documents."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import httpx

from cda.build import BuiltDocument
from connectors.dmp.response import RegistryOutcome, read_response
from connectors.dmp.soap import parse_xml, read_envelope
from connectors.dmp_mock.testing import built_examples, request_for

__all__ = ["Answer", "by_patient", "post", "variant"]


@dataclasses.dataclass
class Answer:
    status: int
    outcome: RegistryOutcome | None
    text: str
    headers: httpx.Headers


def post(client: httpx.Client, url: str, documents: Sequence[BuiltDocument] | None = None, *,
         content_type: str | None = None, body: bytes | None = None, **options: object) -> Answer:  # fmt: skip
    """POST one ITI-41 request (built from `documents`, or raw) and read what comes back."""
    if documents is not None:
        content_type, body = request_for(documents, **options)  # type: ignore[arg-type]
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(url, content=body or b"", headers=headers)
    outcome = None
    if response.status_code == 200:
        outcome = read_response(read_envelope(parse_xml(response.content)).body)
    return Answer(response.status_code, outcome, response.text, response.headers)


def by_patient() -> dict[str, list[BuiltDocument]]:
    """The example documents grouped by patient (ipp)."""
    groups: dict[str, list[BuiltDocument]] = {}
    for document in built_examples():
        groups.setdefault(document.entry.source_patient_id.split("^")[0], []).append(document)
    return groups


def variant(document: BuiltDocument, marker: bytes = b"<!-- v -->") -> BuiltDocument:
    """Other bytes under the same uniqueId, with metadata telling the truth about them."""
    xml = document.xml.replace(b"?>", b"?>" + marker, 1)
    entry = dataclasses.replace(document.entry, hash=hashlib.sha1(xml).hexdigest(), size=len(xml))
    return dataclasses.replace(document, xml=xml, sha1=entry.hash, size=entry.size, entry=entry)
