"""The code tables of `cda.codes` say what the CI-SIS value sets (JDV files) say."""

from __future__ import annotations

import pytest

from cda import codes
from cda.errors import InvalidDocumentData
from cda.identifiers import unique_id_for
from cda.valuesets import load_value_set


def _assert_in(prefix: str, value: codes.Coded) -> None:
    concept = load_value_set(prefix).get(value.code)
    assert concept is not None, f"{value.code} is not in {prefix}"
    assert (concept.scheme, concept.display) == (value.scheme, value.display)


@pytest.mark.parametrize(
    ("kind", "loinc"),
    [
        ("LDL", "11490-0"),
        ("CRH", "34112-3"),
        ("CRO", "34874-8"),
        ("CR_CONSULT", "11488-4"),
        ("CR_URG", "15507-7"),
    ],
)
def test_each_kind_has_its_loinc_code_with_the_j07_display(specs, kind: str, loinc: str) -> None:
    found = codes.document_kind(kind)
    assert found.type_code.code == loinc
    _assert_in("JDV_J07", found.type_code)
    assert found.class_code == codes.Coded("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")


@pytest.mark.parametrize(
    ("prefix", "table"),
    [
        ("JDV_J02", codes.FACILITY_TYPES),
        ("JDV_J04", codes.PRACTICE_SETTINGS),
        ("JDV_J142", codes.ENCOUNTER_TYPES),
        ("JDV_J143", codes.GENDERS),
    ],
)
def test_restated_value_sets_match_the_jdv_files(specs, prefix: str, table: dict) -> None:
    for value in table.values():
        _assert_in(prefix, value)


def test_confidentiality_codes_are_those_of_j08(specs) -> None:
    for value in (
        codes.CONFIDENTIALITY_NORMAL,
        codes.MASQUE_PS,
        codes.INVISIBLE_PATIENT,
        codes.INVISIBLE_REPRESENTANTS_LEGAUX,
    ):
        _assert_in("JDV_J08", value)


def test_author_specialty_comes_from_j01_and_an_unknown_code_is_refused(specs) -> None:
    specialty = codes.author_specialty("G15_10/SM26")
    assert specialty is not None
    assert specialty.scheme == "1.2.250.1.213.1.1.4.5"
    assert codes.author_specialty(None) is None
    with pytest.raises(InvalidDocumentData, match=r"'G15_10/NOPE' is not in JDV_J01"):
        codes.author_specialty("G15_10/NOPE")


def test_author_specialty_without_its_value_set_is_an_error_not_a_silent_drop(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("BACKFILL_SHARED_DIR", str(tmp_path))  # a folder without the specs
    # Earlier tests in this process may have looked the code up with the specs present.
    codes._from_value_set.cache_clear()
    with pytest.raises(FileNotFoundError):
        codes.author_specialty("G15_10/SM04")


def test_author_function_comes_from_j47(specs) -> None:
    function = codes.author_function("ATTPHYS")
    assert function is not None
    _assert_in("JDV_J47", function)
    assert codes.author_function(None) is None
    with pytest.raises(InvalidDocumentData, match="JDV_J47"):
        codes.author_function("BOSS")


@pytest.mark.parametrize(
    ("encounter", "partial", "code"),
    [("IMP", False, "03"), ("IMP", True, "04"), ("EXTERNE", False, "07"), ("EMER", False, "07"),
     ("AMB", False, "07"), (None, False, "07")],
)  # fmt: skip
def test_content_type_follows_the_encounter(encounter, partial, code) -> None:
    found = codes.content_type(encounter, partial=partial)
    assert (found.code, found.scheme) == (code, "1.2.250.1.213.2.2")


def test_content_type_display_names_are_tre_r209s() -> None:
    # As ANS's JDV_J03/J59 spell them (TRE_R209 TypeActivite).
    assert {c.code: c.display for c in codes.CONTENT_TYPES.values()} == {
        "03": "Hospitalisation complète (non compris hospitalisation de semaine)",
        "04": "Hospitalisation de jour",
        "07": "Consultations soins externes",
    }


@pytest.mark.parametrize("kind", ["OTHER", "", "cr_bio"])
def test_kinds_not_sent_are_refused_with_kind_not_selected(kind: str) -> None:
    with pytest.raises(InvalidDocumentData) as caught:
        codes.document_kind(kind)
    assert caught.value.reason == "kind_not_selected"


def test_unknown_jdv_code_names_the_value_set() -> None:
    with pytest.raises(InvalidDocumentData, match="JDV_J02"):
        codes.facility_type("ZZ99")


def test_unique_id_is_a_short_deterministic_oid() -> None:
    first = unique_id_for("999999990", "DOC-1")
    assert first == unique_id_for("999999990", "DOC-1")
    assert first != unique_id_for("999999990", "DOC-2")
    assert first != unique_id_for("999999982", "DOC-1")
    assert first.startswith("2.25.")
    assert first[5:].isdigit()
    assert len(first) <= 44
    # The formula fixed in common.md, written out once more.
    import uuid

    namespace = uuid.UUID("0b3c4a8e-7f51-5d0a-9c1e-6a2d4f8b9e10")
    assert first == "2.25." + str(uuid.uuid5(namespace, "999999990/DOC-1").int)
