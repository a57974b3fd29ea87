"""Hypothesis strategies for the CDA tests: patients with hard names, valid INS, documents."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from cda.examples import DOCTOR, SURGEON, pdf_bytes
from cda.ins import InsKind, InsTraits, compute_key
from cda.model import DocumentInput, Patient, Stay, Unit

KINDS = ("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG")
# Characters XML can carry (no controls, surrogates or non-characters), plus the awkward ones.
_letters = st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zl", "Zp"))
_awkward = st.sampled_from(["É", "ç", "'", "-", "<", "&", ">", '"', "𝔘", "😀", "ß", "Ø", " "])


@st.composite
def names(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.one_of(_awkward, st.text(_letters, min_size=1, max_size=6)), min_size=1, max_size=6
        )
    )
    name = "".join(parts).strip()
    return name if name else "X"


@st.composite
def matricules(draw: st.DrawFn) -> str:
    department = draw(
        st.one_of(
            st.sampled_from(["2A", "2B", "99", "75"]), st.from_regex(r"[0-9]{2}", fullmatch=True)
        )
    )
    body = (
        draw(st.sampled_from("12"))
        + draw(st.from_regex(r"[0-9]{2}", fullmatch=True))
        + draw(st.from_regex(r"(0[1-9]|1[0-2])", fullmatch=True))
        + department
        + draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
    )
    return body + compute_key(body)


@st.composite
def patients(draw: st.DrawFn) -> Patient:
    given = draw(st.lists(names(), min_size=1, max_size=4))
    return Patient(
        identity_status="QUAL",
        ipp=draw(st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True)),
        ins_matricule=draw(matricules()),
        ins_oid=draw(
            st.sampled_from([InsKind.TEST_NIR.value, InsKind.NIA.value, InsKind.NIR.value])
        ),
        traits=InsTraits(
            birth_family_name=draw(names()),
            birth_given_names=" ".join(given),
            first_birth_given_name=given[0],
            sex=draw(st.sampled_from("MF")),
            birth_date=draw(st.dates(dt.date(1900, 1, 1), dt.date(2024, 12, 31))),
            birth_place_code=draw(
                st.from_regex(r"([0-9]{5}|2A[0-9]{3}|99[0-9]{3})", fullmatch=True)
            ),
        ),
        used_family_name=draw(st.one_of(st.none(), names())),
        used_given_name=draw(st.one_of(st.none(), names())),
    )


paris_times = st.datetimes(dt.datetime(2005, 1, 1), dt.datetime(2030, 12, 31)).map(
    lambda t: t.replace(microsecond=0)
)


@st.composite
def documents(draw: st.DrawFn, kind: str | None = None) -> DocumentInput:
    created = draw(paris_times)
    admitted = created - dt.timedelta(
        days=draw(st.integers(0, 30)), minutes=draw(st.integers(0, 600))
    )
    discharged = draw(st.one_of(st.none(), st.just(created)))
    return DocumentInput(
        document_id=draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)),
        set_id=draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)),
        version=draw(st.integers(1, 9)),
        kind=kind or draw(st.sampled_from(KINDS)),
        title=draw(names()),
        created_at=created,
        content=pdf_bytes("x", draw(st.integers(0, 2000))),
        author=draw(st.sampled_from([DOCTOR, SURGEON])),
        legal_authenticator=draw(st.sampled_from([None, DOCTOR])),
        stay=draw(
            st.one_of(
                st.none(),
                st.builds(
                    Stay,
                    stay_id=st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True),
                    encounter_type=st.sampled_from(["IMP", "AMB", "EMER", "EXTERNE"]),
                    admitted_at=st.just(admitted),
                    discharged_at=st.just(discharged),
                ),
            )
        ),
        unit=draw(
            st.sampled_from([None, Unit("U1", "Unité", "ETABLISSEMENT"), Unit("U2", None, "HAD")])
        ),
        masked_ps=draw(st.booleans()),
        invisible_patient=False,
        invisible_legal_rep=draw(st.booleans()),
        replaces=draw(st.one_of(st.none(), st.just("2.25.123456789"))),
    )
