"""The document state machine of DESIGN §9, as data: the states and every transition allowed.

    selected ──► sending ──► acked
       ▲  │         │  ├───► retry_wait ──► sending …
       │  │         │  ├───► rejected ──(retry --rejected)──► selected
       │  │         │  └───► deferred (patient without a DMP) ──► sending once rechecked
       │  │         └──────► selected (cut before it was sent: a split set, a stop)
       │  └► rejected / deferred (unreadable at send time; patient known without a DMP)

`acked` is final: nothing ever leaves it, so an acknowledged document is never sent again.
`sending` → `sending` is the resend of a row a crash left in flight (same uniqueId and bytes).
Every write in `backfill.ledger.store` asks `require` first; anything else is a `TransitionError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from backfill.errors import TransitionError

__all__ = ["TRANSITIONS", "WAITING", "DocState", "allowed_sources", "require"]


class DocState(StrEnum):
    """A document version's state in the ledger (the values are what `bf_document.state` holds)."""

    SELECTED = "selected"
    SENDING = "sending"
    ACKED = "acked"
    RETRY_WAIT = "retry_wait"
    REJECTED = "rejected"
    DEFERRED = "deferred"


S = DocState
TRANSITIONS: Mapping[DocState, frozenset[DocState]] = {
    S.SELECTED: frozenset({S.SENDING, S.REJECTED, S.DEFERRED}),
    S.SENDING: frozenset({S.SENDING, S.ACKED, S.RETRY_WAIT, S.REJECTED, S.DEFERRED, S.SELECTED}),
    S.RETRY_WAIT: frozenset({S.SENDING, S.REJECTED, S.DEFERRED}),
    S.DEFERRED: frozenset({S.SENDING, S.REJECTED}),
    S.REJECTED: frozenset({S.SELECTED}),
    S.ACKED: frozenset(),
}

# Documents still owed to the DMP (what `status` calls waiting).
WAITING = frozenset({S.SELECTED, S.SENDING, S.RETRY_WAIT, S.DEFERRED})


def allowed_sources(target: DocState) -> frozenset[DocState]:
    """The states a document may be in to move to `target`."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def require(moves: Iterable[tuple[str, str | DocState, DocState]]) -> None:
    """Raise `TransitionError` naming every (document_id, from, to) the machine forbids."""
    refused = []
    for document_id, source, target in moves:
        try:
            current = DocState(source)
        except ValueError:
            refused.append(f"{document_id}: unknown state {source!r}")
            continue
        if target not in TRANSITIONS[current]:
            refused.append(f"{document_id}: {current} → {target}")
    if refused:
        shown = "; ".join(refused[:5]) + (
            f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        )
        raise TransitionError(f"forbidden document state change (DESIGN §9): {shown}")
