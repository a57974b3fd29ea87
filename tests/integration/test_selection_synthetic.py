"""The synthetic DPI's deliberate defects get the reason its generator recorded, on both backends.

The generator (connectors.dpi.synthetic) writes which row carries which defect and the reason the
engine must give (`synthetic_defect`). A defective document is never selected, and its reason
is the recorded one unless an earlier reason in the contract order already excludes it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from backfill.selection import Reason, decide, load_rule
from connectors.dpi.synthetic import GenerationOptions, generate

AS_OF = dt.date(2026, 11, 1)


def test_every_defect_gets_its_reason(database, tmp_path: Path) -> None:
    engine = database.engine()
    try:
        generate(
            engine,
            GenerationOptions(patients=40, seed=7, as_of=AS_OF, pdf_kb=1, files_dir=tmp_path),
        )
        with engine.connect() as conn:
            defects = conn.execute(
                sa.text("SELECT ipp, document_id, defect, expected_reason FROM synthetic_defect")
            ).all()
        as_of = dt.datetime.combine(AS_OF, dt.time(), tzinfo=dt.UTC)
        decisions = list(decide(engine, load_rule("history-20y"), as_of))
    finally:
        engine.dispose()
    by_document = {d.document_id: d for d in decisions}
    by_patient: dict[str, list[object]] = {}
    for decision in decisions:
        by_patient.setdefault(decision.ipp, []).append(decision)
    assert len(defects) >= 18
    checked = 0
    for ipp, document_id, defect, expected in defects:
        rank = Reason(expected).rank
        if document_id is not None:
            got = by_document[document_id]
            assert got.reason is not None, (document_id, defect)
            assert got.reason.rank <= rank, (document_id, defect, got.decision)
            checked += got.reason.value == expected
        else:
            # An identity defect: every document of the patient that reaches the identity
            # checks stops there, with that reason.
            reached = [
                d for d in by_patient.get(ipp, []) if d.reason is None or d.reason.rank >= 10
            ]
            assert all(d.decision == expected for d in reached), (ipp, defect)
            checked += bool(reached)
    # The generator places defects on a patient's first summary document without checking its
    # date or whether the live feed sent it, so some are excluded earlier (older, already sent).
    assert checked >= len(defects) // 2
