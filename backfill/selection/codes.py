"""The unit, specialty and practice-setting codes a rule's per-kind filters name, checked against the DPI.

Kinds are a closed list (the rule model refuses an unknown one when the file is loaded); unit,
specialty and setting codes belong to the establishment and exist only in its DPI. A filter
naming a code the DPI does not have would silently match nothing (an include list: every
document of the kind `not_relevant`; an exclude list: nothing excluded), so the rule is refused
when a run or an audit starts, with the rule file and the key named (`RuleError`, exit 2).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backfill.errors import RuleError
from backfill.selection.rules import FILTERS, Rule
from connectors.dpi.contract import dpi_author, dpi_unit

__all__ = ["check_rule_codes"]

_KNOWN_FROM: dict[str, tuple[sa.Column[str], str]] = {
    "dpi_document.unit_code": (dpi_unit.c.unit_code, "no dpi_unit row has this unit_code"),
    "dpi_author.specialty_code": (
        dpi_author.c.specialty_code,
        "no dpi_author has this specialty_code",
    ),
    "dpi_unit.practice_setting_code": (
        dpi_unit.c.practice_setting_code,
        "no dpi_unit has this practice_setting_code",
    ),
}
_SHOWN = 12  # known codes quoted in the message, at most
_WHAT = {column: what for _, _, column, what in FILTERS}


def check_rule_codes(bind: Engine | Connection, rule: Rule) -> None:
    """Refuse `rule` (RuleError naming its file and keys) if a filter names a code the DPI lacks.

    One DISTINCT query per kind of code the rule's filters use (units, specialties, settings:
    small tables), none for a rule without filters.
    """
    wanted = {
        column for refinement in rule.per_kind.values() for _, column, _ in refinement.filters
    }
    if not wanted:
        return
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            check_rule_codes(conn, rule)
        return
    known: dict[str, set[str]] = {}
    for column in sorted(wanted):
        source, _ = _KNOWN_FROM[column]
        query = sa.select(source).where(source.is_not(None)).distinct()
        known[column] = {str(code) for code in bind.execute(query).scalars()}
    problems = []
    for kind, refinement in sorted(rule.per_kind.items()):
        for key, column, codes in refinement.filters:
            for index, code in enumerate(codes):
                if code not in known[column]:
                    _, why = _KNOWN_FROM[column]
                    shown = sorted(known[column])
                    listed = ", ".join(shown[:_SHOWN]) + (", …" if len(shown) > _SHOWN else "")
                    problems.append(
                        f"per_kind.{kind}.{key}[{index}]: unknown {_WHAT[column]} {code!r} "
                        f"({why}; the DPI has: {listed or 'none'})"
                    )
    if problems:
        raise RuleError(
            f"{rule.source}: names codes this DPI does not know:\n  " + "\n  ".join(problems)
        )
