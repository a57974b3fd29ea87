"""The level-1 builder: valid against the XSD, deterministic, faithful to its inputs, and typed errors."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from cda.build import build_document
from cda.errors import CdaError, InvalidContent, InvalidDocumentData, InvalidIdentity
from cda.examples import DOCTOR, ESTABLISHMENT, example_documents, pdf_bytes
from cda.identifiers import unique_id_for
from cda.ins import InsTraits
from cda.model import Author, DocumentInput, Patient, Stay, Unit
from cda.validate import xsd_errors
from tests.unit.cda_strategies import KINDS, documents, patients

NS = {"h": "urn:hl7-org:v3"}


def _one(tree: etree._Element, path: str) -> etree._Element:
    found = tree.xpath(path, namespaces=NS)
    assert len(found) == 1, path
    return found[0]


def _example(name: str = "ldl") -> tuple[DocumentInput, Patient]:
    return example_documents()[name]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15)
@given(data=st.data())
def test_every_kind_built_for_generated_patients_is_xsd_valid(specs, kind: str, data) -> None:
    patient = data.draw(patients())
    document = data.draw(documents(kind))
    built = build_document(document, patient, ESTABLISHMENT, xsd_check=False)
    assert xsd_errors(etree.fromstring(built.xml)) == []


@settings(max_examples=25)
@given(patient=patients(), document=documents())
def test_building_twice_gives_the_same_bytes(
    specs, patient: Patient, document: DocumentInput
) -> None:
    first = build_document(document, patient, ESTABLISHMENT)
    again = build_document(document, patient, ESTABLISHMENT)
    assert first.xml == again.xml
    assert first.sha1 == again.sha1 == hashlib.sha1(first.xml).hexdigest()
    assert first.size == len(first.xml)


@settings(max_examples=30)
@given(first=st.tuples(documents(), patients()), second=st.tuples(documents(), patients()))
def test_a_document_does_not_depend_on_the_ones_built_before(specs, first, second) -> None:
    import cda.build

    cda.build._skeleton.cache_clear()
    alone = build_document(*second, ESTABLISHMENT).xml
    build_document(*first, ESTABLISHMENT)
    assert build_document(*second, ESTABLISHMENT).xml == alone


@settings(max_examples=40)
@given(patient=patients(), document=documents())
def test_identity_survives_a_round_trip(specs, patient: Patient, document: DocumentInput) -> None:
    tree = etree.fromstring(build_document(document, patient, ESTABLISHMENT).xml)
    role = _one(tree, "h:recordTarget/h:patientRole")
    ins_id, ipp_id = role.xpath("h:id", namespaces=NS)
    assert (ins_id.get("root"), ins_id.get("extension")) == (patient.ins_oid, patient.ins_matricule)
    assert (ipp_id.get("root"), ipp_id.get("extension")) == (ESTABLISHMENT.ipp_oid, patient.ipp)
    name = _one(role, "h:patient/h:name")
    traits = patient.traits
    assert _one(name, "h:family[@qualifier='BR']").text == traits.birth_family_name
    assert _one(name, "h:given[not(@qualifier)]").text == traits.birth_given_names
    assert _one(name, "h:given[@qualifier='BR']").text == traits.first_birth_given_name
    assert _one(role, "h:patient/h:administrativeGenderCode").get("code") == traits.sex
    assert _one(role, "h:patient/h:birthTime").get("value") == traits.birth_date.strftime("%Y%m%d")
    assert (
        _one(role, "h:patient/h:birthplace/h:place/h:addr/h:county").text == traits.birth_place_code
    )
    assert _one(tree, "h:title").text == " ".join(document.title.split())
    body = _one(tree, "h:component/h:nonXMLBody/h:text")
    assert base64.b64decode(body.text) == document.content


def test_header_elements_and_values() -> None:
    document, patient = _example("ldl")
    built = build_document(document, patient, ESTABLISHMENT)
    tree = etree.fromstring(built.xml)
    assert built.xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument')
    assert [t.get("root") for t in tree.xpath("h:templateId", namespaces=NS)] == [
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    ]
    assert (
        _one(tree, "h:id").get("root") == built.unique_id == unique_id_for("999999990", "DOC-LDL")
    )
    assert _one(tree, "h:code").get("code") == "11490-0"
    assert _one(tree, "h:effectiveTime").get("value") == "20240612143000+0200"
    assert _one(tree, "h:confidentialityCode").get("code") == "N"
    author_id = _one(tree, "h:author/h:assignedAuthor/h:id")
    assert (author_id.get("root"), author_id.get("extension")) == (
        "1.2.250.1.71.4.2.1",
        "810001234567",
    )
    custodian = _one(
        tree, "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id"
    )
    assert (custodian.get("root"), custodian.get("extension")) == (
        "1.2.250.1.71.4.2.2",
        "1999999990",
    )
    assert _one(tree, "h:legalAuthenticator/h:signatureCode").get("code") == "S"
    setting = _one(
        tree,
        "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization/h:standardIndustryClassCode",
    )
    assert setting.get("code") == "ETABLISSEMENT"
    encounter = _one(tree, "h:componentOf/h:encompassingEncounter")
    assert _one(encounter, "h:code").get("code") == "IMP"
    assert _one(encounter, "h:location/h:healthCareFacility/h:code").get("code") == "SA01"
    assert _one(encounter, "h:effectiveTime/h:low").get("value") == "20240605080000+0200"
    assert tree.xpath("h:relatedDocument", namespaces=NS) == []
    text = _one(tree, "h:component/h:nonXMLBody/h:text")
    assert (text.get("mediaType"), text.get("representation")) == ("application/pdf", "B64")


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (dt.datetime(2024, 1, 15, 9, 0), "20240115090000+0100"),
        (dt.datetime(2024, 7, 15, 9, 0), "20240715090000+0200"),
        (dt.datetime(2024, 3, 31, 1, 30), "20240331013000+0100"),
        (dt.datetime(2024, 3, 31, 3, 30), "20240331033000+0200"),
        (dt.datetime(2024, 10, 27, 2, 30), "20241027023000+0200"),
        (dt.datetime(2024, 10, 27, 3, 30), "20241027033000+0100"),
    ],
)
def test_effective_time_carries_the_offset_of_that_day(
    created_at: dt.datetime, expected: str
) -> None:
    document, patient = _example("ldl")
    document = dataclasses.replace(document, created_at=created_at, stay=None)
    built = build_document(document, patient, ESTABLISHMENT)
    tree = etree.fromstring(built.xml)
    assert _one(tree, "h:effectiveTime").get("value") == expected
    assert _one(tree, "h:author/h:time").get("value") == expected
    assert (
        _one(tree, "h:documentationOf/h:serviceEvent/h:effectiveTime/h:low").get("value")
        == expected
    )
    assert (
        tree.xpath("h:documentationOf/h:serviceEvent/h:effectiveTime/h:high", namespaces=NS) == []
    )


def test_documents_built_in_several_threads_are_identical() -> None:
    """The build pool's threads build different documents at once (other kinds, patients and
    templates): each comes out byte for byte as a build alone gives it."""
    from concurrent.futures import ThreadPoolExecutor

    samples = list(example_documents().values())
    expected = [build_document(d, p, ESTABLISHMENT).xml for d, p in samples]
    work = [i % len(samples) for i in range(20 * len(samples))]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns mid-build, where a shared tree would tear
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: build_document(*samples[i], ESTABLISHMENT).xml, work))
    finally:
        sys.setswitchinterval(switch)
    assert len(set(expected)) == len(samples)
    assert results == [expected[i] for i in work]


def test_a_replacement_carries_rplc_with_the_parent_unique_id() -> None:
    document, patient = _example("crh_v2")
    built = build_document(document, patient, ESTABLISHMENT)
    related = _one(etree.fromstring(built.xml), "h:relatedDocument")
    assert related.get("typeCode") == "RPLC"
    parent = unique_id_for("999999990", "DOC-CRH")
    assert _one(related, "h:parentDocument/h:id").get("root") == parent
    assert built.entry.replaces == parent


def test_document_entry_matches_the_cda_file() -> None:
    document, patient = _example("cr_urg")
    built = build_document(document, patient, ESTABLISHMENT)
    entry = built.entry
    assert entry.unique_id == built.unique_id
    assert entry.hash == hashlib.sha1(built.xml).hexdigest()
    assert entry.size == len(built.xml)
    assert entry.patient_id == f"{patient.ins_matricule}^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert entry.source_patient_id == "IPP000456^^^&1.2.250.1.999.42.1&ISO^PI"
    assert entry.type_code.code == "15507-7"
    assert entry.class_code.code == "10"
    assert entry.format_code.code == "urn:ihe:iti:xds-sd:pdf:2008"
    assert [c.code for c in entry.confidentiality] == [
        "N",
        "MASQUE_PS",
        "INVISIBLE_REPRESENTANTS_LEGAUX",
    ]
    assert entry.healthcare_facility_type.code == "SA01"
    assert entry.practice_setting.code == "ETABLISSEMENT"
    # 25 Dec 2023 04:10 in Paris (winter, +0100) is 03:10 UTC.
    assert entry.creation_time == "20231225031000"
    assert entry.service_start == "20231224224000"
    assert entry.service_stop == "20231225031500"
    assert (
        entry.author.person
        == "810001234567^DUPONT-TEST^Jean^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    )
    assert (
        entry.author.institution
        == "CH Fictif de Test^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1999999990"
    )
    assert entry.author.specialty is not None
    assert entry.legal_authenticator == entry.author.person
    assert entry.title == "Passage aux urgences"
    assert entry.replaces is None


def test_hl7v2_separators_in_names_are_escaped_in_xcn() -> None:
    document, patient = _example("ldl")
    odd = dataclasses.replace(DOCTOR, family_name="A^B&C|D~E\\F")
    built = build_document(dataclasses.replace(document, author=odd), patient, ESTABLISHMENT)
    assert built.entry.author.person.split("^")[1] == "A\\S\\B\\T\\C\\F\\D\\R\\E\\E\\F"


def test_an_invisible_patient_flag_is_sent() -> None:
    document, patient = _example("ldl")
    built = build_document(
        dataclasses.replace(document, invisible_patient=True), patient, ESTABLISHMENT
    )
    assert [c.code for c in built.entry.confidentiality] == ["N", "INVISIBLE_PATIENT"]


# ---- bad input: a typed error with the reason code of DESIGN §5 ---------------------------------

_TRAITS = InsTraits("TEST", "ANNE", "ANNE", "F", dt.date(1980, 1, 2), "75056")


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"ins_matricule": None}, InvalidIdentity, "ins_missing"),
        ({"ins_oid": "1.2.250.1.213.1.4.2"}, InvalidIdentity, "ins_missing"),
        ({"ins_oid": None}, InvalidIdentity, "ins_missing"),
        ({"ins_matricule": "285067505612355"}, InvalidIdentity, "ins_invalid"),
        ({"ins_matricule": "28506750561235"}, InvalidIdentity, "ins_invalid"),
        (
            {"traits": dataclasses.replace(_TRAITS, sex="U")},
            InvalidIdentity,
            "ins_traits_incomplete",
        ),
        (
            {"traits": dataclasses.replace(_TRAITS, birth_place_code=" ")},
            InvalidIdentity,
            "ins_traits_incomplete",
        ),
        (
            {"traits": dataclasses.replace(_TRAITS, birth_date=None)},
            InvalidIdentity,
            "ins_traits_incomplete",
        ),
    ],
)
def test_unusable_identities_are_refused(change: dict, error: type, reason: str) -> None:
    document, patient = _example("ldl")
    patient = dataclasses.replace(
        patient, traits=_TRAITS, **{k: v for k, v in change.items() if k != "traits"}
    )
    if "traits" in change:
        patient = dataclasses.replace(patient, traits=change["traits"])
    with pytest.raises(error) as caught:
        build_document(document, patient, ESTABLISHMENT)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"content": b""}, InvalidContent, "content_missing"),
        ({"mime_type": "text/plain"}, InvalidContent, "content_unsupported_format"),
        ({"content": b"GIF89a...."}, InvalidContent, "content_corrupt"),
        ({"content": b"%PDF-1.4 truncated"}, InvalidContent, "content_corrupt"),
        ({"author": Author(None, "SANS-RPPS")}, InvalidDocumentData, "author_unknown"),
        ({"author": Author("123", "COURT")}, InvalidDocumentData, "author_unknown"),
        ({"legal_authenticator": Author("", "X")}, InvalidDocumentData, "author_unknown"),
        ({"author": Author("10001234567", " ")}, InvalidDocumentData, "author_unknown"),
        (
            {"masked_ps": True, "invisible_patient": True},
            InvalidDocumentData,
            "visibility_conflict",
        ),
        ({"kind": "OTHER"}, InvalidDocumentData, "kind_not_selected"),
        ({"title": "bad \x01 title"}, InvalidDocumentData, "invalid_document_data"),
        ({"version": 0}, InvalidDocumentData, "invalid_document_data"),
        ({"created_at": None}, InvalidDocumentData, "invalid_document_data"),
        ({"stay": Stay("S", "IMP", None)}, InvalidDocumentData, "invalid_document_data"),
        (
            {"stay": Stay("S", "XYZ", dt.datetime(2024, 1, 1))},
            InvalidDocumentData,
            "invalid_document_data",
        ),
        ({"unit": Unit("U", None, "NOPE")}, InvalidDocumentData, "invalid_document_data"),
    ],
)
def test_unusable_documents_are_refused(change: dict, error: type, reason: str) -> None:
    document, patient = _example("ldl")
    with pytest.raises(error) as caught:
        build_document(dataclasses.replace(document, **change), patient, ESTABLISHMENT)
    assert caught.value.reason == reason


REASONS = {
    "kind_not_selected",
    "ins_missing",
    "ins_invalid",
    "ins_traits_incomplete",
    "content_missing",
    "content_unsupported_format",
    "content_corrupt",
    "author_unknown",
    "visibility_conflict",
    "invalid_document_data",
}
_anything = st.one_of(st.none(), st.text(max_size=20))


@settings(max_examples=60)
@given(
    st.fixed_dictionaries(
        {
            "matricule": _anything,
            "oid": st.one_of(
                _anything, st.sampled_from(["1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.8"])
            ),
            "family": _anything,
            "sex": _anything,
            "place": _anything,
            "rpps": _anything,
            "title": st.text(max_size=30),
            "content": st.one_of(st.binary(max_size=50), st.just(pdf_bytes("ok"))),
            "kind": st.one_of(st.text(max_size=8), st.sampled_from(KINDS)),
        }
    )
)
def test_no_input_makes_anything_but_a_cda_error_escape(specs, fields: dict) -> None:
    matricule, oid, family, sex, place, rpps, title, content, kind = fields.values()
    document, patient = _example("ldl")
    patient = Patient(
        "IPP1",
        matricule,
        oid,
        InsTraits(family, "A B", "A", sex, dt.date(1990, 1, 1), place),
        identity_status="QUAL",
    )
    document = dataclasses.replace(
        document, title=title, content=content, kind=kind, author=Author(rpps, "X")
    )
    try:
        built = build_document(document, patient, ESTABLISHMENT)
    except CdaError as exc:
        reason = exc.reason
    else:
        reason = None
        assert xsd_errors(etree.fromstring(built.xml)) == []
    assert reason is None or reason in REASONS


def test_a_patient_without_ipp_is_refused() -> None:
    document, patient = _example("ldl")
    with pytest.raises(InvalidDocumentData, match="no IPP"):
        build_document(document, dataclasses.replace(patient, ipp=""), ESTABLISHMENT)


def test_reprs_carry_no_identity() -> None:
    document, patient = _example("ldl")
    built = build_document(document, patient, ESTABLISHMENT)
    shown = repr(patient) + repr(built) + repr(patient.ins()) + repr(patient.traits)
    for secret in (patient.ins_matricule, "TESTFICTIF", "CAMILLE", "1985"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"identity_status": "RECUP"}, "identity_not_qualified"),
        ({"identity_status": "VALI"}, "identity_not_qualified"),
        ({"identity_status": "PROV"}, "identity_not_qualified"),
        ({"identity_status": None}, "identity_not_qualified"),
        ({"identity_doubtful": True}, "identity_doubtful"),
        ({"identity_fictitious": True}, "identity_doubtful"),
    ],
)
def test_the_builder_refuses_an_identity_that_is_not_qualified(changes: dict, reason: str) -> None:
    """Second line of defence: whatever selection let through, no CDA carries such an INS."""
    document, patient = _example("ldl")
    with pytest.raises(InvalidIdentity) as caught:
        build_document(document, dataclasses.replace(patient, **changes), ESTABLISHMENT)
    assert caught.value.reason == reason
    assert build_document(document, patient, ESTABLISHMENT).xml
