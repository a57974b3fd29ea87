"""Errors of the ITI-41 wire layer.

DmpWireError                        root
 ├── MalformedMessage (terminal)    not a SOAP/MTOM/ebRIM message we can read
 └── MetadataProblem (terminal)     readable, but the XDS metadata break a rule; carries
                                    the IHE error code a registry answers with
"""

from __future__ import annotations

from connectors.errors import TerminalError

__all__ = ["DmpWireError", "MalformedMessage", "MetadataProblem"]


class DmpWireError(Exception):
    """Root of the wire layer's errors."""


class MalformedMessage(DmpWireError, TerminalError):
    """The bytes are not a message of the expected shape (XML, MIME, SOAP)."""


class MetadataProblem(DmpWireError, TerminalError):
    """The metadata are readable but wrong; `code` is the IHE error code to answer with."""

    def __init__(self, code: str, context: str, location: str = "") -> None:
        super().__init__(f"{code}: {context}")
        self.code = code
        self.context = context
        self.location = location
