"""Priority pays: DS1.4 against documents sent, in the plain order and in the priority order (DESIGN §10).

Generates a synthetic DPI (SQLite), takes the decision stream of a rule (`--rule`, default
history-5y; e.g. history-5y-focused), and simulates sending
its selected documents patient by patient in each order (`backfill.simulation`): after each step of
the budget, DS1.4 of the month of `--as-of` (month to date) is computed by the indicator query as
if those documents had been acknowledged. Prints both curves side by side and the documents each
order needs to reach the 50 % target. The synthetic live feed runs since 2021, which already puts
DS1.4 high; `--live-feed-since` forgets the live sends before a date, as in an establishment whose
live feed started recently (the case the backfill is for).

    python bench/priority.py [--patients 3000] [--as-of 2026-11-20] [--live-feed-since 2026-09-01] [--steps 10]
                             [--rule history-5y]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from backfill.indicator import Month
from backfill.selection import load_rule
from backfill.selection.paris_time import instant_of
from backfill.simulation import documents_to_reach, ds14_after, plan_orders
from connectors.dpi.contract import dpi_document
from connectors.dpi.synthetic.generator import GenerationOptions, generate

TARGET = 0.5


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--as-of", default="2026-11-20")
    parser.add_argument("--live-feed-since", default="2026-09-01")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rule", default="history-5y", help="a shipped rule's name or a path")
    args = parser.parse_args(argv)
    as_of_day = dt.date.fromisoformat(args.as_of)
    # measured at noon Paris time on that day, month to date
    now = instant_of(dt.datetime.combine(as_of_day, dt.time(12)))
    month = Month(as_of_day.year, as_of_day.month)
    rule = load_rule(args.rule)
    print(f"rule: {rule.name}")
    with tempfile.TemporaryDirectory() as folder:
        engine = sa.create_engine(f"sqlite:///{Path(folder) / 'dpi.sqlite'}")
        started = time.perf_counter()
        generate(engine, GenerationOptions(patients=args.patients, seed=args.seed, as_of=as_of_day))
        print(f"synthetic DPI: {args.patients} patients in {time.perf_counter() - started:.1f} s")
        if args.live_feed_since:
            since = dt.datetime.fromisoformat(args.live_feed_since)
            with engine.begin() as conn:
                forgotten = conn.execute(
                    sa.update(dpi_document)
                    .where(dpi_document.c.sent_live_at < since)
                    .values(sent_live_at=None, dmp_unique_id=None)
                ).rowcount
            print(f"live feed since {since:%Y-%m-%d}: {forgotten} earlier live sends forgotten")
        with engine.connect() as conn:
            started = time.perf_counter()
            plan = plan_orders(conn, rule, now, lookahead_days=7)
            total = len(plan.plain)
            print(f"selected documents: {total} (plan in {time.perf_counter() - started:.1f} s)")
            if total == 0:
                print("nothing selected: no curve to draw")
                return 0
            print(f"\nDS1.4 {month} (month to date at {now:%Y-%m-%d %H:%M} UTC) vs documents sent")
            print(f"{'documents':>10}  {'plain':>8}  {'priority':>8}")
            budgets = sorted({round(total * k / args.steps) for k in range(args.steps + 1)})
            figure = None
            for budget in budgets:
                rates = []
                for order in (plan.plain, plan.priority):
                    figure = ds14_after(
                        conn, order, budget, month, now=now, eligible_kinds=rule.kinds
                    )
                    rates.append(
                        "   —" if figure.rate is None else f"{float(figure.rate) * 100:6.1f} %"
                    )
                print(f"{budget:>10}  {rates[0]:>8}  {rates[1]:>8}")
            assert figure is not None
            print(f"(denominator: {figure.denominator} returning-patient stays)")
            print(f"\ndocuments needed to reach {TARGET:.0%}:")
            for name in ("plain", "priority"):
                needed = documents_to_reach(
                    conn, plan.order(name), TARGET, month, now=now, eligible_kinds=rule.kinds
                )
                shown = (
                    "not reachable with this rule"
                    if needed is None
                    else f"{needed} ({needed / total:.1%} of the selection)"
                )
                print(f"  {name:>8}: {shown}")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
