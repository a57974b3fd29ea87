"""The ledger (DESIGN §9): the engine's own state, the document state machine, the run lock.

`Ledger` (in `store`) is the only code that changes a document's state; `states` holds the
machine as data; `schema` the tables (`sql/ledger.sql` is their readable DDL); `migrate` the
Alembic revisions shipped in `migrations/`; `lock` the run lock.
"""

from __future__ import annotations

from backfill.ledger.lock import Holder, RunLock
from backfill.ledger.states import TRANSITIONS, DocState
from backfill.ledger.store import (
    AckedDocument,
    DocResult,
    Invariant,
    Ledger,
    LedgerStatus,
    PendingDocument,
    RunInfo,
    Selected,
    SendingDocument,
    WaitingDocument,
)

__all__ = [
    "TRANSITIONS",
    "AckedDocument",
    "DocResult",
    "DocState",
    "Holder",
    "Invariant",
    "Ledger",
    "LedgerStatus",
    "PendingDocument",
    "RunInfo",
    "RunLock",
    "Selected",
    "SendingDocument",
    "WaitingDocument",
]
