"""`cda.validate.validate` without the schematron: plain verdicts for every kind of bad file."""

from __future__ import annotations

from pathlib import Path

from cda import schematron as sch
from cda.validate import validate

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "cda"


def test_a_sample_is_valid_against_the_xsd(specs) -> None:
    verdict = validate((SAMPLES / "crh.xml").read_bytes(), schematron=False)
    assert verdict.ok
    assert verdict.checks == ("xml", "xsd")


def test_non_xml_is_a_verdict_not_an_exception(specs) -> None:
    verdict = validate(b"%PDF-1.4 not xml", schematron=False)
    assert not verdict.ok
    assert verdict.failures[0].startswith("not well-formed XML")


def test_another_xml_document_is_named(specs) -> None:
    verdict = validate(b"<html><body/></html>", schematron=False)
    assert verdict.failures == [
        "not a CDA document: the root element is html, not ClinicalDocument"
    ]


def test_a_doctype_with_entities_gives_a_verdict(specs) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>'
    )
    verdict = validate(bomb, schematron=False)
    assert not verdict.ok


def test_xsd_failure_names_the_line_and_element(specs) -> None:
    xml = (SAMPLES / "ldl.xml").read_bytes().replace(b'<signatureCode code="S"/>', b"")
    verdict = validate(xml, schematron=False)
    assert len(verdict.failures) == 1
    assert verdict.failures[0].startswith("XSD, line ")
    assert "signatureCode" in verdict.failures[0]


def test_schematron_locations_read_like_paths() -> None:
    saxon = (
        "/*[local-name()='ClinicalDocument' and namespace-uri()='urn:hl7-org:v3']"
        "/*[local-name()='recordTarget' and namespace-uri()='urn:hl7-org:v3'][1]"
    )
    assert sch._readable_location(saxon) == "/ClinicalDocument/recordTarget[1]"
    assert sch._readable_location("/*:ClinicalDocument[namespace-uri()='urn:hl7-org:v3'][1]") == (
        "/ClinicalDocument[1]"
    )


def test_only_error_roles_fail() -> None:
    assert sch.Finding("x", "/", "t", "error").fails
    assert sch.Finding("x", "/", "t", "").fails
    assert not sch.Finding("x", "/", "t", "warning").fails
    assert sch.Finding("rule text", "/a/b", "t", "error").plain() == "rule text (at /a/b)"


def test_a_doctype_anywhere_before_the_root_is_refused_before_the_xsd(specs) -> None:
    xml = (SAMPLES / "crh.xml").read_bytes()
    at = xml.index(b"<ClinicalDocument")
    hidden = xml[:at] + b"<!--" + b" " * 5000 + b'--><!DOCTYPE x [<!ENTITY e "x">]>' + xml[at:]
    verdict = validate(hidden.replace(b"</title>", b"&e;</title>", 1), schematron=False)
    assert verdict.failures == ["refused: a document type declaration (DOCTYPE) is not allowed"]
    assert verdict.checks == ("xml",)


def test_an_undeclared_entity_is_one_clear_line(specs) -> None:
    xml = (SAMPLES / "crh.xml").read_bytes().replace(b"</title>", b"&nbsp;</title>", 1)
    verdict = validate(xml, schematron=False)
    assert len(verdict.failures) == 1
    assert verdict.failures[0].startswith("not well-formed XML: Entity 'nbsp' not defined")
