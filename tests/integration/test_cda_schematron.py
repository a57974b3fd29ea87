"""Built documents pass the ANS structuration-minimale schematron, and broken ones are caught.

The schematron is compiled once for the session (~15 s); hypothesis examples stay few here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cda import schematron as sch
from cda.build import build_document
from cda.examples import ESTABLISHMENT, example_documents
from cda.validate import validate
from tests.unit.cda_strategies import KINDS, documents, patients

NS = {"h": "urn:hl7-org:v3"}
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "cda"


@pytest.fixture(scope="session")
def strucmin(specs) -> sch.Schematron:
    if not sch.available():
        pytest.skip("saxonche is not installed (the `validation` extra)")
    return sch.load(str(specs.root))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=3, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_documents_of_every_kind_pass_with_no_failed_assert(
    strucmin, kind: str, data
) -> None:
    built = build_document(data.draw(documents(kind)), data.draw(patients()), ESTABLISHMENT)
    findings = strucmin.check(built.xml)
    # Advisory rules may fire on odd generated names (e.g. one starting with a quote); none may fail.
    assert [f for f in findings if f.fails] == [], findings


@pytest.mark.parametrize("name", sorted(example_documents()))
def test_samples_pass_xsd_and_schematron(strucmin, name: str) -> None:
    verdict = validate((SAMPLES / f"{name}.xml").read_bytes(), schematron=True)
    assert verdict.checks == ("xml", "xsd", "schematron")
    assert (verdict.failures, verdict.warnings) == ([], [])


def test_the_ans_level1_example_passes(strucmin, specs) -> None:
    example = specs.cda_spec / "ExemplesCDA" / "DOC_NON_STRUCTURE_CDA-R2-N1.xml"
    assert validate(example.read_bytes(), schematron=True).failures == []


def _drop(path: str) -> Callable[[etree._Element], None]:
    def change(tree: etree._Element) -> None:
        for found in tree.xpath(path, namespaces=NS):
            found.getparent().remove(found)

    return change


def _set(path: str, attribute: str, value: str | None) -> Callable[[etree._Element], None]:
    def change(tree: etree._Element) -> None:
        for found in tree.xpath(path, namespaces=NS):
            if value is None:
                del found.attrib[attribute]
            else:
                found.set(attribute, value)

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _drop("h:templateId[@root='1.3.6.1.4.1.19376.1.2.20']"),
            'le templateId "1.3.6.1.4.1.19376.1.2.20" est obligatoire',
            id="xds-sd-templateId-removed",
        ),
        pytest.param(
            _set("h:code", "code", "99999-9"),
            "value set '1.2.250.1.213.1.1.5.471' JDV_J07_XdsTypeCode_CISIS (DYNAMIC). (at /ClinicalDocument/code)",
            id="wrong-loinc",
        ),
        pytest.param(
            _drop("h:legalAuthenticator/h:signatureCode"),
            "Expected is ( {urn:hl7-org:v3}signatureCode )",
            id="signatureCode-removed-xsd",
        ),
        pytest.param(
            _set("h:recordTarget//h:family", "qualifier", None),
            "attribute @qualifier SHALL be present. (at /ClinicalDocument/recordTarget/patientRole/patient/name/family[1])",
            id="family-without-qualifier",
        ),
        pytest.param(
            _drop("h:recordTarget//h:birthplace"),
            "les traits de l'INS",
            id="birthplace-removed",
        ),
        pytest.param(
            _set("h:componentOf//h:healthCareFacility/h:code", "code", "ZZ99"),
            "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS",
            id="facility-type-not-in-j02",
        ),
        pytest.param(
            _set("//h:standardIndustryClassCode", "code", "NOPE"),
            "JDV_J04_XdsPracticeSettingCode_CISIS",
            id="practice-setting-not-in-j04",
        ),
        pytest.param(
            _drop("h:documentationOf/h:serviceEvent/h:performer"),
            "Le performer est obligatoire",
            id="performer-removed",
        ),
        pytest.param(
            _set("h:confidentialityCode", "code", "X"),
            "'2.16.840.1.113883.1.11.10228' Confidentiality",
            id="confidentiality-not-hl7",
        ),
    ],
)
def test_broken_documents_are_caught_with_the_rule_named(strucmin, change, expected: str) -> None:
    document, patient = example_documents()["ldl"]
    tree = etree.fromstring(build_document(document, patient, ESTABLISHMENT).xml)
    change(tree)
    verdict = validate(
        etree.tostring(tree, xml_declaration=True, encoding="UTF-8"), schematron=True
    )
    assert not verdict.ok
    assert any(expected in failure for failure in verdict.failures), verdict.failures


def test_the_stylesheet_is_cached_on_disk(strucmin, specs) -> None:
    # The session fixture compiled the schematron, so its generated stylesheet is on disk now.
    cached = list(sch.cache_dir().glob("strucmin-*.xsl"))
    assert cached
    assert sch.cached_stylesheet(specs.schematron) in {path.read_bytes() for path in cached}


@pytest.fixture
def listener():
    """A loopback HTTP server that records every request made to it (an XXE's exfiltration)."""
    import http.server
    import threading

    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY % leak SYSTEM "http://127.0.0.1/leaked">')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _with_doctype(doctype: bytes) -> bytes:
    xml = (SAMPLES / "ldl.xml").read_bytes()
    at = xml.index(b"<ClinicalDocument")
    return xml[:at] + b"<!-- " + b"x" * 5000 + b" -->" + doctype + xml[at:]


def test_an_external_entity_is_never_fetched_by_either_check(strucmin, listener) -> None:
    url, seen = listener
    hostile = _with_doctype(
        f'<!DOCTYPE ClinicalDocument [<!ENTITY % remote SYSTEM "{url}/dtd"> %remote;'
        f'<!ENTITY host SYSTEM "file:///etc/hostname">]>'.encode()
    )
    verdict = validate(hostile, schematron=True)
    assert verdict.failures == ["refused: a document type declaration (DOCTYPE) is not allowed"]
    assert verdict.checks == ("xml",)
    # Straight to the schematron too (a caller that skips `validate`): Saxon never sees the DTD.
    findings = strucmin.check(hostile)
    assert [f.text for f in findings] == [
        "the schematron did not run: a document type declaration (DOCTYPE) is not allowed"
    ]
    assert seen == []
