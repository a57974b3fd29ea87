"""Retry markers shared by every connector's error tree.

A connector's errors subclass its own root and one of these two markers, so the engine decides
to retry with a type check (`isinstance(exc, TransientError)`) and never by parsing messages.
"""

from __future__ import annotations

__all__ = ["TerminalError", "TransientError"]


class TransientError(Exception):
    """Trying again later may succeed (busy, unreachable, timed out). May carry `retry_after`."""

    retry_after: float | None = None


class TerminalError(Exception):
    """Trying again with the same input gives the same answer: record it, do not retry."""
