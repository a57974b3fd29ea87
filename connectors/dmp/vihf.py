"""The VIHF: the SAML 2.0 assertion that says who sends, for which patient, with which software.

Shaped as ANS's example for an establishment authenticating indirectly (its server certificate,
the processing automated): an Issuer holding the signing certificate's subject DN, a NameID for
the person responsible for the processing, an AuthnStatement, the attributes of
`domain/dmp-feeding.md` §1 and §7, the role and purpose of use as HL7v3 coded values. The
signature (XML-DSig, RSA-SHA256) is added by `connectors.dmp.signing` when a certificate is
configured; `read_vihf` is the reading side the mock uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from cda.metadata import Coded
from connectors.dmp.errors import MalformedMessage
from connectors.dmp.vocabulary import NS
from connectors.dmp.xml_text import element, empty, start, text

__all__ = [
    "FACILITY_TYPE_SCHEME",
    "PURPOSE",
    "PURPOSE_NORMAL",
    "RESOURCE_ID",
    "ROLE",
    "ROLE_AUTOMATE",
    "X509_SUBJECT_NAME",
    "Vihf",
    "VihfIdentity",
    "assertion_xml",
    "build_assertion",
    "read_attributes",
    "read_vihf",
]

_SAML = f"{{{NS['saml']}}}"
_HL7 = "urn:hl7-org:v3"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
X509_SUBJECT_NAME = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
AUTHN_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
FACILITY_TYPE_SCHEME = "1.2.250.1.71.4.2.4"  # TRE_R02 SecteurActivite

ROLE_AUTOMATE = Coded("AUTOMATE", "1.2.250.1.213.1.1.4.6", "AUTOMATE")
PURPOSE_NORMAL = Coded("normal", "1.2.250.1.213.1.1.4.248", "Accès normal")


@dataclass(frozen=True, slots=True)
class VihfIdentity:
    """Who the VIHF says is acting: the structure, the person responsible, the software.

    `author_person` is the sending system as an XCN (`cda.entry.system_xcn`), the author of
    every submission set; `issuer` is the subject DN of the signing certificate (the signer
    overrides it with the certificate's own).
    """

    structure_id: str
    subject_id: str = "dmp-backfill"
    responsible: str = "dmp-backfill"
    """NameID: the person responsible for the automated processing."""
    role: str = ROLE_AUTOMATE.code
    sector: str = f"SA01^{FACILITY_TYPE_SCHEME}"
    lps_name: str = "dmp-backfill"
    lps_version: str = "0.1.0"
    lps_id: str = "dmp-backfill"
    homologation_id: str = "NON-HOMOLOGUE"
    author_person: str | None = None
    issuer: str | None = None

    @property
    def issuer_dn(self) -> str:
        """The Issuer when no certificate says otherwise: a DN naming the structure."""
        return self.issuer or f"CN={self.lps_name},OU={self.structure_id},C=FR"


def _coded_value(tag: str, value: Coded, system_name: str) -> str:
    return empty(
        tag, ("xmlns", _HL7), ("xmlns:xsi", _XSI), ("code", value.code),
        ("codeSystem", value.scheme), ("codeSystemName", system_name),
        ("displayName", value.display), ("xsi:type", "CE"),
    )  # fmt: skip


def assertion_xml(
    identity: VihfIdentity,
    patient_id: str,
    *,
    assertion_id: str,
    issued_at: str,
    issuer: str | None = None,
) -> bytes:
    """The assertion for one call about one patient (`patient_id` in CX form), unsigned,
    serialized (`build_assertion` gives it as an element, for a signer).

    Element order is SAML's: Issuer, (Signature), Subject, AuthnStatement, AttributeStatement.
    """
    out = [
        start(
            "saml:Assertion", ("xmlns:saml", NS["saml"]), ("ID", assertion_id),
            ("IssueInstant", issued_at), ("Version", "2.0"),
        ),
        element("saml:Issuer", issuer or identity.issuer_dn, ("Format", X509_SUBJECT_NAME)),
        "<saml:Subject>" + element("saml:NameID", identity.responsible) + "</saml:Subject>",
        start("saml:AuthnStatement", ("AuthnInstant", issued_at)),
        "<saml:AuthnContext>",
        element("saml:AuthnContextClassRef", AUTHN_UNSPECIFIED),
        "</saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>",
    ]  # fmt: skip

    def attribute(name: str, value_xml: str) -> None:
        out.append(
            start("saml:Attribute", ("Name", name))
            + f"<saml:AttributeValue>{value_xml}</saml:AttributeValue></saml:Attribute>"
        )

    for name, value in (
        ("VIHF_Version", "3.0"),
        ("Authentification_Mode", "INDIRECTE"),
        ("Identifiant_Structure", identity.structure_id),
        ("Secteur_Activite", identity.sector),
        (SUBJECT_ID, identity.subject_id),
        (RESOURCE_ID, patient_id),
        ("Ressource_URN", "urn:dmp"),
        ("LPS_Nom", identity.lps_name),
        ("LPS_Version", identity.lps_version),
        ("LPS_ID", identity.lps_id),
        ("LPS_ID_HOMOLOGATION_DMP", identity.homologation_id),
    ):
        attribute(name, text(value))
    role = Coded(identity.role, ROLE_AUTOMATE.scheme, identity.role)
    attribute(ROLE, _coded_value("Role", role, "TRE_A00-ProducteurDocNonPS"))
    attribute(PURPOSE, _coded_value("PurposeOfUse", PURPOSE_NORMAL, "mode acces VIHF 1.0"))
    out.append("</saml:AttributeStatement></saml:Assertion>")
    return "".join(out).encode()


def build_assertion(
    identity: VihfIdentity,
    patient_id: str,
    *,
    assertion_id: str,
    issued_at: str,
    issuer: str | None = None,
) -> etree._Element:
    """`assertion_xml` as an element (what a signer signs, what the query builder places)."""
    return etree.fromstring(
        assertion_xml(
            identity, patient_id, assertion_id=assertion_id, issued_at=issued_at, issuer=issuer
        )
    )


@dataclass(frozen=True)
class Vihf:
    """What a received VIHF says, as the mock reads it."""

    assertion: etree._Element
    issuer: str | None
    issuer_format: str | None
    name_id: str | None
    has_authn_statement: bool
    attributes: dict[str, str]
    """Name → first value's text (coded values are in `coded`)."""
    coded: dict[str, Coded]
    """Name → the HL7v3 coded value of an attribute, when its value is one."""


def read_vihf(security: etree._Element | None) -> Vihf:
    """The VIHF found in a WS-Security header; MalformedMessage when there is none."""
    if security is None:
        raise MalformedMessage("no WS-Security header: the VIHF assertion is missing")
    assertion = security.find(_SAML + "Assertion")
    if assertion is None:
        raise MalformedMessage("the WS-Security header holds no SAML assertion (VIHF)")
    issuer = assertion.find(_SAML + "Issuer")
    attributes: dict[str, str] = {}
    coded: dict[str, Coded] = {}
    for attribute in assertion.iter(_SAML + "Attribute"):
        name = attribute.get("Name", "")
        value = attribute.find(_SAML + "AttributeValue")
        if value is None:
            attributes.setdefault(name, "")
            continue
        attributes.setdefault(name, (value.text or "").strip())
        if len(value) and name not in coded:
            child = value[0]
            coded[name] = Coded(
                child.get("code", ""), child.get("codeSystem", ""), child.get("displayName", "")
            )
    return Vihf(
        assertion=assertion,
        issuer=(issuer.text or "").strip() if issuer is not None else None,
        issuer_format=issuer.get("Format") if issuer is not None else None,
        name_id=(assertion.findtext(f"{_SAML}Subject/{_SAML}NameID") or "").strip() or None,
        has_authn_statement=assertion.find(
            f"{_SAML}AuthnStatement/{_SAML}AuthnContext/{_SAML}AuthnContextClassRef"
        )
        is not None,
        attributes=attributes,
        coded=coded,
    )


def read_attributes(security: etree._Element | None) -> dict[str, str]:
    """The VIHF attributes found in a WS-Security header (name → first value's text)."""
    return read_vihf(security).attributes
