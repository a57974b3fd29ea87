"""Errors of the engine, and the exit code each one gives the command line.

    BackfillError                       exit 1 unless said otherwise
     ├── ConfigError                    exit 2: a wrong or missing setting, named with its file or variable
     ├── RuleError                      exit 2: a rule file that does not validate, named with its key
     ├── DataSourceError                exit 1: the DPI or ledger database cannot be reached or read
     └── LockHeld                       exit 1: another run holds the lock

Errors raised by `cda` (terminal for one document) and by the connectors (under
`connectors.errors.ConnectorError`) are translated where they are caught; they never reach the
user as a traceback. What the DMP answers is not an exception at all: the DMP client returns an
`OutcomeKind` (`connectors.dmp.client`), the one vocabulary for "retry or not".
"""

from __future__ import annotations

__all__ = ["BackfillError", "ConfigError", "DataSourceError", "LockHeld", "RuleError"]


class BackfillError(Exception):
    """Root of the engine's errors; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(BackfillError):
    """A setting is missing or wrong. The message names the key and where it came from."""

    exit_code = 2


class RuleError(BackfillError):
    """A selection rule file is invalid. The message names the file and the key."""

    exit_code = 2


class DataSourceError(BackfillError):
    """A database the engine reads (DPI) or writes (ledger) is unreachable or unreadable."""


class LockHeld(BackfillError):
    """Another run of the engine holds the lock on this ledger."""
