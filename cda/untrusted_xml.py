"""Parsing XML that someone else wrote: no DTD, no entity, no network — checked on the tree.

The one parser for a document we did not build (a CDA file given to `backfill validate`, a CDA
received by the mock DMP). libxml2 is told not to load DTDs, resolve entities or use the network,
and the parsed tree is then refused if it has a document type declaration *anywhere* before the
root (not only in the first bytes: a DOCTYPE may follow a long comment) or an entity reference
left unresolved. What the callers hand on (to the XSD, to Saxon) is that tree, or its
serialisation, which then holds no DOCTYPE at all.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["UnsafeXml", "parse_untrusted"]


class UnsafeXml(ValueError):
    """Well-formed XML we refuse to read further (a DOCTYPE, an entity reference)."""


def _parser(*, huge_tree: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge_tree,  # a CDA carries its PDF as one big base64 text node
    )


_PARSERS = {True: _parser(huge_tree=True), False: _parser(huge_tree=False)}


def parse_untrusted(data: bytes, *, huge_tree: bool = True) -> etree._Element:
    """The root element of `data`.

    Raises `etree.XMLSyntaxError` when it is not well-formed (an undeclared entity is such an
    error) and `UnsafeXml` for a document type declaration or an entity reference.
    """
    root = etree.fromstring(data, _PARSERS[huge_tree])
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise UnsafeXml("a document type declaration (DOCTYPE) is not allowed")
    if next(root.iter(etree.Entity), None) is not None:
        raise UnsafeXml("an entity reference is not allowed")
    return root
