"""Signed requests: the VIHF and the submission set verify with signxml against the test CA, and
stop verifying once one byte of what they sign changes."""

from __future__ import annotations

import pytest
from lxml import etree

from connectors.dmp import mtom
from connectors.dmp.ebrim import SIGNATURE_ID, parse_submit_objects
from connectors.dmp.errors import SignatureProblem
from connectors.dmp.schema import request_errors
from connectors.dmp.signing import (
    Signer,
    document_digest,
    verify_assertion,
    verify_submission_signature,
)
from connectors.dmp.soap import parse_xml, read_envelope
from connectors.dmp.vihf import read_vihf
from connectors.dmp_mock.checks import document_payloads
from connectors.dmp_mock.pki import make_test_pki
from connectors.dmp_mock.testing import built_examples, request_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signed(pki):
    documents = built_examples(patient="IPP000123")[:2]
    signer = Signer.from_files(pki.signing_cert, pki.signing_key)
    content_type, body = request_for(documents, signer=signer)
    message = mtom.unpack(content_type, body)
    envelope = read_envelope(parse_xml(message.root))
    return documents, signer, envelope, document_payloads(envelope.body, message.parts)


def test_a_signed_request_still_validates_against_the_xds_schema(signed, specs) -> None:
    _, _, envelope, _ = signed
    assert request_errors(envelope.body) == []


def test_the_vihf_signature_verifies_and_its_issuer_is_the_certificate(signed, pki) -> None:
    _, signer, envelope, _ = signed
    vihf = read_vihf(envelope.security)
    certificate = verify_assertion(vihf.assertion, pki.ca)
    assert vihf.issuer == certificate.subject.rfc4514_string() == signer.subject_dn


def test_a_changed_byte_of_the_vihf_breaks_its_signature(signed, pki) -> None:
    _, _, envelope, _ = signed
    assertion = etree.fromstring(etree.tostring(read_vihf(envelope.security).assertion))
    resource = next(v for v in assertion.iter() if (v.text or "").endswith("&ISO^NH"))
    resource.text = resource.text.replace("1", "2", 1)
    with pytest.raises(SignatureProblem):
        verify_assertion(assertion, pki.ca)


def test_another_ca_is_not_trusted(signed, pki) -> None:
    _, _, envelope, _ = signed
    with pytest.raises(SignatureProblem):
        verify_assertion(read_vihf(envelope.security).assertion, pki.rogue_ca)


def test_the_submission_set_signature_covers_each_document(signed, pki) -> None:
    documents, _, envelope, payloads = signed
    parsed = parse_submit_objects(envelope.body[0])
    assert set(parsed.signatures) == {SIGNATURE_ID}
    assert parsed.signs == {SIGNATURE_ID}
    manifest = verify_submission_signature(payloads[SIGNATURE_ID], pki.ca)
    assert manifest.submission_set_unique_id == parsed.submission_set.unique_id
    assert dict(manifest.digests) == {d.unique_id: document_digest(d.xml) for d in documents}


def test_a_changed_byte_of_the_signed_manifest_breaks_the_xades(signed, pki) -> None:
    _, _, _, payloads = signed
    data = payloads[SIGNATURE_ID]
    at = data.index(b'digest="') + len(b'digest="')
    tampered = data[:at] + (b"A" if data[at : at + 1] != b"A" else b"B") + data[at + 1 :]
    with pytest.raises(SignatureProblem):
        verify_submission_signature(tampered, pki.ca)
