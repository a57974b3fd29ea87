"""Fictitious patients: names as the INSi teleservice returns them, test INS numbers, RNIV status.

Birth traits are upper case (accents, hyphens, apostrophes and spaces kept, as INSi returns them);
used names are written the way a front desk types them. Numbers follow the NIR layout (sex, year,
month, birth department, then six digits drawn from the patient's index, key) under the test
authority, so they never collide with a real INS, encode the patient's own sex and month of birth,
and are unique per patient (below a million patients). There is no test authority for the NIA, so
no synthetic patient has one: the NIA is covered by the selection and builder tests.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from cda.ins import InsKind, compute_key

__all__ = ["BIRTH_PLACES", "PatientRow", "make_patient", "synthetic_matricule"]

FAMILY_NAMES = (
    "MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY",
    "MOREAU", "SIMON", "LAURENT", "LEFÈVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX",
    "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRÉ", "MERCIER", "DUPONT", "LAMBERT", "BONNET",
    "FRANÇOIS", "MARTINEZ", "LEGRAND", "GARNIER", "FAURE", "ROUSSEAU", "BLANC", "GUÉRIN", "MULLER",
    "HENRY", "ROUSSEL", "NICOLAS", "PERRIN", "MORIN", "MATHIEU", "CLÉMENT", "GAUTHIER", "DUMONT",
    "N'DIAYE", "D'ALMEIDA", "O'NEILL", "L'HUILLIER", "DE LA FONTAINE", "LE GALL", "LE BRIS",
    "MARTIN-DURAND", "BENOÎT-CÔTÉ", "SAINT-ÉLOI", "COLONNA", "CASANOVA", "PIETRI", "SANTONI",
    "NGUYEN", "TRAN", "BEN SALEM", "EL AMRANI", "DA SILVA", "PEREIRA", "ÇELIK", "MÜLLER-ŒHLER",
)  # fmt: skip

GIVEN_NAMES = {
    "F": (
        "MARIE", "CAMILLE", "LÉA", "MANON", "CHLOÉ", "EMMA", "INÈS", "ZOÉ", "HÉLÈNE", "ÉLODIE",
        "ANAÏS", "NOÉMIE", "AGNÈS", "BÉATRICE", "CÉCILE", "JOSÉPHINE", "MARIE-CLAIRE", "ANNE-SOPHIE",
        "FRANÇOISE", "GENEVIÈVE", "SÉVERINE", "MAËLLE", "AÏCHA", "FATOU", "NGOC ANH",
    ),
    "M": (
        "JEAN", "PIERRE", "LOUIS", "LUCAS", "HUGO", "THÉO", "NOÉ", "JÉRÔME", "FRANÇOIS", "GRÉGOIRE",
        "MAËL", "LOÏC", "ANGE", "JEAN-BAPTISTE", "JEAN-FRANÇOIS", "PAUL-ÉMILE", "RAPHAËL", "JOËL",
        "BENOÎT", "CÉDRIC", "MOHAMED", "YOUSSEF", "MAMADOU", "ÉTIENNE", "ANDRÉ",
    ),
}  # fmt: skip

# INSEE COG codes: mainland, Corsica (2A/2B), overseas; and 99xxx country codes (born abroad).
BIRTH_PLACES = (
    ("75056", 30), ("69123", 8), ("13055", 8), ("31555", 5), ("33063", 5), ("59350", 5),
    ("44109", 4), ("67482", 4), ("06088", 4), ("35238", 3), ("34172", 3), ("21231", 2),
    ("2A004", 2), ("2B033", 2), ("2A247", 1), ("97105", 1), ("97411", 1), ("97209", 1),
    ("99350", 2), ("99352", 2), ("99351", 1), ("99134", 1), ("99139", 1), ("99243", 1),
)  # fmt: skip
_PLACES, _PLACE_WEIGHTS = zip(*BIRTH_PLACES, strict=True)


@dataclass(frozen=True, slots=True)
class PatientRow:
    """One `dpi_patient` row, as a dict-ready value."""

    ipp: str
    ins_matricule: str | None
    ins_oid: str | None
    identity_status: str
    identity_doubtful: bool
    identity_fictitious: bool
    birth_family_name: str | None
    birth_given_names: str | None
    first_birth_given_name: str | None
    used_family_name: str | None
    used_given_name: str | None
    sex: str | None
    birth_date: dt.date | None
    birth_place_code: str | None
    deceased: bool
    death_date: dt.date | None
    dmp_opposition: bool


def _used_form(name: str) -> str:
    """How a front desk types a name: capitalised words, separators kept."""
    out = []
    capitalise = True
    for char in name.lower():
        out.append(char.upper() if capitalise else char)
        capitalise = char in " -'"
    return "".join(out)


def synthetic_matricule(sex: str | None, born: dt.date, place: str, index: int) -> str:
    """The 15-character test INS of patient `index`: what the traits say, then a unique number.

    sex (1/2) · year (2) · month (2) · department (2: 2A/2B, 97, 99 abroad…) · six digits from
    the index (a bijection of 0–999 999, so no two patients below a million share one) · key.
    """
    serial = (index * 7919 + 104_729) % 1_000_000
    body = f"{2 if sex == 'F' else 1}{born.year % 100:02d}{born.month:02d}{place[:2]}{serial:06d}"
    return body + compute_key(body)


def make_patient(rng: random.Random, ipp: str, as_of: dt.date, index: int = 0) -> PatientRow:
    """A coherent, defect-free patient; defects are applied afterwards (`defects.py`)."""
    sex = "F" if rng.random() < 0.52 else "M"
    age_days = rng.randrange(0, 95 * 365)
    born = as_of - dt.timedelta(days=age_days)
    place = rng.choices(_PLACES, _PLACE_WEIGHTS)[0]
    family = rng.choice(FAMILY_NAMES)
    given = [rng.choice(GIVEN_NAMES[sex]) for _ in range(rng.choices((1, 2, 3), (55, 35, 10))[0])]

    roll = rng.random()
    status = (
        "QUAL" if roll < 0.80 else "VALI" if roll < 0.88 else "RECUP" if roll < 0.94 else "PROV"
    )
    # The INS is fetched from INSi for RECUP and QUAL; VALI and PROV identities have none yet.
    has_ins = status in ("QUAL", "RECUP")
    matricule = oid = None
    if has_ins:
        matricule = synthetic_matricule(sex, born, place, index)
        oid = InsKind.TEST_NIR.value
    # RNIV: a qualified identity is neither doubtful nor fictitious.
    doubtful = status != "QUAL" and rng.random() < 0.05
    fictitious = status != "QUAL" and rng.random() < 0.015

    married_name = sex == "F" and age_days > 25 * 365 and rng.random() < 0.4
    deceased = rng.random() < 0.015
    return PatientRow(
        ipp=ipp,
        ins_matricule=matricule,
        ins_oid=oid,
        identity_status=status,
        identity_doubtful=doubtful,
        identity_fictitious=fictitious,
        birth_family_name=family,
        birth_given_names=" ".join(given),
        first_birth_given_name=given[0],
        used_family_name=_used_form(rng.choice(FAMILY_NAMES)) if married_name else None,
        used_given_name=_used_form(given[0]) if rng.random() < 0.9 else None,
        sex=sex,
        birth_date=born,
        birth_place_code=place,
        deceased=deceased,
        death_date=max(born, as_of - dt.timedelta(days=rng.randrange(1, 2000)))
        if deceased and rng.random() < 0.8
        else None,
        dmp_opposition=rng.random() < 0.01,
    )
