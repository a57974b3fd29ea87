"""`backfill dpi generate` and `backfill demo` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill


def test_generate_prints_a_summary_and_is_reproducible(tmp_path: Path) -> None:
    url = "sqlite:///dpi.sqlite"  # relative, as people type it: content files still get file: URIs
    args = (
        "dpi",
        "generate",
        "--url",
        url,
        "--patients",
        "30",
        "--seed",
        "4",
        "--as-of",
        "2026-11-01",
    )
    result = run_backfill(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "generated 30 patients" in result.stdout
    assert "documents by kind" in result.stdout
    assert "LDL" in result.stdout
    assert any((tmp_path / "dpi-files").iterdir()), "file: documents go beside a SQLite DPI"

    again = run_backfill(*args, cwd=tmp_path)
    assert again.returncode == 1
    assert "--replace" in again.stderr
    assert "Traceback" not in again.stderr

    replaced = run_backfill(*args, "--replace", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.split("\n", 1)[1] == result.stdout.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a SQLAlchemy URL"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot use the DPI database"),
    ],
    ids=["unparseable", "unreachable"],
)
def test_a_bad_dpi_url_is_one_clear_line(tmp_path: Path, url: str, message: str) -> None:
    result = run_backfill("dpi", "generate", "--url", url, "--patients", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_never_defaults_to_the_configured_dpi(tmp_path: Path) -> None:
    """Generating drops and creates tables: it needs an explicit --url, even with dpi.url set."""
    result = run_backfill(
        "dpi", "generate", "--patients", "1", cwd=tmp_path,
        env={"BACKFILL_DPI_URL": f"sqlite:///{tmp_path / 'real.sqlite'}"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--url" in result.stderr
    assert not (tmp_path / "real.sqlite").exists()


def test_replace_never_drops_a_dpi_the_generator_did_not_make(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'real.sqlite'}"
    engine = sa.create_engine(url)
    create_contract(engine)
    engine.dispose()
    result = run_backfill(
        "dpi", "generate", "--url", url, "--patients", "1", "--replace", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "never drops a DPI it did not create" in result.stderr


def test_summary_reads_the_configured_dpi(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    result = run_backfill(
        "dpi", "generate", "--url", url, "--patients", "3", "--as-of", "2026-01-01", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = run_backfill("dpi", "summary", cwd=tmp_path, env={"BACKFILL_DPI_URL": url})
    assert "3 patients" in summary.stdout


def test_privacy_no_identity_in_any_log_line(tmp_path: Path) -> None:
    """DEBUG JSON logs of a full demo run (generate, audit, build, send to the mock DMP) carry no
    INS, name or birth date of any generated patient."""
    url = f"sqlite:///{tmp_path / 'work' / 'dpi.sqlite'}"
    result = run_backfill(
        "--log-level", "DEBUG", "--log-format", "json",
        "demo", "--workdir", "work", "--patients", "120", "--seed", "8", "--no-schematron",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The demo's own log and its mock DMP's (a process of its own, logging to its file).
    mock_log = (tmp_path / "work" / "mock-dmp.log").read_text(encoding="utf-8")
    lines = [line for line in (result.stderr + mock_log).splitlines() if line.strip()]
    assert lines, "the run logged nothing: the scan would prove nothing"
    for line in lines:
        json.loads(line)  # every line is a JSON event
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select ins_matricule, birth_family_name, birth_given_names, used_family_name, "
                "used_given_name, birth_date from dpi_patient"
            )
        ).all()
    engine.dispose()
    secrets: set[str] = set()
    for matricule, family, given, used_family, used_given, birth in rows:
        secrets.update(s for s in (matricule, family, used_family, used_given) if s and len(s) > 3)
        secrets.update(g for g in (given or "").split(" ") if len(g) > 3)
        if birth:
            secrets.update(
                {
                    str(birth),
                    birth.replace("-", "") if isinstance(birth, str) else birth.strftime("%Y%m%d"),
                }
            )
    log_text = "\n".join(lines)
    leaked = sorted(s for s in secrets if s in log_text)
    assert not leaked, f"identity data in logs: {leaked[:5]}"


def test_live_feed_since_sets_when_the_live_feed_started(tmp_path: Path) -> None:
    base = ("dpi", "generate", "--patients", "40", "--seed", "2", "--as-of", "2026-11-01")
    result = run_backfill(
        *base, "--url", "sqlite:///recent.sqlite", "--live-feed-since", "2026-08-01", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'recent.sqlite'}")
    try:
        with engine.connect() as conn:
            first = conn.scalar(sa.text("SELECT min(sent_live_at) FROM dpi_document"))
            kinds = set(
                conn.scalars(
                    sa.text("SELECT DISTINCT kind FROM dpi_document WHERE sent_live_at IS NOT NULL")
                )
            )
    finally:
        engine.dispose()
    assert first is not None
    assert str(first) >= "2026-08-01"
    assert kinds & {"ORDO", "CR_BIO", "CR_IMG"}, "the live feed sends prescriptions and reports"
    for bad, words in (("2026-13-01", "--live-feed-since"), ("2027-01-01", "after the DPI's day")):
        refused = run_backfill(
            *base, "--url", "sqlite:///bad.sqlite", "--live-feed-since", bad, cwd=tmp_path
        )
        assert refused.returncode == 2, refused.stderr
        assert words in refused.stderr
        assert "Traceback" not in refused.stderr
