"""The mock DMP over TCP refuses a VIHF of the wrong shape, and — given `--trust-ca` — a request
whose VIHF or submission set is unsigned, signed under another CA, or changed after signing,
each with the DMP's authentication fault (SOAP Sender fault, wsse:FailedAuthentication, 403)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from lxml import etree

from connectors.dmp.signing import Signer
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.pki import make_test_pki
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import request_for
from tests.integration.mock_dmp_support import by_patient, post

CAMILLE = [d for d in by_patient()["IPP000123"] if not d.entry.replaces][:2]
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signer(pki) -> Signer:
    return Signer.from_files(pki.signing_cert, pki.signing_key)


@pytest.fixture(scope="module")
def plain():
    with MockServer(MockConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def trusting(pki):
    with MockServer(MockConfig(trust_ca=pki.ca)) as server:
        yield server


def reset(server) -> httpx.Client:
    http = httpx.Client(base_url=server.base_url, timeout=20)
    http.post("/_mock/reset")
    return http


def refused(answer, words: str) -> None:
    assert answer.status == 403, answer.text
    assert "FailedAuthentication" in answer.text
    assert words in answer.text


def mutated(documents, change, **options) -> tuple[str, bytes]:
    """An inline (non-MTOM) request whose assertion `change` edits in place."""
    _, body = request_for(documents, use_mtom=False, **options)
    root = etree.fromstring(body)
    change(root.find(f".//{SAML}Assertion"))
    return (
        'application/soap+xml; charset=UTF-8; action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"',
        etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
    )


def _drop(path: str):
    def change(assertion):
        found = assertion.find(path)
        found.getparent().remove(found)

    return change


def _attribute_text(name: str, text: str):
    def change(assertion):
        for attribute in assertion.iter(f"{SAML}Attribute"):
            if attribute.get("Name") == name:
                value = attribute.find(f"{SAML}AttributeValue")
                for child in list(value):
                    value.remove(child)
                value.text = text

    return change


def _issuer_format(assertion) -> None:
    del assertion.find(f"{SAML}Issuer").attrib["Format"]


@pytest.mark.parametrize(
    ("change", "words"),
    [(_issuer_format, "X509SubjectName"),
     (_drop(f"{SAML}Subject"), "NameID"),
     (_drop(f"{SAML}AuthnStatement"), "AuthnStatement"),
     (_attribute_text("urn:oasis:names:tc:xacml:2.0:subject:role", "AUTOMATE^1.2.250.1.213.1.1.4.6"), "role"),
     (_attribute_text("urn:oasis:names:tc:xspa:1.0:subject:purposeofuse", "normal^1.2.250.1.213.1.1.4.248"), "purposeofuse"),
     (_attribute_text("Secteur_Activite", "SA41^1.2.250.1.71.4.2.4"), "Secteur_Activite")],
    ids=["issuer-format", "no-nameid", "no-authn", "role-as-text", "purpose-as-text", "sector"],
)  # fmt: skip
def test_a_vihf_of_the_wrong_shape_is_an_authentication_fault(plain, change, words) -> None:
    http = reset(plain)
    content_type, body = mutated(CAMILLE, change)
    refused(post(http, plain.repository_url, content_type=content_type, body=body), words)


def test_without_a_trusted_ca_an_unsigned_request_is_accepted(plain) -> None:
    assert post(reset(plain), plain.repository_url, CAMILLE).outcome.success


def test_a_signed_request_is_accepted_by_a_mock_that_trusts_its_ca(trusting, signer) -> None:
    assert post(reset(trusting), trusting.repository_url, CAMILLE, signer=signer).outcome.success


def test_an_unsigned_request_is_refused_when_signatures_are_required(trusting) -> None:
    refused(post(reset(trusting), trusting.repository_url, CAMILLE), "not signed")


def test_a_signature_under_another_ca_is_refused(trusting, pki, tmp_path) -> None:
    other = make_test_pki(tmp_path)  # same names, another CA
    rogue = Signer.from_files(other.signing_cert, other.signing_key)
    refused(
        post(reset(trusting), trusting.repository_url, CAMILLE, signer=rogue), "does not verify"
    )


def test_a_document_changed_after_signing_is_refused(trusting, signer) -> None:
    first = CAMILLE[0]
    changed = first.xml.replace(b"<title>", b"<title>X", 1)
    # The metadata tell the truth about the new bytes; only the signature does not.
    import hashlib

    entry = dataclasses.replace(
        first.entry, hash=hashlib.sha1(changed).hexdigest(), size=len(changed)
    )
    content_type, body = request_for(
        [dataclasses.replace(first, entry=entry), CAMILLE[1]], signer=signer
    )
    # Re-sign nothing: swap the bytes after the signature was made.
    body = body.replace(first.xml, changed, 1)
    answer = post(reset(trusting), trusting.repository_url, content_type=content_type, body=body)
    refused(answer, "does not cover exactly")
