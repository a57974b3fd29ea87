"""Audit counters: every reason in the JSON, per-kind counts, the table's percentages."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console

from backfill.selection.audit import AuditCounts, DecisionCsv, reason_table
from backfill.selection.decisions import Decision
from backfill.selection.reasons import Reason
from backfill.selection.rules import load_rule

AS_OF = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _decision(
    document_id: str, kind: str, reason: Reason | None, *, minor: bool = False, hide: bool = False
) -> Decision:
    return Decision(
        document_id, document_id, 1, "P1", None, kind, dt.datetime(2025, 3, 30, 2, 30), reason,
        None, "QUAL", "application/pdf", None, minor=minor, hide_from_legal_rep=hide,
    )  # fmt: skip


def test_json_has_every_reason_and_kinds() -> None:
    counts = AuditCounts()
    stream = [
        _decision("a", "CRH", None),
        _decision("b", "CRH", Reason.NO_DMP),
        _decision("c", "ORDO", Reason.KIND_NOT_SELECTED),
    ]
    assert [d.document_id for d in counts.count(stream)] == ["a", "b", "c"]
    report = counts.as_json(load_rule(), AS_OF)
    assert report["as_of"] == "2026-01-02T03:04:05+00:00"
    assert report["total"] == 3
    assert report["selected"] == 1
    assert list(report["excluded"]) == [r.value for r in Reason]
    assert report["excluded"]["no_dmp"] == 1
    assert report["excluded"]["visibility_conflict"] == 0
    assert report["by_kind"] == {
        "CRH": {"selected": 1, "excluded": 1},
        "ORDO": {"selected": 0, "excluded": 1},
    }


def test_minors_are_counted_by_what_their_policy_did() -> None:
    counts = AuditCounts()
    stream = [
        _decision("adult", "CRH", None),
        _decision("sent", "CRH", None, minor=True),
        _decision("hidden", "CRH", None, minor=True, hide=True),
        _decision("held", "CRH", Reason.MINOR_HELD_BACK, minor=True),
        _decision("held-too", "LDL", Reason.MINOR_HELD_BACK, minor=True),
        _decision("other-reason", "CRH", Reason.NO_DMP, minor=True),
    ]
    list(counts.count(stream))
    report = counts.as_json(load_rule(), AS_OF)
    assert report["minors"] == {
        "sent": 1,
        "sent_invisible_to_legal_representatives": 1,
        "held_back": 2,
    }
    assert report["warnings"] == []
    console = Console(file=io.StringIO(), width=120)
    console.print(reason_table(counts, load_rule(), AS_OF))
    printed = " ".join(console.file.getvalue().split())  # type: ignore[attr-defined]
    assert "minors' documents: 1 sent, 1 sent invisible to legal representatives, 2 held back" in (
        printed
    )


def test_csv_rows_and_empty_table() -> None:
    out = io.StringIO()
    writer = DecisionCsv(out)
    writer.write(_decision("a", "CRH", Reason.CONTENT_CORRUPT))
    assert out.getvalue().splitlines() == [
        "document_id,set_id,version,ipp,kind,created_at,decision",
        "a,a,1,P1,CRH,2025-03-30T02:30:00,content_corrupt",
    ]
    console = Console(file=io.StringIO(), width=120)
    console.print(reason_table(AuditCounts(), load_rule(), AS_OF))
    text = console.file.getvalue()
    assert ": 0" in text
    assert "ins_invalid" in text
    assert "│ - │" in text  # no percentage of nothing
