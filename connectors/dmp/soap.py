"""SOAP 1.2 envelopes with WS-Addressing and WS-Security, faults, and the one XML parser we trust.

`parse_xml` is the only door for XML that comes from outside: no DTD, no entities, no network,
no huge trees — so XXE and entity-expansion payloads are refused before anything reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from connectors.dmp.errors import MalformedMessage
from connectors.dmp.vocabulary import NS
from connectors.dmp.xml_text import element, start, text

__all__ = [
    "Envelope",
    "Fault",
    "build_envelope",
    "build_fault",
    "parse_xml",
    "read_envelope",
    "read_fault",
]

_SOAP = f"{{{NS['soap']}}}"
_WSA = f"{{{NS['wsa']}}}"
_WSSE = f"{{{NS['wsse']}}}"

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, dtd_validation=False
)


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML; a DOCTYPE (the carrier of entity attacks) is refused outright."""
    head = data[:4096].lstrip()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise MalformedMessage("a document type declaration is not allowed in a SOAP message")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedMessage(f"not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedMessage("a document type declaration is not allowed in a SOAP message")
    return root


def build_envelope(
    body_child: etree._Element | bytes,
    *,
    action: str,
    message_id: str,
    to: str | None = None,
    relates_to: str | None = None,
    security: etree._Element | bytes | None = None,
) -> bytes:
    """A SOAP 1.2 envelope around `body_child`, serialized; `security` goes in a wsse:Security.

    Written as text around the serialized parts (a request's metadata comes serialized already,
    `ebrim.submit_objects_xml`): each part declares the namespaces it uses itself."""
    header = [
        start("soap:Header"),
        '<wsa:Action soap:mustUnderstand="true">' + text(action) + "</wsa:Action>",
        element("wsa:MessageID", message_id),
    ]
    if relates_to:
        header.append(element("wsa:RelatesTo", relates_to))
    if to:
        header.append(element("wsa:To", to))
    head = "".join(header).encode()
    if security is not None:
        if isinstance(security, etree._Element):
            security = etree.tostring(security)
        head += (
            f'<wsse:Security xmlns:wsse="{NS["wsse"]}">'.encode() + security + b"</wsse:Security>"
        )
    if isinstance(body_child, etree._Element):
        body_child = etree.tostring(body_child)
    return b"".join(
        (_ENVELOPE_START, head, b"</soap:Header><soap:Body>", body_child, _ENVELOPE_END)
    )


_ENVELOPE_START = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<soap:Envelope xmlns:soap="{NS["soap"]}" xmlns:wsa="{NS["wsa"]}">'
).encode()
_ENVELOPE_END = b"</soap:Body></soap:Envelope>"


@dataclass
class Envelope:
    action: str | None
    message_id: str | None
    security: etree._Element | None
    body: etree._Element


def read_envelope(root: etree._Element) -> Envelope:
    if root.tag != _SOAP + "Envelope":
        raise MalformedMessage(
            f"the root element is {etree.QName(root).localname!r}, not a SOAP 1.2 Envelope"
        )
    header = root.find(_SOAP + "Header")
    body = root.find(_SOAP + "Body")
    if body is None or len(body) != 1:
        raise MalformedMessage("the SOAP Body must hold exactly one element")

    def text(tag: str) -> str | None:
        found = header.find(tag) if header is not None else None
        return (found.text or "").strip() if found is not None else None

    return Envelope(
        action=text(_WSA + "Action"),
        message_id=text(_WSA + "MessageID"),
        security=header.find(_WSSE + "Security") if header is not None else None,
        body=body[0],
    )


def build_fault(code: str, reason: str, *, subcode: str | None = None) -> bytes:
    """A SOAP 1.2 Fault; `code` is Sender (the request is wrong) or Receiver (we failed).

    `subcode` is a QName such as `wsse:FailedAuthentication`; a prefix of ours (`NS`) is declared
    where it is used, so a reader resolves it to its namespace, as SOAP 1.2 requires.
    """
    envelope = etree.Element(_SOAP + "Envelope", nsmap={"soap": NS["soap"]})
    fault = etree.SubElement(etree.SubElement(envelope, _SOAP + "Body"), _SOAP + "Fault")
    code_el = etree.SubElement(fault, _SOAP + "Code")
    etree.SubElement(code_el, _SOAP + "Value").text = f"soap:{code}"
    if subcode:
        prefix = subcode.partition(":")[0] if ":" in subcode else None
        declared = {prefix: NS[prefix]} if prefix in NS and prefix != "soap" else None
        sub = etree.SubElement(code_el, _SOAP + "Subcode", nsmap=declared)
        etree.SubElement(sub, _SOAP + "Value").text = subcode
    text = etree.SubElement(etree.SubElement(fault, _SOAP + "Reason"), _SOAP + "Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = reason
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True)
class Fault:
    """A SOAP 1.2 Fault as a client acts on it."""

    codes: tuple[tuple[str, str], ...]
    """(namespace URI, local name) of the Code value, then of each nested Subcode value."""
    reason: str

    @property
    def code(self) -> tuple[str, str]:
        return self.codes[0] if self.codes else ("", "")


def _qname_value(element: etree._Element) -> tuple[str, str]:
    """A QName-valued element's text, resolved against the namespaces in scope where it stands."""
    prefix, _, local = (element.text or "").strip().rpartition(":")
    return element.nsmap.get(prefix or None) or "", local


def read_fault(body: etree._Element) -> Fault | None:
    """The fault in a SOAP Body's child, or None when it is not a Fault."""
    if body.tag != _SOAP + "Fault":
        return None
    codes = tuple(_qname_value(v) for v in body.iter(_SOAP + "Value"))
    reason = body.findtext(f"{_SOAP}Reason/{_SOAP}Text") or ""
    return Fault(codes, " ".join(reason.split()))
