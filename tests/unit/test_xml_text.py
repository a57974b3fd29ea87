"""XML written as text reads back as what was written, and refuses what XML cannot carry."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from cda.build import build_document
from cda.examples import ESTABLISHMENT, example_documents
from connectors.dmp import xml_text
from connectors.dmp.ebrim import extrinsic_object, parse_submit_objects, submit_objects_xml
from connectors.dmp.request import new_submission_set
from connectors.dmp.soap import build_envelope, parse_xml, read_envelope
from connectors.dmp.vihf import RESOURCE_ID, ROLE, VihfIdentity, assertion_xml, read_vihf

# XML 1.0's Char production (what lxml accepts in text and attribute values).
_XML_CHAR = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")
_ENTRY = build_document(
    *next(iter(example_documents().values())), ESTABLISHMENT, xsd_check=False
).entry


@given(st.text())
def test_a_text_or_attribute_value_reads_back_as_it_was_or_is_refused(value: str) -> None:
    """Markup characters, quotes, tabs and line ends come back unchanged; a character outside
    XML (a NUL, a C0 control, a lone surrogate) is a ValueError, as lxml makes it."""
    if not _XML_CHAR.match(value):
        with pytest.raises(ValueError, match="XML compatible"):
            xml_text.text(value)
        with pytest.raises(ValueError, match="XML compatible"):
            xml_text.attr(value)
        with pytest.raises(ValueError, match=r"XML compatible|surrogates"):
            etree.Element("x").text = value
        return
    written = xml_text.element("x", value, ("a", value), ("b", "plain"))
    parsed = etree.fromstring(written.encode())
    assert parsed.get("a") == value
    assert parsed.get("b") == "plain"
    # XML reads a CR LF or a lone CR in text as LF unless written as a reference: ours is one.
    assert (parsed.text or "") == value


def test_markup_in_a_value_is_never_markup() -> None:
    hostile = '"/><evil attr="1">&amp;</x><x a="'
    parsed = etree.fromstring(xml_text.element("x", hostile, ("a", hostile)).encode())
    assert len(parsed) == 0
    assert parsed.text == hostile
    assert parsed.get("a") == hostile


@given(title=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_a_document_entry_with_any_title_round_trips_through_the_request_metadata(
    title: str,
) -> None:
    """A title from the DPI, whatever it holds, is the title the DMP reads back; one XML cannot
    carry stops the build with a ValueError (as before, when lxml built the metadata)."""
    entry = dataclasses.replace(_ENTRY, title=title)
    submission_set = new_submission_set(
        entry.patient_id, source_id="1.2.250.1.999", institution_xon="X^^^^^^^^^1.2.250.1.71"
    )
    if not _XML_CHAR.match(title):
        with pytest.raises(ValueError, match="XML compatible"):
            extrinsic_object(entry)
        return
    prebuilt = {entry.unique_id: extrinsic_object(entry)}
    for given_ in (None, prebuilt):
        parsed = parse_submit_objects(
            etree.fromstring(submit_objects_xml(submission_set, [entry], prebuilt=given_))
        )
        assert parsed.entries[entry.entry_uuid] == entry


_XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@given(structure=_XML_TEXT, responsible=_XML_TEXT, patient=_XML_TEXT, version=_XML_TEXT)
def test_the_vihf_reads_back_as_the_identity_and_patient_it_was_written_for(
    structure: str, responsible: str, patient: str, version: str
) -> None:
    """The assertion as written reads back, through the request's envelope, with every
    attribute the mock checks, whatever the configured identity holds."""
    identity = VihfIdentity(structure_id=structure, responsible=responsible, lps_version=version)
    envelope = build_envelope(
        b"<x/>",
        action="urn:a",
        message_id="urn:uuid:1",
        security=assertion_xml(
            identity, patient, assertion_id="_1", issued_at="2026-01-01T00:00:00Z"
        ),
    )
    vihf = read_vihf(read_envelope(parse_xml(envelope)).security)
    # (the reader trims the whitespace around a value, as it does for any sender)
    assert vihf.name_id == (responsible.strip() or None)
    assert vihf.attributes["Identifiant_Structure"] == structure.strip()
    assert vihf.attributes[RESOURCE_ID] == patient.strip()
    assert vihf.attributes["LPS_Version"] == version.strip()
    assert vihf.coded[ROLE].code == identity.role
