"""The command line's error boundary: one readable line, the contract's exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.cli import generate_dpi
from tests.acceptance.cli import run_backfill as _backfill


def test_bad_configuration_exits_2_with_the_key_named(tmp_path: Path) -> None:
    """A wrong value in backfill.toml: exit 2, the file and key in one message, no traceback."""
    (tmp_path / "backfill.toml").write_text("[dmp]\nrate = 0\n", encoding="utf-8")
    result = _backfill("config", cwd=tmp_path)
    assert result.returncode == 2
    assert "backfill.toml: dmp.rate: Input should be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """--config naming a file that is not there is a configuration error."""
    result = _backfill("--config", "absent.toml", "config", cwd=tmp_path)
    assert result.returncode == 2
    assert "absent.toml: configuration file not found" in result.stderr


def test_environment_only_configuration_is_shown(tmp_path: Path) -> None:
    """With only BACKFILL_* variables, `backfill config` shows them in effect."""
    result = _backfill("config", cwd=tmp_path, env={"BACKFILL_DPI_URL": "sqlite:///x.sqlite"})
    assert result.returncode == 0, result.stderr
    assert '"url": "sqlite:///x.sqlite"' in result.stdout


def test_usage_error_is_not_a_traceback(tmp_path: Path) -> None:
    """An unknown command gets Typer's usage message and exit 2."""
    result = _backfill("no-such-command", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_config_hides_database_passwords(tmp_path: Path) -> None:
    result = _backfill(
        "config", cwd=tmp_path,
        env={"BACKFILL_LEDGER_URL": "postgresql+psycopg://backfill:s3cret@db.example/ledger"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout
    assert "backfill:***@db.example" in result.stdout


def test_run_without_the_schemas_exits_2_before_touching_anything(tmp_path: Path) -> None:
    """Every document is checked against the official schemas before it goes: without them the
    run refuses at once (configuration), not patient by patient; no ledger is created."""
    dpi = generate_dpi(tmp_path)
    env = {
        "BACKFILL_DPI_URL": f"sqlite:///{dpi}",
        "BACKFILL_LEDGER_URL": "sqlite:///ledger.sqlite",
        "BACKFILL_DMP_URL": "http://127.0.0.1:9/si-dmp-server/v2/services",
        "BACKFILL_SHARED_DIR": "",
    }
    for command in (("run",), ("run", "--dry-run"), ("demo", "--workdir", "w")):
        result = _backfill(*command, cwd=tmp_path, env=env)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "schemas are not configured" in result.stderr
        assert "BACKFILL_SHARED_DIR" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "ledger.sqlite").exists()
