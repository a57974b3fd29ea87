"""`backfill indicator` and `backfill bonus` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.integration.ds14_support import EXPECTED_NOVEMBER, hand_dpi
from tests.integration.selection_support import insert


@pytest.fixture
def dpi_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'dpi.sqlite'}"
    engine = sa.create_engine(url)
    create_contract(engine)
    insert(engine, hand_dpi()[0])
    engine.dispose()
    return {"BACKFILL_DPI_URL": url, "BACKFILL_LEDGER_URL": f"sqlite:///{tmp_path / 'l.sqlite'}"}


def test_indicator_json_has_the_contract_keys(tmp_path: Path, dpi_env: dict[str, str]) -> None:
    out = tmp_path / "ds14.json"
    result = run_backfill(
        "indicator", "--month", "2026-11", "--json", str(out), cwd=tmp_path, env=dpi_env
    )
    assert result.returncode == 0, result.stderr
    figure = json.loads(out.read_text(encoding="utf-8"))
    # without a ledger only the live feed counts: P2's report acked by us is not there
    assert figure["month"] == "2026-11"
    assert figure["denominator"] == EXPECTED_NOVEMBER["returning_patient_stays"]
    assert figure["numerator"] == 1
    assert figure["rate"] == pytest.approx(1 / 6)
    assert sum(figure["breakdown"][k] for k in list(EXPECTED_NOVEMBER)[1:]) == figure["denominator"]
    assert "DS1.4" in result.stdout
    assert "16.7 %" in result.stdout


def test_indicator_bad_month_is_one_line(tmp_path: Path, dpi_env: dict[str, str]) -> None:
    result = run_backfill("indicator", "--month", "2026-13", cwd=tmp_path, env=dpi_env)
    assert result.returncode == 2
    assert "YYYY-MM" in result.stderr
    assert "Traceback" not in result.stderr


def test_bonus_amounts_and_conditions(tmp_path: Path, dpi_env: dict[str, str]) -> None:
    out = tmp_path / "bonus.json"
    result = run_backfill(
        "bonus", "--activity", "7000", "--window", "S2-2022", "--month", "2026-11",
        "--json", str(out), cwd=tmp_path, env=dpi_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    estimate = json.loads(out.read_text(encoding="utf-8"))
    assert (estimate["d1_full"], estimate["d1"], estimate["history_bonus"]) == (24000, 21600, 2160)
    conditions = {c["indicator"]: c for c in estimate["conditions"]}
    assert conditions["DS1.1"]["value"] == pytest.approx(1 / 9)  # one LDL sent live of 9 discharges
    assert conditions["DS1.1"]["met"] is False
    assert estimate["bonus_payable"] is False
    assert "NOT met" in result.stdout


def test_bonus_says_there_is_none_in_s1_2022(tmp_path: Path) -> None:
    result = run_backfill("bonus", "--activity", "100000", "--window", "S1-2022", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "history bonus: none in S1-2022" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--activity", "2000000", "--window", "S2-2023"), "between 0 and 1 600 000"),
        (("--activity", "-3", "--window", "S2-2023"), "between 0 and 1 600 000"),
        (("--activity", "1000", "--window", "S3-2024"), "S1-2022, S2-2022, S1-2023, S2-2023"),
        (
            (
                "--activity",
                "1000",
            ),
            "--window",
        ),
    ],
)
def test_bonus_bad_input_names_the_accepted_values(
    tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    result = run_backfill("bonus", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
