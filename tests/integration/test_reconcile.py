"""`indicator --reconcile` against the mock DMP over TCP: every difference between ledger and DMP is named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from backfill.config import Settings
from backfill.ledger import DocResult, DocState, Ledger, Selected, SendingDocument
from backfill.reconcile import (
    HeldDocument,
    LedgerDocument,
    ReconcileError,
    fetch_mock_holdings,
    reconcile,
    reconcile_configured,
)
from cda.build import BuiltDocument
from cda.ins import INS
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.conftest import Database
from tests.integration.ds14_support import paris
from tests.integration.mock_dmp_support import by_patient, post
from tests.integration.selection_support import document, insert, patient

ACKED_AT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _ack(ledger: Ledger, items: list[tuple[str, str, str]]) -> None:
    """The ledger records these (document_id, unique_id, hash) as acknowledged, through its API."""
    run_id = ledger.start_run(mode="history")
    for document_id, unique_id, sha1 in items:
        ledger.record_selected(run_id, [Selected(document_id, document_id, 1, "P1")])
        attempt = ledger.begin_attempt(
            run_id,
            "P1",
            f"2.25.{abs(hash(document_id))}",
            [SendingDocument(document_id, unique_id, sha1, 10)],
        )
        ledger.end_attempt(
            attempt, outcome="done", http_status=200, latency=0.01,
            results=[DocResult(document_id, DocState.ACKED)],
        )  # fmt: skip


def _originals() -> list[list[BuiltDocument]]:
    """The example documents per patient, without the replacement (its target is not stored)."""
    groups = [[d for d in docs if not d.entry.replaces] for docs in by_patient().values()]
    return [g for g in groups if g]


@pytest.fixture(params=["listing", "ITI-18"])
def mock(request: pytest.FixtureRequest) -> MockServer:
    """The mock with its listing door, or without (then reconciliation asks ITI-18 FindDocuments)."""
    with MockServer(MockConfig(control=request.param == "listing")) as server:
        with httpx.Client() as http:
            for documents in _originals():
                answer = post(http, server.repository_url, documents)
                assert answer.outcome is not None, answer.text
                assert answer.outcome.success, answer.text
        server.holdings = request.param  # type: ignore[attr-defined]
        yield server


def test_every_difference_is_named(database: Database, tmp_path: Path, mock: MockServer) -> None:
    groups = _originals()
    held = [d for docs in groups for d in docs]
    e0, e1, e2 = groups[0][:3]  # one patient's documents
    # ITI-18 asks only about the patients the ledger knows: the others' documents stay unseen
    seen = held if mock.holdings == "listing" else groups[0]  # type: ignore[attr-defined]
    others = [d for d in seen if d not in (e0, e1, e2)]
    ins = INS.from_cx(e0.entry.patient_id)
    ipp = "IPP000123"
    dpi = database.engine()
    create_contract(dpi)
    insert(
        dpi,
        {
            "patients": [patient(ipp, ins_matricule=ins.matricule, ins_oid=ins.oid)],
            "documents": [
                document("D0", ipp, paris(2026, 1, 1)),
                document("D1", ipp, paris(2026, 1, 1)),
                document("DX", ipp, paris(2026, 1, 1)),
                document("LIVE", ipp, paris(2026, 1, 1), sent_live_at=paris(2026, 1, 2),
                         dmp_unique_id=e2.entry.unique_id),
            ],
        },
    )  # fmt: skip
    dpi.dispose()
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(ledger_url, clock=lambda: ACKED_AT) as ledger:
        _ack(
            ledger,
            [
                ("D0", e0.entry.unique_id, e0.entry.hash),
                ("D1", e1.entry.unique_id, "0" * 40),
                ("DX", "2.25.999", "1" * 40),
            ],
        )
    settings = Settings(
        dpi={"url": database.url}, ledger={"url": ledger_url}, dmp={"url": mock.services_url}
    )

    result = reconcile_configured(settings)

    assert (result.matched, result.live_feed) == (1, 1)
    assert result.counts() == {
        "held_not_in_ledger": len(others),
        "in_ledger_not_held": 1,
        "hash_differs": 1,
        "deprecated": 0,
    }
    named = {(d.kind, d.unique_id, d.document_id) for d in result.differences}
    assert ("hash_differs", e1.entry.unique_id, "D1") in named
    assert ("in_ledger_not_held", "2.25.999", "DX") in named
    assert {u for k, u, _ in named if k == "held_not_in_ledger"} == {
        o.entry.unique_id for o in others
    }

    # the same through the command line, as a user runs it: exit 1, each difference on a line
    env = {"BACKFILL_DPI_URL": database.url, "BACKFILL_LEDGER_URL": ledger_url,
           "BACKFILL_DMP_URL": mock.services_url}  # fmt: skip
    run = run_backfill("indicator", "--month", "2026-11", "--reconcile", cwd=tmp_path, env=env)
    assert run.returncode == 1, run.stderr
    assert "hash_differs: document D1" in run.stdout
    assert "in_ledger_not_held: document DX" in run.stdout
    assert "Traceback" not in run.stderr


def test_deprecated_is_a_difference_unless_a_later_version_explains_it() -> None:
    held = [HeldDocument("u1", "h1", "Deprecated"), HeldDocument("u2", "h2", "Approved"),
            HeldDocument("u3", "h3", "Deprecated")]  # fmt: skip
    ours = [LedgerDocument("d1", "u1", "h1", "S", 1), LedgerDocument("d2", "u2", "H2", "S", 2),
            LedgerDocument("d3", "u3", "h3", "T", 1)]  # fmt: skip
    result = reconcile(ours, held)
    assert result.matched == 2  # u1 replaced by our u2 (hashes compare without case)
    assert [(d.kind, d.unique_id) for d in result.differences] == [("deprecated", "u3")]


def test_a_dmp_without_the_listing_door_is_one_clear_error() -> None:
    with (
        MockServer(MockConfig(control=False)) as server,
        httpx.Client() as http,
        pytest.raises(ReconcileError, match="control plane"),
    ):
        fetch_mock_holdings(server.services_url, http)
    with httpx.Client() as http, pytest.raises(ReconcileError, match="cannot read"):
        fetch_mock_holdings("http://127.0.0.1:9/si-dmp-server/v2/services", http)
