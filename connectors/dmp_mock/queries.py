"""The mock's registry door (ITI-18 GetDocuments / FindDocuments) and its seeding from the live feed.

    reply = answer_query(registry, content_type, body)      # POST …/services/registry
    seed(registry, [SeedEntry(...)])                         # POST /_mock/seed

A query is judged like a submission: the envelope and the VIHF first (a SOAP fault when
unreadable or unauthenticated), then the schema (`query.xsd`), then the parameters. The VIHF's
resource-id names the one patient whose record the caller may read: GetDocuments never returns
another patient's entries, FindDocuments for another patient is `XDSPatientIdDoesNotMatch`.
The entryUUIDs are the ones the mock stored, status Approved or Deprecated (after an RPLC).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from connectors.dmp import mtom
from connectors.dmp.errors import MalformedMessage, MetadataProblem
from connectors.dmp.query import (
    ACTION_QUERY,
    ACTION_QUERY_RESPONSE,
    ENTRY_UUID,
    GET_DOCUMENTS,
    PATIENT_ID,
    STATUS,
    UNIQUE_ID,
    FoundDocument,
    StoredQuery,
    build_query_response,
    query_errors,
    read_query,
)
from connectors.dmp.response import RegistryError
from connectors.dmp.soap import build_envelope, parse_xml, read_envelope
from connectors.dmp.vihf import RESOURCE_ID, read_attributes
from connectors.dmp_mock.registry import APPROVED, Registry, Reply, fault_reply
from connectors.dmp_mock.store import documents

__all__ = ["LIVE_FEED_SET", "SeedConflict", "SeedEntry", "answer_query", "seed"]

QUERY_CONTENT_TYPE = f'application/soap+xml; charset=UTF-8; action="{ACTION_QUERY_RESPONSE}"'
LIVE_FEED_SET = "MOCK:live-feed"
"""The submission set recorded for seeded documents (sent by the live feed, not by us)."""
_STATUS_URN = "urn:oasis:names:tc:ebxml-regrep:StatusType:"


def answer_query(registry: Registry, content_type: str | None, body: bytes) -> Reply:
    reply = _answer(registry, content_type, body)
    registry.stats[reply.outcome] += 1
    return reply


def _answer(registry: Registry, content_type: str | None, body: bytes) -> Reply:
    try:
        envelope = read_envelope(parse_xml(mtom.unpack(content_type, body).root))
    except MalformedMessage as exc:
        return fault_reply(400, "Sender", str(exc), "query:fault:malformed")
    if envelope.action != ACTION_QUERY:
        return fault_reply(
            400, "Sender", f"wsa:Action {envelope.action!r} is not {ACTION_QUERY}",
            "query:fault:action", "wsa:ActionNotSupported",
        )  # fmt: skip
    try:
        vihf = read_attributes(envelope.security)
    except MalformedMessage as exc:
        return fault_reply(403, "Sender", str(exc), "query:fault:auth", "wsse:InvalidSecurity")
    if not vihf.get("Identifiant_Structure"):
        return fault_reply(
            403, "Sender", "the VIHF names no Identifiant_Structure", "query:fault:auth",
            "wsse:FailedAuthentication",
        )  # fmt: skip

    def answer(
        found: Sequence[FoundDocument], return_type: str, errors: Sequence[RegistryError] = ()
    ) -> Reply:
        response = build_envelope(
            build_query_response(found, return_type, errors), action=ACTION_QUERY_RESPONSE,
            message_id=f"urn:uuid:{uuid.uuid4()}", relates_to=envelope.message_id,
        )  # fmt: skip
        outcome = f"query:{errors[0].code}" if errors else "query:success"
        return Reply(200, response, outcome, content_type=QUERY_CONTENT_TYPE)

    if problems := query_errors(envelope.body):
        return answer(
            [], "ObjectRef",
            [RegistryError("XDSRegistryError", f"the query does not validate: {problems[0]}")],
        )  # fmt: skip
    try:
        query = read_query(envelope.body)
    except MetadataProblem as exc:
        return answer([], "ObjectRef", [RegistryError(exc.code, exc.context, exc.location)])
    except MalformedMessage as exc:
        return answer([], "ObjectRef", [RegistryError("XDSRegistryError", str(exc))])
    patient_id = vihf.get(RESOURCE_ID, "")
    if query.query_id != GET_DOCUMENTS and query.parameters[PATIENT_ID][0] != patient_id:
        return answer(
            [], query.return_type,
            [RegistryError("XDSPatientIdDoesNotMatch",
                           "the VIHF resource-id is not the patient of the query")],
        )  # fmt: skip
    with registry.engine.connect() as conn:
        state = registry.patient_state(conn, patient_id)
        if state != "ACTIVE":
            return answer(
                [], query.return_type,
                [RegistryError("XDSUnknownPatientId", f"MOCK:{state} the patient has no open DMP")],
            )  # fmt: skip
        rows = conn.execute(_select(query, patient_id)).all()
    found = [
        FoundDocument(r.entry_uuid, r.unique_id, r.patient_id, r.hash, r.size, r.status)
        for r in rows
    ]
    return answer(found, query.return_type)


def _select(query: StoredQuery, patient_id: str) -> sa.Select:
    columns = (documents.c.entry_uuid, documents.c.unique_id, documents.c.patient_id,
               documents.c.hash, documents.c.size, documents.c.status)  # fmt: skip
    # Only the record the VIHF opens: the one patient it names.
    statement = sa.select(*columns).where(documents.c.patient_id == patient_id)
    parameters = query.parameters
    if UNIQUE_ID in parameters:
        statement = statement.where(documents.c.unique_id.in_(parameters[UNIQUE_ID]))
    elif ENTRY_UUID in parameters:
        statement = statement.where(documents.c.entry_uuid.in_(parameters[ENTRY_UUID]))
    if STATUS in parameters:
        wanted = [s.removeprefix(_STATUS_URN) for s in parameters[STATUS]]
        statement = statement.where(documents.c.status.in_(wanted))
    return statement.order_by(documents.c.unique_id, documents.c.entry_uuid)


# ---- seeding: what the live feed already sent -------------------------------------------------


@dataclass(frozen=True)
class SeedEntry:
    unique_id: str
    patient_id: str
    hash: str
    size: int


class SeedConflict(Exception):
    """A seeded uniqueId is already stored with another hash or for another patient."""


def seed(registry: Registry, entries: Sequence[SeedEntry]) -> dict[str, int]:
    """Store documents as the live feed left them: Approved, entryUUIDs assigned by the mock.

    Idempotent: an entry already stored with the same patient and hash is left as it is.
    """
    seeded = already = 0
    with registry.lock, registry.engine.begin() as conn:
        for entry in entries:
            known = conn.execute(
                sa.select(documents.c.hash, documents.c.patient_id).where(
                    documents.c.unique_id == entry.unique_id
                )
            ).first()
            if known is not None:
                if (known.hash, known.patient_id) != (entry.hash, entry.patient_id):
                    raise SeedConflict(
                        f"{entry.unique_id} is already stored with another hash or patient"
                    )
                already += 1
                continue
            conn.execute(
                documents.insert(),
                {
                    "unique_id": entry.unique_id,
                    "entry_uuid": f"urn:uuid:{uuid.uuid4()}",
                    "patient_id": entry.patient_id,
                    "hash": entry.hash,
                    "size": entry.size,
                    "status": APPROVED,
                    "type_code": "",
                    "title": "",
                    "submission_set": LIVE_FEED_SET,
                    "replaces": None,
                    "submissions": 1,
                    "content": b"",
                },
            )
            seeded += 1
    return {"seeded": seeded, "already_stored": already}
