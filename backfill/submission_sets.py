"""A patient's documents as ITI-41 submission sets: split by size, bisected when refused.

The DMP takes one patient per submission set (DESIGN §3); a patient's documents go in sets of at
most `max_documents` documents and `max_bytes` bytes of CDA (a document bigger than that goes
alone). A multi-document set the DMP refuses as a whole (a document error whose culprit is not
certain, or a SPLIT: HTTP 413, duplicates for only some documents) stored nothing; `settle`
sends its halves in turn, down to single documents, so one bad document never blocks the others.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["SetVerdict", "Sized", "settle", "split_sets"]


class Sized(Protocol):
    @property
    def size(self) -> int: ...


T = TypeVar("T", bound=Sized)


class SetVerdict(enum.Enum):
    SETTLED = "settled"
    """every document of the set has its outcome (acked, rejected, deferred, waiting)"""
    SPLIT = "split"
    """nothing was stored and the set must be sent in smaller parts"""


def split_sets(items: Sequence[T], *, max_documents: int, max_bytes: int) -> list[list[T]]:
    """Consecutive sets, in the given order, within both limits."""
    if max_documents < 1 or max_bytes < 1:
        raise ValueError("set limits must be positive")
    sets: list[list[T]] = []
    current: list[T] = []
    size = 0
    for item in items:
        if current and (len(current) >= max_documents or size + item.size > max_bytes):
            sets.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        sets.append(current)
    return sets


async def settle(items: Sequence[T], send: Callable[[list[T]], Awaitable[SetVerdict]]) -> int:
    """Send `items` as one set; a SPLIT set of several is sent again as its two halves.

    Returns the number of sets sent. A single document answered SPLIT is the sender's to
    settle (it cannot be split further): `send` must not return SPLIT for it twice in a row,
    which `settle` checks so a wrong `send` cannot loop forever.
    """
    pending: list[list[T]] = [list(items)] if items else []
    sent = 0
    while pending:
        part = pending.pop()
        sent += 1
        if await send(part) is SetVerdict.SPLIT:
            if len(part) == 1:
                raise RuntimeError("a single document cannot be split: its sender must settle it")
            middle = len(part) // 2
            # Left half first: pushed last, popped first.
            pending.append(part[middle:])
            pending.append(part[:middle])
    return sent
