"""Private key files the engine is given (`dmp.tls_key`, the mock's `--tls-key`): a warning when
someone else on the machine can read one, since whoever reads it can speak as the establishment."""

from __future__ import annotations

import stat
from pathlib import Path

from backfill.logs import get_logger

__all__ = ["exposed_key_warning", "warn_if_exposed"]

log = get_logger("backfill.keys")


def exposed_key_warning(path: Path, setting: str) -> str | None:
    """A sentence for a key file readable by group or others, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None  # a missing file is reported by whoever opens it
    if not mode & 0o044:
        return None
    return (
        f"{setting} {path} is readable by {'group and others' if mode & 0o004 else 'its group'} "
        f"(mode {mode:04o}): chmod 600 it"
    )


def warn_if_exposed(path: Path, setting: str) -> None:
    """Log `exposed_key_warning` as a warning (the command goes on: the key still works)."""
    warning = exposed_key_warning(path, setting)
    if warning is not None:
        log.warning("tls.key_exposed", detail=warning)
