"""A non-editable install works: the wheel carries the rule files and the SQL, and runs from anywhere."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from backfill.ledger.migrate import head_revision

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("dmp_backfill-*.whl")

    env_dir = tmp_path / "venv"
    # A fresh environment: dependencies come from the package index, `backfill` from the wheel.
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    backfill = env_dir / "bin" / "backfill"
    where = subprocess.run(
        [str(python), "-c", "import backfill, selectors; print(backfill.__file__); print(selectors.__file__)"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert str(env_dir) in where.stdout.splitlines()[0], "backfill was not imported from the wheel"
    assert "site-packages" not in where.stdout.splitlines()[1], "selectors is not the stdlib's"

    assert (
        subprocess.run(
            [str(backfill), "--help"], cwd=workdir, capture_output=True, check=False
        ).returncode
        == 0
    )
    generated = subprocess.run(
        [str(backfill), "dpi", "generate", "--url", "sqlite:///dpi.sqlite", "--patients", "5", "--as-of", "2026-11-01"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert "generated 5 patients" in generated.stdout
    rules = subprocess.run(
        [str(python), "-c", "from backfill.resources import rule_file_names, read_sql; print(rule_file_names()); print(len(read_sql('dpi_contract.sql')))"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "history-5y.toml" in rules.stdout, rules.stderr
    # The ledger's Alembic revisions ship in the wheel: an empty ledger is created at head.
    ledger = subprocess.run(
        [str(python), "-c", "from backfill.ledger import Ledger; from backfill.ledger.migrate import head_revision; from backfill.resources import read_sql; "
         "Ledger.open('sqlite:///ledger.sqlite').close(); l = Ledger.open_existing('sqlite:///ledger.sqlite'); print(head_revision(), sum(l.counts().values()), 'bf_document' in read_sql('ledger.sql'))"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    # structlog prints to stdout when nothing configured logging: the answer is the last line.
    assert ledger.stdout.splitlines()[-1].split() == [head_revision(), "0", "True"], ledger.stderr
