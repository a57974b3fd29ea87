"""Properties of one synthetic patient's rows: a pure function of (seed, index, as_of), coherent."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from cda.ins import matricule_problem
from connectors.dpi.synthetic.generator import GenerationOptions, _patient_rows
from connectors.dpi.synthetic.hospital import make_authors

AUTHORS = [a.author_id for a in make_authors(1)[1:]]
seeds = st.integers(min_value=0, max_value=2**32)
indexes = st.integers(min_value=0, max_value=10**6)
dates = st.dates(min_value=dt.date(2015, 1, 1), max_value=dt.date(2035, 12, 31))


def rows(seed: int, index: int, as_of: dt.date):
    options = GenerationOptions(patients=index + 1, seed=seed, as_of=as_of, pdf_kb=1)
    return _patient_rows(options, index, AUTHORS, dt.datetime.combine(as_of, dt.time()))


@given(seeds, indexes, dates)
def test_a_patient_is_a_pure_function_of_seed_index_and_date(
    seed: int, index: int, as_of: dt.date
) -> None:
    assert rows(seed, index, as_of) == rows(seed, index, as_of)


@given(seeds, indexes, dates)
def test_a_patient_history_is_coherent(seed: int, index: int, as_of: dt.date) -> None:
    patient, stays, documents, defects = rows(seed, index, as_of)
    reference = dt.datetime.combine(as_of, dt.time())
    identity_defect = any(d.document_id is None for d in defects)
    if patient["ins_matricule"] and not identity_defect:
        assert matricule_problem(patient["ins_matricule"]) is None
    stay_ids = {s["stay_id"] for s in stays}
    future = {d.document_id for d in defects if d.defect == "date_in_future"}
    for stay in stays:
        if stay["status"] == "planned":
            assert stay["admitted_at"] > reference
        else:
            assert stay["admitted_at"] <= reference
            assert stay["discharged_at"] is None or stay["discharged_at"] >= stay["admitted_at"]
    versions: dict[str, list[int]] = {}
    for document in documents:
        assert document["stay_id"] in stay_ids
        if document["document_id"] not in future:
            assert document["created_at"] <= reference, "a document from the future"
        assert document["ipp"] == patient["ipp"]
        if document["sent_live_at"] is not None:
            assert document["status"] == "validated"
            assert document["dmp_unique_id"].startswith("2.25.")
            assert len(document["dmp_unique_id"]) <= 64
        versions.setdefault(document["set_id"], []).append(document["version"])
    for numbers in versions.values():
        assert numbers == list(range(1, len(numbers) + 1))
    # RNIV: qualified means neither doubtful nor fictitious; nothing happens after death.
    if patient["identity_status"] == "QUAL":
        assert not patient["identity_doubtful"]
        assert not patient["identity_fictitious"]
    if patient["death_date"] is not None:
        for stay in stays:
            assert stay["admitted_at"].date() <= patient["death_date"]
            assert stay["status"] not in ("planned", "in_progress")
    for stay in stays:
        if stay["unit_code"] == "GYN-OBS" and patient["sex"] in ("M", "F"):
            assert patient["sex"] == "F"
        if stay["unit_code"] == "PEDIA":
            assert (stay["admitted_at"].date() - patient["birth_date"]).days < 18 * 366
