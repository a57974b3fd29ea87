"""Checking a CDA document against the official CI-SIS kit.

The XSD check (`CDA_extended.xsd`, lxml) always runs: the schema is loaded once per process.
The structuration-minimale schematron runs too when saxonche is installed (`cda.schematron`).
`validate` gives a `Verdict` whose failures are in plain words: what rule, and where.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from cda import schematron as sch
from cda.specs import SHARED_DIR_ENV, find_specs
from cda.untrusted_xml import UnsafeXml, parse_untrusted

__all__ = ["CDA_NS", "Verdict", "cda_schema", "validate", "xsd_errors"]

CDA_NS = "urn:hl7-org:v3"


@functools.cache
def _schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


@functools.lru_cache(maxsize=16)
def _xsd_path(shared_dir: str | None, environment: str | None) -> Path:
    return find_specs(shared_dir).cda_xsd


def cda_schema(shared_dir: str | None = None) -> etree.XMLSchema:
    """The compiled CDA_extended.xsd (cached, and so is where it was found)."""
    return _schema(_xsd_path(shared_dir, os.environ.get(SHARED_DIR_ENV)))


def xsd_errors(
    document: etree._Element | etree._ElementTree, shared_dir: str | None = None
) -> list[str]:
    """Plain-words XSD failures of a parsed ClinicalDocument; empty when it is valid."""
    schema = cda_schema(shared_dir)
    try:
        if schema.validate(document):
            return []
    except etree.XMLSchemaValidateError as exc:  # a node libxml2's validator cannot walk
        return [f"XSD: the document cannot be checked ({exc})"]
    return [f"XSD, line {e.line}: {e.message}" for e in schema.error_log]


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one document."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: tuple[str, ...] = ()
    """The checks that ran: "xml", "xsd", "schematron"."""

    @property
    def ok(self) -> bool:
        return not self.failures


def validate(
    xml: bytes, *, schematron: bool | None = None, shared_dir: str | None = None
) -> Verdict:
    """Check one document: well-formed, a ClinicalDocument, XSD, then the schematron.

    `schematron=None` runs it when saxonche is installed, True requires it, False skips it.
    A DOCTYPE is refused before either check runs (`cda.untrusted_xml`), and the schematron
    reads the tree lxml parsed, serialised: Saxon never sees a DTD.
    """
    try:
        tree = parse_untrusted(xml)
    except etree.XMLSyntaxError as exc:
        return Verdict([f"not well-formed XML: {exc}"], checks=("xml",))
    except UnsafeXml as exc:
        return Verdict([f"refused: {exc}"], checks=("xml",))
    if tree.tag != f"{{{CDA_NS}}}ClinicalDocument":
        return Verdict(
            [f"not a CDA document: the root element is {tree.tag}, not ClinicalDocument"],
            checks=("xml",),
        )
    failures = xsd_errors(tree, shared_dir)
    checks: tuple[str, ...] = ("xml", "xsd")
    warnings: list[str] = []
    run_schematron = sch.available() if schematron is None else schematron
    if run_schematron:
        findings = sch.load(shared_dir).check(etree.tostring(tree, encoding="UTF-8"))
        failures += [f"schematron: {f.plain()}" for f in findings if f.fails]
        warnings += [f"schematron: {f.plain()}" for f in findings if not f.fails]
        checks += ("schematron",)
    return Verdict(failures, warnings, checks)
