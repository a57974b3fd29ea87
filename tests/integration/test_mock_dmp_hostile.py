"""Hostile and broken requests to the mock DMP over TCP: a precise refusal, and it keeps serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.dmp import mtom
from connectors.dmp.vocabulary import ACTION_REQUEST
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import request_for, with_entry
from tests.integration.mock_dmp_support import by_patient, post

DOCUMENTS = by_patient()["IPP000456"]
SOAP = f'application/soap+xml; charset=UTF-8; action="{ACTION_REQUEST}"'


@pytest.fixture(scope="module")
def mock():
    with MockServer(MockConfig(max_body_bytes=1024 * 1024)) as server:
        yield server


@pytest.fixture
def client(mock):
    with httpx.Client(base_url=mock.base_url, timeout=30) as http:
        http.post("/_mock/reset")
        yield http


def still_serving(client: httpx.Client, url: str) -> None:
    client.post("/_mock/reset")
    assert post(client, url, DOCUMENTS).outcome.success


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        f"<soap:Header><wsa:Action>{ACTION_REQUEST}</wsa:Action></soap:Header>"
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
    b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><a>&x;</a></soap:Body></soap:Envelope>'
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
    ) + b']><l>&i;</l>'
)  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "body", "status", "words"),
    [
        (SOAP, b"<soap:Envelope", 400, "not well-formed"),
        (SOAP, XXE, 400, "document type declaration"),
        (SOAP, LAUGHS, 400, "document type declaration"),
        ("text/plain", b"hello", 400, "neither multipart/related"),
        (None, b"hello", 400, "no Content-Type"),
        (SOAP, _envelope("<a/>"), 403, "VIHF"),
        (SOAP, b"<x/>", 400, "not a SOAP 1.2 Envelope"),
        ('multipart/related; boundary="zz"; start="<root>"',
         b"--zz\r\nContent-Type: application/octet-stream\r\nContent-ID: <p1>\r\n\r\nabc\r\n--zz--\r\n", 400, "no root part"),
        ('multipart/related; boundary="zz"', b"--zz\r\nContent-Type: application/xop+xml\r\n\r\n<a/>", 400, "truncated"),
    ],
    ids=["truncated-xml", "xxe", "entity-expansion", "wrong-type", "no-type", "no-vihf", "not-soap",
         "no-root-part", "no-closing-boundary"],
)  # fmt: skip
def test_broken_messages_get_a_soap_fault(client, mock, content_type, body, status, words) -> None:
    answer = post(client, mock.repository_url, content_type=content_type, body=body)
    assert answer.status == status
    assert "Fault" in answer.text
    assert words in answer.text
    # The XXE payload names /etc/hostname: its content must never come back.
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    assert not hostname or hostname not in answer.text
    still_serving(client, mock.repository_url)


def test_a_body_over_the_limit_is_refused_early(client, mock) -> None:
    huge = b"x" * (2 * 1024 * 1024)
    answer = post(client, mock.repository_url, content_type=SOAP, body=huge)
    assert answer.status == 413

    def chunks():  # no Content-Length: the limit is counted on the stream
        for _ in range(64):
            yield b"y" * 65536

    streamed = client.post(mock.repository_url, content=chunks(), headers={"content-type": SOAP})
    assert streamed.status_code == 413
    still_serving(client, mock.repository_url)


def test_a_document_part_without_metadata_and_metadata_without_document(client, mock) -> None:
    content_type, body = request_for(DOCUMENTS)
    message = mtom.unpack(content_type, body)
    # Metadata whose xds:Document points to a part that is not there.
    (cid,) = message.parts
    missing_part = post(
        client,
        mock.repository_url,
        content_type=content_type,
        body=body.replace(f"Content-ID: <{cid}>".encode(), b"Content-ID: <other@x>"),
    )
    assert missing_part.outcome.codes == ("XDSMissingDocument",)
    # A document with no ExtrinsicObject of its id.
    entry_id = DOCUMENTS[0].entry.entry_uuid.encode()
    orphan = body.replace(
        b'<xds:Document id="' + entry_id,
        b'<xds:Document id="urn:uuid:00000000-0000-4000-8000-00000000abcd',
        1,
    )
    answer = post(client, mock.repository_url, content_type=content_type, body=orphan)
    assert set(answer.outcome.codes) == {"XDSMissingDocumentMetadata", "XDSMissingDocument"}
    still_serving(client, mock.repository_url)


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
_FIELDS = {
    "title": _TEXT,
    "creation_time": _TEXT,
    "source_patient_id": _TEXT,
    "hash": _TEXT,
    "size": st.integers(min_value=-5, max_value=10**12),
    "legal_authenticator": st.none() | _TEXT,
    "language": _TEXT,
    "mime_type": _TEXT,
    "patient_id": _TEXT,
    "service_start": st.none() | _TEXT,
}


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(st.dictionaries(st.sampled_from(sorted(_FIELDS)), st.none(), min_size=1, max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: _FIELDS[k] for k in keys})
))  # fmt: skip
def test_fuzzed_metadata_never_breaks_the_server(client, mock, changes) -> None:
    """Random values in the DocumentEntry: a RegistryResponse or a 4xx fault, never a 500."""
    try:
        document = with_entry(DOCUMENTS[0], **changes)
        content_type, body = request_for([document], use_mtom=bool(len(changes) % 2))
    except ValueError:
        return  # lxml refuses to even write such text (control characters): nothing to send
    response = client.post(
        mock.repository_url, content=body, headers={"content-type": content_type}
    )
    assert response.status_code in (200, 400, 403, 413), response.text[:300]
    if response.status_code == 200:
        assert b"RegistryResponse" in response.content
    client.post("/_mock/reset")
    assert post(client, mock.repository_url, DOCUMENTS).outcome.success


def test_the_control_plane_refuses_remote_clients() -> None:
    """Only loopback clients may drive the mock: a call from another address gets 403."""
    import asyncio

    from connectors.dmp_mock.app import create_app

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=create_app(MockConfig()), client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as remote:
            return [
                (await remote.request(method, path)).status_code
                for method, path in [("PUT", "/_mock/patients"), ("POST", "/_mock/faults"),
                                     ("GET", "/_mock/documents"), ("GET", "/_mock/stats"), ("POST", "/_mock/reset")]
            ]  # fmt: skip

    assert asyncio.run(calls()) == [403] * 5
