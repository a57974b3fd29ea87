"""Errors of the clinical-document domain.

Every error here is about the input of one document and is terminal for it: resending the same
data gives the same error. Each carries the reason code of DESIGN §5 that the ledger records.

    CdaError
     ├── InvalidIdentity      the INS or its traits cannot be used (ins_missing, ins_invalid,
     │                        ins_traits_incomplete)
     ├── InvalidContent       the document body is not usable (content_missing,
     │                        content_unsupported_format, content_too_large, content_corrupt)
     ├── InvalidDocumentData  another header field the builder needs is missing or malformed
     └── ValidationFailed     a built document does not pass the XSD or the schematron
"""

from __future__ import annotations

__all__ = [
    "CdaError",
    "InvalidContent",
    "InvalidDocumentData",
    "InvalidIdentity",
    "ValidationFailed",
]


class CdaError(Exception):
    """Root of the errors raised by `cda`. Terminal for the document concerned."""

    transient = False

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class InvalidIdentity(CdaError):
    """The patient's INS or INS traits cannot be put in a document."""


class InvalidContent(CdaError):
    """The document body is missing, not a PDF, too large or corrupt."""


class InvalidDocumentData(CdaError):
    """A header field (author, dates, codes…) is missing or malformed."""

    def __init__(self, message: str, reason: str = "invalid_document_data") -> None:
        super().__init__(reason, message)


class ValidationFailed(CdaError):
    """A document failed the XSD or schematron check; `failures` lists the rules in plain words."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__(
            "cda_invalid", "; ".join(failures[:5]) + (" …" if len(failures) > 5 else "")
        )
        self.failures = failures
