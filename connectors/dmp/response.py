"""The ITI-41 answer: an ebRS `RegistryResponse`, Success or Failure with IHE error codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from connectors.dmp.errors import MalformedMessage
from connectors.dmp.vocabulary import NS, XDS

__all__ = ["RegistryError", "RegistryOutcome", "build_response", "read_response"]

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


def build_response(errors: Sequence[RegistryError] = ()) -> etree._Element:
    """Success when there is no error of severity Error; warnings ride along either way."""
    failed = any(e.severity == XDS.ERROR for e in errors)
    response = etree.Element(
        _RS + "RegistryResponse",
        nsmap={"rs": NS["rs"]},
        status=XDS.FAILURE if failed else XDS.SUCCESS,
    )
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
    return response


def read_response(element: etree._Element) -> RegistryOutcome:
    if element.tag != _RS + "RegistryResponse":
        raise MalformedMessage(
            f"expected a RegistryResponse, got {etree.QName(element).localname!r}"
        )
    status = element.get("status")
    if status not in (XDS.SUCCESS, XDS.FAILURE):
        raise MalformedMessage(f"RegistryResponse status {status!r} is not Success or Failure")
    errors = tuple(
        RegistryError(
            code=e.get("errorCode", ""),
            context=e.get("codeContext", ""),
            location=e.get("location", ""),
            severity=e.get("severity", XDS.ERROR),
        )
        for e in element.iter(_RS + "RegistryError")
    )
    return RegistryOutcome(status == XDS.SUCCESS, errors)
