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


def test_identities_are_valid_test_ins_with_corsica_and_nia(engine) -> None:
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
        assert p["ins_oid"] in (InsKind.TEST_NIR.value, InsKind.NIA.value)
        assert p["sex"] in ("M", "F")
        # A first given name may itself hold a space (NGOC ANH): the list starts with it.
        assert p["birth_given_names"].startswith(p["first_birth_given_name"])
    assert any(p["ins_matricule"][5:7] in ("2A", "2B") for p in with_ins), "no Corsican birth"
    assert any(p["ins_oid"] == InsKind.NIA.value for p in with_ins), "no NIA"
    names = " ".join(p["birth_family_name"] for p in patients)
    assert "'" in names
    assert "-" in names
    assert any(ch in names for ch in "ÉÈÊÇÔÎÏË")
    assert any(len(p["birth_given_names"].split(" ")) > 1 for p in patients)
    # Nobody dies before being born.
    assert all(p["death_date"] is None or p["death_date"] >= p["birth_date"] for p in patients)


def test_every_defect_is_where_the_side_table_says(engine, tmp_path: Path) -> None:
    """19 patients hold every kind of defect; each recorded defect is visible in its row."""
    generate(
        engine,
        GenerationOptions(patients=60, seed=5, as_of=AS_OF, pdf_kb=1, files_dir=tmp_path / "files"),
    )
    with engine.connect() as conn:
        records = conn.execute(sa.select(synthetic_defect)).mappings().all()
        documents = {d["document_id"]: d for d in conn.execute(sa.select(dpi_document)).mappings()}
        patients = {p["ipp"]: p for p in conn.execute(sa.select(dpi_patient)).mappings()}
    kinds = {r["defect"] for r in records}
    assert kinds >= set(PATIENT_DEFECTS) | set(DOCUMENT_DEFECTS) | set(FILE_DEFECTS)
    for record in records:
        expected = {**PATIENT_DEFECTS, **DOCUMENT_DEFECTS, **FILE_DEFECTS}[record["defect"]]
        assert record["expected_reason"] == expected
        if record["document_id"] is None:
            patient = patients[record["ipp"]]
            assert patient["identity_status"] == "QUAL"
            assert not patient["deceased"]
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
