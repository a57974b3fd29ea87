"""DMP clients (sync and async) over one I/O-free core that builds requests and reads answers.

    async with AsyncDmpClient(services_url, identity, source_id=…, institution_xon=…) as dmp:
        result = await dmp.submit(patient_id, [(entry, cda_bytes), ...])
        result.kind                 # the class of the whole answer (DESIGN §7)
        result.documents            # one DocumentOutcome per document sent, in the order sent
        found = await dmp.find_entry_uuid(unique_id, patient_id=patient_id)   # ITI-18 lookup
        listed = await dmp.find_documents(patient_id)          # ITI-18 FindDocuments, LeafClass

`services_url` is the DMP's services base (`https://…/si-dmp-server/v2/services`): ITI-41 goes
to `<base>/repository`, ITI-18 to `<base>/registry`. The transport is an httpx client the
caller may supply (TLS, timeouts, pool), as httpx itself is built. Retrying, pacing and the
ledger are the engine's business: this module says what an answer means, so the decision to
retry is a comparison, not a parse.

One error vocabulary, `OutcomeKind`: the client never raises for what the DMP answers nor for
the network; every attempt comes back as a value of

    OutcomeKind
     ├── DONE       stored, or already stored with the same hash (an idempotent resend)
     ├── TRANSIENT  try again later: Busy/OutOfResources/NotAvailable codes, HTTP 429/5xx,
     │              timeout, connection refused, an unreadable answer, a reused submission set,
     │              any other non-200 answer without a RegistryResponse (the caller bounds tries)
     ├── PATIENT    XDSUnknownPatientId: the patient has no open DMP; their documents wait
     ├── DOCUMENT   a RegistryResponse error located on this document: reject it with the code
     ├── SPLIT      HTTP 413, or a refused set in which only some documents are at fault or
     │              already stored: nothing of it was stored, send the others in smaller sets
     └── FATAL      HTTP 401/403, a TLS failure, a WS-Security fault (by QName), HTTP 404/405
                    (wrong endpoint): stop the run, mark nothing

Only a RegistryResponse's error codes ever make a document DOCUMENT. (The TransientError /
TerminalError exception markers are gone: outcomes are values, not exceptions.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib.metadata
import inspect
import re
import ssl
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TypeVar

import httpx
from lxml import etree

from cda.metadata import Coded, DocumentEntry
from connectors.dmp import mtom
from connectors.dmp.ebrim import SUBMISSION_SET_ID
from connectors.dmp.errors import MalformedMessage
from connectors.dmp.query import (
    FoundDocument,
    QueryOutcome,
    StoredQuery,
    build_query_request,
    get_documents,
    read_query_response,
)
from connectors.dmp.query import find_documents as find_documents_query
from connectors.dmp.request import CONTENT_TYPE_HOSPITALISATION, build_request, new_submission_set
from connectors.dmp.response import RegistryError, read_response
from connectors.dmp.signing import Signer
from connectors.dmp.soap import Fault, parse_xml, read_envelope, read_fault
from connectors.dmp.vihf import VihfIdentity
from connectors.dmp.vocabulary import NS, XDS

__all__ = [
    "REGISTRY_PATH",
    "REPOSITORY_PATH",
    "SERVICES_PATH",
    "AsyncDmpClient",
    "DmpClient",
    "DocumentOutcome",
    "FindResult",
    "LookupResult",
    "OutcomeKind",
    "SubmitResult",
    "classify",
    "services_url_problem",
]

SERVICES_PATH = "/si-dmp-server/v2/services"
REPOSITORY_PATH = SERVICES_PATH + "/repository"
REGISTRY_PATH = SERVICES_PATH + "/registry"
try:
    USER_AGENT = f"dmp-backfill/{importlib.metadata.version('dmp-backfill')}"
except importlib.metadata.PackageNotFoundError:  # run from a source tree not installed
    USER_AGENT = "dmp-backfill"
_DEFAULT_TIMEOUT = httpx.Timeout(10, read=60)
_SOAP = f"{{{NS['soap']}}}"

TRANSIENT_CODES = frozenset({
    "XDSRegistryBusy", "XDSRepositoryBusy", "XDSRegistryOutOfResources",
    "XDSRepositoryOutOfResources", "XDSRegistryNotAvailable",
    # "Internal registry/repository error": the DMP's own failure, not the document's.
    "XDSRegistryError", "XDSRepositoryError",
})  # fmt: skip
TRANSIENT_HTTP = frozenset({429, 502, 503, 504})
WRONG_ENDPOINT_HTTP = frozenset({404, 405})
DUPLICATE = "XDSDuplicateUniqueIdInRegistry"
UNKNOWN_PATIENT = "XDSUnknownPatientId"

# WS-Security 1.0 fault codes (OASIS WSS SOAP Message Security §12), by local name: a refusal of
# who we are, never of what we sent.
_WSSE_FAULTS = frozenset({
    "UnsupportedSecurityToken", "UnsupportedAlgorithm", "InvalidSecurity", "InvalidSecurityToken",
    "FailedAuthentication", "FailedCheck", "SecurityTokenUnavailable", "MessageExpired",
})  # fmt: skip


class OutcomeKind(enum.StrEnum):
    DONE = "done"
    TRANSIENT = "transient"
    PATIENT = "patient"
    DOCUMENT = "document"
    FATAL = "fatal"
    SPLIT = "split"


@dataclass(frozen=True)
class DocumentOutcome:
    """What one answer means for one document sent (its text never carries personal data)."""

    unique_id: str
    kind: OutcomeKind
    code: str | None = None
    """The IHE error code, or "HTTP 503", "timeout", "TLS", …"""
    text: str = ""


@dataclass(frozen=True)
class SubmitResult:
    kind: OutcomeKind
    http_status: int | None
    submission_set_id: str
    """The SubmissionSet uniqueId the client minted for this attempt."""
    documents: tuple[DocumentOutcome, ...] = ()
    errors: tuple[RegistryError, ...] = ()
    retry_after: float | None = None
    """Seconds the DMP asked us to wait (Retry-After, either form), on transient answers."""
    detail: str = ""
    elapsed: float = 0.0

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)


# ---- reading answers (no I/O) ---------------------------------------------------------------


def retry_after(headers: httpx.Headers, now: dt.datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _is_authentication(fault: Fault | None) -> bool:
    return fault is not None and any(
        ns == NS["wsse"] and name in _WSSE_FAULTS for ns, name in fault.codes
    )


def _envelope_body(response: httpx.Response) -> etree._Element:
    """The SOAP Body's child of an answer, plain or MTOM-packaged (MalformedMessage if neither)."""
    content_type = response.headers.get("content-type") or "application/soap+xml"
    message = mtom.unpack(content_type, response.content)
    return read_envelope(parse_xml(message.root)).body


def _scrub(text: str, patient_id: str) -> str:
    """The text without the patient's identifier (CX form or matricule), should the DMP echo it."""
    matricule = patient_id.split("^", 1)[0]
    for secret in (patient_id, matricule):
        if len(secret) >= 6:
            text = text.replace(secret, "[patient]")
    return text


@dataclass(frozen=True)
class _Sent:
    """What classify needs to know about the request the answer is about."""

    entries: tuple[DocumentEntry, ...]
    submission_set_id: str
    object_ids: tuple[str, ...]
    """The ExtrinsicObject ids used in the request (entryUUIDs or symbolic ids), in order."""
    patient_id: str


_T = TypeVar("_T")
_SET = -1  # `_locate` result: the error is about the submission set


def _locate(error: RegistryError, sent: _Sent) -> int | None:
    """Index of the document an error is about, _SET for the submission set, None if unknown."""
    location = error.location.strip()
    for n, entry in enumerate(sent.entries):
        if location and location in (sent.object_ids[n], entry.entry_uuid, entry.unique_id):
            return n
    if location in ("SubmissionSet", SUBMISSION_SET_ID) or (
        location and location == sent.submission_set_id
    ):
        return _SET
    # A registry may name the object in codeContext only ("UniqueId 1.2.3 … already exists").
    for n, entry in enumerate(sent.entries):
        if _mentions(error.context, entry.unique_id):
            return n
    if sent.submission_set_id and _mentions(error.context, sent.submission_set_id):
        return _SET
    return None


def _mentions(text: str, identifier: str) -> bool:
    # Not a prefix of a longer OID (1.2.3.1 inside 1.2.3.10), a sentence's full stop allowed.
    return re.search(rf"(?<![\w.]){re.escape(identifier)}(?![\w]|\.\w)", text) is not None


def _whole(
    kind: OutcomeKind, sent: _Sent, code: str | None, text: str, **fields: object
) -> SubmitResult:
    """The same outcome for every document of the set."""
    text = _scrub(text, sent.patient_id)
    return SubmitResult(
        kind,
        submission_set_id=sent.submission_set_id,
        documents=tuple(DocumentOutcome(e.unique_id, kind, code, text) for e in sent.entries),
        detail=text,
        **fields,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class _Early:
    """An answer judged before its body is read as the transaction's response."""

    kind: OutcomeKind
    code: str
    text: str
    http_status: int | None
    retry_after: float | None = None


def _open_answer(response: httpx.Response) -> _Early | etree._Element:
    """The SOAP Body's child of a 200 answer that is not a fault; else what the answer means."""
    status = response.status_code
    body: etree._Element | None = None
    unreadable = ""
    if response.content:
        try:
            body = _envelope_body(response)
        except MalformedMessage as exc:
            unreadable = str(exc)
    fault = read_fault(body) if body is not None else None
    reason = f": {fault.reason}" if fault and fault.reason else ""
    code = f"HTTP {status}"
    if status in (401, 403) or _is_authentication(fault):
        # Refused authentication, whatever HTTP status carries it: stop the run.
        return _Early(OutcomeKind.FATAL, code, f"{code}: authentication refused{reason}", status)
    if status in WRONG_ENDPOINT_HTTP:
        return _Early(
            OutcomeKind.FATAL, code,
            f"{code} from {response.request.url}: not the DMP's endpoint (check dmp.url, "
            f"the services base ending in {SERVICES_PATH}){reason}",
            status,
        )  # fmt: skip
    if status == 413:
        return _Early(OutcomeKind.SPLIT, code, f"{code}: too large for the DMP{reason}", status)
    wait = retry_after(response.headers)
    if status != 200 or fault is not None or body is None:
        what = reason or (f": unreadable answer ({unreadable})" if unreadable else "")
        return _Early(OutcomeKind.TRANSIENT, code, f"{code}{what}", status, wait)
    return body


def _classify(response: httpx.Response, sent: _Sent) -> SubmitResult:
    status = response.status_code
    body = _open_answer(response)
    if isinstance(body, _Early):
        return _whole(body.kind, sent, body.code, body.text, http_status=body.http_status,
                      retry_after=body.retry_after)  # fmt: skip
    wait = retry_after(response.headers)
    try:
        outcome = read_response(body)
    except MalformedMessage as exc:
        return _whole(
            OutcomeKind.TRANSIENT,
            sent,
            f"HTTP {status}",
            f"unreadable answer: {exc}",
            http_status=status,
            retry_after=wait,
        )
    errors = tuple(
        dataclasses.replace(e, context=_scrub(e.context, sent.patient_id)) for e in outcome.errors
    )
    fields = {"http_status": status, "errors": errors}
    if outcome.success:
        return _whole(OutcomeKind.DONE, sent, None, "stored", **fields)
    failing = [e for e in errors if e.severity == XDS.ERROR]
    codes = {e.code for e in failing}
    if not failing or codes & TRANSIENT_CODES:
        code = next((c for c in codes if c in TRANSIENT_CODES), "Failure")
        text = next((e.context for e in failing if e.code == code), "Failure without an error")
        return _whole(
            OutcomeKind.TRANSIENT, sent, code, f"{code}: {text}", retry_after=wait, **fields
        )
    if UNKNOWN_PATIENT in codes:
        text = next(e.context for e in failing if e.code == UNKNOWN_PATIENT)
        return _whole(OutcomeKind.PATIENT, sent, UNKNOWN_PATIENT, text, **fields)
    return _judge_documents(failing, sent, wait, fields)


def _judge_documents(
    failing: list[RegistryError], sent: _Sent, wait: float | None, fields: dict[str, object]
) -> SubmitResult:
    """A refused set: what each document's errors say (nothing of the set was stored)."""
    verdicts: dict[int, DocumentOutcome] = {}
    on_set: list[RegistryError] = []
    unplaced: list[RegistryError] = []
    for error in failing:
        where = _locate(error, sent)
        if where is None:
            unplaced.append(error)
        elif where == _SET:
            on_set.append(error)
        elif error.code == DUPLICATE:
            # Already stored with the same hash (else the code is XDSNonIdenticalHash): done.
            verdicts.setdefault(
                where,
                DocumentOutcome(
                    sent.entries[where].unique_id,
                    OutcomeKind.DONE,
                    DUPLICATE,
                    "already stored with the same hash",
                ),
            )
        elif verdicts.get(where) is None or verdicts[where].kind is OutcomeKind.DONE:
            verdicts[where] = DocumentOutcome(
                sent.entries[where].unique_id, OutcomeKind.DOCUMENT, error.code, error.context
            )
    if any(e.code == DUPLICATE for e in on_set + unplaced):
        # The submission set's uniqueId was already received (or the registry does not say what
        # is duplicated): no document is at fault; resend with a fresh set.
        error = next(e for e in on_set + unplaced if e.code == DUPLICATE)
        return _whole(
            OutcomeKind.TRANSIENT,
            sent,
            DUPLICATE,
            f"{DUPLICATE} on the submission set: {error.context}",
            retry_after=wait,
            **fields,
        )
    if on_set:
        # The set's own metadata are refused: splitting will not help any document of it.
        default = (OutcomeKind.DOCUMENT, on_set[0].code, on_set[0].context)
    elif unplaced and len(sent.entries) == 1:
        default = (OutcomeKind.DOCUMENT, unplaced[0].code, unplaced[0].context)
    else:
        default = (
            OutcomeKind.SPLIT,
            None,
            "not stored: the set was refused for other documents; send it again",
        )
    documents = tuple(
        verdicts.get(n) or DocumentOutcome(entry.unique_id, *default)
        for n, entry in enumerate(sent.entries)
    )
    kinds = {d.kind for d in documents}
    kind = kinds.pop() if len(kinds) == 1 else OutcomeKind.SPLIT
    detail = "; ".join(sorted({f"{e.code}: {e.context}" for e in failing}))[:500]
    return SubmitResult(
        kind, submission_set_id=sent.submission_set_id, documents=documents, detail=detail, **fields
    )  # type: ignore[arg-type]


def classify(
    response: httpx.Response,
    sent: Sequence[DocumentEntry] = (),
    *,
    submission_set_id: str = "",
    object_ids: Sequence[str] | None = None,
) -> SubmitResult:
    """What an HTTP answer to ITI-41 means for the set and for each document sent."""
    entries = tuple(sent)
    facts = _Sent(
        entries,
        submission_set_id,
        tuple(object_ids) if object_ids is not None else tuple(e.entry_uuid for e in entries),
        entries[0].patient_id if entries else "",
    )
    return _classify(response, facts)


_CERTIFICATE_TROUBLE = re.compile(
    r"CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE|ACCESS_DENIED|WRONG_VERSION|NO_SHARED_CIPHER|"
    r"UNSUPPORTED_PROTOCOL|PROTOCOL_VERSION"
)


def _tls_failure(exc: BaseException) -> str | None:
    """The TLS reason when a transport error is a refused handshake (ours or theirs), else None.

    An EOF or a reset in the middle of TLS is the network's doing (transient); a certificate
    refused either way, or no common protocol, will not heal by itself (fatal).
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the DMP's certificate is not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError) and not isinstance(
            cause, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError
        ):
            reason = cause.reason or str(cause)
            if _CERTIFICATE_TROUBLE.search(reason):
                return f"the TLS handshake was refused ({reason})"
        cause = cause.__cause__ or cause.__context__
    return None


def _unmapped_tls(exc: ssl.SSLError) -> httpx.TransportError:
    """httpx's anyio transport (its default, kept behind a proxy) lets a TLS alert read after the
    handshake escape unmapped, as a bare SSLError: a refused client certificate (TLS 1.3). It
    is read like any transport error, its cause kept for `_tls_failure`."""
    error = httpx.ReadError(str(exc))
    error.__cause__ = exc
    return error


def _transport_outcome(exc: httpx.TransportError, sent: _Sent) -> SubmitResult:
    if (reason := _tls_failure(exc)) is not None:
        return _whole(OutcomeKind.FATAL, sent, "TLS", reason, http_status=None)
    if isinstance(exc, httpx.TimeoutException):
        # Ambiguous: the DMP may have stored the set. Resending is safe (same uniqueIds).
        return _whole(
            OutcomeKind.TRANSIENT,
            sent,
            "timeout",
            f"timeout ({type(exc).__name__})",
            http_status=None,
        )
    return _whole(
        OutcomeKind.TRANSIENT,
        sent,
        "connection",
        f"connection failed ({type(exc).__name__})",
        http_status=None,
    )


# ---- ITI-18 answers (no I/O) ---------------------------------------------------------------


@dataclass(frozen=True)
class LookupResult:
    """The entryUUID the DMP gave a document (find_entry_uuid).

    DONE with `entry_uuid` (None: the DMP holds no document under that uniqueId), TRANSIENT,
    PATIENT (no open DMP), FATAL (authentication, endpoint, or a query the DMP refuses), or
    DOCUMENT when the DMP holds several Approved entries for the uniqueId (it cannot be told
    which one to replace).
    """

    kind: OutcomeKind
    entry_uuid: str | None = None
    detail: str = ""
    retry_after: float | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class FindResult:
    """A patient's DocumentEntries (find_documents): uniqueId, entryUUID, hash, size, status."""

    kind: OutcomeKind
    documents: tuple[FoundDocument, ...] = ()
    detail: str = ""
    retry_after: float | None = None
    http_status: int | None = None


def _read_query_answer(response: httpx.Response, patient_id: str) -> QueryOutcome | LookupResult:
    """The found documents of an ITI-18 answer, or a LookupResult saying why there are none."""
    body = _open_answer(response)
    status = response.status_code
    if isinstance(body, _Early):
        # A query is small: a 413 is the DMP's trouble, not a reason to split anything.
        kind = OutcomeKind.TRANSIENT if body.kind is OutcomeKind.SPLIT else body.kind
        return LookupResult(kind, None, body.text, body.retry_after, body.http_status)
    try:
        outcome = read_query_response(body)
    except MalformedMessage as exc:
        return LookupResult(OutcomeKind.TRANSIENT, None, f"unreadable answer: {exc}",
                            retry_after(response.headers), status)  # fmt: skip
    if outcome.success:
        return outcome
    failing = [e for e in outcome.errors if e.severity == XDS.ERROR]
    codes = {e.code for e in failing}
    text = _scrub("; ".join(f"{e.code}: {e.context}" for e in failing), patient_id)[:500]
    if not failing or codes & TRANSIENT_CODES:
        return LookupResult(OutcomeKind.TRANSIENT, None, text or "Failure without an error",
                            retry_after(response.headers), status)  # fmt: skip
    if UNKNOWN_PATIENT in codes:
        return LookupResult(OutcomeKind.PATIENT, None, text, None, status)
    # The DMP refuses the query itself: every query of the run would be refused alike.
    return LookupResult(OutcomeKind.FATAL, None, text, None, status)


def _entry_from_refs(unique_id: str, outcome: QueryOutcome) -> LookupResult | None:
    """The lookup settled by an ObjectRef answer, or None when a LeafClass query must tell."""
    refs = sorted({d.entry_uuid for d in outcome.documents})
    if not refs:
        return LookupResult(OutcomeKind.DONE, None, f"the DMP holds no document {unique_id}")
    if len(refs) == 1:
        return LookupResult(OutcomeKind.DONE, refs[0], "found")
    return None  # several versions of its metadata: only their statuses tell the current one


def _entry_from_leaves(unique_id: str, outcome: QueryOutcome) -> LookupResult:
    approved = sorted({d.entry_uuid for d in outcome.documents if d.status in (None, "Approved")})
    if not approved:
        return LookupResult(OutcomeKind.DONE, None, f"no Approved entry for {unique_id}")
    if len(approved) == 1:
        return LookupResult(OutcomeKind.DONE, approved[0], "found")
    return LookupResult(
        OutcomeKind.DOCUMENT, None,
        f"the DMP holds {len(approved)} Approved entries for {unique_id}: which to replace is unknown",
    )  # fmt: skip


def _query_failed(exc: httpx.TransportError) -> LookupResult:
    outcome = _transport_outcome(exc, _Sent((), "", (), ""))
    return LookupResult(outcome.kind, None, outcome.detail)


# ---- preparing requests (no I/O) ------------------------------------------------------------


def services_url_problem(url: str) -> str | None:
    """Why `url` is not a usable services base (None when it is)."""
    if not re.match(r"^https?://[^/\s]+", url):
        return "must be an http:// or https:// URL"
    for door in ("/repository", "/registry"):
        if url.rstrip("/").endswith(door):
            return (
                f"is the {door.strip('/')} endpoint; give the services base instead "
                f"({url.rstrip('/').removesuffix(door)}): the client appends /repository "
                "(ITI-41) and /registry (ITI-18)"
            )
    return None


@dataclass(frozen=True)
class _Prepared:
    content_type: str
    body: bytes
    sent: _Sent


@dataclass(frozen=True)
class _Call:
    """One POST a transaction needs: where, and what."""

    url: str
    content_type: str
    body: bytes


_Reply = httpx.Response | httpx.TransportError
_Steps = Generator[_Call, _Reply, _T]


class _Core:
    """What both clients share: endpoints, identity, how a submission is built and read."""

    def __init__(
        self,
        services_url: str,
        identity: VihfIdentity,
        *,
        source_id: str,
        institution_xon: str,
        use_mtom: bool = True,
        signer: Signer | None = None,
    ) -> None:
        if (problem := services_url_problem(services_url)) is not None:
            raise ValueError(f"DMP services URL {services_url!r} {problem}")
        self.services_url = services_url.rstrip("/")
        self.repository_url = self.services_url + "/repository"
        self.registry_url = self.services_url + "/registry"
        self.identity = identity
        self.source_id = source_id
        self.institution_xon = institution_xon
        self.use_mtom = use_mtom
        self.signer = signer  # signs the VIHF and each set when the establishment has a certificate

    def _prepare(
        self,
        patient_id: str,
        documents: Sequence[tuple[DocumentEntry, bytes]],
        content_type: Coded | None,
        metadata: Mapping[str, bytes] | None = None,
    ) -> _Prepared:
        if not documents:
            raise ValueError("a submission needs at least one document")
        if any(entry.patient_id != patient_id for entry, _ in documents):
            raise ValueError("every document of a submission set must be of its patient")
        # A fresh SubmissionSet (uniqueId, time) per attempt: the DMP refuses a reused one.
        submission_set = new_submission_set(
            patient_id,
            source_id=self.source_id,
            institution_xon=self.institution_xon,
            content_type=content_type or CONTENT_TYPE_HOSPITALISATION,
        )
        media, body = build_request(
            submission_set,
            documents,
            self.identity,
            to=self.repository_url,
            use_mtom=self.use_mtom,
            signer=self.signer,
            prebuilt=metadata,
        )
        entries = tuple(entry for entry, _ in documents)
        sent = _Sent(
            entries, submission_set.unique_id, tuple(e.entry_uuid for e in entries), patient_id
        )
        return _Prepared(media, body, sent)

    # Each transaction is a generator of the calls it needs (the logic, written once); each
    # client runs it with its own transport, blocking or async.

    def _submit_steps(
        self,
        patient_id: str,
        documents: Sequence[tuple[DocumentEntry, bytes]],
        content_type: Coded | None,
        before_post: Callable[[str], object] | None = None,
        metadata: Mapping[str, bytes] | None = None,
    ) -> _Steps[SubmitResult]:
        prepared = self._prepare(patient_id, documents, content_type, metadata)
        if before_post is not None:
            before_post(prepared.sent.submission_set_id)
        started = time.monotonic()
        reply = yield _Call(self.repository_url, prepared.content_type, prepared.body)
        if isinstance(reply, httpx.TransportError):
            result = _transport_outcome(reply, prepared.sent)
        else:
            result = _classify(reply, prepared.sent)
        return dataclasses.replace(result, elapsed=time.monotonic() - started)

    def _ask_steps(
        self, query: StoredQuery, patient_id: str
    ) -> _Steps[QueryOutcome | LookupResult]:
        content_type, body = build_query_request(
            query, self.identity, patient_id, to=self.registry_url
        )
        reply = yield _Call(self.registry_url, content_type, body)
        if isinstance(reply, httpx.TransportError):
            return _query_failed(reply)
        return _read_query_answer(reply, patient_id)

    def _lookup_steps(self, unique_id: str, patient_id: str) -> _Steps[LookupResult]:
        first = yield from self._ask_steps(get_documents(unique_ids=[unique_id]), patient_id)
        if isinstance(first, LookupResult):
            return first
        if (settled := _entry_from_refs(unique_id, first)) is not None:
            return settled
        leaves = get_documents(unique_ids=[unique_id], return_type="LeafClass")
        second = yield from self._ask_steps(leaves, patient_id)
        return second if isinstance(second, LookupResult) else _entry_from_leaves(unique_id, second)

    def _find_steps(self, patient_id: str, statuses: Sequence[str]) -> _Steps[FindResult]:
        query = find_documents_query(patient_id, statuses=statuses)
        answer = yield from self._ask_steps(query, patient_id)
        if isinstance(answer, LookupResult):
            return FindResult(answer.kind, (), answer.detail, answer.retry_after,
                              answer.http_status)  # fmt: skip
        return FindResult(OutcomeKind.DONE, answer.documents, f"{len(answer.documents)} found")


class DmpClient(_Core):
    """One ITI-41 call at a time on an `httpx.Client` (tests, the demo)."""

    def __init__(
        self,
        services_url: str,
        identity: VihfIdentity,
        *,
        source_id: str,
        institution_xon: str,
        http: httpx.Client | None = None,
        use_mtom: bool = True,
        signer: Signer | None = None,
    ) -> None:
        super().__init__(
            services_url,
            identity,
            source_id=source_id,
            institution_xon=institution_xon,
            use_mtom=use_mtom,
            signer=signer,
        )
        self.http = http or httpx.Client(timeout=_DEFAULT_TIMEOUT)

    def _run(self, steps: _Steps[_T]) -> _T:
        try:
            call = next(steps)
            while True:
                try:
                    reply: _Reply = self.http.post(
                        call.url, content=call.body, headers={"content-type": call.content_type}
                    )
                except httpx.TransportError as exc:
                    reply = exc
                call = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def submit(
        self,
        patient_id: str,
        documents: Sequence[tuple[DocumentEntry, bytes]],
        *,
        content_type: Coded | None = None,
        before_post: Callable[[str], object] | None = None,
        metadata: Mapping[str, bytes] | None = None,
    ) -> SubmitResult:
        """Send one submission set of one patient; never raises for an answer or the network.

        `before_post(submission_set_id)` runs just before the request leaves; `metadata` as
        for the async client.
        """
        return self._run(
            self._submit_steps(patient_id, documents, content_type, before_post, metadata)
        )

    def find_entry_uuid(self, unique_id: str, *, patient_id: str) -> LookupResult:
        """ITI-18 GetDocuments by uniqueId (ObjectRef): the entryUUID an RPLC must target."""
        return self._run(self._lookup_steps(unique_id, patient_id))

    def find_documents(
        self, patient_id: str, *, statuses: Sequence[str] = (XDS.APPROVED,)
    ) -> FindResult:
        """ITI-18 FindDocuments (LeafClass): the patient's entries in these statuses."""
        return self._run(self._find_steps(patient_id, statuses))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DmpClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncDmpClient(_Core):
    """ITI-41 (and ITI-18) calls from many tasks over one pool of kept-alive connections.

    The calls go through `http` (an `httpx.AsyncClient`: tests give one with a MockTransport,
    the sender one behind a proxy), or, given `transport` and `timeout`, straight to that
    transport: the sender's own path, where the client's cookie jar, auth, redirects and URL
    merging, none of which a DMP call uses, cost the event loop about as much as the pool.
    """

    def __init__(
        self,
        services_url: str,
        identity: VihfIdentity,
        *,
        source_id: str,
        institution_xon: str,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        use_mtom: bool = True,
        signer: Signer | None = None,
    ) -> None:
        super().__init__(
            services_url,
            identity,
            source_id=source_id,
            institution_xon=institution_xon,
            use_mtom=use_mtom,
            signer=signer,
        )
        if http is not None and transport is not None:
            raise ValueError("give the client an httpx client or a transport, not both")
        self.transport = transport
        self._timeout = (timeout or _DEFAULT_TIMEOUT).as_dict()
        self.http = (
            None if transport is not None else http or httpx.AsyncClient(timeout=_DEFAULT_TIMEOUT)
        )

    async def _post(self, call: _Call) -> httpx.Response:
        if self.http is not None:
            return await self.http.post(
                call.url, content=call.body, headers={"content-type": call.content_type}
            )
        assert self.transport is not None
        request = httpx.Request(
            "POST",
            call.url,
            content=call.body,
            headers={"content-type": call.content_type, "user-agent": USER_AGENT},
            extensions={"timeout": self._timeout},
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _run(self, steps: _Steps[_T], first: _Call | None = None) -> _T:
        try:
            call = first if first is not None else next(steps)
            while True:
                try:
                    reply: _Reply = await self._post(call)
                except httpx.TransportError as exc:
                    reply = exc
                except ssl.SSLError as exc:
                    reply = _unmapped_tls(exc)
                call = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def submit(
        self,
        patient_id: str,
        documents: Sequence[tuple[DocumentEntry, bytes]],
        *,
        content_type: Coded | None = None,
        before_post: Callable[[str], object] | None = None,
        metadata: Mapping[str, bytes] | None = None,
    ) -> SubmitResult:
        """Send one submission set of one patient; never raises for an answer or the network.

        `before_post(submission_set_id)` runs once the request is built, just before it leaves:
        the sender commits `sending` there, under the uniqueId this attempt carries.
        `metadata`: uniqueId → `ebrim.extrinsic_object(entry)` of some of these entries, made
        where they were built; the request takes them as they are.
        """
        minted: list[str] = []
        steps = self._submit_steps(patient_id, documents, content_type, minted.append, metadata)
        first = next(steps)  # the request is built: `minted` holds its submission set's uniqueId
        if before_post is not None:
            # May be a coroutine function: the sender commits `sending` off the event loop.
            pending = before_post(minted[0])
            if inspect.isawaitable(pending):
                await pending
        return await self._run(steps, first)

    async def find_entry_uuid(self, unique_id: str, *, patient_id: str) -> LookupResult:
        """ITI-18 GetDocuments by uniqueId (ObjectRef): the entryUUID an RPLC must target.

        `patient_id` (CX form) is the VIHF's resource: the DMP opens one patient's record.
        ObjectRef carries no status: one entry is returned as it is (a Deprecated one makes the
        RPLC fail with XDSRegistryDeprecatedDocumentError, a DOCUMENT outcome); several entries
        (versions of its metadata) are told apart by a LeafClass query, and the Approved one wins.
        """
        return await self._run(self._lookup_steps(unique_id, patient_id))

    async def find_documents(
        self, patient_id: str, *, statuses: Sequence[str] = (XDS.APPROVED,)
    ) -> FindResult:
        """ITI-18 FindDocuments (LeafClass): uniqueId, entryUUID, hash, size, status of each."""
        return await self._run(self._find_steps(patient_id, statuses))

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.transport is not None:
            await self.transport.aclose()

    async def __aenter__(self) -> AsyncDmpClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
