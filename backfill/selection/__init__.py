"""Selection (DESIGN §5): rule files → one streamed SQL query → a decision per document version."""

from __future__ import annotations

from backfill.selection.codes import check_rule_codes
from backfill.selection.compiler import Window, compile_decisions
from backfill.selection.decisions import Decision, decide
from backfill.selection.facts import InMemoryLedgerFacts, LedgerFacts
from backfill.selection.reasons import IDENTITY_REASONS, SELECTED, Reason
from backfill.selection.rules import DEFAULT_RULE, Rule, load_rule

__all__ = [
    "DEFAULT_RULE",
    "IDENTITY_REASONS",
    "SELECTED",
    "Decision",
    "InMemoryLedgerFacts",
    "LedgerFacts",
    "Reason",
    "Rule",
    "Window",
    "check_rule_codes",
    "compile_decisions",
    "decide",
    "load_rule",
]
