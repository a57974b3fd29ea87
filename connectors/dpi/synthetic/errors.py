"""Errors of the synthetic DPI generator.

GenerationError (TerminalError)   the target database or folder cannot take a new DPI
"""

from __future__ import annotations

from connectors.errors import TerminalError

__all__ = ["GenerationError"]


class GenerationError(TerminalError):
    """The DPI cannot be generated there (tables already present, folder not writable…)."""
