"""Where DS1.4 learns what dmp-backfill itself put in the DMP: the ledger's acknowledged documents.

The ledger usually lives in another database than the DPI, so its (document_id, acked_at) pairs
are read here and loaded into a temporary table on the DPI connection (`indicator.load_acked`).
"""

from __future__ import annotations

import datetime as dt

from backfill.config import Settings

__all__ = ["acked_documents"]


def acked_documents(settings: Settings) -> tuple[list[tuple[str, dt.datetime]], str | None]:
    """The ledger's acknowledged (document_id, acked_at) pairs, and a note for the user if any.

    Until the ledger exists this counts the live feed only, and says so.
    """
    _ = settings
    return [], "no ledger yet: DS1.4 counts only what the live feed sent (sent_live_at)"
