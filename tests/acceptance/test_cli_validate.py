"""`backfill validate FILE…`: a verdict per file, exit 1 when any fails, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cda import schematron as sch
from tests.acceptance.cli import run_backfill

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "cda"


def _validate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # One failure per line, whatever the terminal.
    return run_backfill("validate", *args, cwd=cwd, env={"COLUMNS": "400"})


@pytest.fixture
def files(tmp_path: Path, specs) -> dict[str, Path]:
    good = SAMPLES / "ldl.xml"
    wrong_code = tmp_path / "wrong-code.xml"
    wrong_code.write_bytes(good.read_bytes().replace(b'code="11490-0"', b'code="99999-9"'))
    no_signature = tmp_path / "no-signature.xml"
    no_signature.write_bytes(good.read_bytes().replace(b'<signatureCode code="S"/>', b""))
    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(b"%PDF-1.4 this is not XML")
    return {
        "good": good,
        "wrong_code": wrong_code,
        "no_signature": no_signature,
        "garbage": garbage,
    }


def test_good_file_exits_0(tmp_path: Path, files: dict[str, Path]) -> None:
    result = _validate("--no-schematron", str(files["good"]), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid   " in result.stdout
    assert "1 valid, 0 invalid" in result.stdout


def test_xsd_failure_and_non_xml_exit_1_with_plain_verdicts(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    result = _validate(
        "--no-schematron",
        str(files["good"]),
        str(files["no_signature"]),
        str(files["garbage"]),
        str(tmp_path / "absent.xml"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    out = result.stdout
    assert "Expected is ( {urn:hl7-org:v3}signatureCode )" in out
    assert "not well-formed XML" in out
    assert "cannot read the file: No such file or directory" in out
    assert "1 valid, 3 invalid" in out
    assert "Traceback" not in out + result.stderr


@pytest.mark.skipif(not sch.available(), reason="saxonche is not installed")
def test_schematron_failure_names_the_rule(tmp_path: Path, files: dict[str, Path]) -> None:
    result = _validate(str(files["good"]), str(files["wrong_code"]), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("valid") and "ldl.xml" in line for line in lines)
    assert any(line.startswith("INVALID") and "wrong-code.xml" in line for line in lines)
    assert "JDV_J07_XdsTypeCode_CISIS" in result.stdout
    assert "(at /ClinicalDocument/code)" in result.stdout
    assert "(xml, xsd, schematron)" in result.stdout
