"""`backfill report --html FILE`: one self-contained page a project lead forwards.

What it shows: DS1.4 by month against the 50 % target (chart; the current month is month to date
and the last complete month is the headline), the audit's reasons (chart), the ledger's backlog
and its recent runs with their throughput, the identity worklist's size, DS1.1/DS1.2, and the
bonus estimate when the activity and window are known.

Self-contained: charts are matplotlib figures rendered to SVG (matplotlib's object API, no pyplot
and no display: the figure is drawn by the Agg/SVG machinery only; text kept as text in
the bundled DejaVu Sans, fixed ids and no date: the same data gives the same bytes) and inlined;
styles are inline; nothing is fetched. The figures behind each chart are also in the page, in a
JSON block (`<script type="application/json" id="report-data">`) and as `data-` attributes, so a
reader (or a test) can check them without reading the drawing.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from backfill import bonus as money
from backfill.config import Settings
from backfill.databases import open_engine, translate_errors
from backfill.indicator import (
    DischargeShare,
    Ds14,
    Month,
    MonthFigures,
    measure_month,
    percent,
)
from backfill.indicator_sources import load_ledger_acks
from backfill.ledger import DocState, Ledger, LedgerStatus
from backfill.selection import decide, load_rule
from backfill.selection.audit import AuditCounts
from backfill.selection.worklist import Worklist

__all__ = ["ReportData", "gather", "render_html"]

TARGET = 0.5
WAITING_STATES = (DocState.SELECTED, DocState.SENDING, DocState.RETRY_WAIT, DocState.DEFERRED)
_STYLE = {
    "svg.fonttype": "none",  # text stays text: small, searchable, no embedded glyphs
    "svg.hashsalt": "dmp-backfill",  # fixed element ids
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
BLUE, GREY, RED, GREEN = "#2b6cb0", "#a0aec0", "#c53030", "#2f855a"


@dataclass
class ReportData:
    generated_at: dt.datetime
    establishment: str
    months: list[MonthFigures]  # oldest first; the last may be month to date
    rule_name: str
    audit: AuditCounts
    worklist_patients: int
    ledger: LedgerStatus | None
    bonus: money.Estimate | None
    notes: list[str] = field(default_factory=list)

    @property
    def last_complete(self) -> MonthFigures:
        complete = [m for m in self.months if not m.ds14.month_to_date]
        return complete[-1] if complete else self.months[-1]

    def as_json(self) -> dict[str, Any]:
        def rate(value: Fraction | None) -> float | None:
            return None if value is None else float(value)

        return {
            "generated_at": self.generated_at.isoformat(),
            "ds14_by_month": [m.ds14.as_json() for m in self.months],
            "ds14_target": TARGET,
            "discharge_indicators": [
                {
                    "month": str(m.ds11.month),
                    "month_to_date": m.ds11.month_to_date,
                    "DS1.1": rate(m.ds11.rate),
                    "DS1.2": rate(m.ds12.rate),
                    "discharges": m.ds11.discharges,
                }
                for m in self.months
            ],
            "audit": {
                "rule": self.rule_name,
                "total": self.audit.total,
                "selected": self.audit.selected,
                "excluded": {r.value: n for r, n in self.audit.excluded.items() if n},
            },
            "identity_worklist_patients": self.worklist_patients,
            "ledger": None if self.ledger is None else self.ledger.as_json(),
            "bonus": None if self.bonus is None else _bonus_json(self.bonus),
        }


def _bonus_json(est: money.Estimate) -> dict[str, Any]:
    return {
        "activity": est.activity,
        "window": est.window.name,
        "d1": float(money.euros(est.d1)),
        "history_bonus": None
        if est.history_bonus is None
        else float(money.euros(est.history_bonus)),
        "payable": est.bonus_payable,
    }


def _months_back(now: dt.datetime, count: int) -> list[Month]:
    months = [Month.of(now)]
    while len(months) < count:
        months.append(months[-1].previous())
    return list(reversed(months))


def gather(settings: Settings, now: dt.datetime, *, months: int = 12) -> ReportData:
    """Everything the page shows, read from the DPI and the ledger (nothing is written)."""
    settings.require("dpi.url")
    assert settings.dpi.url is not None
    rule = load_rule(settings.rules.file, settings.live_feed.kinds)
    notes: list[str] = []
    audit = AuditCounts()
    worklist = Worklist()
    engine = open_engine(settings.dpi.url, "DPI", check=False, must_exist=True)
    try:
        with translate_errors("DPI", settings.dpi.url):
            for decision in decide(
                engine,
                rule,
                now,
                content_root=settings.dpi.content_root,
                fetch_size=settings.dpi.fetch_size,
                identity_aside=True,
                environment=settings.dmp.environment,
            ):
                audit.add(decision)
                worklist.add(decision)
            with engine.connect() as conn:
                note = load_ledger_acks(conn, settings)
                if note:
                    notes.append(note)
                figures = [
                    measure_month(
                        conn,
                        m,
                        now=now,
                        encounter_types=settings.indicator.encounter_types,
                        eligible_kinds=rule.kinds,
                    )
                    for m in _months_back(now, months)
                ]
    finally:
        engine.dispose()
    ledger_status = None
    ledger = Ledger.open_existing(settings.ledger.url)
    if ledger is not None:
        try:
            ledger_status = ledger.status(recent_runs=10)
        finally:
            ledger.close()
    est = None
    activity, window = settings.indicator.activity, settings.indicator.window
    complete = [f for f in figures if not f.ds14.month_to_date] or figures
    if activity is not None and window is not None:
        last = complete[-1]
        est = money.estimate(
            activity,
            money.window_named(window),
            ds11=last.ds11.rate,
            ds12=last.ds12.rate,
            ds14=last.ds14.rate,
        )
    else:
        notes.append(
            "no bonus estimate: give --activity and --window (or [indicator] activity/window)"
        )
    return ReportData(
        now,
        settings.establishment.name,
        figures,
        rule.name,
        audit,
        len(worklist),
        ledger_status,
        est,
        notes,
    )


# ---- charts ------------------------------------------------------------------------------------


def _svg(figure: Any) -> str:
    """A figure as inline SVG: no XML declaration, no DOCTYPE, no metadata block."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return text.strip()


def ds14_chart(figures: list[Ds14]) -> str:
    # matplotlib is imported when a chart is drawn: every other command starts half a second
    # sooner (the CLI imports this module for `backfill report` and the demo).
    from matplotlib import rc_context  # noqa: PLC0415 (imported when drawn, see ds14_chart)
    from matplotlib.figure import Figure  # noqa: PLC0415

    with rc_context(_STYLE):
        fig = Figure(figsize=(8, 3.2))
        ax = fig.subplots()
        labels = [f"{f.month}" + ("\n(to date)" if f.month_to_date else "") for f in figures]
        values = [0.0 if f.rate is None else float(f.rate) * 100 for f in figures]
        colours = [
            GREY if f.month_to_date else (GREEN if (f.rate or 0) >= TARGET else BLUE)
            for f in figures
        ]
        bars = ax.bar(range(len(figures)), values, color=colours)
        for bar, f in zip(bars, figures, strict=True):
            text = "—" if f.rate is None else f"{float(f.rate) * 100:.0f} %"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")  # fmt: skip
        ax.axhline(TARGET * 100, color=RED, linestyle="--", linewidth=1, label="target 50 %")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.set_xticks(range(len(figures)), labels, fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("DS1.4 (%)")
        fig.tight_layout()
        return _svg(fig)


def reasons_chart(audit: AuditCounts) -> str:
    rows = [("selected", audit.selected)] + [
        (reason.value, n)
        for reason, n in sorted(audit.excluded.items(), key=lambda rn: rn[0].rank)
        if n
    ]
    from matplotlib import rc_context  # noqa: PLC0415 (imported when drawn, see ds14_chart)
    from matplotlib.figure import Figure  # noqa: PLC0415

    with rc_context(_STYLE):
        fig = Figure(figsize=(8, 0.28 * len(rows) + 0.8))
        ax = fig.subplots()
        names = [name for name, _ in rows][::-1]
        counts = [n for _, n in rows][::-1]
        colours = [GREEN if name == "selected" else BLUE for name in names]
        bars = ax.barh(names, counts, color=colours)
        for bar, n in zip(bars, counts, strict=True):
            ax.annotate(f"{n:,}".replace(",", " "), (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        va="center", fontsize=7, xytext=(3, 0), textcoords="offset points")  # fmt: skip
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("documents")
        ax.margins(x=0.12)
        fig.tight_layout()
        return _svg(fig)


# ---- the page ----------------------------------------------------------------------------------


def _count(n: int) -> str:
    """6 079, as the rest of the page writes numbers (French style, never 6,079)."""
    return f"{n:,}".replace(",", " ")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _share_cell(share: DischargeShare, target: Fraction | None) -> str:
    met = "" if target is None or share.rate is None else (" ✔" if share.rate >= target else " ✘")
    return f"{percent(share.rate)}{met} <small>({share.with_document}/{share.discharges})</small>"


def _throughput(per_second: float) -> str:
    """Documents per second, or per minute or hour when slower (a run that waited on the DMP)."""
    for unit, factor in (("s", 1), ("min", 60), ("h", 3600)):
        if per_second * factor >= 1 or unit == "h":
            return f"{per_second * factor:.1f} doc/{unit}"
    raise AssertionError("unreachable")


def _runs_table(status: LedgerStatus) -> str:
    rows = []
    for run in status.runs:
        counts = dict(run.counts or {})
        acked = counts.get("acked", counts.get(DocState.ACKED.value))
        seconds = None
        if run.ended_at is not None:
            seconds = (run.ended_at - run.started_at).total_seconds()
        rate = "—"
        if isinstance(acked, int) and seconds and seconds > 0:
            rate = _throughput(acked / seconds)
        rows.append(
            f"<tr><td>{run.run_id}</td><td>{_e(run.mode)}</td><td>{_e(run.started_at.isoformat(timespec='minutes'))}</td>"
            f"<td>{'running' if run.ended_at is None else f'{seconds:.0f} s'}</td>"
            f"<td>{'—' if acked is None else _e(acked)}</td><td>{rate}</td>"
            f"<td>{'—' if run.exit_status is None else run.exit_status}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="7">no run yet</td></tr>'
    return (
        "<table><tr><th>run</th><th>mode</th><th>started (UTC)</th><th>duration</th>"
        f"<th>acked</th><th>throughput</th><th>exit</th></tr>{body}</table>"
    )


def render_html(data: ReportData) -> str:
    """The page, as one string of HTML with its charts and data inline."""
    ds14 = [m.ds14 for m in data.months]
    head = data.last_complete
    current = data.months[-1]
    window = data.bonus.window if data.bonus else None
    payload = json.dumps(data.as_json(), ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
    chart_data = _e(
        json.dumps([{"month": str(f.month), "rate": f.as_json()["rate"]} for f in ds14])
    )
    reasons_data = _e(json.dumps(data.as_json()["audit"]["excluded"]))
    b = head.ds14.breakdown
    backlog = "<p>No ledger yet: nothing has been sent by dmp-backfill.</p>"
    if data.ledger is not None:
        waiting = sum(data.ledger.counts.get(s, 0) for s in WAITING_STATES)
        by_state = ", ".join(f"{s.value} {n}" for s, n in data.ledger.counts.items() if n)
        shown = f"{waiting:,}".replace(",", " ")
        noun = "document" if waiting == 1 else "documents"
        backlog = (
            f'<p class="big" data-backlog="{waiting}">{shown} {noun} waiting to be sent</p>'
            + f"<p>{_e(by_state) or 'empty ledger'}</p>"
            + _runs_table(data.ledger)
        )
    bonus_html = "<p>No estimate: the 2019 combined activity and the window are not set.</p>"
    if data.bonus is not None:
        est = data.bonus
        if est.history_bonus is None:
            amount = f"none in {est.window.name} (DS1.4 does not exist in the first window)"
        else:
            amount = money.format_euros(est.history_bonus)
        verdict = {True: "payable", False: "not payable as things stand", None: "not decided"}[
            est.bonus_payable
        ]
        conds = "".join(
            f"<li>{c.indicator}: {percent(c.value)} (target {float(c.target) * 100:.0f} %) — "
            f"{ {True: 'met', False: 'not met', None: 'not measured'}[c.met] }</li>"
            for c in est.conditions
        )
        activity = f"{est.activity:,}".replace(",", " ")
        bonus_html = (
            f"<p>Activity {activity} (category {est.category.name}), window {est.window.name}: "
            f"D1 {money.format_euros(est.d1)}; history bonus <b>{_e(amount)}</b>, {verdict} "
            f"(measured on {head.ds14.month}).</p><ul>{conds}</ul>"
        )
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    current_line = ""
    if current.ds14.month_to_date:
        current_line = (
            f"<p>{current.ds14.month}, month to date: <b>{percent(current.ds14.rate)}</b> "
            f"({current.ds14.numerator}/{current.ds14.denominator}).</p>"
        )
    ds_rows = "".join(
        f"<tr><td>{m.ds11.month}{' (to date)' if m.ds11.month_to_date else ''}</td>"
        f"<td>{_share_cell(m.ds11, window.ds11_target if window else None)}</td>"
        f"<td>{_share_cell(m.ds12, window.ds12_target if window else None)}</td></tr>"
        for m in data.months[-3:]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DMP history backfill — {_e(data.establishment)} — DS1.4 {head.ds14.month}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 60em; color: #1a202c; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; border-bottom: 1px solid #cbd5e0; margin-top: 1.8em; }}
.big {{ font-size: 1.6em; margin: 0.3em 0; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #cbd5e0; padding: 0.25em 0.6em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} small {{ color: #4a5568; }}
figure {{ margin: 0.5em 0; }} svg {{ max-width: 100%; height: auto; }} .notes {{ color: #4a5568; }}
</style></head>
<body>
<h1>DMP history backfill — {_e(data.establishment)}</h1>
<p><small>Generated {_e(data.generated_at.isoformat(timespec="minutes"))} by dmp-backfill · selection rule {_e(data.rule_name)}</small></p>

<h2>DS1.4 — documents of earlier stays in the DMP</h2>
<p class="big" data-ds14-month="{head.ds14.month}" data-ds14-rate="{head.ds14.as_json()["rate"]}">
{head.ds14.month}: <b>{percent(head.ds14.rate)}</b> <small>(target 50 %; last complete month)</small></p>
{current_line}
<p>Of {b["returning_patient_stays"]} stays of returning patients: {b["counted"]} counted,
{b["eligible_not_yet_sent"]} with an eligible earlier document not yet in the DMP (the backfill's lever),
{b["identity_not_qualified"]} whose identity is not qualified (the identity-vigilance cell's lever),
{b["no_eligible_history"]} with no eligible earlier document (the ceiling).</p>
<figure id="chart-ds14" data-series="{chart_data}">{ds14_chart(ds14)}</figure>

<h2>Selection audit ({_e(data.rule_name)})</h2>
<p>{_count(data.audit.selected)} of {_count(data.audit.total)} documents selected;
identity worklist: <b data-worklist="{data.worklist_patients}">{_count(data.worklist_patients)} patients</b>
whose qualification would unlock documents.</p>
<figure id="chart-reasons" data-series="{reasons_data}">{reasons_chart(data.audit)}</figure>

<h2>Backlog and recent runs</h2>
{backlog}

<h2>DS1.1 and DS1.2 (live feed)</h2>
<table><tr><th>month</th><th>DS1.1 discharge letters</th><th>DS1.2 discharge prescriptions</th></tr>{ds_rows}</table>

<h2>Bonus estimate</h2>
{bonus_html}
<ul class="notes">{notes}</ul>
<script type="application/json" id="report-data">{payload}</script>
</body></html>
"""
