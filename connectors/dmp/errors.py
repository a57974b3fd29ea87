"""Errors of the ITI-41 wire layer.

DmpWireError (ConnectorError)       root
 ├── MalformedMessage               not a SOAP/MTOM/ebRIM message we can read
 └── MetadataProblem                readable, but the XDS metadata break a rule; carries
                                    the IHE error code a registry answers with

Neither reaches the engine from the client: the client turns them into `OutcomeKind` values.
"""

from __future__ import annotations

from connectors.errors import ConnectorError

__all__ = ["DmpWireError", "MalformedMessage", "MetadataProblem"]


class DmpWireError(ConnectorError):
    """Root of the wire layer's errors."""


class MalformedMessage(DmpWireError):
    """The bytes are not a message of the expected shape (XML, MIME, SOAP)."""


class MetadataProblem(DmpWireError):
    """The metadata are readable but wrong; `code` is the IHE error code to answer with."""

    def __init__(self, code: str, context: str, location: str = "") -> None:
        super().__init__(f"{code}: {context}")
        self.code = code
        self.context = context
        self.location = location
