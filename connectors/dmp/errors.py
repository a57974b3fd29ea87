"""Errors of the ITI-41 wire layer.

DmpWireError (ConnectorError)       root
 ├── MalformedMessage               not a SOAP/MTOM/ebRIM message we can read
 ├── MetadataProblem                readable, but the XDS metadata break a rule; carries
 │                                  the IHE error code a registry answers with
 ├── SignatureProblem               a signature is missing, broken or not from a trusted CA
 └── SigningMaterialError           the signing certificate or key cannot be used (configuration)

Neither of the first two reaches the engine from the client: the client turns them into
`OutcomeKind` values.
"""

from __future__ import annotations

from connectors.errors import ConnectorError

__all__ = [
    "DmpWireError",
    "MalformedMessage",
    "MetadataProblem",
    "SignatureProblem",
    "SigningMaterialError",
]


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


class SignatureProblem(DmpWireError):
    """A signature (VIHF or submission set) is missing, does not verify, or is not trusted."""


class SigningMaterialError(DmpWireError):
    """The signing certificate or key cannot be read or do not go together."""
