"""The command line (DESIGN §11). Each command lives in a module of its own and registers on `app`."""

from __future__ import annotations

from backfill.cli import (
    audit_cmd,  # noqa: F401  (registers its commands)
    config_cmd,  # noqa: F401
    demo_cmd,  # noqa: F401
    dpi_cmd,  # noqa: F401
    indicator_cmd,  # noqa: F401
    ledger_cmd,  # noqa: F401
    mock_dmp_cmd,  # noqa: F401
    report_cmd,  # noqa: F401
    run_cmd,  # noqa: F401
    validate_cmd,  # noqa: F401
)
from backfill.cli._app import app, main

__all__ = ["app", "main"]
