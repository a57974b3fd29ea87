"""The mock DMP as a Starlette application: the ITI-41 and ITI-18 doors and the `/_mock` control plane.

    app = create_app(MockConfig(db_url="sqlite:///mock.sqlite", rate=50))

The repository door reads the body in a stream and refuses it as soon as it passes the size
limit; the XML work runs in a worker thread so the event loop keeps serving (and keeps answering
429s and 503s quickly under load).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cda.ins import INS_OIDS, matricule_problem
from cda.validate import cda_schema
from connectors.dmp.client import REGISTRY_PATH, REPOSITORY_PATH
from connectors.dmp.query import query_schema
from connectors.dmp.schema import repository_schema
from connectors.dmp.soap import build_fault
from connectors.dmp_mock.checks import split_patient_id
from connectors.dmp_mock.faults import FaultPlan, FaultSettings
from connectors.dmp_mock.queries import SeedConflict, SeedEntry, answer_query, seed
from connectors.dmp_mock.ratelimit import TokenBuckets
from connectors.dmp_mock.registry import PATIENT_STATES, Registry, Reply
from connectors.dmp_mock.request_log import RequestLog
from connectors.dmp_mock.store import open_store

__all__ = ["REGISTRY_PATH", "REPOSITORY_PATH", "MockConfig", "create_app"]

_log = structlog.get_logger("connectors.dmp_mock")


def peer_is_loopback(request: Request) -> bool:
    """True when the socket peer is this machine (never a header: uvicorn runs with
    proxy_headers off, so `scope["client"]` is the TCP peer's address)."""
    peer = request.scope.get("client")
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True)
class MockConfig:
    db_url: str = "sqlite://"
    rate: float | None = None
    """Requests per second per client; None: no limit."""
    unknown_patients: str = "ACTIVE"
    control: bool = True
    max_body_bytes: int = 64 * 1024 * 1024
    check_cda: bool = True
    trust_ca: Path | None = None
    """CA that signatures (VIHF, submission set) must chain to; None: not verified."""


class PatientState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ins: str
    oid: str
    state: str


_PATIENTS = TypeAdapter(list[PatientState])


class SeedDocument(BaseModel):
    """A document the live feed sent: the mock stores it Approved and assigns its entryUUID."""

    model_config = ConfigDict(extra="forbid")

    unique_id: str = Field(min_length=1, max_length=128, pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$")
    patient_id: str = Field(min_length=1, max_length=128)
    hash: str = Field(pattern=r"^[0-9a-f]{40}$")
    size: int = Field(ge=0)

    @field_validator("patient_id")
    @classmethod
    def _ins(cls, value: str) -> str:
        parts = split_patient_id(value)
        if parts is None or parts[1] not in INS_OIDS or matricule_problem(parts[0]) is not None:
            raise ValueError("must be an INS in CX form: <matricule>^^^&<INS OID>&ISO^NH")
        return value


_SEED = TypeAdapter(list[SeedDocument])


def _soap(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, media_type=None,
                    headers={"content-type": reply.content_type, **reply.headers})  # fmt: skip


def _fault(
    status: int, reason: str, *, code: str = "Receiver", headers: dict[str, str] | None = None
) -> Response:
    return Response(
        build_fault(code, reason), status_code=status,
        headers={"content-type": "application/soap+xml; charset=UTF-8", **(headers or {})},
    )  # fmt: skip


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: MockConfig | None = None) -> Starlette:
    config = config or MockConfig()
    registry = Registry(
        open_store(config.db_url),
        unknown_patients=config.unknown_patients,
        check_cda=config.check_cda,
        trust_ca=config.trust_ca,
    )
    # Load the schemas now, not on the first request (which would wait ~0.5 s for them).
    repository_schema()
    query_schema()
    if config.check_cda:
        cda_schema()
    buckets = TokenBuckets(config.rate)
    faults = FaultPlan()

    async def repository(request: Request) -> Response:
        client = request.client.host if request.client else "?"
        wait = buckets.take(client)
        if wait:
            registry.count("throttled")
            return _fault(
                429,
                "too many requests: slow down",
                headers={"Retry-After": buckets.retry_after_header(wait)},
            )
        injection = faults.draw()
        if injection.outage:
            registry.count("outage")
            return _fault(
                503,
                "the DMP is unavailable (injected outage)",
                headers={"Retry-After": buckets.retry_after_header(faults.outage_left())},
            )
        try:
            body = await _read_body(request, config.max_body_bytes)
        except _TooLarge:
            registry.count("fault:too_large")
            return _fault(413, f"the request is over {config.max_body_bytes} bytes", code="Sender")
        if injection.latency_s:
            await asyncio.sleep(injection.latency_s)
        if injection.error500:
            registry.count("error500")
            return _fault(500, "internal error (injected)")
        if injection.busy:
            registry.count("busy")
            return _soap(registry.busy_reply())
        try:
            # On the loop, not in a worker thread: the work holds the GIL nearly throughout,
            # so threads ran it no sooner, and handing each request to one (and the GIL back
            # and forth) cost 1 ms of the mock's 2.7 per document (8 clients of 1-document
            # sets, as bench/send.py (b) measures its capacity).
            reply = registry.submit(request.headers.get("content-type"), body)
        except Exception as exc:
            # Only the exception's type: its text may quote a stored value (a patient id).
            registry.count("fault:internal")
            _log.error("mock_dmp_internal_error", error=type(exc).__name__, path=REPOSITORY_PATH)
            return _fault(
                500, f"XDSRegistryError: internal error of the registry ({type(exc).__name__})"
            )
        if injection.stall_after_store and reply.outcome == "success":
            registry.count("stalled_after_store")
            # Stored, but the answer never comes in time: the client's ambiguous timeout.
            deadline = asyncio.get_running_loop().time() + faults.settings.stall_seconds
            while (
                asyncio.get_running_loop().time() < deadline and not await request.is_disconnected()
            ):
                await asyncio.sleep(0.05)
        return _soap(reply)

    def loopback_only(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """The control plane answers the machine's own clients, and only when it is on."""

        async def guarded(request: Request) -> Response:
            if not (config.control and peer_is_loopback(request)):
                return JSONResponse(
                    {"error": "the control plane answers loopback clients only"}, 403
                )
            return await handler(request)

        return guarded

    async def put_patients(request: Request) -> Response:
        try:
            entries = _PATIENTS.validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": exc.errors(include_url=False, include_input=False)}, 422)
        not_ins = [
            e for e in entries if e.oid not in INS_OIDS or matricule_problem(e.ins) is not None
        ]
        if not_ins:
            return JSONResponse(
                {
                    "error": "every entry needs an INS: a valid 15-character matricule and one of the four INS OIDs"
                },
                422,
            )
        bad = [e.state for e in entries if e.state.upper() not in PATIENT_STATES]
        if bad:
            return JSONResponse(
                {"error": f"unknown state {bad[0]!r}; states: {', '.join(PATIENT_STATES)}"}, 422
            )
        await run_in_threadpool(
            registry.set_patients, [(e.ins, e.oid, e.state.upper()) for e in entries]
        )
        return JSONResponse({"patients": len(entries)})

    async def post_faults(request: Request) -> Response:
        try:
            settings = FaultSettings.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            return JSONResponse({"error": exc.errors(include_url=False, include_input=False)}, 422)
        faults.configure(settings)
        return JSONResponse(settings.model_dump())

    async def get_documents(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(registry.list_documents))

    async def get_stats(request: Request) -> Response:
        return JSONResponse(dict(registry.stats))

    async def post_reset(request: Request) -> Response:
        await run_in_threadpool(registry.reset)
        faults.configure(FaultSettings())
        return JSONResponse({"reset": True})

    async def wrong_method(request: Request) -> Response:
        return _fault(405, "ITI-41 is a POST", code="Sender")

    async def registry_door(request: Request) -> Response:
        """ITI-18 stored queries: behind the same rate limit and outages as ITI-41 (no other
        injected faults, so a query never shifts the seeded fault sequence of submissions)."""
        client = request.client.host if request.client else "?"
        if wait := buckets.take(client):
            registry.stats["throttled"] += 1
            return _fault(429, "too many requests: slow down",
                          headers={"Retry-After": buckets.retry_after_header(wait)})  # fmt: skip
        if left := faults.outage_left():
            registry.stats["outage"] += 1
            return _fault(503, "the DMP is unavailable (injected outage)",
                          headers={"Retry-After": buckets.retry_after_header(left)})  # fmt: skip
        try:
            body = await _read_body(request, 1024 * 1024)
        except _TooLarge:
            return _fault(413, "a stored query is over 1 MiB", code="Sender")
        # On the loop, as a submission is (see `repository`).
        return _soap(answer_query(registry, request.headers.get("content-type"), body))

    async def post_seed(request: Request) -> Response:
        try:
            entries = _SEED.validate_json(await request.body())
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            return JSONResponse({"error": errors}, 422)
        try:
            counts = await run_in_threadpool(
                seed, registry, [SeedEntry(**e.model_dump()) for e in entries]
            )
        except SeedConflict as exc:
            return JSONResponse({"error": str(exc)}, 409)
        return JSONResponse(counts)

    routes = [
        Route(REPOSITORY_PATH, repository, methods=["POST"]),
        Route(REPOSITORY_PATH, wrong_method, methods=["GET", "PUT", "DELETE"]),
        Route(REGISTRY_PATH, registry_door, methods=["POST"]),
        Route("/_mock/seed", loopback_only(post_seed), methods=["POST"]),
        Route("/_mock/patients", loopback_only(put_patients), methods=["PUT"]),
        Route("/_mock/faults", loopback_only(post_faults), methods=["POST"]),
        Route("/_mock/documents", loopback_only(get_documents), methods=["GET"]),
        Route("/_mock/stats", loopback_only(get_stats), methods=["GET"]),
        Route("/_mock/reset", loopback_only(post_reset), methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(RequestLog)])
    app.state.registry = registry
    app.state.faults = faults
    return app
