"""The synthetic DPI on SQLite and PostgreSQL: deterministic, valid where it should be, defective
exactly where it says, and realistic in its proportions."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from cda.ins import InsKind, matricule_problem
from connectors.dpi.contract import dpi_document, dpi_patient, dpi_stay, metadata
from connectors.dpi.synthetic import GenerationError, GenerationOptions, generate
from connectors.dpi.synthetic.defects import DOCUMENT_DEFECTS, FILE_DEFECTS, PATIENT_DEFECTS
from connectors.dpi.synthetic.generator import synthetic_defect
from connectors.dpi.synthetic.records import LIVE_FEED_SHARES

AS_OF = dt.date(2026, 11, 1)


def dump(engine: sa.Engine) -> str:
    """A digest of every row of every table, in primary-key order."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in [*metadata.sorted_tables, synthetic_defect]:
            order = list(table.primary_key.columns) or list(table.columns)
            for row in conn.execute(sa.select(table).order_by(*order)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


@pytest.fixture
def engine(database):
    engine = database.engine()
    yield engine
    engine.dispose()


def test_same_seed_same_dpi_whatever_the_batch_size(engine, tmp_path: Path) -> None:
    """Regenerating with the same seed gives identical rows and PDF bytes, batch size aside."""
    options = GenerationOptions(patients=40, seed=11, as_of=AS_OF, pdf_kb=2, batch_patients=7)
    generate(engine, options)
    first = dump(engine)
    generate(
        engine, GenerationOptions(**{**options.__dict__, "batch_patients": 500, "replace": True})
    )
    assert dump(engine) == first
    generate(engine, GenerationOptions(**{**options.__dict__, "seed": 12, "replace": True}))
    assert dump(engine) != first


def test_an_existing_dpi_is_never_overwritten_silently(engine) -> None:
    options = GenerationOptions(patients=2, seed=1, as_of=AS_OF)
    generate(engine, options)
    with pytest.raises(GenerationError, match="--replace"):
        generate(engine, options)


def test_identities_are_valid_unique_test_ins_that_match_their_traits(engine) -> None:
    report = generate(engine, GenerationOptions(patients=400, seed=3, as_of=AS_OF, pdf_kb=1))
    with engine.connect() as conn:
        defective = set(
            conn.scalars(
                sa.select(synthetic_defect.c.ipp).where(synthetic_defect.c.document_id.is_(None))
            )
        )
        patients = conn.execute(sa.select(dpi_patient)).mappings().all()
    assert len(patients) == report.patients == 400
    with_ins = [p for p in patients if p["ins_matricule"] and p["ipp"] not in defective]
    assert with_ins, "no patient has an INS"
    for p in with_ins:
        assert matricule_problem(p["ins_matricule"]) is None, p["ipp"]
        # Only what a test DMP accepts: there is no test authority for the NIA.
        assert p["ins_oid"] == InsKind.TEST_NIR.value
        assert p["sex"] in ("M", "F")
        # The matricule says the patient's sex, year and month of birth.
        assert p["ins_matricule"][0] == ("1" if p["sex"] == "M" else "2"), p["ipp"]
        assert p["ins_matricule"][1:5] == p["birth_date"].strftime("%y%m"), p["ipp"]
        # RNIV: a qualified identity is neither doubtful nor fictitious.
        if p["identity_status"] == "QUAL":
            assert not p["identity_doubtful"]
            assert not p["identity_fictitious"]
        # A first given name may itself hold a space (NGOC ANH): the list starts with it.
        assert p["birth_given_names"].startswith(p["first_birth_given_name"])
    assert any(p["ins_matricule"][5:7] in ("2A", "2B") for p in with_ins), "no Corsican birth"
    assert any(p["birth_place_code"].startswith("99") for p in with_ins), "nobody born abroad"
    # One INS, one person: only the ins_shared defect makes two IPPs share a matricule.
    holders = Counter(p["ins_matricule"] for p in patients if p["ins_matricule"])
    shared = {m for m, n in holders.items() if n > 1}
    sharing = {p["ipp"] for p in patients if p["ins_matricule"] in shared}
    assert shared
    assert all(holders[m] == 2 for m in shared)
    with engine.connect() as conn:
        placed = set(
            conn.scalars(
                sa.select(synthetic_defect.c.ipp).where(synthetic_defect.c.defect == "ins_shared")
            )
        )
    assert placed <= sharing
    assert len(sharing) == 2 * len(placed)
    names = " ".join(p["birth_family_name"] for p in patients)
    assert "'" in names
    assert "-" in names
    assert any(ch in names for ch in "ÉÈÊÇÔÎÏË")
    assert any(len(p["birth_given_names"].split(" ")) > 1 for p in patients)
    # Nobody dies before being born.
    assert all(p["death_date"] is None or p["death_date"] >= p["birth_date"] for p in patients)


def test_every_defect_is_where_the_side_table_says(engine, tmp_path: Path) -> None:
    """PLACED patients hold every kind of defect; each recorded defect is visible in its row."""
    generate(
        engine,
        GenerationOptions(patients=60, seed=5, as_of=AS_OF, pdf_kb=1, files_dir=tmp_path / "files"),
    )
    with engine.connect() as conn:
        records = conn.execute(sa.select(synthetic_defect)).mappings().all()
        documents = {d["document_id"]: d for d in conn.execute(sa.select(dpi_document)).mappings()}
        patients = {p["ipp"]: p for p in conn.execute(sa.select(dpi_patient)).mappings()}
        stays = {s["stay_id"]: s for s in conn.execute(sa.select(dpi_stay)).mappings()}
    kinds = {r["defect"] for r in records}
    assert kinds >= set(PATIENT_DEFECTS) | set(DOCUMENT_DEFECTS) | set(FILE_DEFECTS)
    for record in records:
        expected = {**PATIENT_DEFECTS, **DOCUMENT_DEFECTS, **FILE_DEFECTS}[record["defect"]]
        assert record["expected_reason"] == expected
        if record["document_id"] is None:
            patient = patients[record["ipp"]]
            assert patient["identity_status"] == "QUAL"
            assert not patient["deceased"]
            if record["defect"] == "ins_production_oid":
                assert patient["ins_oid"] == InsKind.NIR.value
            continue
        document = documents[record["document_id"]]
        assert document["ipp"] == record["ipp"]
        content = document["content"]
        if document["content_uri"]:
            path = Path(unquote(urlparse(document["content_uri"]).path))
            content = path.read_bytes() if path.exists() else None
            if record["defect"] == "file_oversize":
                assert path.stat().st_size > 20_000_000
                continue
        match record["defect"]:
            case "content_null" | "file_missing":
                assert content is None
            case "content_empty" | "file_empty":
                assert content == b""
            case "content_text_plain":
                assert document["mime_type"] == "text/plain"
            case "pdf_no_header" | "file_not_pdf":
                assert not content.startswith(b"%PDF-")
            case "pdf_truncated":
                assert b"%%EOF" not in content[-1024:]
            case "author_without_rpps":
                assert document["author_id"] == "AUT-ANON"
            case "date_in_future":
                assert document["created_at"] > dt.datetime.combine(AS_OF, dt.time())
            case "visibility_conflict":
                assert document["masked_ps"]
                assert document["invisible_patient"]
            case "withheld":
                assert document["withheld"]
            case "latest_cancelled":
                later = [
                    d
                    for d in documents.values()
                    if d["set_id"] == document["set_id"] and d["version"] > document["version"]
                ]
                assert [d["status"] for d in later] == ["cancelled"]
            case "on_cancelled_stay":
                assert stays[document["stay_id"]]["status"] == "cancelled"


def test_documents_are_real_pdfs_of_the_asked_size(engine) -> None:
    generate(engine, GenerationOptions(patients=15, seed=9, as_of=AS_OF, pdf_kb=6))
    with engine.connect() as conn:
        damaged = set(conn.scalars(sa.select(synthetic_defect.c.document_id)))
        rows = conn.execute(sa.select(dpi_document.c.document_id, dpi_document.c.content)).all()
    good = [(i, c) for i, c in rows if i not in damaged]
    assert good
    assert len({hashlib.sha1(c).digest() for _, c in good}) == len(good), "PDFs are not unique"
    for document_id, content in good:
        assert 5 * 1024 < len(content) < 8 * 1024
        text = PdfReader(io.BytesIO(content)).pages[0].extract_text()
        assert document_id in text


def test_history_looks_like_a_hospital(engine) -> None:
    """Broad proportions: identities, kinds, statuses, live sends, versions, planned stays."""
    generate(engine, GenerationOptions(patients=500, seed=2, as_of=AS_OF, pdf_kb=1))
    as_of = dt.datetime.combine(AS_OF, dt.time())
    with engine.connect() as conn:
        status = Counter(conn.scalars(sa.select(dpi_patient.c.identity_status)))
        kinds = Counter(conn.scalars(sa.select(dpi_document.c.kind)))
        doc_status = Counter(conn.scalars(sa.select(dpi_document.c.status)))
        stays = Counter(conn.scalars(sa.select(dpi_stay.c.status)))
        future = sa.select(synthetic_defect.c.document_id).where(
            synthetic_defect.c.defect == "date_in_future"
        )
        oldest, newest = conn.execute(
            sa.select(
                sa.func.min(dpi_document.c.created_at), sa.func.max(dpi_document.c.created_at)
            ).where(dpi_document.c.document_id.not_in(future))
        ).one()
        live_before_2021 = conn.scalar(
            sa.select(sa.func.count()).where(dpi_document.c.sent_live_at < dt.datetime(2021, 6, 1))
        )
        live = conn.scalar(
            sa.select(sa.func.count()).where(dpi_document.c.dmp_unique_id.is_not(None))
        )
        chains = conn.scalar(sa.select(sa.func.count()).where(dpi_document.c.version > 1))
    patients = sum(status.values())
    assert 0.7 < status["QUAL"] / patients < 0.9
    assert {"PROV", "RECUP", "VALI"} <= set(status)
    assert set(kinds) >= {"LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG", "CR_BIO", "CR_IMG", "ORDO"}
    assert doc_status["draft"]
    assert doc_status["cancelled"]
    assert doc_status["validated"] / sum(doc_status.values()) > 0.9
    assert stays["planned"]
    assert stays["in_progress"]
    assert stays["finished"]
    assert newest <= as_of, "a document from the future that is not a recorded defect"
    assert oldest < as_of - dt.timedelta(days=20 * 365), "no history older than 20 years"
    assert live > 0
    assert live_before_2021 == 0
    assert chains > 0


def test_stays_fit_their_patients_and_their_units(engine) -> None:
    """No man in obstetrics, no adult in paediatrics, nothing after death; JDV_J142 used right:
    day cases are IMP (partial), sessions SEANCE, never AMB; a day-case surgical stay has its
    letter and operative report."""
    generate(engine, GenerationOptions(patients=1500, seed=4, as_of=AS_OF, pdf_kb=1))
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(
                    dpi_stay, dpi_patient.c.sex, dpi_patient.c.birth_date, dpi_patient.c.death_date
                ).join(dpi_patient, dpi_patient.c.ipp == dpi_stay.c.ipp)
            )
            .mappings()
            .all()
        )
        kinds_by_stay: dict[str, set[str]] = {}
        for stay_id, kind in conn.execute(sa.select(dpi_document.c.stay_id, dpi_document.c.kind)):
            kinds_by_stay.setdefault(stay_id, set()).add(kind)
    encounters = Counter((r["encounter_type"], r["hospitalisation"]) for r in rows)
    assert encounters[("IMP", "full")]
    assert encounters[("IMP", "partial")]
    assert encounters[("SEANCE", None)]
    assert not any(r["encounter_type"] == "AMB" for r in rows)
    for r in rows:
        age = (r["admitted_at"].date() - r["birth_date"]).days / 365.25
        if r["unit_code"] == "GYN-OBS":
            assert r["sex"] == "F", r["stay_id"]
        if r["unit_code"] == "PEDIA":
            assert age < 18, r["stay_id"]
        if r["unit_code"] == "GERIA":
            assert age >= 70, r["stay_id"]
        if r["death_date"] is not None:
            assert r["admitted_at"].date() <= r["death_date"], r["stay_id"]
            assert r["status"] not in ("planned", "in_progress"), r["stay_id"]
    surgical_day_cases = [
        r["stay_id"]
        for r in rows
        if r["hospitalisation"] == "partial"
        and r["unit_code"] in ("CHIR-DIG", "CHIR-ORTHO")
        and r["status"] == "finished"
    ]
    assert surgical_day_cases
    with_both = [s for s in surgical_day_cases if {"LDL", "CRO"} <= kinds_by_stay.get(s, set())]
    assert len(with_both) > len(surgical_day_cases) / 2
    cancelled_with_documents = [
        r for r in rows if r["status"] == "cancelled" and r["stay_id"] in kinds_by_stay
    ]
    assert cancelled_with_documents, "a cancelled stay sometimes keeps documents filed on it"


def test_the_live_feed_sends_its_kinds_at_their_shares_from_its_start(engine) -> None:
    since = dt.date(2024, 3, 1)
    generate(
        engine,
        GenerationOptions(patients=1500, seed=6, as_of=AS_OF, pdf_kb=1, live_feed_since=since),
    )
    start = dt.datetime.combine(since, dt.time())
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(dpi_document.c.kind, dpi_document.c.sent_live_at).where(
                dpi_document.c.status == "validated", dpi_document.c.authenticated_at >= start
            )
        ).all()
        earliest = conn.scalar(sa.select(sa.func.min(dpi_document.c.sent_live_at)))
    assert earliest is not None
    assert earliest >= start
    for kind, share in LIVE_FEED_SHARES.items():
        of_kind = [sent for k, sent in rows if k == kind]
        sent = sum(s is not None for s in of_kind) / len(of_kind)
        # Versions written in the last hours before as_of cannot have been sent yet.
        assert share - 0.12 < sent <= share + 0.05, (kind, sent)
    assert not any(sent for k, sent in rows if k == "OTHER")
