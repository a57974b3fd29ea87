"""The ITI-41 wire layer: what we write validates against the official XSD and reads back the same."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from cda.build import build_document
from cda.examples import ESTABLISHMENT
from cda.metadata import entry_uuid_for
from connectors.dmp import mtom
from connectors.dmp.ebrim import extrinsic_object, parse_submit_objects, submit_objects
from connectors.dmp.errors import MalformedMessage, MetadataProblem
from connectors.dmp.request import new_submission_set
from connectors.dmp.response import RegistryError, build_response, read_response
from connectors.dmp.schema import request_errors, response_errors
from connectors.dmp.soap import build_fault, parse_xml, read_envelope, read_fault
from connectors.dmp.vihf import RESOURCE_ID, read_attributes
from connectors.dmp.vocabulary import ACTION_REQUEST, NS, XDS
from connectors.dmp_mock.testing import built_examples, request_for
from tests.unit.cda_strategies import documents as document_inputs
from tests.unit.cda_strategies import patients


@pytest.fixture(scope="module")
def documents():
    """The example documents of the patient who has several (incl. a replacement version)."""
    built = built_examples()
    first = built[0].entry.patient_id
    return [d for d in built if d.entry.patient_id == first]


@pytest.mark.parametrize("use_mtom", [True, False], ids=["mtom", "inline"])
def test_a_request_validates_and_reads_back(documents, specs, use_mtom: bool) -> None:
    content_type, body = request_for(documents, use_mtom=use_mtom)
    assert content_type.startswith("multipart/related" if use_mtom else "application/soap+xml")
    message = mtom.unpack(content_type, body)
    envelope = read_envelope(parse_xml(message.root))
    assert envelope.action == ACTION_REQUEST
    assert request_errors(envelope.body) == []
    parsed = parse_submit_objects(envelope.body[0])
    # An RPLC names the replaced entry by entryUUID, so `replaces` reads back as that association.
    assert list(parsed.entries.values()) == [
        dataclasses.replace(d.entry, replaces=None) for d in documents
    ]
    assert sorted(parsed.replacements.values()) == sorted(
        entry_uuid_for(d.entry.replaces) for d in documents if d.entry.replaces
    )
    assert parsed.submission_set.patient_id == documents[0].entry.patient_id
    replacing = [d for d in documents if d.entry.replaces]
    assert len(parsed.replacements) == len(replacing)
    vihf = read_attributes(envelope.security)
    assert vihf[RESOURCE_ID] == documents[0].entry.patient_id
    assert vihf["Identifiant_Structure"].startswith("1")
    if use_mtom:
        assert sorted(message.parts.values()) == sorted(d.xml for d in documents)


@settings(max_examples=30, deadline=None)
@given(
    patient=patients(),
    inputs=st.lists(document_inputs(), min_size=1, max_size=3, unique_by=lambda d: d.document_id),
    spliced=st.lists(st.booleans(), min_size=3, max_size=3),
    replacing=st.booleans(),
)
def test_metadata_made_in_the_build_workers_is_the_metadata_built_here(
    patient, inputs, spliced: list[bool], replacing: bool
) -> None:
    """The sender's workers make each entry's ExtrinsicObject; spliced into a request it gives
    the bytes the request would have built itself, whichever entries come prebuilt, an RPLC
    (an association, made per attempt) included."""
    entries = [build_document(d, patient, ESTABLISHMENT, xsd_check=False).entry for d in inputs]
    if replacing:
        entries[0] = dataclasses.replace(entries[0], replaces_entry_uuid="urn:uuid:" + "1" * 32)
    prebuilt = {
        e.unique_id: extrinsic_object(e)
        for e, yes in zip(entries, spliced[: len(entries)], strict=True)
        if yes
    }
    submission_set = new_submission_set(
        entries[0].patient_id, source_id="1.2.250.1.999", institution_xon="X^^^^^^^^^1.2.250.1.71"
    )
    plain = etree.tostring(submit_objects(submission_set, entries))
    assert etree.tostring(submit_objects(submission_set, entries, prebuilt=prebuilt)) == plain
    # Under symbolic ids the fragments (made under entryUUIDs) are not taken.
    symbolic = [f"Document{n:02d}" for n in range(1, len(entries) + 1)]
    assert etree.tostring(
        submit_objects(submission_set, entries, ids=symbolic, prebuilt=prebuilt)
    ) == etree.tostring(submit_objects(submission_set, entries, ids=symbolic))


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=5))
def test_mtom_parts_survive_any_bytes(payloads: list[bytes]) -> None:
    """Binary parts come back byte for byte, CR/LF and dashes included."""
    tricky = [p + b"\r\n--" + p for p in payloads]
    parts = [(f"p{n}@test", data) for n, data in enumerate(tricky)]
    content_type, body = mtom.package(b"<root/>", parts, action=ACTION_REQUEST)
    message = mtom.unpack(content_type, body)
    assert message.root == b"<root/>"
    assert message.parts == dict(parts)


def test_mtom_written_by_the_stdlib_email_package_is_read() -> None:
    """A multipart/related message composed by `email`, not by our packer, unpacks byte for byte.

    (`email` rewrites bare line ends in binary parts, so these payloads carry none; the property
    test above covers CR/LF through our own packer.)
    """
    from email import encoders
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart
    from email.policy import HTTP

    payloads = {
        f"doc{n}@hospital.example": bytes(b for b in range(256) if b not in (10, 13)) * (n + 1)
        for n in range(3)
    }
    message = MIMEMultipart(
        "related", type="application/xop+xml", start="<root@hospital.example>",
        **{"start-info": "application/soap+xml"},
    )  # fmt: skip
    root = MIMEApplication(b"<root/>", "xop+xml", _encoder=encoders.encode_noop)
    root.set_param("type", "application/soap+xml")
    root["Content-ID"] = "<root@hospital.example>"
    message.attach(root)
    for content_id, data in payloads.items():
        part = MIMEApplication(data, "octet-stream", _encoder=encoders.encode_noop)
        part["Content-Transfer-Encoding"] = "binary"
        part["Content-ID"] = f"<{content_id}>"
        message.attach(part)
    _headers, _, body = message.as_bytes(policy=HTTP).partition(b"\r\n\r\n")
    unpacked = mtom.unpack(message["Content-Type"], body)
    assert unpacked.root == b"<root/>"
    assert unpacked.parts == payloads


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (None, b"x", "no Content-Type"),
        ("text/plain", b"x", "neither multipart/related"),
        ("multipart/related", b"x", "without a boundary"),
        ('multipart/related; boundary="b"', b"--b\r\nContent-ID: <a>\r\n\r\nx\r\n", "truncated"),
        (
            'multipart/related; boundary="b"; start="<root>"',
            b"--b\r\nContent-Type: application/octet-stream\r\nContent-ID: <a>\r\n\r\nx\r\n--b--\r\n",
            "no root part",
        ),
    ],
)
def test_broken_multipart_is_named(content_type, body: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        mtom.unpack(content_type, body)


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>',
        b"<unclosed>",
        b"",
    ],
    ids=["xxe", "entity-expansion", "not-well-formed", "empty"],
)
def test_hostile_xml_is_refused(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_xml(payload)


def test_responses_validate_and_read_back(specs) -> None:
    ok = build_response()
    assert response_errors(ok) == []
    assert read_response(ok).success
    failure = build_response(
        [RegistryError("XDSUnknownPatientId", "MOCK:NO_DMP", "SubmissionSet01"),
         RegistryError("XDSExtraMetadataNotSaved", "slot x", severity=XDS.WARNING)]
    )  # fmt: skip
    assert response_errors(failure) == []
    outcome = read_response(failure)
    assert not outcome.success
    assert outcome.codes == ("XDSUnknownPatientId",)
    # Warnings alone keep a Success.
    assert read_response(
        build_response([RegistryError("XDSExtraMetadataNotSaved", "w", severity=XDS.WARNING)])
    ).success


def test_a_fault_says_its_code_subcode_and_reason() -> None:
    """What a client acts on: Code and Subcode as namespace-resolved QNames, and the reason."""
    fault = read_fault(
        read_envelope(
            parse_xml(build_fault("Sender", "no VIHF", subcode="wsse:InvalidSecurity"))
        ).body
    )
    assert fault is not None
    assert fault.codes == ((NS["soap"], "Sender"), (NS["wsse"], "InvalidSecurity"))
    assert fault.reason == "no VIHF"
    receiver = read_fault(read_envelope(parse_xml(build_fault("Receiver", "oops"))).body)
    assert receiver is not None
    assert receiver.codes == ((NS["soap"], "Receiver"),)


def _body(documents) -> etree._Element:
    content_type, body = request_for(documents, use_mtom=False)
    return read_envelope(parse_xml(mtom.unpack(content_type, body).root)).body


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.find(".//{*}ExtrinsicObject").attrib.pop("objectType"), "objectType"),
        (lambda r: r.find(".//{*}Association").set("associationType", "HasMember"), "full URNs"),
        (
            lambda r: (
                r.find(".//{*}ExtrinsicObject/{*}Slot[@name='hash']")
                .getparent()
                .remove(r.find(".//{*}ExtrinsicObject/{*}Slot[@name='hash']"))
            ),
            "slot hash is missing",
        ),
        (
            lambda r: [
                c.getparent().remove(c)
                for c in r.findall(".//{*}Classification[@classificationNode]")
            ],
            "0 submission sets",
        ),
    ],
    ids=["no-object-type", "short-association", "no-hash", "unlabelled-set"],
)
def test_metadata_the_schema_lets_through_are_caught(documents, mutate, message: str) -> None:
    """What the XSD cannot see (objectType, full URNs, required slots) is a MetadataProblem."""
    body = _body(documents)
    mutate(body)
    with pytest.raises(MetadataProblem, match=message) as caught:
        parse_submit_objects(body[0])
    assert caught.value.code == "XDSRegistryMetadataError"
