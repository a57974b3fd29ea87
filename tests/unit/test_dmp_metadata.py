"""What the DMP requires beyond the IHE minimum, read back from the XML we build (dmp-feeding §7)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from cda.build import build_document, by_content_type
from cda.entry import ps_identifier, system_xcn
from cda.errors import InvalidDocumentData
from cda.examples import ESTABLISHMENT, example_documents
from cda.model import Author
from connectors.dmp import mtom
from connectors.dmp.schema import request_errors
from connectors.dmp.soap import parse_xml, read_envelope
from connectors.dmp.vocabulary import NS, XDS
from connectors.dmp_mock.testing import IDENTITY, built_examples, request_for

RIM = f"{{{NS['rim']}}}"
V3 = "{urn:hl7-org:v3}"
FINESS = ESTABLISHMENT.finess_geo


def request_xml(documents, **options) -> etree._Element:
    content_type, body = request_for(documents, **options)
    envelope = read_envelope(parse_xml(mtom.unpack(content_type, body).root))
    assert request_errors(envelope.body) == []
    return envelope.body


def slot(obj: etree._Element, name: str) -> list[str]:
    for s in obj.iterfind(RIM + "Slot"):
        if s.get("name") == name:
            return [v.text for v in s.iter(RIM + "Value")]
    return []


def classification(obj: etree._Element, scheme: str) -> etree._Element:
    (found,) = [
        c for c in obj.iterfind(RIM + "Classification") if c.get("classificationScheme") == scheme
    ]
    return found


def entries(request: etree._Element) -> dict[str, etree._Element]:
    """ExtrinsicObjects by uniqueId."""
    out = {}
    for eo in request.iter(RIM + "ExtrinsicObject"):
        (uid,) = [
            e.get("value")
            for e in eo.iter(RIM + "ExternalIdentifier")
            if e.get("identificationScheme") == XDS.DE_UNIQUE_ID
        ]
        out[uid] = eo
    return out


@pytest.fixture(scope="module")
def examples():
    return {
        name: build_document(d, p, ESTABLISHMENT, xsd_check=False)
        for name, (d, p) in example_documents().items()
    }


def test_the_submission_set_author_is_the_sending_system(examples, specs) -> None:
    request = request_xml([examples["ldl"]])
    ss = request.find(f".//{RIM}RegistryPackage")
    author = classification(ss, XDS.SS_AUTHOR)
    assert slot(author, "authorPerson") == [
        f"3{FINESS}/DMP-BACKFILL^dmp-backfill^backfill^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI"
    ]
    assert slot(author, "authorInstitution")[0].endswith(f"^IDNST^^^1{FINESS}")


def test_system_xcn_escapes_what_it_is_given() -> None:
    assert system_xcn("999999990", "A^B", "soft|x", "m") == (
        "3999999990/A\\S\\B^soft\\F\\x^m^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI"
    )


@pytest.mark.parametrize(("name", "code"), [("crh", "03"), ("cr_consult", "07"), ("cr_urg", "07")])
def test_content_type_comes_from_the_stay(examples, name, code, specs) -> None:
    document = examples[name]
    assert document.content_type.code == code
    ss = request_xml([document]).find(f".//{RIM}RegistryPackage")
    content = classification(ss, XDS.SS_CONTENT_TYPE)
    assert (content.get("nodeRepresentation"), slot(content, "codingScheme")) == (
        code,
        ["1.2.250.1.213.2.2"],
    )
    assert (
        content.find(f"{RIM}Name/{RIM}LocalizedString").get("value")
        == document.content_type.display
    )


def test_a_day_case_has_its_own_content_type_and_travels_apart() -> None:
    documents = example_documents()
    crh, patient = documents["crh"]
    day = dataclasses.replace(
        crh, document_id="DOC-DAY", stay=dataclasses.replace(crh.stay, hospitalisation="partial")
    )
    built = [
        build_document(d, patient, ESTABLISHMENT, xsd_check=False)
        for d in (crh, day, documents["ldl"][0])
    ]
    groups = by_content_type(built)
    assert [(c.code, [d.unique_id for d in docs]) for c, docs in groups] == [
        ("03", [built[0].unique_id, built[2].unique_id]),
        ("04", [built[1].unique_id]),
    ]


def test_every_entry_carries_source_patient_info(examples, specs) -> None:
    camille = [examples[n] for n in ("ldl", "crh", "cro")]
    for eo in entries(request_xml(camille)).values():
        info = slot(eo, "sourcePatientInfo")
        assert [v.split("|")[0] for v in info] == ["PID-5", "PID-7", "PID-8"]
        family, first, others, *rest = info[0].removeprefix("PID-5|").split("^")
        assert (family, first, others, rest) == (
            "TESTFICTIF",
            "CAMILLE",
            "MARIE-HÉLÈNE",
            ["", "", "", "L"],
        )
        assert len(info[1].removeprefix("PID-7|")) == 8
        assert info[1][6:].isdigit()
        assert info[2] in ("PID-8|F", "PID-8|M")


def test_author_role_is_sent_when_the_dpi_knows_the_function(examples, specs) -> None:
    found = entries(request_xml([examples["ldl"], examples["crh"]]))
    ldl, crh = found[examples["ldl"].unique_id], found[examples["crh"].unique_id]
    assert slot(classification(ldl, XDS.DE_AUTHOR), "authorRole") == [
        "DISPHYS^Responsable de la sortie^2.16.840.1.113883.5.88"
    ]
    assert slot(classification(crh, XDS.DE_AUTHOR), "authorRole") == []
    cda = etree.fromstring(examples["ldl"].xml)
    assert cda.find(f"{V3}author/{V3}functionCode").get("code") == "DISPHYS"


def test_an_operative_report_reports_the_operation_not_the_stay(examples, specs) -> None:
    found = entries(request_xml([examples["cro"], examples["crh"]]))
    cro, crh = found[examples["cro"].unique_id], found[examples["crh"].unique_id]
    assert slot(cro, "serviceStartTime") == ["20240606073000"]  # 09:30 Paris summer time
    assert slot(cro, "serviceStopTime") == []
    assert (slot(crh, "serviceStartTime"), slot(crh, "serviceStopTime")) == (
        ["20240605060000"],
        ["20240612090000"],
    )
    # The CDA keeps the stay as the encounter, the operation as the service.
    cda = etree.fromstring(examples["cro"].xml)
    assert (
        cda.find(f".//{V3}serviceEvent/{V3}effectiveTime/{V3}low").get("value")
        == "20240606093000+0200"
    )
    assert (
        cda.find(f".//{V3}encompassingEncounter/{V3}effectiveTime/{V3}low").get("value")
        == "20240605080000+0200"
    )


def test_a_cro_without_an_operation_date_reports_the_stay() -> None:
    cro, patient = example_documents()["cro"]
    built = build_document(
        dataclasses.replace(cro, operated_at=None), patient, ESTABLISHMENT, xsd_check=False
    )
    assert (built.entry.service_start, built.entry.service_stop) == (
        "20240605060000",
        "20240612090000",
    )


# ---- who the DMP can identify ---------------------------------------------------------------

ANON = Author(rpps=None, family_name="X")


@pytest.mark.parametrize(
    ("person", "value", "kind"),
    [(dataclasses.replace(ANON, rpps="10001234567", adeli="759912345"), "810001234567", "IDNPS"),
     (dataclasses.replace(ANON, adeli=" 2A9912345 "), "02A9912345", "IDNPS"),
     (dataclasses.replace(ANON, rpps="123", staff_number="M17"), f"3{FINESS}/M17", "EI")],
    ids=["rpps-first", "adeli", "staff-number"],
)  # fmt: skip
def test_a_professional_is_identified_by_rpps_else_adeli_else_staff_number(
    person, value, kind
) -> None:
    identifier = ps_identifier(person, FINESS)
    assert (identifier.value, identifier.type_code) == (value, kind)


@pytest.mark.parametrize(
    "person",
    [ANON, dataclasses.replace(ANON, rpps="1000123456x", adeli="2C9912345", staff_number=" \t")],
)
def test_a_professional_without_any_of_them_is_author_unknown(person) -> None:
    with pytest.raises(InvalidDocumentData) as caught:
        ps_identifier(person, FINESS)
    assert caught.value.reason == "author_unknown"


def test_documents_of_adeli_and_staff_authors_are_built_with_their_identifier(specs) -> None:
    crh, patient = example_documents()["crh"]
    midwife = Author(rpps=None, adeli="759912345", family_name="SAGEFEMME-TEST", given_name="Lucie")
    junior = Author(rpps=None, staff_number="M00017", family_name="INTERNE-TEST", given_name="Léo")
    built = build_document(
        dataclasses.replace(crh, author=midwife, legal_authenticator=junior), patient, ESTABLISHMENT
    )
    assert built.entry.author.person.startswith("0759912345^SAGEFEMME-TEST^Lucie^")
    assert built.entry.legal_authenticator.startswith(f"3{FINESS}/M00017^INTERNE-TEST^Léo^")
    assert built.entry.legal_authenticator.endswith("^D^^^EI")
    cda = etree.fromstring(built.xml)
    assert cda.find(f"{V3}author/{V3}assignedAuthor/{V3}id").get("extension") == "0759912345"


@given(
    rpps=st.one_of(st.none(), st.text("0123456789x ", max_size=12)),
    adeli=st.one_of(st.none(), st.text("0123456789AB2 ", max_size=10)),
    staff=st.one_of(st.none(), st.text("M1 \t", max_size=3)),
)
def test_an_identifier_is_found_exactly_when_one_of_the_three_has_its_shape(
    rpps, adeli, staff
) -> None:
    person = Author(rpps=rpps, family_name="X", adeli=adeli, staff_number=staff)
    expected = (
        ((rpps or "").strip().isdigit() and len((rpps or "").strip()) == 11)
        or (len(a := (adeli or "").strip()) == 9 and a[0].isdigit() and (a[1].isdigit() or a[1] in "AB") and a[2:].isdigit())
        or bool((staff or "").strip())
    )  # fmt: skip
    try:
        ps_identifier(person, FINESS)
    except InvalidDocumentData:
        assert not expected
    else:
        assert expected


def test_an_unknown_specialty_stops_the_document_with_a_clear_message() -> None:
    crh, patient = example_documents()["crh"]
    wrong = dataclasses.replace(crh.author, specialty_code="G15_10/SM99X")
    with pytest.raises(InvalidDocumentData, match=r"specialty 'G15_10/SM99X' is not in JDV_J01"):
        build_document(dataclasses.replace(crh, author=wrong), patient, ESTABLISHMENT)


def test_the_default_identity_names_the_system_author() -> None:
    assert IDENTITY.author_person.startswith(f"3{FINESS}/")
    assert all(d.entry.source_patient_info for d in built_examples())
