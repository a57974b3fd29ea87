"""Checking a CDA document against the official CI-SIS kit.

The XSD check (`CDA_extended.xsd`, lxml) always runs: the schema is loaded once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

from cda.specs import find_specs

__all__ = ["cda_schema", "xsd_errors"]

CDA_NS = "urn:hl7-org:v3"


@functools.cache
def _schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


def cda_schema(shared_dir: str | None = None) -> etree.XMLSchema:
    """The compiled CDA_extended.xsd (cached)."""
    return _schema(find_specs(shared_dir).cda_xsd)


def xsd_errors(
    document: etree._Element | etree._ElementTree, shared_dir: str | None = None
) -> list[str]:
    """Plain-words XSD failures of a parsed ClinicalDocument; empty when it is valid."""
    schema = cda_schema(shared_dir)
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
