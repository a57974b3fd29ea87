"""A DMP client for one ITI-41 call, and the classification of every answer (DESIGN §7).

    client = DmpClient("http://127.0.0.1:8700", identity)
    result = client.submit(submission_set, [(entry, cda_bytes), ...])
    result.kind   # done | transient | patient | document | fatal

The transport is an `httpx.Client` the caller may supply (TLS, timeouts, a `MockTransport` in
tests), as httpx itself is built. Retrying, pacing and the ledger are the engine's business: this
module only says what an answer means, so the decision to retry is a comparison, not a parse.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from lxml import etree

from cda.metadata import DocumentEntry, SubmissionSet
from connectors.dmp.errors import MalformedMessage
from connectors.dmp.request import build_request
from connectors.dmp.response import RegistryError, read_response
from connectors.dmp.soap import parse_xml, read_envelope
from connectors.dmp.vihf import VihfIdentity
from connectors.dmp.vocabulary import NS

__all__ = ["REPOSITORY_PATH", "DmpClient", "OutcomeKind", "SubmitResult", "classify"]

REPOSITORY_PATH = "/si-dmp-server/v2/services/repository"
_SOAP = f"{{{NS['soap']}}}"

TRANSIENT_CODES = frozenset({
    "XDSRegistryBusy", "XDSRepositoryBusy", "XDSRegistryOutOfResources",
    "XDSRepositoryOutOfResources", "XDSRegistryNotAvailable",
})  # fmt: skip
TRANSIENT_HTTP = frozenset({429, 502, 503, 504})


class OutcomeKind(enum.StrEnum):
    DONE = "done"
    TRANSIENT = "transient"
    PATIENT = "patient"
    DOCUMENT = "document"
    FATAL = "fatal"


@dataclass(frozen=True)
class SubmitResult:
    kind: OutcomeKind
    http_status: int | None
    errors: tuple[RegistryError, ...] = ()
    retry_after: float | None = None
    detail: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def _fault(content: bytes) -> tuple[str, str] | None:
    """(subcode, reason) of a SOAP Fault body, or None when the body is not a fault."""
    try:
        body = read_envelope(parse_xml(content)).body
    except MalformedMessage:
        return None
    if etree.QName(body).localname != "Fault":
        return None
    subcode = body.findtext(f"{_SOAP}Code/{_SOAP}Subcode/{_SOAP}Value") or ""
    reason = body.findtext(f"{_SOAP}Reason/{_SOAP}Text") or ""
    return subcode.strip(), reason.strip()


def classify(response: httpx.Response, sent: Sequence[DocumentEntry] = ()) -> SubmitResult:
    """What an HTTP answer to ITI-41 means for the documents sent."""
    status = response.status_code
    fault = _fault(response.content) if response.content else None
    if status in (401, 403) or (fault is not None and fault[0].startswith("wsse:")):
        # Refused authentication, whatever HTTP status carries it: stop the run.
        reason = fault[1] if fault else "authentication refused"
        return SubmitResult(OutcomeKind.FATAL, status, detail=f"HTTP {status}: {reason}")
    if status in TRANSIENT_HTTP or status >= 500:
        return SubmitResult(
            OutcomeKind.TRANSIENT,
            status,
            retry_after=_retry_after(response),
            detail=f"HTTP {status}" + (f": {fault[1]}" if fault else ""),
        )
    if status != 200 or fault is not None:
        reason = fault[1] if fault else "the request was refused"
        return SubmitResult(OutcomeKind.DOCUMENT, status, detail=f"HTTP {status}: {reason}")
    try:
        outcome = read_response(read_envelope(parse_xml(response.content)).body)
    except MalformedMessage as exc:
        return SubmitResult(OutcomeKind.TRANSIENT, status, detail=f"unreadable answer: {exc}")
    if outcome.success:
        return SubmitResult(OutcomeKind.DONE, status, outcome.errors)
    codes = set(outcome.codes)
    if codes & TRANSIENT_CODES:
        return SubmitResult(OutcomeKind.TRANSIENT, status, outcome.errors)
    if "XDSUnknownPatientId" in codes:
        return SubmitResult(OutcomeKind.PATIENT, status, outcome.errors)
    duplicated = {e.location for e in outcome.errors if e.code == "XDSDuplicateUniqueIdInRegistry"}
    if (
        codes == {"XDSDuplicateUniqueIdInRegistry"}
        and sent
        and duplicated >= {e.entry_uuid for e in sent}
    ):
        # Every document sent is already stored with the same hash: an idempotent resend.
        return SubmitResult(OutcomeKind.DONE, status, outcome.errors)
    # Refused as a set (nothing of it was stored). When some documents are merely already
    # stored, the sender splits the set: those come back done on their own, the others go through.
    return SubmitResult(OutcomeKind.DOCUMENT, status, outcome.errors)


class DmpClient:
    def __init__(
        self,
        base_url: str,
        identity: VihfIdentity,
        *,
        http: httpx.Client | None = None,
        use_mtom: bool = True,
    ) -> None:
        self.url = base_url.rstrip("/") + REPOSITORY_PATH
        self.identity = identity
        self.http = http or httpx.Client(timeout=httpx.Timeout(10, read=60))
        self.use_mtom = use_mtom

    def submit(
        self, submission_set: SubmissionSet, documents: Sequence[tuple[DocumentEntry, bytes]]
    ) -> SubmitResult:
        content_type, body = build_request(
            submission_set, documents, self.identity, to=self.url, use_mtom=self.use_mtom
        )
        try:
            response = self.http.post(
                self.url, content=body, headers={"content-type": content_type}
            )
        except httpx.TimeoutException as exc:
            # Ambiguous: the DMP may have stored the set. Resending is safe (same uniqueIds).
            return SubmitResult(
                OutcomeKind.TRANSIENT, None, detail=f"timeout ({type(exc).__name__})"
            )
        except httpx.TransportError as exc:
            return SubmitResult(
                OutcomeKind.TRANSIENT, None, detail=f"connection failed ({type(exc).__name__})"
            )
        return classify(response, [entry for entry, _ in documents])

    def close(self) -> None:
        self.http.close()
