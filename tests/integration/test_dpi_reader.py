"""From the DPI contract to a CDA: the reader feeds the builder, and every injected defect of the
synthetic DPI is stopped with the reason code it was injected for (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from cda.build import build_document
from cda.errors import CdaError
from cda.examples import ESTABLISHMENT
from connectors.dpi.contract import dpi_document, dpi_patient
from connectors.dpi.reader import read_documents
from connectors.dpi.synthetic import GenerationOptions, generate
from connectors.dpi.synthetic.generator import synthetic_defect

SUMMARY_KINDS = ("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG")
IDENTITY_REASONS = {
    "identity_not_qualified",
    "identity_doubtful",
    "ins_missing",
    "ins_invalid",
    "ins_traits_incomplete",
}
# Reasons only selection gives (a size limit, a date against as_of, what other rows say, the
# DMP's environment): the builder has no view of them.
SELECTION_ONLY = {
    "content_too_large",
    "future_dated",
    "ins_shared",
    "ins_traits_inconsistent",
    "ins_wrong_environment",
    "document_withheld",
    "set_withdrawn",
    "stay_cancelled",
}


def test_every_defect_is_stopped_with_its_reason_and_the_rest_builds(
    database, tmp_path: Path
) -> None:
    engine = database.engine()
    generate(
        engine,
        GenerationOptions(
            patients=40, seed=21, as_of=dt.date(2026, 11, 1), pdf_kb=2, files_dir=tmp_path / "files"
        ),
    )
    with engine.connect() as conn:
        wanted = [
            (row.document_id, None)
            for row in conn.execute(
                sa.select(dpi_document.c.document_id).where(
                    dpi_document.c.kind.in_(SUMMARY_KINDS), dpi_document.c.status == "validated"
                )
            )
        ]
        defects = conn.execute(sa.select(synthetic_defect)).mappings().all()
        eligible = set(
            conn.scalars(
                sa.select(dpi_patient.c.ipp).where(dpi_patient.c.identity_status == "QUAL")
            )
        )
    expected_by_document = {
        d["document_id"]: d["expected_reason"] for d in defects if d["document_id"]
    }
    expected_by_patient = {d["ipp"]: d["expected_reason"] for d in defects if not d["document_id"]}

    outcomes: dict[str, str] = {}
    for read in read_documents(engine, wanted, content_root=tmp_path / "files"):
        if read.error is not None:
            outcomes[read.document_id] = read.error.reason
            continue
        try:
            built = build_document(read.document, read.patient, ESTABLISHMENT)
        except CdaError as exc:
            outcomes[read.document_id] = exc.reason
        else:
            outcomes[read.document_id] = "built"
            assert built.entry.source_patient_id.startswith(read.patient.ipp)
    engine.dispose()

    assert len(outcomes) == len(wanted)
    assert "built" in outcomes.values()
    checked = 0
    for document_id, outcome in outcomes.items():
        ipp = document_id.split("-")[0]
        if (
            document_id in expected_by_document
            and expected_by_document[document_id] not in SELECTION_ONLY
        ):
            # A defect that fell by chance on a patient without a usable INS is stopped earlier.
            if outcome not in IDENTITY_REASONS or ipp in eligible:
                assert outcome == expected_by_document[document_id], document_id
                checked += 1
        elif ipp in expected_by_patient and expected_by_patient[ipp] not in SELECTION_ONLY:
            assert outcome == expected_by_patient[ipp], document_id
            checked += 1
    assert checked >= 10, "the DPI held too few defects for this test to mean anything"


def test_a_value_of_the_wrong_type_refuses_that_document_only_and_is_not_quoted(
    sqlite_database, tmp_path: Path
) -> None:
    """SQLite lets a view return '14/06/1985' for a date: that document is refused with a reason,
    the others of the batch are read, and the value (personal data) appears in no message."""
    from backfill.selection import decide, load_rule

    engine = sqlite_database.engine()
    generate(engine, GenerationOptions(patients=30, seed=5, as_of=dt.date(2026, 11, 1), pdf_kb=1))
    with engine.begin() as conn:
        victim = conn.scalar(
            sa.select(dpi_document.c.ipp).where(dpi_document.c.kind == "LDL").limit(1)
        )
        conn.execute(
            sa.text("UPDATE dpi_patient SET birth_date = '14/06/1985' WHERE ipp = :ipp"),
            {"ipp": victim},
        )
        wanted = [
            (d, None)
            for d in conn.scalars(
                sa.select(dpi_document.c.document_id).where(dpi_document.c.kind == "LDL")
            )
        ]
    results = list(read_documents(engine, wanted))
    refused = [
        r for r in results if r.error is not None and r.error.reason == "invalid_document_data"
    ]
    assert refused, "the faulty row was not refused"
    assert all(r.document_id.startswith(victim) for r in refused)
    assert any(r.document is not None for r in results), "the rest of the batch was lost"
    assert all("1985" not in r.error.message for r in refused)

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE dpi_document SET created_at = '2026-02-30 10:00:00' WHERE document_id = :d"
            ),
            {"d": wanted[0][0]},
        )
    # Selection reads it too: that document gets a reason, the others are decided (issue 17).
    got = {
        d.document_id: d
        for d in decide(engine, load_rule("history-5y"), dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    }
    engine.dispose()
    garbled = got[wanted[0][0]]
    assert garbled.created_at is None
    assert garbled.reason is not None  # invalid_document_data, or a date-free reason first
    assert any(d.selected for d in got.values()), "the others were not decided"
