"""What DS1.4 would be after sending N selected documents in a given patient order — no DMP needed.

The decision stream (selection) says which documents a run would send; the sender sends them one
patient at a time (all of a patient's documents together, DESIGN §3), in an order: the plain order
of the stream (by IPP) or the priority order (DESIGN §10, `backfill.priority`). Pretending the
first N documents of that order were acknowledged just before the measurement and running the
DS1.4 query over them gives the figure the run would reach with a budget of N documents. This is
how `bench/priority.py` draws its curves and how a test shows that priority pays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from backfill.indicator import Ds14, Month, compute_ds14
from backfill.priority import patient_priorities, priority_order
from backfill.selection import decide
from backfill.selection.rules import Rule

__all__ = ["SendingPlan", "documents_to_reach", "ds14_after", "plan_orders"]


@dataclass(frozen=True)
class SendingPlan:
    """The selected documents in the order a run would send them, for each patient order."""

    plain: tuple[str, ...]
    priority: tuple[str, ...]

    def order(self, name: str) -> tuple[str, ...]:
        return {"plain": self.plain, "priority": self.priority}[name]


def plan_orders(
    conn: Connection, rule: Rule, as_of: dt.datetime, *, lookahead_days: int
) -> SendingPlan:
    """The selected documents, grouped by patient, in the plain and in the priority order."""
    by_patient: dict[str, list[str]] = {}
    # The stream on a connection of its own: it sets streaming options on the one it is given.
    for decision in decide(conn.engine, rule, as_of):
        if decision.selected:
            by_patient.setdefault(decision.ipp, []).append(decision.document_id)
    plain = sorted(by_patient)
    priorities = patient_priorities(conn, plain, as_of, lookahead_days)
    ranked = sorted(plain, key=lambda ipp: priority_order(ipp, priorities[ipp]))

    def flat(ipps: Sequence[str]) -> tuple[str, ...]:
        return tuple(doc for ipp in ipps for doc in by_patient[ipp])

    return SendingPlan(flat(plain), flat(ranked))


def ds14_after(
    conn: Connection,
    order: Sequence[str],
    budget: int,
    month: Month,
    *,
    now: dt.datetime,
    eligible_kinds: Sequence[str],
    encounter_types: Sequence[str] = ("IMP",),
) -> Ds14:
    """DS1.4 of `month` at `now` had the first `budget` documents of `order` been acknowledged."""
    acked_at = now - dt.timedelta(seconds=1)
    return compute_ds14(
        conn,
        month,
        now=now,
        encounter_types=encounter_types,
        eligible_kinds=eligible_kinds,
        acked=((doc, acked_at) for doc in order[:budget]),
    )


def documents_to_reach(
    conn: Connection,
    order: Sequence[str],
    target: float,
    month: Month,
    *,
    now: dt.datetime,
    eligible_kinds: Sequence[str],
    encounter_types: Sequence[str] = ("IMP",),
) -> int | None:
    """The fewest documents of `order` that bring DS1.4 to `target`; None if even all do not.

    DS1.4 never falls when one more document is acknowledged, so a binary search suffices.
    """

    def reaches(budget: int) -> bool:
        rate = ds14_after(
            conn, order, budget, month, now=now,
            eligible_kinds=eligible_kinds, encounter_types=encounter_types,
        ).rate  # fmt: skip
        return rate is not None and rate >= target

    if not reaches(len(order)):
        return None
    low, high = 0, len(order)
    while low < high:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle + 1
    return low
