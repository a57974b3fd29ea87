"""The INS value object: key arithmetic (Corsica included), OIDs, CX form, traits."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cda.errors import InvalidIdentity
from cda.ins import INS, INS_OIDS, InsKind, InsTraits, compute_key, matricule_problem

departments = st.one_of(
    st.integers(1, 95).map(lambda n: f"{n:02d}").filter(lambda d: d != "20"),
    st.sampled_from(["2A", "2B", "97", "99"]),
)
bodies = st.builds(
    lambda sex, yy, mm, dept, commune, order: (
        f"{sex}{yy:02d}{mm:02d}{dept}{commune:03d}{order:03d}"
    ),
    st.sampled_from("12378"),
    st.integers(0, 99),
    st.integers(1, 99),  # month is not range checked: incomplete civil records use 20+, 30+...
    departments,
    st.integers(0, 999),
    st.integers(1, 999),
)


def test_published_test_ins_has_the_expected_key() -> None:
    """ANS's test INS 279035121518989 has key 89."""
    assert compute_key("2790351215189") == "89"
    assert matricule_problem("279035121518989") is None


@given(bodies)
def test_a_computed_key_always_validates(body: str) -> None:
    """Whatever the body, body + its key is a valid matricule, and any other key is not."""
    key = compute_key(body)
    assert matricule_problem(body + key) is None
    wrong = f"{(int(key) % 97) + 1:02d}"
    assert (
        matricule_problem(body + wrong) == "the 2-digit key does not match the first 13 characters"
    )


@given(st.sampled_from(["2A", "2B"]), st.integers(0, 999), st.integers(1, 999))
def test_corsican_departments_are_read_as_19_and_18(dept: str, commune: int, order: int) -> None:
    """2A counts as 19 and 2B as 18 before 97 - n mod 97."""
    body = f"18505{dept}{commune:03d}{order:03d}"
    numeric = int(body.replace("2A", "19").replace("2B", "18"))
    assert compute_key(body) == f"{97 - numeric % 97:02d}"


@pytest.mark.parametrize(
    ("matricule", "problem"),
    [
        (None, "no matricule"),
        ("", "no matricule"),
        ("27903512151898", "a matricule has 15 characters, this one has 14"),
        ("2790351215189890", "a matricule has 15 characters, this one has 16"),
        (
            "27903512151898X",
            "a matricule is digits only, except 2A or 2B as the Corsican department",
        ),
        (
            "1850520A0412356",
            "a matricule is digits only, except 2A or 2B as the Corsican department",
        ),
    ],
)
def test_malformed_matricules_are_explained(matricule: str | None, problem: str) -> None:
    """Each malformation gets a sentence a user can act on."""
    assert matricule_problem(matricule) == problem


def test_ins_rejects_an_unknown_oid_as_missing_and_a_bad_key_as_invalid() -> None:
    """The reason codes match DESIGN §5: unknown OID is ins_missing, bad key is ins_invalid."""
    with pytest.raises(InvalidIdentity) as unknown:
        INS("279035121518989", "1.2.250.1.213.1.4.2")
    assert unknown.value.reason == "ins_missing"
    with pytest.raises(InvalidIdentity) as bad:
        INS("279035121518988", InsKind.TEST_NIR)
    assert bad.value.reason == "ins_invalid"


def test_cx_round_trip_and_production_flags() -> None:
    """The XDS patientId form parses back to the same INS; only NIR and NIA are production."""
    ins = INS("279035121518989", InsKind.TEST_NIR.value)
    assert ins.as_cx() == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert INS.from_cx(ins.as_cx()) == ins
    assert {k for k in InsKind if k.is_production} == {InsKind.NIR, InsKind.NIA}
    assert len(INS_OIDS) == 4


def test_repr_never_shows_the_matricule_or_traits() -> None:
    """An INS that reaches a log or traceback through repr() does not leak personal data."""
    ins = INS("279035121518989", InsKind.TEST_NIR.value)
    traits = InsTraits("DUPONT", "Jean", "Jean", "M", dt.date(1979, 3, 1), "75056")
    assert "279035121518989" not in repr(ins)
    assert "DUPONT" not in repr(traits)


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({}, []),
        ({"birth_family_name": " "}, ["birth_family_name"]),
        ({"birth_given_names": None, "sex": "U"}, ["birth_given_names", "sex"]),
        ({"birth_date": None, "birth_place_code": ""}, ["birth_place_code", "birth_date"]),
        ({"first_birth_given_name": None}, ["first_birth_given_name"]),
    ],
)
def test_traits_completeness(changes: dict[str, object], missing: list[str]) -> None:
    """Blank, absent or out-of-set traits are reported by name; complete traits pass."""
    base = {
        "birth_family_name": "N'DIAYE-MARTIN",
        "birth_given_names": "Anne Élise",
        "first_birth_given_name": "Anne",
        "sex": "F",
        "birth_date": dt.date(2000, 2, 29),
        "birth_place_code": "2A004",
    }
    traits = InsTraits(**{**base, **changes})
    assert traits.missing() == missing
    if missing:
        with pytest.raises(InvalidIdentity) as exc:
            traits.require_complete()
        assert exc.value.reason == "ins_traits_incomplete"
    else:
        traits.require_complete()
