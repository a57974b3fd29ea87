"""`backfill status`, `backfill retry --rejected`, and `backfill audit` reading the ledger, as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.ledger import DocResult, DocState, Ledger, Selected
from backfill.ledger.migrate import head_revision
from backfill.ledger.schema import VERSION_TABLE, bf_attempt
from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.integration.ledger_support import drive, sending
from tests.integration.selection_support import author, document, insert, patient, unit

S = DocState
AS_OF = "2026-11-23T10:00:00+01:00"


def _env(ledger_url: str, **more: str) -> dict[str, str]:
    return {"BACKFILL_LEDGER_URL": ledger_url, **more}


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


def _a_used_ledger(url: str) -> None:
    """Two runs' worth: acked, rejected with two codes, one waiting for a retry."""
    with Ledger.open(url) as ledger:
        run = ledger.start_run(mode="run", rule_name="history-5y")
        drive(ledger, run, "D-ok", S.ACKED)
        drive(ledger, run, "D-bad", S.REJECTED)
        ledger.record_selected(run, [Selected("D-gone", "D-gone", 1, "P1")])
        ledger.reject_unsendable(run, "D-gone", "content_missing", "file gone")
        ledger.finish_run(run, exit_status=1, counts={"acked": 1})
        later = ledger.start_run(mode="run", rule_name="history-5y")
        ledger.record_selected(later, [Selected("D-busy", "D-busy", 1, "P2")])
        attempt = ledger.begin_attempt(later, "P2", "2.25.42", [sending("D-busy")])
        ledger.end_attempt(
            attempt,
            outcome="transient",
            http_status=503,
            latency=1.0,
            results=[
                DocResult(
                    "D-busy",
                    S.RETRY_WAIT,
                    "HTTP 503",
                    "service unavailable",
                    dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                )
            ],
        )
        ledger.finish_run(later, exit_status=3, counts={})


def test_status_without_a_ledger_says_so_and_creates_none(tmp_path: Path, ledger_url: str) -> None:
    out = tmp_path / "status.json"
    result = run_backfill("status", "--json", str(out), cwd=tmp_path, env=_env(ledger_url))
    assert result.returncode == 0, result.stderr
    assert "no ledger at" in result.stdout
    assert not (tmp_path / "ledger.sqlite").exists()
    report = json.loads(out.read_text())
    assert report["exists"] is False
    assert report["total"] == 0
    assert report["runs"] == []


def test_status_shows_counts_the_oldest_waiting_document_and_recent_runs(
    tmp_path: Path, ledger_url: str
) -> None:
    _a_used_ledger(ledger_url)
    out = tmp_path / "status.json"
    result = run_backfill("status", "--json", str(out), cwd=tmp_path, env=_env(ledger_url))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["counts"] == {
        "selected": 0, "sending": 0, "acked": 1, "retry_wait": 1, "rejected": 2, "deferred": 0,
    }  # fmt: skip
    assert report["oldest_waiting"]["document_id"] == "D-busy"
    assert "retry after 2030-01-01" in report["oldest_waiting"]["why"]
    assert "HTTP 503" in report["oldest_waiting"]["why"]
    assert [(r["run_id"], r["exit_status"]) for r in report["runs"]] == [(2, 3), (1, 1)]
    # The terminal shows the same.
    assert "D-busy" in result.stdout
    assert "retry after 2030-01-01" in result.stdout
    assert "rejected" in result.stdout


def test_retry_rejected_by_code_puts_them_back_and_logs_it(tmp_path: Path, ledger_url: str) -> None:
    _a_used_ledger(ledger_url)
    result = run_backfill(
        "retry", "--rejected", "--code", "content_missing", cwd=tmp_path, env=_env(ledger_url)
    )
    assert result.returncode == 0, result.stderr
    assert "1 document rejected with content_missing put back to selected" in result.stdout
    again = run_backfill("retry", "--rejected", cwd=tmp_path, env=_env(ledger_url))
    assert again.returncode == 0, again.stderr
    assert "1 document rejected put back" in again.stdout
    with Ledger.open_required(ledger_url) as ledger:
        assert ledger.counts()[S.REJECTED] == 0
        assert ledger.counts()[S.SELECTED] == 2
        assert ledger.counts()[S.ACKED] == 1
        with ledger.engine.connect() as conn:
            logged = conn.execute(
                sa.select(bf_attempt.c.action, bf_attempt.c.documents, bf_attempt.c.detail).where(
                    bf_attempt.c.action == "requeue"
                )
            ).all()
        assert [tuple(row) for row in logged] == [
            ("requeue", 1, "retry --rejected --code content_missing"),
            ("requeue", 1, "retry --rejected"),
        ]
        runs = ledger.status().runs
        assert [(r.mode, r.exit_status) for r in runs[:2]] == [("retry", 0), ("retry", 0)]


def test_retry_refuses_cleanly_without_a_ledger_or_without_rejected(
    tmp_path: Path, ledger_url: str
) -> None:
    result = run_backfill("retry", "--rejected", cwd=tmp_path, env=_env(ledger_url))
    assert result.returncode == 1
    assert "no ledger at" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ledger.sqlite").exists()
    bare = run_backfill("retry", cwd=tmp_path, env=_env(ledger_url))
    assert bare.returncode == 2
    assert "--rejected" in bare.stderr


def test_retry_while_a_run_holds_the_lock_names_the_holder(tmp_path: Path, ledger_url: str) -> None:
    _a_used_ledger(ledger_url)
    lock_file = tmp_path / "run.lock"
    with Ledger.open(ledger_url) as ledger, ledger.lock(lock_file):
        run = ledger.start_run(mode="run")
        result = run_backfill(
            "retry", "--rejected", cwd=tmp_path,
            env=_env(ledger_url, BACKFILL_RUN_LOCK_FILE=str(lock_file)),
        )  # fmt: skip
    assert result.returncode == 1
    assert f"run {run}" in result.stderr
    assert "pid" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_ledger_from_a_newer_engine_is_refused_with_exit_2(
    tmp_path: Path, ledger_url: str
) -> None:
    Ledger.open(ledger_url).close()
    engine = sa.create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0999'"))
    engine.dispose()
    result = run_backfill("status", cwd=tmp_path, env=_env(ledger_url))
    assert result.returncode == 2
    assert "0999" in result.stderr
    assert head_revision() in result.stderr


def test_audit_reads_acknowledged_documents_and_patients_without_dmp_from_the_ledger(
    tmp_path: Path, ledger_url: str
) -> None:
    dpi_url = f"sqlite:///{tmp_path / 'dpi.sqlite'}"
    engine = sa.create_engine(dpi_url)
    create_contract(engine)
    t = dt.datetime(2025, 6, 1, 10, 0)
    insert(
        engine,
        {
            "patients": [patient("P1"), patient("P2")],
            "units": [unit()],
            "authors": [author()],
            "documents": [
                document("D1", "P1", t),
                document("D2", "P1", t),
                document("D3", "P2", t),
            ],
        },
    )
    engine.dispose()
    env = _env(ledger_url, BACKFILL_DPI_URL=dpi_url)
    out = tmp_path / "audit.json"
    before = run_backfill("audit", "--as-of", AS_OF, "--json", str(out), cwd=tmp_path, env=env)
    assert before.returncode == 0, before.stderr
    assert json.loads(out.read_text())["selected"] == 3
    assert not (tmp_path / "ledger.sqlite").exists(), "an audit must never create a ledger"

    with Ledger.open(ledger_url) as ledger:
        run = ledger.start_run(mode="run")
        drive(ledger, run, "D1", S.ACKED, ipp="P1")
        ledger.record_selected(run, [Selected("D3", "D3", 1, "P2")])
        ledger.defer_patient("P2", dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "XDSUnknownPatientId")
    after = run_backfill("audit", "--as-of", AS_OF, "--json", str(out), cwd=tmp_path, env=env)
    assert after.returncode == 0, after.stderr
    report = json.loads(out.read_text())
    assert report["selected"] == 1
    assert report["excluded"]["already_in_dmp"] == 1
    assert report["excluded"]["no_dmp"] == 1
