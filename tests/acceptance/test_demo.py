"""`backfill demo` as a new user runs it (issue 11): end to end in a fresh folder, then again, then
interrupted with Ctrl-C while sending and run again.

What a user must be able to trust: the mock DMP ends up holding exactly what the live feed sent
plus every document the audit selected, each once; the DS1.4 the demo prints is the one
`backfill indicator` computes; the report is written; a second demo is safe and says what it did.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.databases import open_engine
from backfill.demo import held_documents
from cda.identifiers import unique_id_for
from connectors.dmp_mock.process import MockProcess
from connectors.dmp_mock.seeding import live_feed_documents
from tests.acceptance.cli import clean_env, run_backfill

pytestmark = pytest.mark.slow
FINESS = "999999990"  # the embedded default establishment's
PATIENTS = "150"
WAIT_LIMIT = 120.0  # seconds: a guard against a hung child, never a pace


def _selected(work: Path) -> set[str]:
    """uniqueIds of the documents the demo's audit selected (decisions.csv)."""
    with (work / "decisions.csv").open(encoding="utf-8", newline="") as handle:
        return {
            unique_id_for(FINESS, row["document_id"])
            for row in csv.DictReader(handle)
            if row["decision"] == "selected"
        }


def _live_sent(work: Path) -> set[str]:
    engine = open_engine(f"sqlite:///{work / 'dpi.sqlite'}", "DPI")
    try:
        return {str(entry["unique_id"]) for entry in live_feed_documents(engine)}
    finally:
        engine.dispose()


def _held(work: Path) -> Counter[str]:
    """What the demo's mock store holds, read through a mock server started on it again."""
    with MockProcess(f"sqlite:///{work / 'mock-dmp.sqlite'}", work / "check.log") as mock:
        return Counter(str(d["unique_id"]) for d in held_documents(mock.base_url))


def _assert_the_dmp_holds_the_selection_once(work: Path) -> None:
    held = _held(work)
    assert [uid for uid, n in held.items() if n > 1] == [], "a document stored twice"
    selected = _selected(work)
    assert selected, "the audit selected nothing: the check would prove nothing"
    assert set(held) == _live_sent(work) | selected


def test_demo_end_to_end_then_again(tmp_path: Path) -> None:
    result = run_backfill(
        "demo", "--workdir", "work", "--patients", PATIENTS, "--no-schematron", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "starting clean: no earlier demo in this folder" in out
    assert "mock DMP on http://127.0.0.1:" in out
    assert "mode demo: exit 0" in out
    assert ": holds" in out
    assert "retries" in out
    assert "stopped cleanly" in out
    assert "Traceback" not in result.stderr
    work = tmp_path / "work"
    _assert_the_dmp_holds_the_selection_once(work)

    # The figure printed is `backfill indicator`'s, on the configuration the demo left.
    shown = json.loads((work / "indicator.json").read_text(encoding="utf-8"))
    assert f"DS1.4 for {shown['month']} (to date)" in out
    again = run_backfill(
        "--config", str(work / "backfill.toml"), "indicator", "--month", shown["month"],
        "--json", "ind.json", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    computed = json.loads((tmp_path / "ind.json").read_text(encoding="utf-8"))
    computed.pop("measured_until"), shown.pop("measured_until")  # month to date: each its instant
    assert computed == shown
    assert shown["breakdown"]["counted"] > 0

    report = (work / "report.html").read_text(encoding="utf-8")
    assert "DS1.4" in report
    assert "<svg" in report

    # Again in the same folder: safe, and it says it starts clean since the first one completed.
    rerun = run_backfill(
        "demo", "--workdir", "work", "--patients", PATIENTS, "--no-schematron", cwd=tmp_path
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "starting clean: the earlier demo completed" in rerun.stdout
    _assert_the_dmp_holds_the_selection_once(work)


def _attempts(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{ledger}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM bf_attempt")).scalar_one())
    except sa.exc.DBAPIError:
        return 0  # not created yet
    finally:
        engine.dispose()


def test_ctrl_c_while_sending_then_demo_again_resumes(tmp_path: Path) -> None:
    # A slow rate, so the interruption lands while documents are still waiting.
    args = ["demo", "--workdir", "work", "--patients", PATIENTS, "--no-schematron", "--rate", "15"]
    child = subprocess.Popen(
        [sys.executable, "-m", "backfill", *args], cwd=tmp_path, env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ledger = tmp_path / "work" / "ledger.sqlite"
    deadline = time.monotonic() + WAIT_LIMIT
    while _attempts(ledger) < 5 and child.poll() is None:
        assert time.monotonic() < deadline, "the demo made no progress"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=WAIT_LIMIT)
    assert child.returncode == 3, out + err
    assert "again resumes" in out
    assert "Traceback" not in err

    resumed = run_backfill(*args[:-2], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the demo interrupted on" in resumed.stdout
    assert "kept from the interrupted demo" in resumed.stdout
    _assert_the_dmp_holds_the_selection_once(tmp_path / "work")
