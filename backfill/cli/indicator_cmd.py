"""`backfill indicator` and `backfill bonus`: DS1.4 with its breakdown, and what the programme would pay."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from backfill import bonus as money
from backfill.cli._app import app, err_console, out_console, state
from backfill.config import Settings
from backfill.databases import open_engine, translate_errors
from backfill.errors import ConfigError
from backfill.indicator import (
    Ds14,
    Month,
    MonthFigures,
    last_complete_month,
    measure_month,
    percent,
)
from backfill.indicator_sources import load_ledger_acks
from backfill.outputs import plain, write_output
from backfill.reconcile import reconcile_configured
from backfill.selection import load_rule

__all__ = ["ActivityOption", "WindowOption", "bonus", "indicator"]


def _write_json(path: Path, payload: Any) -> None:
    try:
        write_output(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def months_to_show(month: Month, now: dt.datetime) -> list[Month]:
    """The month asked for, and, when it is still running, the last complete month beside it."""
    if Month.of(now) == month:
        return [month.previous(), month]
    return [month]


def measure(
    settings: Settings, months: list[Month], now: dt.datetime, notes: list[str] | None = None
) -> list[MonthFigures]:
    """DS1.4, DS1.1 and DS1.2 of each month, on one DPI connection with the ledger's acks loaded.

    A note on the sources (no ledger yet, say) goes to `notes` when given, else to stderr.
    """
    settings.require("dpi.url")
    assert settings.dpi.url is not None
    kinds = load_rule(settings.rules.file, settings.live_feed.kinds).kinds
    engine = open_engine(settings.dpi.url, "DPI", check=False, must_exist=True)
    try:
        with translate_errors("DPI", settings.dpi.url), engine.connect() as conn:
            note = load_ledger_acks(conn, settings)
            if note and notes is not None:
                notes.append(note)
            elif note:
                err_console.print(note)
            return [
                measure_month(
                    conn,
                    m,
                    now=now,
                    encounter_types=settings.indicator.encounter_types,
                    eligible_kinds=kinds,
                )
                for m in months
            ]
    finally:
        engine.dispose()


def ds14_table(figures: list[Ds14]) -> Table:
    table = Table(title="DS1.4 — history of the DPI in the DMP (target 50 %)")
    table.add_column("")
    for f in figures:
        table.add_column(f"{f.month}{' (to date)' if f.month_to_date else ''}", justify="right")
    table.add_row("DS1.4", *(percent(f.rate) for f in figures))
    labels = {
        "returning_patient_stays": "returning-patient stays (denominator)",
        "identity_not_qualified": "  identity not qualified",
        "no_eligible_history": "  no eligible earlier document",
        "eligible_not_yet_sent": "  eligible, not yet in the DMP",
        "counted": "  counted (numerator)",
    }
    for key, label in labels.items():
        table.add_row(label, *(str(f.breakdown[key]) for f in figures))
    return table


def parse_month(text: str | None, now: dt.datetime) -> Month:
    return last_complete_month(now) if text is None else Month.parse(text)


@app.command("indicator")
def indicator(
    month: Annotated[
        str | None,
        typer.Option("--month", help="YYYY-MM (default: the last complete month)."),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the month's figure as JSON here.")
    ] = None,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="Also compare what the ledger says is in the DMP with what the DMP holds "
            "(exit 1 when they differ).",
        ),
    ] = False,
) -> None:
    """DS1.4 for a month with its breakdown (the current month is month to date)."""
    settings = state.settings()
    now = dt.datetime.now(dt.UTC)
    wanted = parse_month(month, now)
    figures = measure(settings, months_to_show(wanted, now), now)
    out_console.print(ds14_table([f.ds14 for f in figures]))
    if figures[-1].ds14.month_to_date:
        out_console.print(
            f"{wanted} is still running: its figure is month to date; "
            f"{figures[0].ds14.month} is the last complete month."
        )
    payload = figures[-1].ds14.as_json()
    differences = 0
    if reconcile:
        result = reconcile_configured(settings)
        payload["reconciliation"] = result.as_json()
        differences = len(result.differences)
        out_console.print(
            f"reconciliation with the DMP: {result.matched} acknowledged documents held as "
            f"recorded, {result.live_feed} held from the live feed, {differences} differences"
        )
        for difference in result.differences:
            out_console.print(plain(f"  {difference.kind}: {difference.describe()}"))
    if json_file is not None:
        _write_json(json_file, payload)
    if differences:
        raise typer.Exit(1)


# ---- bonus --------------------------------------------------------------------------------------


def bonus_lines(est: money.Estimate, month: Month | None) -> list[str]:
    c, w = est.category, est.window
    fmt = money.format_euros
    lines = [
        f"2019 combined activity {est.activity:,}".replace(",", " ")
        + f": category {c.name} ({c.low:,}–{c.high:,}".replace(",", " ")
        + f", D1 from {fmt(Fraction(c.amount_min))} to {fmt(Fraction(c.amount_max))})",
        f'D1 "documents de sortie" at 100 %: {fmt(est.d1_full)}',
        f"window {w.name} pays {float(w.d1_rate) * 100:.0f} %: {fmt(est.d1)}",
    ]
    if est.history_bonus is None:
        lines.append(
            f"history bonus: none in {w.name} — DS1.4 does not exist in the first window "
            "(the programme's table has no target for it); the bonus starts with S2-2022"
        )
    else:
        lines.append(f"history bonus (10 % of the D1 amount): {fmt(est.history_bonus)}")
    where = f"measured on {month}" if month else "not measured"
    lines.append(f"conditions ({where}):")
    names = {
        "DS1.1": "discharge letters (LDL)",
        "DS1.2": "discharge prescriptions",
        "DS1.4": "history of the DPI",
    }
    for cond in est.conditions:
        state_word = {True: "met", False: "NOT met", None: "not measured"}[cond.met]
        lines.append(
            f"  {cond.indicator} {names[cond.indicator]}: {percent(cond.value)} "
            f"(target {float(cond.target) * 100:.0f} %) — {state_word}"
        )
    if est.history_bonus is not None:
        missing = [c.indicator for c in est.conditions if c.met is False]
        unknown = [c.indicator for c in est.conditions if c.met is None]
        if missing:
            verdict = f"the history bonus is not payable as things stand: {', '.join(missing)} below target"
        elif unknown:
            verdict = (
                f"the history bonus is payable only if {', '.join(unknown)} reach their targets"
            )
        else:
            verdict = "every condition is met: the history bonus is payable"
        lines.append(verdict)
    return lines


def bonus_json(est: money.Estimate, month: Month | None) -> dict[str, Any]:
    def amount(value: Fraction | None) -> float | None:
        return None if value is None else float(money.euros(value))

    return {
        "activity": est.activity,
        "category": est.category.name,
        "window": est.window.name,
        "d1_full": amount(est.d1_full),
        "d1_rate": float(est.window.d1_rate),
        "d1": amount(est.d1),
        "history_bonus": amount(est.history_bonus),
        "bonus_payable": est.bonus_payable,
        "measured_month": str(month) if month else None,
        "conditions": [
            {
                "indicator": c.indicator,
                "target": float(c.target),
                "value": None if c.value is None else round(float(c.value), 6),
                "met": c.met,
            }
            for c in est.conditions
        ],
    }


# Shared with `report`: the bonus estimate's two inputs.
ActivityOption = Annotated[
    int | None,
    typer.Option(
        "--activity",
        help="2019 combined activity, 0 to 1 600 000 (default: [indicator] activity).",
    ),
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--window", help="S1-2022, S2-2022, S1-2023 or S2-2023 (default: [indicator] window)."
    ),
]


@app.command("bonus")
def bonus(
    activity: ActivityOption = None,
    window: WindowOption = None,
    month: Annotated[
        str | None,
        typer.Option(
            "--month", help="Month to measure DS1.1/DS1.2/DS1.4 on (default: last complete)."
        ),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the estimate as JSON.")
    ] = None,
) -> None:
    """The "documents de sortie" amount, the history bonus, and whether its conditions hold."""
    settings = state.settings()
    activity = activity if activity is not None else settings.indicator.activity
    window = window or settings.indicator.window
    if activity is None or window is None:
        accepted = ", ".join(w.name for w in money.WINDOWS)
        raise money.BonusError(
            "bonus needs --activity (the 2019 combined activity, 0 to 1 600 000) and --window "
            f"({accepted}), or [indicator] activity/window in the configuration"
        )
    chosen = money.window_named(window)
    money.category_of(activity)  # range check before touching any database
    now = dt.datetime.now(dt.UTC)
    measured: Month | None = None
    values: dict[str, Fraction | None] = {"ds11": None, "ds12": None, "ds14": None}
    if settings.dpi.url is not None:
        measured = parse_month(month, now)
        (fig,) = measure(settings, [measured], now)
        values = {"ds11": fig.ds11.rate, "ds12": fig.ds12.rate, "ds14": fig.ds14.rate}
    else:
        err_console.print("no DPI configured (dpi.url): DS1.1, DS1.2 and DS1.4 are not measured")
    est = money.estimate(activity, chosen, **values)
    for line in bonus_lines(est, measured):
        out_console.print(escape(line))
    if json_file is not None:
        _write_json(json_file, bonus_json(est, measured))
