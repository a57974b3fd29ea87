"""Priority pays: for the same budget of documents the priority order reaches a higher DS1.4 than the plain one."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
import sqlalchemy as sa

from backfill.indicator import Month
from backfill.selection import load_rule
from backfill.simulation import documents_to_reach, ds14_after, plan_orders
from connectors.dpi.contract import create_contract
from tests.conftest import Database
from tests.integration.ds14_support import HISTORY_KINDS, paris
from tests.integration.selection_support import author, document, insert, patient, stay, unit

AS_OF = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
NOVEMBER = Month(2026, 11)


def _small_dpi(seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """60 patients with 1–3 old stays and their unsent reports; a random 12 of them are back in November."""
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, Any]]] = {
        "patients": [], "stays": [], "documents": [], "units": [unit()], "authors": [author()],
    }  # fmt: skip
    ipps = [f"P{n:03d}" for n in range(60)]
    back = set(rng.sample(ipps, 12))
    for ipp in ipps:
        rows["patients"].append(patient(ipp))
        for k in range(rng.randint(1, 3)):
            admitted = paris(2023 + k, rng.randint(1, 12), rng.randint(1, 28))
            sid = f"{ipp}-S{k}"
            rows["stays"].append(
                stay(sid, ipp, admitted, discharged_at=admitted + dt.timedelta(days=3))
            )
            for kind in rng.sample(["LDL", "CRH", "CRO"], rng.randint(1, 2)):
                rows["documents"].append(
                    document(
                        f"{sid}-{kind}",
                        ipp,
                        admitted + dt.timedelta(days=3),
                        stay_id=sid,
                        kind=kind,
                    )
                )
        if ipp in back:
            admitted = paris(2026, 11, rng.randint(1, 19))
            rows["stays"].append(stay(f"{ipp}-NOV", ipp, admitted, status="in_progress"))
    return rows


@pytest.fixture
def dpi(database: Database) -> sa.Engine:
    engine = database.engine()
    create_contract(engine)
    insert(engine, _small_dpi())
    yield engine
    engine.dispose()


def test_priority_reaches_a_higher_ds14_for_the_same_budget(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        plan = plan_orders(conn, load_rule("history-5y.toml"), AS_OF, lookahead_days=7)
        assert sorted(plan.plain) == sorted(plan.priority)  # same documents, another order

        def rate(order: tuple[str, ...], budget: int) -> float:
            figure = ds14_after(
                conn, order, budget, NOVEMBER, now=AS_OF, eligible_kinds=HISTORY_KINDS
            )
            assert figure.denominator == 12
            return float(figure.rate or 0)

        budget = len(plan.plain) // 5
        assert rate(plan.priority, budget) > rate(plan.plain, budget)
        for b in range(0, len(plan.plain) + 1, 10):  # never worse anywhere on the curve
            assert rate(plan.priority, b) >= rate(plan.plain, b)
        needed = {
            name: documents_to_reach(
                conn, plan.order(name), 0.5, NOVEMBER, now=AS_OF, eligible_kinds=HISTORY_KINDS
            )
            for name in ("plain", "priority")
        }
    assert needed["priority"] is not None
    assert needed["plain"] is not None
    assert needed["priority"] < needed["plain"]
    assert rate_is_reached_exactly(dpi, plan.priority, needed["priority"])


def rate_is_reached_exactly(dpi: sa.Engine, order: tuple[str, ...], needed: int) -> bool:
    """The search's answer is the first budget at 50 %: one document fewer falls short."""
    with dpi.connect() as conn:
        at = ds14_after(conn, order, needed, NOVEMBER, now=AS_OF, eligible_kinds=HISTORY_KINDS)
        before = ds14_after(
            conn, order, needed - 1, NOVEMBER, now=AS_OF, eligible_kinds=HISTORY_KINDS
        )
    return float(at.rate or 0) >= 0.5 > float(before.rate or 0)
