"""The INS (identifiant national de santé): matricule, authority OID, key, and the identity traits.

An INS is a 15-character matricule (13 characters + a 2-digit key) under one of four authority
OIDs. The key is 97 - (n mod 97) where n is the first 13 characters read as an integer, after
reading the Corsican department codes 2A as 19 and 2B as 18. The month digits are not range
checked: real NIRs for incomplete civil records carry other values.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

from cda.errors import InvalidIdentity

__all__ = [
    "INS",
    "INS_OIDS",
    "InsKind",
    "InsTraits",
    "compute_key",
    "is_valid_matricule",
    "matricule_problem",
]


class InsKind(StrEnum):
    """What an INS authority OID stands for."""

    NIR = "1.2.250.1.213.1.4.8"
    NIA = "1.2.250.1.213.1.4.9"
    TEST_NIR = "1.2.250.1.213.1.4.10"
    DEMO_NIR = "1.2.250.1.213.1.4.11"

    @property
    def is_production(self) -> bool:
        return self in (InsKind.NIR, InsKind.NIA)


INS_OIDS: frozenset[str] = frozenset(k.value for k in InsKind)

# 13 characters: sex, year (2), month (2), department (2, or 2A / 2B), commune (3), order (3).
_MATRICULE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}[0-9]{2}$")


def _numeric_body(body13: str) -> int:
    # Corsica: the two department letters are read as digits before the modulo.
    return int(body13.replace("2A", "19").replace("2B", "18"))


def compute_key(body13: str) -> str:
    """The 2-digit key of a 13-character NIR/NIA body (Corsica aware)."""
    if len(body13) != 13 or not _MATRICULE.match(body13 + "00"):
        raise ValueError("a NIR body is 13 characters: digits, with 2A or 2B as department")
    return f"{97 - _numeric_body(body13) % 97:02d}"


def matricule_problem(matricule: str | None) -> str | None:
    """Why a matricule is not a well-formed INS, in plain words; None when it is."""
    if matricule is None or matricule == "":
        return "no matricule"
    if len(matricule) != 15:
        return f"a matricule has 15 characters, this one has {len(matricule)}"
    if not _MATRICULE.match(matricule):
        return "a matricule is digits only, except 2A or 2B as the Corsican department"
    if compute_key(matricule[:13]) != matricule[13:]:
        return "the 2-digit key does not match the first 13 characters"
    return None


def is_valid_matricule(matricule: str | None) -> bool:
    return matricule_problem(matricule) is None


@dataclass(frozen=True, slots=True)
class INS:
    """A well-formed INS: matricule with a correct key, under a known authority OID."""

    matricule: str
    oid: str

    def __post_init__(self) -> None:
        if self.oid not in INS_OIDS:
            raise InvalidIdentity(
                "ins_missing", "the INS authority OID is not one of the four INS OIDs"
            )
        problem = matricule_problem(self.matricule)
        if problem is not None:
            raise InvalidIdentity("ins_invalid", problem)

    @property
    def kind(self) -> InsKind:
        return InsKind(self.oid)

    def as_cx(self) -> str:
        """The HL7 v2 CX form the XDS patientId and the VIHF resource-id use."""
        return f"{self.matricule}^^^&{self.oid}&ISO^NH"

    @classmethod
    def from_cx(cls, cx: str) -> INS:
        """Parse `<matricule>^^^&<oid>&ISO^NH`; raise InvalidIdentity on any other shape."""
        m = re.fullmatch(r"([^\^]*)\^\^\^&([0-9.]+)&ISO\^NH", cx)
        if m is None:
            raise InvalidIdentity("ins_missing", "the patient id is not an INS in CX form")
        return cls(m.group(1), m.group(2))

    def __repr__(self) -> str:
        # The matricule is personal data: keep it out of reprs that may reach a log or a traceback.
        return f"INS(oid={self.oid!r}, matricule=<redacted>)"


@dataclass(frozen=True, slots=True)
class InsTraits:
    """The identity traits that go with an INS (as returned by the INSi teleservice)."""

    birth_family_name: str | None
    birth_given_names: str | None
    first_birth_given_name: str | None
    sex: str | None
    birth_date: dt.date | None
    birth_place_code: str | None

    def missing(self) -> list[str]:
        """Names of the traits that are absent or blank (sex must be M or F)."""
        missing = [
            name
            for name in (
                "birth_family_name",
                "birth_given_names",
                "first_birth_given_name",
                "birth_place_code",
            )
            if not (getattr(self, name) or "").strip()
        ]
        if self.sex not in ("M", "F"):
            missing.append("sex")
        if self.birth_date is None:
            missing.append("birth_date")
        return missing

    def require_complete(self) -> None:
        missing = self.missing()
        if missing:
            raise InvalidIdentity(
                "ins_traits_incomplete", "missing INS traits: " + ", ".join(missing)
            )

    def __repr__(self) -> str:
        return "InsTraits(<redacted>)"
