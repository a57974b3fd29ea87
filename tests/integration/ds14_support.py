"""DS1.4 tests' shared pieces: the readable SQL file run as text, and a hand-computed small DPI."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from backfill.indicator import BREAKDOWN_KEYS, Cut, Month, ds14_params
from backfill.resources import read_sql
from tests.integration.selection_support import document, patient, stay

HISTORY_KINDS = ("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG")
UTC = dt.UTC


def run_sql_file(
    conn: sa.Connection,
    month: Month,
    now: dt.datetime,
    *,
    encounter_types: Sequence[str] = ("IMP",),
    eligible_kinds: Sequence[str] = HISTORY_KINDS,
) -> dict[str, int]:
    """`sql/indicator_ds14.sql` as a BI tool would run it (comments dropped: they name the parameters)."""
    text = re.sub(r"--[^\n]*", "", read_sql("indicator_ds14.sql")).strip().rstrip(";")
    query = sa.text(text).bindparams(
        sa.bindparam("encounter_types", expanding=True),
        sa.bindparam("eligible_kinds", expanding=True),
    )
    params: dict[str, Any] = {
        **ds14_params(Cut.of(month, now)),
        "encounter_types": list(encounter_types),
        "eligible_kinds": list(eligible_kinds),
    }
    row = conn.execute(query, params).one()
    return dict(zip(BREAKDOWN_KEYS, (int(v) for v in row), strict=True))


def paris(*args: int) -> dt.datetime:
    """A naive Paris wall-clock time, as the DPI stores it."""
    return dt.datetime(*args)


NOVEMBER = Month(2026, 11)
AFTER_NOVEMBER = dt.datetime(2026, 12, 10, tzinfo=UTC)


def hand_dpi() -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, dt.datetime]]]:
    """A DPI whose November 2026 DS1.4 is computed by hand (see EXPECTED_NOVEMBER), and the ledger's acks.

    P1  earlier IMP stay, CRH sent live in October; new stay admitted 1 Nov 00:00 Paris → counted
    P2  earlier consultation (EXTERNE) discharged 10 Nov 09:00, its report acked by us on 15 Nov;
        new stay admitted 10 Nov 15:00 (same day) → counted
    P3  earlier stay; its CRH acked 30 Nov 23:30 UTC = 1 Dec 00:30 Paris, a CRO sent live at
        1 Dec 00:00 → neither is in the DMP at the end of November → eligible, not yet sent
    P4  stays admitted 31 Oct 23:59 and 1 Dec 00:00 → neither is a November stay
    P5  earlier stay with a document sent live; a planned stay, a cancelled stay and an
        emergency visit (EMER) in November → none is counted
    P6  identity PROV, earlier stay with a document sent live, November stay → identity not qualified
    P7  earlier stay with only a biology report (not sent); the November stay's own LDL went live
        → no eligible history (a document of the stay itself does not count)
    P8  first real visit in November: its only earlier stays are cancelled or planned → not returning
    P9  earlier stay discharged exactly at the new admission → not "before" it → not returning
    P10 day case (IMP) whose earlier venue is an emergency visit with an emergency report acked
        in November; the patient is doubtful → identity not qualified
    """
    pats = [patient(f"P{n}") for n in range(1, 11)]
    pats[5] = patient("P6", identity_status="PROV")
    pats[9] = patient("P10", identity_doubtful=True)
    stays: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []

    def visit(sid: str, ipp: str, adm: dt.datetime, dis: dt.datetime | None, **kw: Any) -> None:
        stays.append(stay(sid, ipp, adm, discharged_at=dis, **kw))

    def doc(did: str, ipp: str, sid: str, **kw: Any) -> None:
        docs.append(document(did, ipp, paris(2026, 1, 1), stay_id=sid, **kw))

    visit("S1a", "P1", paris(2026, 10, 10), paris(2026, 10, 20))
    doc("D1a", "P1", "S1a", sent_live_at=paris(2026, 10, 21))
    visit("S1b", "P1", paris(2026, 11, 1, 0, 0), None, status="in_progress")

    visit("S2a", "P2", paris(2026, 11, 10, 8), paris(2026, 11, 10, 9), encounter_type="EXTERNE")
    doc("D2a", "P2", "S2a", kind="CR_CONSULT")
    visit("S2b", "P2", paris(2026, 11, 10, 15), paris(2026, 11, 14))

    visit("S3a", "P3", paris(2025, 3, 1), paris(2025, 3, 5))
    doc("D3a", "P3", "S3a")
    doc("D3b", "P3", "S3a", kind="CRO", sent_live_at=paris(2026, 12, 1, 0, 0))
    visit("S3b", "P3", paris(2026, 11, 20), paris(2026, 11, 22))

    visit("S4a", "P4", paris(2026, 1, 1), paris(2026, 1, 2))
    doc("D4a", "P4", "S4a", sent_live_at=paris(2026, 1, 3))
    visit("S4b", "P4", paris(2026, 10, 31, 23, 59), paris(2026, 11, 2))
    visit("S4c", "P4", paris(2026, 12, 1, 0, 0), None, status="in_progress")

    visit("S5a", "P5", paris(2026, 2, 1), paris(2026, 2, 3))
    doc("D5a", "P5", "S5a", sent_live_at=paris(2026, 2, 4))
    visit("S5b", "P5", paris(2026, 11, 25), None, status="planned")
    visit("S5c", "P5", paris(2026, 11, 12), None, status="cancelled")
    visit("S5d", "P5", paris(2026, 11, 14), paris(2026, 11, 14, 6), encounter_type="EMER")

    visit("S6a", "P6", paris(2026, 5, 1), paris(2026, 5, 2))
    doc("D6a", "P6", "S6a", sent_live_at=paris(2026, 5, 3))
    visit("S6b", "P6", paris(2026, 11, 5), paris(2026, 11, 6))

    visit("S7a", "P7", paris(2026, 6, 1), paris(2026, 6, 2))
    doc("D7a", "P7", "S7a", kind="CR_BIO")
    visit("S7b", "P7", paris(2026, 11, 25), paris(2026, 11, 27))
    doc("D7b", "P7", "S7b", kind="LDL", sent_live_at=paris(2026, 11, 27))

    visit("S8a", "P8", paris(2026, 3, 1), paris(2026, 3, 2), status="cancelled")
    visit("S8b", "P8", paris(2026, 4, 1), paris(2026, 4, 2), status="planned")
    doc("D8a", "P8", "S8a", sent_live_at=paris(2026, 3, 3))
    visit("S8c", "P8", paris(2026, 11, 8), paris(2026, 11, 9))

    visit("S9a", "P9", paris(2026, 11, 1, 8), paris(2026, 11, 3, 10))
    doc("D9a", "P9", "S9a", sent_live_at=paris(2026, 11, 3, 11))
    visit("S9b", "P9", paris(2026, 11, 3, 10), paris(2026, 11, 4))

    visit("S10a", "P10", paris(2026, 9, 1), paris(2026, 9, 1, 5), encounter_type="EMER")
    doc("D10a", "P10", "S10a", kind="CR_URG")
    visit("S10b", "P10", paris(2026, 11, 18, 8), paris(2026, 11, 18, 18))

    acked = [
        ("D2a", dt.datetime(2026, 11, 15, 8, tzinfo=UTC)),
        ("D3a", dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),
        ("D10a", dt.datetime(2026, 11, 19, tzinfo=UTC)),
    ]
    return {"patients": pats, "stays": stays, "documents": docs}, acked


EXPECTED_NOVEMBER = {
    "returning_patient_stays": 6,  # S1b S2b S3b S6b S7b S10b
    "identity_not_qualified": 2,  # S6b S10b
    "no_eligible_history": 1,  # S7b
    "eligible_not_yet_sent": 1,  # S3b
    "counted": 2,  # S1b S2b
}
