"""What the DPI database cannot tell the decision query: the ledger's facts and `file:` contents.

`LedgerFacts` is the ledger's side (acknowledged versions, patients without a DMP); the ledger
implements it, `InMemoryLedgerFacts` serves tests, audits without a ledger, and benchmarks.
Lookups take a batch of keys, so a ledger in another database answers one streamed batch of
decisions in one round trip.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from backfill.selection.compiler import PDF_HEAD, PDF_TRAILER, PDF_TRAILER_WINDOW
from backfill.selection.reasons import Reason
from connectors.dpi.content import ContentRefused, open_content

__all__ = ["InMemoryLedgerFacts", "LedgerFacts", "check_file_content"]


class LedgerFacts(Protocol):
    """The two reasons only the ledger knows (DESIGN §5: 4 when acknowledged by us, 15)."""

    def acknowledged(self, set_ids: Collection[str]) -> Mapping[str, Mapping[int, str]]:
        """For these document sets: version → uniqueId of each version the DMP acknowledged to us."""
        ...

    def without_dmp(self, ipps: Collection[str], as_of: dt.datetime) -> Collection[str]:
        """Those of these patients the DMP said have no open DMP, within the recheck period."""
        ...


@dataclass
class InMemoryLedgerFacts:
    """Facts held in dicts: `acked[set_id][version] = uniqueId`, `no_dmp[ipp] = until` (instant)."""

    acked: dict[str, dict[int, str]] = field(default_factory=dict)
    no_dmp: dict[str, dt.datetime] = field(default_factory=dict)

    def acknowledged(self, set_ids: Collection[str]) -> Mapping[str, Mapping[int, str]]:
        if not self.acked:
            return {}
        return {s: self.acked[s] for s in set_ids if s in self.acked}

    def without_dmp(self, ipps: Collection[str], as_of: dt.datetime) -> Collection[str]:
        if not self.no_dmp:
            return ()
        return {ipp for ipp in ipps if ipp in self.no_dmp and self.no_dmp[ipp] > as_of}


def check_file_content(
    uri: str, *, pdf: bool, max_bytes: int, content_root: Path | None = None
) -> Reason | None:
    """The content reason of a `file:` URI, from its size and first and last KiB (None: fine).

    Not a readable `file:` URI (another scheme, no `content_root`, outside it, a link, missing, unreadable,
    empty) is content_missing; the PDF check mirrors the SQL one on inline contents.
    """
    try:
        with open_content(uri, content_root) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return Reason.CONTENT_MISSING
            if size > max_bytes:
                return Reason.CONTENT_TOO_LARGE
            if not pdf:
                return None
            head = handle.read(len(PDF_HEAD))
            handle.seek(max(size - PDF_TRAILER_WINDOW, 0))
            tail = handle.read(PDF_TRAILER_WINDOW)
    except (ContentRefused, OSError):
        return Reason.CONTENT_MISSING
    if head != PDF_HEAD or PDF_TRAILER not in tail:
        return Reason.CONTENT_CORRUPT
    return None
