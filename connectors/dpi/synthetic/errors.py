"""Errors of the synthetic DPI generator.

GenerationError (ConnectorError)   the target database or folder cannot take a new DPI
"""

from __future__ import annotations

from connectors.errors import ConnectorError

__all__ = ["GenerationError"]


class GenerationError(ConnectorError):
    """The DPI cannot be generated there (tables already present, folder not writable…)."""
