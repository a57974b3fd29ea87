"""The official XDS.b schemas (../shared/xds-spec, read by path at run time), loaded once.

XOP includes never reach the schema: `inline_for_schema` swaps each `xop:Include` for a short
base64 placeholder first (the XSD checks only the base64 lexical form; hash and size are checked
against the real bytes elsewhere).
"""

from __future__ import annotations

import copy
import functools

from lxml import etree

from cda.specs import find_specs
from connectors.dmp.vocabulary import NS

__all__ = ["inline_for_schema", "repository_schema", "request_errors", "response_errors"]

_XDS = f"{{{NS['xds']}}}"
_XOP = f"{{{NS['xop']}}}"


@functools.cache
def repository_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(find_specs().xds_repository_xsd)))


@functools.cache
def _rs_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(find_specs().rs_xsd)))


def inline_for_schema(request: etree._Element) -> etree._Element:
    """A copy of the request where every xds:Document holds base64 text, not an xop:Include."""
    checked = copy.deepcopy(request)
    for document in checked.iterfind(_XDS + "Document"):
        for include in document.findall(_XOP + "Include"):
            document.remove(include)
            document.text = "AAAA"
    return checked


def _errors(schema: etree.XMLSchema, element: etree._Element) -> list[str]:
    if schema.validate(element):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log][:20]


def request_errors(request: etree._Element) -> list[str]:
    """XSD failures of a ProvideAndRegisterDocumentSetRequest (MTOM includes tolerated)."""
    return _errors(repository_schema(), inline_for_schema(request))


def response_errors(response: etree._Element) -> list[str]:
    return _errors(_rs_schema(), response)
