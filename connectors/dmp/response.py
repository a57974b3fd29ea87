"""The ITI-41 answer: an ebRS `RegistryResponse`, Success or Failure with IHE error codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from connectors.dmp.errors import MalformedMessage
from connectors.dmp.vocabulary import NS, XDS

__all__ = [
    "RegistryError",
    "RegistryOutcome",
    "append_errors",
    "build_response",
    "read_errors",
    "read_response",
]

_RS = f"{{{NS['rs']}}}"


@dataclass(frozen=True, slots=True)
class RegistryError:
    code: str
    context: str
    location: str = ""
    severity: str = XDS.ERROR


@dataclass(frozen=True, slots=True)
class RegistryOutcome:
    success: bool
    errors: tuple[RegistryError, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors if e.severity == XDS.ERROR)


def append_errors(response: etree._Element, errors: Sequence[RegistryError]) -> bool:
    """Add the `rs:RegistryErrorList` of `errors` (if any) to a response; True if one is an Error.

    Shared by the ITI-41 RegistryResponse and the ITI-18 AdhocQueryResponse (same ebRS type).
    """
    failed = any(e.severity == XDS.ERROR for e in errors)
    if errors:
        listing = etree.SubElement(
            response,
            _RS + "RegistryErrorList",
            highestSeverity=XDS.ERROR if failed else XDS.WARNING,
        )
        for error in errors:
            etree.SubElement(
                listing, _RS + "RegistryError", errorCode=error.code, codeContext=error.context,
                location=error.location, severity=error.severity,
            )  # fmt: skip
    return failed


def read_errors(response: etree._Element) -> tuple[RegistryError, ...]:
    return tuple(
        RegistryError(
            code=e.get("errorCode", ""),
            context=e.get("codeContext", ""),
            location=e.get("location", ""),
            severity=e.get("severity", XDS.ERROR),
        )
        for e in response.iter(_RS + "RegistryError")
    )


def build_response(errors: Sequence[RegistryError] = ()) -> etree._Element:
    """Success when there is no error of severity Error; warnings ride along either way."""
    failed = any(e.severity == XDS.ERROR for e in errors)
    response = etree.Element(
        _RS + "RegistryResponse",
        nsmap={"rs": NS["rs"]},
        status=XDS.FAILURE if failed else XDS.SUCCESS,
    )
    append_errors(response, errors)
    return response


def read_response(element: etree._Element) -> RegistryOutcome:
    if element.tag != _RS + "RegistryResponse":
        raise MalformedMessage(
            f"expected a RegistryResponse, got {etree.QName(element).localname!r}"
        )
    status = element.get("status")
    if status not in (XDS.SUCCESS, XDS.FAILURE):
        raise MalformedMessage(f"RegistryResponse status {status!r} is not Success or Failure")
    errors = read_errors(element)
    return RegistryOutcome(status == XDS.SUCCESS, errors)
