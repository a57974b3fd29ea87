"""Catch-up sends what the live feed sends (issue 14), on SQLite and PostgreSQL.

After an outage of the live feed, its prescriptions, biology and imaging reports are missing
from the DMP like its letters: the catch-up rule (`kinds = "live_feed"`) takes them, and nothing
the live feed did send; the history rules keep refusing those kinds.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backfill.config import EstablishmentSettings
from backfill.documents import build_selected
from backfill.selection import Reason, Window, decide, load_rule
from cda.validate import validate
from connectors.dpi.contract import DEFAULT_LIVE_FEED_KINDS
from tests.integration.selection_support import author, document, insert, patient, unit

AS_OF = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
OUTAGE = Window(
    dt.datetime(2026, 5, 10, 22, 0, tzinfo=dt.UTC), dt.datetime(2026, 5, 12, 22, 0, tzinfo=dt.UTC)
)
IN_OUTAGE = dt.datetime(2026, 5, 11, 9, 30)
BEFORE = dt.datetime(2026, 5, 1, 9, 30)


@pytest.fixture
def engine(contract_engine: sa.Engine) -> sa.Engine:
    return contract_engine


def test_catch_up_sends_the_windows_prescriptions_and_reports_the_live_feed_missed(
    engine: sa.Engine,
) -> None:
    kinds = ("LDL", "ORDO", "CRO", "CR_BIO", "CR_IMG", "CR_URG", "OTHER")
    rows = [document(f"out-{k}", "p", IN_OUTAGE, kind=k) for k in kinds]
    rows += [
        document(f"sent-{k}", "p", IN_OUTAGE, kind=k, sent_live_at=IN_OUTAGE, dmp_unique_id=k)
        for k in kinds
    ]
    rows += [document(f"before-{k}", "p", BEFORE, kind=k) for k in kinds]
    insert(
        engine,
        {"units": [unit()], "authors": [author()], "patients": [patient("p")], "documents": rows},
    )
    catch_up = load_rule("catch-up")
    assert catch_up.kinds == list(DEFAULT_LIVE_FEED_KINDS)
    got = {d.document_id: d for d in decide(engine, catch_up, AS_OF, window=OUTAGE)}
    for kind in kinds:
        expected = None if kind in DEFAULT_LIVE_FEED_KINDS else Reason.KIND_NOT_SELECTED
        assert got[f"out-{kind}"].reason is expected, kind
        sent = Reason.KIND_NOT_SELECTED if kind == "OTHER" else Reason.ALREADY_IN_DMP
        assert got[f"sent-{kind}"].reason is sent, kind
        if kind != "OTHER":
            assert got[f"before-{kind}"].reason is Reason.OLDER_THAN_DEPTH, kind
    # And they can go: each builds to a valid CDA with its JDV_J07 typeCode and its class.
    window_docs = [(f"out-{k}", None) for k in kinds if k in DEFAULT_LIVE_FEED_KINDS]
    built = {
        o.document_id: o
        for o in build_selected(engine, window_docs, EstablishmentSettings().as_cda())
    }
    for document_id, outcome in built.items():
        assert outcome.built is not None, (document_id, outcome.reason)
        assert validate(outcome.built.xml, schematron=False).ok, document_id
    classes = {i: o.built.entry.class_code.code for i, o in built.items() if o.built}
    types = {i: o.built.entry.type_code.code for i, o in built.items() if o.built}
    assert (types["out-ORDO"], classes["out-ORDO"]) == ("57833-6", "42")
    assert (types["out-CR_BIO"], classes["out-CR_BIO"]) == ("11502-2", "10")
    assert (types["out-CR_IMG"], classes["out-CR_IMG"]) == ("18748-4", "10")
    # The history rules still refuse old biology, imaging and prescriptions.
    for name in ("history-5y", "history-20y"):
        history = {d.document_id: d for d in decide(engine, load_rule(name), AS_OF)}
        for kind in ("ORDO", "CR_BIO", "CR_IMG"):
            assert history[f"out-{kind}"].reason is Reason.KIND_NOT_SELECTED, (name, kind)
        assert history["out-LDL"].selected


def test_the_live_feed_setting_decides_what_catch_up_takes(engine: sa.Engine) -> None:
    insert(
        engine,
        {
            "units": [unit()],
            "authors": [author()],
            "patients": [patient("p")],
            "documents": [
                document("ordo", "p", IN_OUTAGE, kind="ORDO"),
                document("bio", "p", IN_OUTAGE, kind="CR_BIO"),
            ],
        },
    )
    rule = load_rule("catch-up", ["LDL", "ORDO"])
    got = {d.document_id: d.decision for d in decide(engine, rule, AS_OF, window=OUTAGE)}
    assert got == {"ordo": "selected", "bio": "kind_not_selected"}
