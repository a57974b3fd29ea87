"""The mock DMP's registry: an ITI-41 message in, a RegistryResponse (or SOAP fault) out.

Order of judgement: the envelope and the VIHF (a fault when unreadable or unauthenticated), the
XDS schema, the metadata rules the schema cannot express (`checks.py`), then what needs the
store — the patient's DMP state, a reused submission set, idempotency on uniqueId, replacement
targets — and finally one transaction that stores the whole set or nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from connectors.dmp import mtom
from connectors.dmp.ebrim import ParsedSubmission, parse_submit_objects
from connectors.dmp.errors import MalformedMessage, MetadataProblem
from connectors.dmp.response import RegistryError, build_response
from connectors.dmp.schema import request_errors
from connectors.dmp.soap import build_envelope, build_fault, parse_xml, read_envelope
from connectors.dmp.vihf import RESOURCE_ID, read_attributes, read_vihf
from connectors.dmp.vocabulary import ACTION_REQUEST, ACTION_RESPONSE, NS
from connectors.dmp_mock.auth import authentication_problem
from connectors.dmp_mock.checks import check_submission, document_payloads, split_patient_id
from connectors.dmp_mock.request_log import note_outcome
from connectors.dmp_mock.store import documents, patients, submissions

__all__ = ["PATIENT_STATES", "Registry", "Reply"]

# Statements of the hot path, built once (building Core statements per call costs more than
# running them on SQLite).
_PATIENT_STATE = sa.select(patients.c.state).where(
    patients.c.ins == sa.bindparam("ins"), patients.c.oid == sa.bindparam("oid")
)
_SUBMISSION_SEEN = sa.select(submissions.c.unique_id).where(
    submissions.c.unique_id == sa.bindparam("uid")
)
_KNOWN_DOCUMENT = sa.select(documents.c.hash, documents.c.entry_uuid, documents.c.patient_id).where(
    documents.c.unique_id == sa.bindparam("uid")
)

_ENTRY_UUID_TAKEN = sa.select(documents.c.unique_id).where(
    documents.c.entry_uuid == sa.bindparam("entry_uuid")
)

PATIENT_STATES = ("ACTIVE", "NO_DMP", "CLOSED", "DECEASED")
APPROVED, DEPRECATED = "Approved", "Deprecated"
SOAP_CONTENT_TYPE = f'application/soap+xml; charset=UTF-8; action="{ACTION_RESPONSE}"'


@dataclass
class Reply:
    """What the HTTP layer sends back, and how the stats count it."""

    status: int
    body: bytes
    outcome: str
    content_type: str = SOAP_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    stored: int = 0


def fault_reply(
    status: int, code: str, reason: str, outcome: str, subcode: str | None = None
) -> Reply:
    return Reply(status, build_fault(code, reason, subcode=subcode), outcome)


class Registry:
    """Patients, documents and submission sets, behind one lock (one writer, like SQLite)."""

    def __init__(
        self,
        engine: Engine,
        *,
        unknown_patients: str = "ACTIVE",
        check_cda: bool = True,
        trust_ca: Path | None = None,
    ) -> None:
        self.engine = engine
        self.unknown_patients = unknown_patients.upper()
        self.check_cda = check_cda
        self.trust_ca = trust_ca
        """With a CA, signatures are required and verified; without, only their shape is read."""
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ---- the ITI-41 door ------------------------------------------------------------------

    def count(self, outcome: str) -> None:
        """Count an outcome in the stats, and name it in the request's log line."""
        self.stats[outcome] += 1
        note_outcome(outcome)

    def submit(self, content_type: str | None, body: bytes) -> Reply:
        reply = self._submit(content_type, body)
        self.count(reply.outcome)
        return reply

    def _submit(self, content_type: str | None, body: bytes) -> Reply:
        try:
            message = mtom.unpack(content_type, body)
            envelope = read_envelope(parse_xml(message.root))
        except MalformedMessage as exc:
            return fault_reply(400, "Sender", str(exc), "fault:malformed")
        if envelope.action != ACTION_REQUEST:
            return fault_reply(
                400,
                "Sender",
                f"wsa:Action {envelope.action!r} is not {ACTION_REQUEST}",
                "fault:action",
                "wsa:ActionNotSupported",
            )
        try:
            vihf = read_attributes(envelope.security)
        except MalformedMessage as exc:
            return fault_reply(403, "Sender", str(exc), "fault:auth", "wsse:InvalidSecurity")
        if not vihf.get("Identifiant_Structure"):
            return fault_reply(
                403,
                "Sender",
                "the VIHF names no Identifiant_Structure",
                "fault:auth",
                "wsse:FailedAuthentication",
            )
        request = envelope.body
        if request.tag != f"{{{NS['xds']}}}ProvideAndRegisterDocumentSetRequest":
            return fault_reply(
                400,
                "Sender",
                "the SOAP Body is not a ProvideAndRegisterDocumentSetRequest",
                "fault:malformed",
            )

        def answer(errors: list[RegistryError], stored: int = 0) -> Reply:
            failed = bool(errors)
            response = build_envelope(
                build_response(errors), action=ACTION_RESPONSE,
                message_id=f"urn:uuid:{uuid.uuid4()}", relates_to=envelope.message_id,
            )  # fmt: skip
            outcome = "success" if not failed else errors[0].code
            return Reply(200, response, outcome, stored=stored)

        if problems := request_errors(request):
            return answer(
                [
                    RegistryError(
                        "XDSRegistryMetadataError",
                        f"the request does not validate against the XDS.b schema: {problems[0]}",
                    )
                ]
            )
        submit = request.find(f"{{{NS['lcm']}}}SubmitObjectsRequest")
        try:
            parsed = parse_submit_objects(submit)  # type: ignore[arg-type]
            payloads = document_payloads(request, message.parts)
        except MetadataProblem as exc:
            return answer([RegistryError(exc.code, exc.context, exc.location)])
        except MalformedMessage as exc:
            return answer([RegistryError("XDSRepositoryMetadataError", str(exc))])
        institution = parsed.submission_set.author.institution or ""
        sender = institution.rsplit("^", 1)[-1] if "IDNST" in institution else None
        if sender is not None and sender != vihf["Identifiant_Structure"]:
            # In indirect mode the DMP checks the VIHF's structure against the sender's.
            return fault_reply(
                403,
                "Sender",
                "the VIHF Identifiant_Structure is not the submission set's author institution",
                "fault:auth",
                "wsse:FailedAuthentication",
            )
        if vihf.get(RESOURCE_ID) != parsed.submission_set.patient_id:
            return answer(
                [
                    RegistryError(
                        "XDSPatientIdDoesNotMatch",
                        "the VIHF resource-id is not the submission set's patientId",
                        "SubmissionSet",
                    )
                ]
            )
        if problem := authentication_problem(
            read_vihf(envelope.security), parsed, payloads, trust_ca=self.trust_ca
        ):
            return fault_reply(403, "Sender", problem, "fault:auth", "wsse:FailedAuthentication")
        if errors := check_submission(parsed, payloads, check_cda=self.check_cda):
            return answer(errors)
        with self._lock, self.engine.begin() as conn:
            errors = self._registry_errors(conn, parsed)
            if errors:
                # Nothing of a failed set is stored, but the resends of stored documents are
                # counted (the `submissions` of /_mock/documents).
                resent = [
                    e.location
                    for e in errors
                    if e.code == "XDSDuplicateUniqueIdInRegistry" and e.location in parsed.entries
                ]
                for entry_id in resent:
                    conn.execute(
                        documents.update()
                        .where(documents.c.unique_id == parsed.entries[entry_id].unique_id)
                        .values(submissions=documents.c.submissions + 1)
                    )
                return answer(errors)
            stored = self._store(conn, parsed, payloads)
        return answer([], stored)

    def _patient_state(self, conn: Connection, patient_id: str) -> str:
        matricule, oid = split_patient_id(patient_id) or ("", "")
        state = conn.scalar(_PATIENT_STATE, {"ins": matricule, "oid": oid})
        return state or self.unknown_patients

    def _registry_errors(self, conn: Connection, parsed: ParsedSubmission) -> list[RegistryError]:
        patient_id = parsed.submission_set.patient_id
        state = self._patient_state(conn, patient_id)
        if state != "ACTIVE":
            return [
                RegistryError(
                    "XDSUnknownPatientId",
                    f"MOCK:{state} the patient has no open DMP",
                    "SubmissionSet",
                )
            ]
        if conn.scalar(_SUBMISSION_SEEN, {"uid": parsed.submission_set.unique_id}):
            return [
                RegistryError(
                    "XDSDuplicateUniqueIdInRegistry",
                    f"submission set {parsed.submission_set.unique_id} was already received",
                    "SubmissionSet",
                )
            ]
        errors: list[RegistryError] = []
        for entry_id, entry in parsed.entries.items():
            known = conn.execute(_KNOWN_DOCUMENT, {"uid": entry.unique_id}).first()
            if known is not None:
                if known.patient_id != entry.patient_id:
                    # Never "already stored" for a document filed under another patient: the
                    # client would count it as done while the DMP holds it for someone else.
                    errors.append(
                        RegistryError(
                            "XDSPatientIdDoesNotMatch",
                            f"document {entry.unique_id} is already stored for another patient",
                            entry_id,
                        )
                    )
                elif known.hash == entry.hash:
                    errors.append(
                        RegistryError(
                            "XDSDuplicateUniqueIdInRegistry",
                            f"document {entry.unique_id} is already stored as {known.entry_uuid}",
                            entry_id,
                        )
                    )
                else:
                    errors.append(
                        RegistryError(
                            "XDSNonIdenticalHash",
                            f"document {entry.unique_id} is already stored with another hash",
                            entry_id,
                        )
                    )
                continue
            target = parsed.replacements.get(entry_id)
            if target is not None:
                replaced = conn.execute(
                    sa.select(documents.c.status, documents.c.patient_id).where(
                        documents.c.entry_uuid == target
                    )
                ).first()
                if replaced is None:
                    errors.append(
                        RegistryError(
                            "XDSRegistryMetadataError",
                            f"the document to replace ({target}) is not in the registry",
                            entry_id,
                        )
                    )
                elif replaced.patient_id != patient_id:
                    errors.append(
                        RegistryError(
                            "XDSPatientIdDoesNotMatch",
                            "the document to replace belongs to another patient",
                            entry_id,
                        )
                    )
                elif replaced.status != APPROVED:
                    errors.append(
                        RegistryError(
                            "XDSRegistryDeprecatedDocumentError",
                            f"the document to replace ({target}) is already deprecated",
                            entry_id,
                        )
                    )
        return errors

    def _store(
        self, conn: Connection, parsed: ParsedSubmission, payloads: dict[str, bytes | None]
    ) -> int:
        ss = parsed.submission_set
        assigned = self._entry_uuids(conn, parsed)
        conn.execute(
            submissions.insert(),
            {
                "unique_id": ss.unique_id,
                "patient_id": ss.patient_id,
                "documents": len(parsed.entries),
            },
        )
        for entry_id, entry in parsed.entries.items():
            target = parsed.replacements.get(entry_id)
            replaced_unique_id = None
            if target is not None:
                replaced_unique_id = conn.scalar(
                    sa.select(documents.c.unique_id).where(documents.c.entry_uuid == target)
                )
                conn.execute(
                    documents.update()
                    .where(documents.c.entry_uuid == target)
                    .values(status=DEPRECATED)
                )
            conn.execute(
                documents.insert(),
                {
                    "unique_id": entry.unique_id,
                    "entry_uuid": assigned[entry_id],
                    "patient_id": entry.patient_id,
                    "hash": entry.hash,
                    "size": entry.size,
                    "status": APPROVED,
                    "type_code": entry.type_code.code,
                    "title": entry.title,
                    "submission_set": ss.unique_id,
                    "replaces": replaced_unique_id,
                    "submissions": 1,
                    "content": payloads[entry_id],
                },
            )
        return len(parsed.entries)

    @staticmethod
    def _entry_uuids(conn: Connection, parsed: ParsedSubmission) -> dict[str, str]:
        """The entryUUID the registry gives each entry of the set.

        A symbolic id (`Document01`) only names the object inside its own message (ITI TF-3
        4.2.1.5), so the registry assigns a fresh UUID; a `urn:uuid:` id is kept unless another
        stored entry already holds it, in which case the registry assigns a fresh one too.
        """
        assigned: dict[str, str] = {}
        for entry_id in parsed.entries:
            if entry_id.startswith("urn:uuid:") and not conn.scalar(
                _ENTRY_UUID_TAKEN, {"entry_uuid": entry_id}
            ):
                assigned[entry_id] = entry_id
            else:
                assigned[entry_id] = f"urn:uuid:{uuid.uuid4()}"
        return assigned

    def busy_reply(self) -> Reply:
        """An injected XDSRegistryBusy: the message is not read, nothing is stored."""
        response = build_envelope(
            build_response(
                [
                    RegistryError(
                        "XDSRegistryBusy", "the registry is busy (injected), try again later"
                    )
                ]
            ),
            action=ACTION_RESPONSE,
            message_id=f"urn:uuid:{uuid.uuid4()}",
        )
        return Reply(200, response, "XDSRegistryBusy")

    # Shared with the query door and the seeding (`queries.py`).
    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def patient_state(self, conn: Connection, patient_id: str) -> str:
        return self._patient_state(conn, patient_id)

    # ---- the control plane ----------------------------------------------------------------

    def set_patients(self, states: list[tuple[str, str, str]]) -> None:
        with self._lock, self.engine.begin() as conn:
            for ins, oid, state in states:
                conn.execute(patients.delete().where(patients.c.ins == ins, patients.c.oid == oid))
                conn.execute(patients.insert().values(ins=ins, oid=oid, state=state))

    def list_documents(self) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(documents.c.unique_id, documents.c.entry_uuid, documents.c.patient_id,
                          documents.c.hash, documents.c.size, documents.c.status,
                          documents.c.submissions).order_by(documents.c.unique_id)
            )  # fmt: skip
            return [
                {"unique_id": r.unique_id, "entry_uuid": r.entry_uuid, "patient_id": r.patient_id, "hash": r.hash, "size": r.size,
                 "status": r.status, "submissions": r.submissions}
                for r in rows
            ]  # fmt: skip

    def reset(self) -> None:
        with self._lock, self.engine.begin() as conn:
            for table in (documents, submissions, patients):
                conn.execute(table.delete())
        self.stats.clear()
