"""The fictitious establishment's structure: units (with the date each was computerised) and authors.

Both depend on the seed only, not on the number of patients, so a bigger DPI of the same seed
shares its units and authors with a smaller one.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

__all__ = [
    "AUTHORS_PER_DPI",
    "AUTHOR_WITHOUT_RPPS",
    "SURGICAL_UNITS",
    "AuthorRow",
    "UnitRow",
    "make_authors",
    "make_units",
    "units_for",
]

AUTHORS_PER_DPI = 80


@dataclass(frozen=True, slots=True)
class UnitRow:
    unit_code: str
    name: str
    practice_setting_code: str
    computerized_since: dt.date | None


@dataclass(frozen=True, slots=True)
class AuthorRow:
    author_id: str
    rpps: str | None
    adeli: str | None
    family_name: str
    given_name: str
    specialty_code: str | None
    staff_number: str | None = None


# code, name, practice setting (JDV_J04), year computerised (None: always trusted), the stays it
# takes (IMP full hospitalisation, DAY a day case — IMP partial —, EXTERNE, EMER, SEANCE), and
# who it sees: sex ("MF" both) and age at admission in years [low, high).
UNITS = (
    ("MED-INT", "Médecine interne", "ETABLISSEMENT", 2004, ("IMP", "EXTERNE"), "MF", (16, 120)),
    ("CARDIO", "Cardiologie", "ETABLISSEMENT", 2006, ("IMP", "DAY", "EXTERNE"), "MF", (16, 120)),
    ("PNEUMO", "Pneumologie", "ETABLISSEMENT", 2009, ("IMP", "EXTERNE"), "MF", (16, 120)),
    ("CHIR-DIG", "Chirurgie digestive", "ETABLISSEMENT", 2007, ("IMP", "DAY", "EXTERNE"), "MF", (16, 120)),
    ("CHIR-ORTHO", "Chirurgie orthopédique", "ETABLISSEMENT", 2011, ("IMP", "DAY", "EXTERNE"), "MF", (10, 120)),
    ("GYN-OBS", "Gynécologie-obstétrique", "ETABLISSEMENT", 2013, ("IMP", "DAY", "EXTERNE"), "F", (13, 90)),
    ("PEDIA", "Pédiatrie", "ETABLISSEMENT", 2015, ("IMP", "DAY", "EXTERNE", "SEANCE"), "MF", (0, 18)),
    ("ONCO", "Oncologie médicale", "ETABLISSEMENT", 2008, ("SEANCE", "DAY", "IMP", "EXTERNE"), "MF", (18, 120)),
    ("DIALYSE", "Néphrologie - dialyse", "ETABLISSEMENT", 2010, ("SEANCE", "EXTERNE"), "MF", (18, 120)),
    ("PSY", "Psychiatrie", "ETABLISSEMENT", 2012, ("IMP", "DAY", "EXTERNE"), "MF", (12, 120)),
    ("ADDICTO", "Addictologie", "ETABLISSEMENT", 2014, ("DAY", "EXTERNE"), "MF", (13, 120)),
    ("GERIA", "Gériatrie", "ETABLISSEMENT", None, ("IMP",), "MF", (70, 120)),
    ("HAD", "Hospitalisation à domicile", "HAD", 2023, ("IMP",), "MF", (0, 120)),
    ("SMUR", "SAMU-SMUR", "SAMU_SMUR", 2012, ("EMER",), "MF", (0, 120)),
    ("URG", "Urgences adultes", "ETABLISSEMENT", 2005, ("EMER",), "MF", (15, 120)),
    ("URG-PED", "Urgences pédiatriques", "ETABLISSEMENT", 2005, ("EMER",), "MF", (0, 15)),
    ("CONSULT", "Consultations externes", "AMBULATOIRE", None, ("EXTERNE",), "MF", (0, 120)),
    ("SOINS-PAL", "Soins palliatifs", "PALLIATIF", 2022, ("IMP",), "MF", (18, 120)),
)  # fmt: skip
# Surgical units: their stays, day cases included, produce an operative report.
SURGICAL_UNITS = frozenset(("CHIR-DIG", "CHIR-ORTHO", "GYN-OBS"))

SPECIALTIES = ("G15_10/SM26", "G15_10/SM04", "G15_10/SM15", "G15_10/SM53", "G15_10/SM20",
               "G15_10/SM22", "G15_10/SM32", "G15_10/SM02", "G15_10/SM40", "G15_10/SM54")  # fmt: skip
_AUTHOR_FAMILY = ("TESTMED", "FICTIVE", "EXEMPLE", "ESSAI", "MODÈLE", "D'ESSAI", "BLANC-TEST")
_AUTHOR_GIVEN = ("Claire", "Jérôme", "Sophie", "Éric", "Anne", "Noël", "Irène", "Marc", "Loïc")


def make_units() -> list[UnitRow]:
    return [
        UnitRow(code, name, setting, dt.date(year, 1 + (len(code) % 12), 1) if year else None)
        for code, name, setting, year, *_ in UNITS
    ]


def units_for(encounter_type: str, sex: str | None = None, age: float | None = None) -> list[str]:
    """The units that take this kind of stay for a patient of this sex and age (in years):
    no man in obstetrics, no adult in paediatrics, no child in geriatrics."""
    fitting = [
        code
        for code, _, _, _, types, sexes, (low, high) in UNITS
        if encounter_type in types
        and (sex not in ("M", "F") or sex in sexes)
        and (age is None or low <= age < high)
    ]
    return fitting or [code for code, _, _, _, types, *_ in UNITS if encounter_type in types]


def _rpps(rng: random.Random) -> str:
    # RPPS numbers start with 1 and carry a Luhn check digit on the last position.
    body = "1" + "".join(str(rng.randrange(10)) for _ in range(9))
    total = 0
    for i, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


# A professional the DMP cannot identify (no RPPS, no ADELI, no staff number): documents signed
# by them are not sent (author_unknown).
AUTHOR_WITHOUT_RPPS = AuthorRow("AUT-ANON", None, None, "SAGEFEMME-TEST", "Lucie", None)


def _adeli(rng: random.Random) -> str:
    return "75" + "".join(str(rng.randrange(10)) for _ in range(7))


def make_authors(seed: int) -> list[AuthorRow]:
    """The DPI's professionals: most by RPPS, some only by ADELI, a few only by staff number."""
    rng = random.Random(f"{seed}/authors")
    authors = [AUTHOR_WITHOUT_RPPS]
    for i in range(1, AUTHORS_PER_DPI + 1):
        rpps, adeli, staff = _rpps(rng), None, None
        if i % 20 == 7:  # a professional known by ADELI only (e.g. a midwife)
            rpps, adeli = None, _adeli(random.Random(f"{seed}/adeli/{i}"))
        elif i % 20 == 17:  # a junior doctor known only by the establishment's staff number
            rpps, staff = None, f"M{i:05d}"
        authors.append(
            AuthorRow(
                author_id=f"AUT{i:04d}",
                rpps=rpps,
                adeli=adeli,
                family_name=f"{rng.choice(_AUTHOR_FAMILY)}-{i}",
                given_name=rng.choice(_AUTHOR_GIVEN),
                specialty_code=rng.choice(SPECIALTIES),
                staff_number=staff,
            )
        )
    return authors
