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
from connectors.dpi.synthetic.defects import DOCUMENT_DEFECTS, FILE_DEFECTS, PATIENT_DEFECTS, PLACED

AS_OF = dt.date(2026, 11, 1)


def defects_and_decisions(
    database, files: Path, *, patients: int, seed: int, rule: str
) -> tuple[list, list]:
    """Generate a synthetic DPI, then its recorded defects and every document's decision."""
    engine = database.engine()
    try:
        generate(
            engine,
            GenerationOptions(patients=patients, seed=seed, as_of=AS_OF, pdf_kb=1, files_dir=files),
        )
        with engine.connect() as conn:
            defects = conn.execute(
                sa.text("SELECT ipp, document_id, defect, expected_reason FROM synthetic_defect")
            ).all()
        as_of = dt.datetime.combine(AS_OF, dt.time(), tzinfo=dt.UTC)
        return defects, list(decide(engine, load_rule(rule), as_of, content_root=files))
    finally:
        engine.dispose()


def test_every_defect_gets_its_reason(database, tmp_path: Path) -> None:
    defects, decisions = defects_and_decisions(
        database, tmp_path, patients=40, seed=7, rule="history-20y"
    )
    by_document = {d.document_id: d for d in decisions}
    by_patient: dict[str, list[object]] = {}
    for decision in decisions:
        by_patient.setdefault(decision.ipp, []).append(decision)
    assert len(defects) >= PLACED
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
    # Random defects fall anywhere (old documents, biology reports): some stop earlier.
    assert checked >= len(defects) // 2


def test_the_placed_defects_get_exactly_their_reason_under_the_default_rule(
    database, tmp_path: Path
) -> None:
    """The deliberately placed defects (one per patient 0 to PLACED − 1) land on documents the default rule would
    otherwise send, so each gets exactly the recorded reason — the audit shows every reason."""
    defects, decisions = defects_and_decisions(
        database, tmp_path, patients=PLACED, seed=3, rule="history-5y"
    )
    by_document = {d.document_id: d.decision for d in decisions}
    # Patient i of a block carries the i-th defect kind (random ones come on top, anywhere).
    slots = [*PATIENT_DEFECTS, *DOCUMENT_DEFECTS, *FILE_DEFECTS]
    placed = {}
    for ipp, document_id, defect, expected in defects:
        if defect != slots[int(ipp[1:])]:
            continue
        if document_id is None:
            placed[defect] = expected in {d.decision for d in decisions if d.ipp == ipp}
        else:
            placed[defect] = by_document[document_id] == expected
    assert len(placed) == PLACED
    assert all(placed.values()), [defect for defect, ok in placed.items() if not ok]
