"""A new user's mistakes and habits, each answered by one readable line and the right exit code.

Out-of-range dates, drivers that are not installed, a role that does not exist, a closed pipe,
options that do not apply, files that are not what they should be, `--port 0`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.acceptance.cli import generate_dpi, run_backfill


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for part in parts:
        assert part in errors[0], errors[0]


@pytest.fixture(scope="module")
def small_dpi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dpi(tmp_path_factory.mktemp("dpi"), patients=30)


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_as_of_out_of_range_gives_the_accepted_range(
    tmp_path: Path, small_dpi: Path, day: str
) -> None:
    generate = run_backfill(
        "dpi", "generate", "--url", "sqlite:///x.sqlite", "--as-of", day, cwd=tmp_path
    )
    _one_line_error(generate, 2, "--as-of", "dates from 1900-01-01 to 2199-12-31 are accepted")
    env = {"BACKFILL_DPI_URL": f"sqlite:///{small_dpi}"}
    audit = run_backfill("audit", "--as-of", day, cwd=tmp_path, env=env)
    _one_line_error(audit, 2, "--as-of", "are accepted")
    window = run_backfill(
        "audit", "--rules", "catch-up", "--from", "2026-01-01", "--to", day, cwd=tmp_path, env=env
    )
    _one_line_error(window, 2, "--from/--to", "are accepted")


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("oracle+oracledb://reader:pw@dpi-host/DPI", "dmp-backfill[oracle]"),
        ("mssql+pyodbc://reader:pw@dpi-host/DPI", "dmp-backfill[mssql]"),
        ("mysql://reader:pw@dpi-host/DPI", "mysqlclient"),
    ],
)
def test_a_url_whose_driver_is_missing_names_the_driver(
    tmp_path: Path, url: str, advice: str
) -> None:
    result = run_backfill("dpi", "summary", "--url", url, cwd=tmp_path)
    _one_line_error(result, 2, "needs the Python driver", advice)
    mock = run_backfill("mock-dmp", "--port", "0", "--db", url, cwd=tmp_path)
    _one_line_error(mock, 2, "needs the Python driver", advice)


def test_a_postgresql_role_that_does_not_exist_is_an_authentication_error(
    tmp_path: Path, pg_admin_url: str
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_admin_url).set(username="no_such_role_x", password=None)
    result = run_backfill(
        "dpi", "summary", "--url", url.render_as_string(hide_password=False), cwd=tmp_path
    )
    _one_line_error(result, 2, "refused the credentials", 'role "no_such_role_x" does not exist')


def test_a_password_in_the_query_string_is_hidden(tmp_path: Path) -> None:
    url = "postgresql+psycopg://reader@127.0.0.1:1/dpi?password=s3cret&connect_timeout=2"
    config = run_backfill("config", cwd=tmp_path, env={"BACKFILL_LEDGER_URL": url})
    assert config.returncode == 0, config.stderr
    assert "s3cret" not in config.stdout
    assert "password=***" in config.stdout
    failed = run_backfill("dpi", "summary", "--url", url, cwd=tmp_path)
    assert failed.returncode == 1
    assert "s3cret" not in failed.stderr + failed.stdout
    assert "password=***" in failed.stderr


def test_a_closed_pipe_ends_quietly(small_dpi: Path, tmp_path: Path) -> None:
    """`backfill dpi summary | head -2`: the reader has gone; no error, the SIGPIPE status."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: deterministic
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    try:
        for args in (["dpi", "summary", "--url", f"sqlite:///{small_dpi}"], ["config"]):
            result = subprocess.run(
                [sys.executable, "-m", "backfill", *args],
                cwd=tmp_path, env=env, stdout=write_end, stderr=subprocess.PIPE, text=True,
                timeout=120, check=False,
            )  # fmt: skip
            assert result.stderr == "", result.stderr
            assert result.returncode == 141
    finally:
        os.close(write_end)


def test_options_that_do_not_apply_or_files_that_are_not_rules(
    tmp_path: Path, small_dpi: Path
) -> None:
    env = {"BACKFILL_DPI_URL": f"sqlite:///{small_dpi}"}
    _one_line_error(
        run_backfill("audit", "--limit", "3", cwd=tmp_path, env=env), 2, "--limit", "--export-cda"
    )
    _one_line_error(
        run_backfill("audit", "--rules", str(tmp_path), cwd=tmp_path, env=env), 2, "is a folder"
    )
    _one_line_error(
        run_backfill("audit", "--rules", "/dev/null", cwd=tmp_path, env=env),
        2,
        "not a regular file",
    )


def test_config_refuses_a_facility_type_outside_jdv_j02_and_shows_effective_values(
    tmp_path: Path,
) -> None:
    bad = run_backfill(
        "config", cwd=tmp_path, env={"BACKFILL_ESTABLISHMENT_FACILITY_TYPE_CODE": "XYZ"}
    )
    assert bad.returncode == 2
    assert "establishment.facility_type_code: 'XYZ' is not in the JDV_J02 value set" in bad.stderr
    shown = run_backfill("config", cwd=tmp_path)
    assert '"structure_id": "1999999990"' in shown.stdout


def test_audit_shows_its_reference_time_in_paris_time(tmp_path: Path, small_dpi: Path) -> None:
    result = run_backfill(
        "audit", "--as-of", "2026-07-01T10:00:00Z", cwd=tmp_path,
        env={"BACKFILL_DPI_URL": f"sqlite:///{small_dpi}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "at 2026-07-01 12:00:00+02:00 (Paris time)" in result.stdout


def test_mock_dmp_tls_files_that_are_not_pem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = run_backfill("mock-dmp", "--tls-cert", str(junk), "--tls-key", str(junk), cwd=tmp_path)
    _one_line_error(result, 2, "--tls-cert", "not a PEM certificate")


def test_mock_dmp_on_port_0_says_and_writes_the_port_it_bound(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACKFILL_") or k in ("BACKFILL_SHARED_DIR", "BACKFILL_CACHE_DIR")
    }
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill", "mock-dmp", "--port", "0", "--port-file", str(port_file),
         "--db", "sqlite:///store.sqlite"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        banner = ""
        for line in process.stdout:  # type: ignore[union-attr]
            if "mock DMP on" in line:  # printed once the port is bound, after the port file
                banner = line
                break
        port = int(port_file.read_text().strip())
        assert port > 0
        assert f"http://127.0.0.1:{port}/si-dmp-server/v2/services/repository" in banner
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/_mock/documents").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_status_shows_the_runs_times_in_paris_time(tmp_path: Path) -> None:
    import datetime as dt
    import re

    from backfill.selection.paris_time import PARIS
    from tests.acceptance.test_ledger_cli import _a_used_ledger

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    _a_used_ledger(url)
    result = run_backfill("status", cwd=tmp_path, env={"BACKFILL_LEDGER_URL": url})
    assert result.returncode == 0, result.stderr
    offset = dt.datetime.now(PARIS).strftime("%z")
    paris = f"{offset[:3]}:{offset[3:]}"
    assert re.search(rf"\d\d:\d\d:\d\d{re.escape(paris)}", result.stdout), result.stdout
    assert "+00:00" not in result.stdout


@pytest.mark.parametrize("month", ["9999-12", "0001-01"])
def test_a_month_out_of_range_gives_the_accepted_range(tmp_path: Path, month: str) -> None:
    result = run_backfill("indicator", "--month", month, cwd=tmp_path)
    _one_line_error(result, 2, "--month", "months from 1900-01 to 2199-12 are accepted")
