"""The establishment's signatures on what it sends to the DMP, and their verification.

Two signatures, both RSA-SHA256 with the establishment's signing certificate ("ORG SIGN" of
IGC-Santé in production, a throwaway test PKI here), made and checked with signxml:

* the VIHF assertion, enveloped XML-DSig over the assertion by its `ID`, exclusive
  canonicalisation (the assertion travels inside a SOAP header, whose namespaces must not count);
* the submission set, a XAdES signature document sent as one more DocumentEntry of the set (the
  DMP's "signature" entry, tied to the set by a `signs` association). What it signs is a manifest
  naming the submission set's uniqueId and, for each document, its uniqueId and SHA-256 digest,
  in the manner of IHE DSG: a byte changed in a document, or a document added or removed, breaks it.

Verification trusts only a configured CA file: the certificate embedded in a signature must chain
to it, and only what the signature's own references cover is read back (no signature wrapping).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    SignatureConfiguration,
    SignatureConstructionMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.exceptions import InvalidInput, SignXMLException
from signxml.xades import XAdESSigner, XAdESVerifier

from connectors.dmp.errors import SignatureProblem, SigningMaterialError
from connectors.dmp.vocabulary import NS

__all__ = [
    "MANIFEST_NS",
    "SignedManifest",
    "Signer",
    "document_digest",
    "verify_assertion",
    "verify_submission_signature",
]

_DS = "http://www.w3.org/2000/09/xmldsig#"
_SAML = f"{{{NS['saml']}}}"
MANIFEST_NS = "urn:dmp-backfill:submission-set-signature:1"
_M = f"{{{MANIFEST_NS}}}"
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def document_digest(data: bytes) -> str:
    """SHA-256 of a document's bytes, base64, as the manifest carries it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _subject_dn(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


@dataclass(frozen=True)
class Signer:
    """The establishment's signing key and certificate (and the chain that goes with it)."""

    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path, password: bytes | None = None) -> Signer:
        """Load a PEM certificate (its chain may follow it in the file) and its RSA key."""
        try:
            certificates = x509.load_pem_x509_certificates(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise SigningMaterialError(
                f"{cert_file}: not a readable PEM certificate ({exc})"
            ) from None
        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=password)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningMaterialError(
                f"{key_file}: not a readable PEM private key ({exc})"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SigningMaterialError(f"{key_file}: the DMP's signatures are RSA; this key is not")
        leaf = certificates[0]
        if leaf.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            raise SigningMaterialError(f"{key_file} is not the key of the certificate {cert_file}")
        return cls(key, leaf, tuple(certificates[1:]))

    @property
    def subject_dn(self) -> str:
        """The certificate's subject DN (RFC 4514), the VIHF's Issuer."""
        return _subject_dn(self.certificate)

    def _certs(self) -> list[x509.Certificate]:
        return [self.certificate, *self.chain]

    def sign_assertion(self, assertion: etree._Element) -> etree._Element:
        """The assertion with its enveloped signature placed after the Issuer (SAML's order)."""
        placeholder = etree.Element(f"{{{_DS}}}Signature", nsmap={"ds": _DS}, Id="placeholder")
        issuer = assertion.find(_SAML + "Issuer")
        if issuer is None:
            raise SignatureProblem("the assertion has no Issuer to place its signature after")
        issuer.addnext(placeholder)
        signer = XMLSigner(c14n_algorithm=_EXC_C14N)
        return signer.sign(
            assertion,
            key=self.key,
            cert=self._certs(),
            reference_uri=f"#{assertion.get('ID')}",
            id_attribute="ID",
        )

    def sign_submission(
        self, submission_set_unique_id: str, documents: Sequence[tuple[str, bytes]]
    ) -> bytes:
        """The XAdES signature document of a submission set: (uniqueId, bytes) of each document."""
        manifest = etree.Element(
            _M + "SubmissionSetManifest",
            nsmap={"m": MANIFEST_NS},
            submissionSetUniqueId=submission_set_unique_id,
        )
        for unique_id, data in documents:
            etree.SubElement(
                manifest,
                _M + "Document",
                uniqueId=unique_id,
                digestAlgorithm="http://www.w3.org/2001/04/xmlenc#sha256",
                digest=document_digest(data),
            )
        signature = XAdESSigner(method=SignatureConstructionMethod.enveloping).sign(
            manifest, key=self.key, cert=self._certs()
        )
        return etree.tostring(signature, xml_declaration=True, encoding="UTF-8")


def _signing_certificate(signature: etree._Element, key_pem: bytes) -> x509.Certificate:
    for text in signature.iterfind(f".//{{{_DS}}}X509Certificate"):
        der = base64.b64decode("".join((text.text or "").split()))
        certificate = x509.load_der_x509_certificate(der)
        public = certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public == key_pem:
            return certificate
    raise SignatureProblem("the signature names no certificate for the key that made it")


def verify_assertion(assertion: etree._Element, trust_ca: Path) -> x509.Certificate:
    """Check the VIHF's signature against the CA; the signing certificate, or SignatureProblem."""
    if assertion.find(f"{{{_DS}}}Signature") is None:
        raise SignatureProblem("the VIHF assertion is not signed")
    try:
        result = XMLVerifier().verify(
            assertion,
            ca_pem_file=str(trust_ca),
            id_attribute="ID",
            expect_config=SignatureConfiguration(location="./"),
        )
    except (SignXMLException, InvalidInput, ValueError) as exc:
        raise SignatureProblem(f"the VIHF signature does not verify: {exc}") from None
    signed = result.signed_xml  # type: ignore[union-attr]
    if (
        signed is None
        or signed.tag != _SAML + "Assertion"
        or signed.get("ID") != assertion.get("ID")
    ):
        # The reference must cover the assertion itself, not some other element.
        raise SignatureProblem("the VIHF signature does not cover the assertion")
    return _signing_certificate(result.signature_xml, result.signature_key)  # type: ignore[union-attr]


@dataclass(frozen=True)
class SignedManifest:
    """What a verified submission-set signature vouches for."""

    submission_set_unique_id: str
    digests: Mapping[str, str]
    """Document uniqueId → SHA-256 (base64) of its bytes."""
    certificate: x509.Certificate


def verify_submission_signature(data: bytes, trust_ca: Path) -> SignedManifest:
    """Check a submission set's XAdES document against the CA and read the manifest it signs."""
    try:
        results = XAdESVerifier().verify(data, ca_pem_file=str(trust_ca), parser=_PARSER)
    except (SignXMLException, InvalidInput, ValueError, etree.XMLSyntaxError) as exc:
        raise SignatureProblem(f"the submission set's signature does not verify: {exc}") from None
    manifests = [
        r.signed_xml
        for r in results
        if r.signed_xml is not None
        and (r.signed_xml.tag == _M + "SubmissionSetManifest" or (len(r.signed_xml)
             and r.signed_xml[0].tag == _M + "SubmissionSetManifest"))
    ]  # fmt: skip
    if len(manifests) != 1:
        raise SignatureProblem("the submission set's signature signs no manifest")
    manifest = manifests[0]
    if manifest.tag != _M + "SubmissionSetManifest":
        manifest = manifest[0]
    digests: dict[str, str] = {}
    for document in manifest.iterfind(_M + "Document"):
        digests[document.get("uniqueId", "")] = document.get("digest", "")
    return SignedManifest(
        manifest.get("submissionSetUniqueId", ""),
        digests,
        _signing_certificate(results[0].signature_xml, results[0].signature_key),
    )
