"""Running `backfill` the way a user does: a subprocess, a clean environment, a working folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["clean_env", "generate_dpi", "run_backfill"]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with no BACKFILL_* variable but the shared-schemas folder and the cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACKFILL_") or k in ("BACKFILL_SHARED_DIR", "BACKFILL_CACHE_DIR")
    }
    env["COLUMNS"] = "200"  # rich wraps tables to the terminal: keep lines whole
    env.update(extra or {})
    return env


def run_backfill(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m backfill ARGS` in `clean_env` (plus `env`)."""
    full_env = clean_env(env)
    return subprocess.run(
        [sys.executable, "-m", "backfill", *args],
        check=False,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def generate_dpi(folder: Path, patients: int = 20, as_of: str = "2026-11-01") -> Path:
    """`backfill dpi generate` into `folder`/dpi.sqlite (files in dpi-files/); its path."""
    result = run_backfill(
        "dpi", "generate", "--url", "sqlite:///dpi.sqlite", "--patients", str(patients),
        "--as-of", as_of, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder / "dpi.sqlite"
