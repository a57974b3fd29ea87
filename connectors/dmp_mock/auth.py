"""What the mock checks of the VIHF and the signatures, as the DMP does in indirect mode.

Always: the assertion's shape (Issuer in X509SubjectName format, a NameID, an AuthnStatement,
the role and purpose of use as HL7v3 coded values, Secteur_Activite equal to the documents'
healthcareFacilityTypeCode). With a trusted CA (`--trust-ca`): the assertion is signed by a
certificate of that CA whose subject is the Issuer and names the Identifiant_Structure (OU), and
the submission set carries a XAdES signature entry, tied by `signs`, that the same CA vouches for
and whose manifest names this set and the exact bytes of each of its documents. Each failure is
the DMP's authentication fault (a SOAP Sender fault, `wsse:FailedAuthentication`); none touches
storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography.x509.oid import NameOID

from connectors.dmp.ebrim import ParsedSubmission
from connectors.dmp.errors import SignatureProblem
from connectors.dmp.signing import document_digest, verify_assertion, verify_submission_signature
from connectors.dmp.vihf import (
    FACILITY_TYPE_SCHEME,
    PURPOSE,
    PURPOSE_NORMAL,
    ROLE,
    ROLE_AUTOMATE,
    X509_SUBJECT_NAME,
    Vihf,
)

__all__ = ["authentication_problem"]


def _shape(vihf: Vihf, parsed: ParsedSubmission) -> str | None:
    if not vihf.issuer or vihf.issuer_format != X509_SUBJECT_NAME:
        return (
            "the VIHF Issuer must be the signing certificate's subject DN (format X509SubjectName)"
        )
    if not vihf.name_id:
        return "the VIHF names no person responsible (Subject/NameID)"
    if not vihf.has_authn_statement:
        return "the VIHF has no AuthnStatement"
    for name, expected, what in (
        (ROLE, ROLE_AUTOMATE, "role"),
        (PURPOSE, PURPOSE_NORMAL, "purposeofuse"),
    ):
        found = vihf.coded.get(name)
        if found is None or (found.code, found.scheme) != (expected.code, expected.scheme):
            return f"the VIHF {what} must be the HL7v3 coded value {expected.code} of {expected.scheme}"
    sector, _, scheme = vihf.attributes.get("Secteur_Activite", "").partition("^")
    facilities = {e.healthcare_facility_type.code for e in parsed.entries.values()}
    if scheme != FACILITY_TYPE_SCHEME or facilities - {sector}:
        return (
            f"the VIHF Secteur_Activite {sector or '(none)'} is not the establishment's "
            f"facility type ({', '.join(sorted(facilities))})"
        )
    return None


def _signatures(
    vihf: Vihf, parsed: ParsedSubmission, payloads: Mapping[str, bytes | None], trust_ca: Path
) -> str | None:
    try:
        certificate = verify_assertion(vihf.assertion, trust_ca)
    except SignatureProblem as exc:
        return str(exc)
    if vihf.issuer != certificate.subject.rfc4514_string():
        return "the VIHF Issuer is not the subject of the certificate that signed it"
    units = {
        a.value
        for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    }
    if vihf.attributes.get("Identifiant_Structure") not in units:
        return "the VIHF Identifiant_Structure is not the structure of the signing certificate"
    signers = [s for s in parsed.signatures if s in parsed.signs]
    if len(signers) != 1 or len(parsed.signatures) != 1:
        return "the submission set is not signed (one signature entry with a `signs` association)"
    try:
        manifest = verify_submission_signature(payloads[signers[0]] or b"", trust_ca)
    except SignatureProblem as exc:
        return str(exc)
    if manifest.certificate.subject != certificate.subject:
        return "the submission set is not signed by the structure the VIHF names"
    if manifest.submission_set_unique_id != parsed.submission_set.unique_id:
        return "the submission set's signature is for another submission set"
    expected = {
        entry.unique_id: document_digest(payloads[entry_id] or b"")
        for entry_id, entry in parsed.entries.items()
    }
    if dict(manifest.digests) != expected:
        return "the submission set's signature does not cover exactly the documents sent"
    return None


def authentication_problem(
    vihf: Vihf,
    parsed: ParsedSubmission,
    payloads: Mapping[str, bytes | None],
    *,
    trust_ca: Path | None,
) -> str | None:
    """Why the DMP would refuse this caller, or None."""
    problem = _shape(vihf, parsed)
    if problem is None and trust_ca is not None:
        problem = _signatures(vihf, parsed, payloads, trust_ca)
    return problem
