"""`backfill dpi generate` interrupted (Ctrl-C) or refused: never a DPI that looks whole but is not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backfill.cli.dpi_cmd import HOLD_ENV
from tests.acceptance.cli import run_backfill


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_a_dpi_reported_incomplete(tmp_path: Path) -> None:
    hold = tmp_path / "held"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    env[HOLD_ENV] = str(hold)
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill", "dpi", "generate", "--url", "sqlite:///dpi.sqlite",
         "--patients", "1200", "--as-of", "2026-11-01"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A test before this one in the same worker may have left SIGINT ignored, which a child
        # inherits (and Python then keeps): Ctrl-C as a terminal delivers it needs the default.
        preexec_fn=_default_sigint,  # noqa: PLW1509  (one signal call, before exec)
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not hold.exists():  # the first batch is committed, the generator waits
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the generation never reached its first batch"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err

    summary = run_backfill("dpi", "summary", "--url", "sqlite:///dpi.sqlite", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert "DPI (incomplete (interrupted)): 500 patients" in summary.stdout
    audit = run_backfill(
        "audit", "--as-of", "2026-11-01", cwd=tmp_path,
        env={"BACKFILL_DPI_URL": "sqlite:///dpi.sqlite"},
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    assert "incomplete (interrupted)" in audit.stdout


def test_replace_checks_its_inputs_before_touching_the_old_dpi(tmp_path: Path) -> None:
    args = ("dpi", "generate", "--url", "sqlite:///dpi.sqlite", "--patients", "20")
    first = run_backfill(*args, "--as-of", "2026-11-01", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = run_backfill("dpi", "summary", "--url", "sqlite:///dpi.sqlite", cwd=tmp_path).stdout
    (tmp_path / "blocker").write_text("a file, not a folder")
    for bad in (
        ("--as-of", "0001-01-01"),
        ("--as-of", "2026-11-01", "--files-dir", "blocker/files"),
    ):
        result = run_backfill(*args, "--replace", *bad, cwd=tmp_path)
        assert result.returncode in (1, 2)
        assert "Traceback" not in result.stderr
        assert len([line for line in result.stderr.splitlines() if "error:" in line]) == 1
        after = run_backfill("dpi", "summary", "--url", "sqlite:///dpi.sqlite", cwd=tmp_path)
        assert after.stdout == before
