"""XDS metadata of one document and of one submission set, as typed values.

The builder derives a `DocumentEntry` from the same inputs as the CDA it describes; the DMP
client serialises entries and a `SubmissionSet` to ebRIM (ITI-41), and the mock DMP parses
ebRIM back into these same types. Times are XDS DTM strings in UTC (`YYYYMMDDhhmmss`); people
and organisations are HL7 v2 XCN / XON strings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

__all__ = ["Coded", "DocumentEntry", "SubmissionSet", "XdsAuthor", "entry_uuid_for"]

# Namespace of the entryUUIDs we assign: a resend of the same uniqueId carries the same entryUUID.
_ENTRY_NAMESPACE = uuid.UUID("6f0c7a52-3c2e-5b51-9d2f-2b1f0d6c4e71")


def entry_uuid_for(unique_id: str) -> str:
    """The `urn:uuid:` id we give the ExtrinsicObject of a document (stable across resends)."""
    return f"urn:uuid:{uuid.uuid5(_ENTRY_NAMESPACE, unique_id)}"


@dataclass(frozen=True, slots=True)
class Coded:
    """A coded value: code, coding scheme (an OID), display name."""

    code: str
    scheme: str
    display: str


@dataclass(frozen=True, slots=True)
class XdsAuthor:
    """An XDS author: the person (XCN), their institution (XON) and specialty."""

    person: str | None
    institution: str | None
    specialty: Coded | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """XDSDocumentEntry of one CDA file (DMP profile, `domain/dmp-feeding.md` §2)."""

    unique_id: str
    # The INS (CX form) and IPP stay out of reprs, which may reach a log line.
    patient_id: str = field(repr=False)
    source_patient_id: str = field(repr=False)
    title: str
    class_code: Coded
    type_code: Coded
    format_code: Coded
    confidentiality: tuple[Coded, ...]
    healthcare_facility_type: Coded
    practice_setting: Coded
    creation_time: str
    service_start: str | None
    service_stop: str | None
    author: XdsAuthor
    legal_authenticator: str | None
    hash: str
    size: int
    language: str = "fr-FR"
    mime_type: str = "text/xml"
    replaces: str | None = None
    """uniqueId of the document this version replaces (RPLC), if any."""
    replaces_entry_uuid: str | None = None
    """The entryUUID the DMP gave the replaced document (ITI-18 lookup): the RPLC's target.
    Unset, the target is our own entryUUID of `replaces` (what the mock stores for documents
    we sent ourselves)."""
    source_patient_info: tuple[str, ...] = field(default=(), repr=False)
    """`PID-5|…`, `PID-7|…`, `PID-8|…`: the patient's birth name, birth date and sex."""
    event_codes: tuple[Coded, ...] = ()

    @property
    def entry_uuid(self) -> str:
        return entry_uuid_for(self.unique_id)


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """XDSSubmissionSet: one patient, one attempt (a fresh uniqueId every time)."""

    unique_id: str
    source_id: str
    patient_id: str = field(repr=False)
    submission_time: str
    author: XdsAuthor
    content_type: Coded
    title: str = "Reprise d'historique DPI"
