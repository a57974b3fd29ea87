"""Errors of the engine, and the exit code each one gives the command line.

    BackfillError                       exit 1 unless said otherwise
     ├── ConfigError                    exit 2: a wrong or missing setting, named with its file or variable
     ├── RuleError                      exit 2: a rule file that does not validate, named with its key
     ├── DataSourceError                exit 1: the DPI or ledger database cannot be reached or read
     │    └── DatabaseAuthError         exit 2: the database refused who we are (role, password)
     ├── LockHeld                       exit 1: another run holds the lock
     └── LedgerError                    exit 1: the ledger refused an operation
          ├── LedgerSchemaError         exit 2: the ledger's schema is newer (or older) than this engine
          ├── LedgerMissing             exit 1: no ledger where the configuration points
          └── TransitionError           exit 1: a document state change DESIGN §9 forbids (a bug)

Errors raised by `cda` (terminal for one document) and by the connectors (under
`connectors.errors.ConnectorError`) are translated where they are caught; they never reach the
user as a traceback. What the DMP answers is not an exception at all: the DMP client returns an
`OutcomeKind` (`connectors.dmp.client`), the one vocabulary for "retry or not".
"""

from __future__ import annotations

__all__ = [
    "BackfillError",
    "ConfigError",
    "DataSourceError",
    "DatabaseAuthError",
    "LedgerError",
    "LedgerMissing",
    "LedgerSchemaError",
    "LockHeld",
    "RuleError",
    "TransitionError",
]


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


class DatabaseAuthError(DataSourceError):
    """The database answered but refused our credentials: an authentication error (DESIGN §11)."""

    exit_code = 2


class LockHeld(BackfillError):
    """Another run of the engine holds the lock on this ledger."""


class LedgerError(BackfillError):
    """The ledger (the engine's own state, DESIGN §9) refused an operation."""


class LedgerSchemaError(LedgerError):
    """The ledger's schema revision is not the one this engine knows; both are named."""

    exit_code = 2


class LedgerMissing(LedgerError):
    """No ledger exists at the configured URL (a read-only command found nothing to read)."""


class TransitionError(LedgerError):
    """A document state change the ledger's state machine forbids; nothing was written."""
