"""The dry-run audit (DESIGN §11): counters over the decision stream, as JSON, CSV and a terminal table.

The JSON keys and the CSV columns are a contract: `as_of`, `rule`, `total`, `selected`,
`excluded` (every reason, zero included, in contract order), `by_kind`; and
`document_id,set_id,version,ipp,kind,created_at,decision`. Extended with `minors` (what the
rule's `[minors]` policy did to minors' documents) and `warnings` (the rule's).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.table import Table

from backfill.outputs import SafeCsvWriter, plain, write_output
from backfill.selection.decisions import Decision
from backfill.selection.paris_time import shown
from backfill.selection.reasons import Reason
from backfill.selection.rules import Rule

__all__ = ["CSV_COLUMNS", "AuditCounts", "DecisionCsv", "reason_table"]

CSV_COLUMNS = ("document_id", "set_id", "version", "ipp", "kind", "created_at", "decision")
MINORS_SENT = "sent"
MINORS_INVISIBLE = "sent_invisible_to_legal_representatives"
MINORS_HELD_BACK = "held_back"


@dataclass
class AuditCounts:
    """How many documents got each decision, overall and per kind."""

    total: int = 0
    selected: int = 0
    excluded: Counter[Reason] = field(default_factory=Counter)
    kinds_selected: Counter[str] = field(default_factory=Counter)
    kinds_excluded: Counter[str] = field(default_factory=Counter)
    # Minors' documents: sent, sent invisible to the legal representatives, held back.
    minors: Counter[str] = field(default_factory=Counter)

    def add(self, decision: Decision) -> None:
        self.total += 1
        if decision.reason is None:
            self.selected += 1
            self.kinds_selected[decision.kind] += 1
            if decision.minor:
                self.minors[MINORS_INVISIBLE if decision.hide_from_legal_rep else MINORS_SENT] += 1
        else:
            self.excluded[decision.reason] += 1
            self.kinds_excluded[decision.kind] += 1
            if decision.reason is Reason.MINOR_HELD_BACK:
                self.minors[MINORS_HELD_BACK] += 1

    def count(self, decisions: Iterable[Decision]) -> Iterator[Decision]:
        """Count the decisions passing through, and pass them on."""
        for decision in decisions:
            self.add(decision)
            yield decision

    def as_json(self, rule: Rule, as_of: dt.datetime) -> dict[str, Any]:
        kinds = sorted(set(self.kinds_selected) | set(self.kinds_excluded))
        return {
            "as_of": as_of.isoformat(),
            "rule": rule.name,
            "total": self.total,
            "selected": self.selected,
            "excluded": {reason.value: self.excluded.get(reason, 0) for reason in Reason},
            "by_kind": {
                kind: {
                    "selected": self.kinds_selected.get(kind, 0),
                    "excluded": self.kinds_excluded.get(kind, 0),
                }
                for kind in kinds
            },
            "minors": {
                key: self.minors.get(key, 0)
                for key in (MINORS_SENT, MINORS_INVISIBLE, MINORS_HELD_BACK)
            },
            "warnings": rule.warnings,
        }

    def write_json(self, path: Path, rule: Rule, as_of: dt.datetime) -> None:
        write_output(
            path, json.dumps(self.as_json(rule, as_of), indent=2, ensure_ascii=False) + "\n"
        )


class DecisionCsv:
    """The decision CSV, written row by row as the stream goes (memory stays flat).

    Cells are written as text a spreadsheet will not run (`backfill.outputs.safe_cell`): the
    identity-vigilance cell opens this file, and a document id may start with `=`.
    """

    def __init__(self, handle: IO[str]) -> None:
        self._writer = SafeCsvWriter(handle)
        self._writer.writerow(CSV_COLUMNS)

    def write(self, decision: Decision) -> None:
        self._writer.writerow(
            (
                decision.document_id,
                decision.set_id,
                decision.version,
                decision.ipp,
                decision.kind,
                decision.created_at.isoformat() if decision.created_at else "",
                decision.decision,
            )
        )


def reason_table(counts: AuditCounts, rule: Rule, as_of: dt.datetime) -> Table:
    """Reasons with their counts and share of all documents, in contract order."""
    table = Table(
        title=plain(f"rule {rule.name} at {shown(as_of)} (Paris time): {counts.total} documents"),
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("decision")
    table.add_column("documents", justify="right")
    table.add_column("%", justify="right")

    def share(n: int) -> str:
        return f"{100 * n / counts.total:.1f}" if counts.total else "-"

    table.add_row("", "selected", str(counts.selected), share(counts.selected), style="bold green")
    for reason in Reason:
        n = counts.excluded.get(reason, 0)
        table.add_row(str(reason.rank), reason.value, str(n), share(n), style=None if n else "dim")
    if counts.minors:
        table.caption = "minors' documents: " + ", ".join(
            f"{counts.minors.get(key, 0)} {key.replace('_', ' ')}"
            for key in (MINORS_SENT, MINORS_INVISIBLE, MINORS_HELD_BACK)
        )
        table.caption_justify = "left"
    return table
