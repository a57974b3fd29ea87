"""The VIHF: the SAML 2.0 assertion that says who sends, for which patient, with which software.

Built with the attributes `domain/dmp-feeding.md` §1 lists for the indirect (structure
certificate) mode. The assertion is not signed in this project: no IGC-Santé key is available to
tests, and the mock checks presence and consistency only (a labelled simplification).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from connectors.dmp.errors import MalformedMessage
from connectors.dmp.vocabulary import NS

__all__ = ["RESOURCE_ID", "VihfIdentity", "build_assertion", "read_attributes"]

_SAML = f"{{{NS['saml']}}}"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"


@dataclass(frozen=True, slots=True)
class VihfIdentity:
    """Who the VIHF says is acting: the structure, the software, the automated role."""

    structure_id: str
    subject_id: str = "dmp-backfill"
    role: str = "AUTOMATE"
    sector: str = "SA01^1.2.250.1.71.4.2.4"
    lps_name: str = "dmp-backfill"
    lps_version: str = "0.1.0"
    lps_id: str = "dmp-backfill"
    homologation_id: str = "NON-HOMOLOGUE"


def build_assertion(
    identity: VihfIdentity, patient_id: str, *, assertion_id: str, issued_at: str
) -> etree._Element:
    """The assertion for one call about one patient (`patient_id` in CX form)."""
    assertion = etree.Element(
        _SAML + "Assertion", nsmap={"saml": NS["saml"]},
        ID=assertion_id, IssueInstant=issued_at, Version="2.0",
    )  # fmt: skip
    etree.SubElement(assertion, _SAML + "Issuer").text = identity.structure_id
    subject = etree.SubElement(assertion, _SAML + "Subject")
    etree.SubElement(subject, _SAML + "NameID").text = identity.subject_id
    statement = etree.SubElement(assertion, _SAML + "AttributeStatement")
    for name, value in (
        ("VIHF_Version", "3.0"),
        ("Authentification_Mode", "INDIRECTE"),
        ("Identifiant_Structure", identity.structure_id),
        ("Secteur_Activite", identity.sector),
        (SUBJECT_ID, identity.subject_id),
        (ROLE, f"{identity.role}^1.2.250.1.213.1.1.4.6"),
        (PURPOSE, "normal^1.2.250.1.213.1.1.4.248"),
        (RESOURCE_ID, patient_id),
        ("Ressource_URN", "urn:dmp"),
        ("LPS_Nom", identity.lps_name),
        ("LPS_Version", identity.lps_version),
        ("LPS_ID", identity.lps_id),
        ("LPS_ID_HOMOLOGATION_DMP", identity.homologation_id),
    ):
        attribute = etree.SubElement(statement, _SAML + "Attribute", Name=name)
        etree.SubElement(attribute, _SAML + "AttributeValue").text = value
    return assertion


def read_attributes(security: etree._Element | None) -> dict[str, str]:
    """The VIHF attributes found in a WS-Security header (name → first value)."""
    if security is None:
        raise MalformedMessage("no WS-Security header: the VIHF assertion is missing")
    assertion = security.find(_SAML + "Assertion")
    if assertion is None:
        raise MalformedMessage("the WS-Security header holds no SAML assertion (VIHF)")
    found: dict[str, str] = {}
    for attribute in assertion.iter(_SAML + "Attribute"):
        value = attribute.find(_SAML + "AttributeValue")
        found.setdefault(attribute.get("Name", ""), (value.text or "") if value is not None else "")
    return found
