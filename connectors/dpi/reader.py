"""Reading what the CDA builder needs for given document versions, through the DPI contract.

One query per batch joins a document to its patient, author, legal authenticator, stay and unit,
and turns the row into `cda.model` values. Content comes inline or from a `file:` URI (resolved
under `dpi.content_root` only: `connectors.dpi.content`). Nothing here decides whether a document should be sent:
that is selection's job; this is the document reader the export and the sender share.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cda.errors import CdaError, InvalidContent, InvalidDocumentData
from cda.ins import InsTraits
from cda.model import Author, DocumentInput, Patient, Stay, Unit
from connectors.dpi.content import ContentRefused, open_content
from connectors.dpi.contract import (
    dpi_author,
    dpi_document,
    dpi_patient,
    dpi_stay,
    dpi_unit,
    present_optional_columns,
    table_columns,
)

__all__ = ["ReadDocument", "read_content", "read_documents"]

_BATCH = 500
_legal = dpi_author.alias("legal")


def read_content(content: bytes | None, uri: str | None, content_root: Path | None = None) -> bytes:
    """The document's bytes; a missing, unreadable or undeclared file is `content_missing`."""
    if content:
        return content
    if not uri:
        raise InvalidContent("content_missing", "the document has neither content nor content_uri")
    try:
        with open_content(uri, content_root) as handle:
            return handle.read()
    except ContentRefused as exc:
        raise InvalidContent("content_missing", str(exc)) from None
    except OSError as exc:
        raise InvalidContent(
            "content_missing", f"the content file cannot be read ({exc.strerror})"
        ) from None


def _author(row: sa.Row, prefix: str, function_code: str | None = None) -> Author | None:
    if getattr(row, f"{prefix}author_id") is None:
        return None
    return Author(
        rpps=getattr(row, f"{prefix}rpps"),
        family_name=getattr(row, f"{prefix}family_name"),
        given_name=getattr(row, f"{prefix}given_name"),
        specialty_code=getattr(row, f"{prefix}specialty_code"),
        author_id=getattr(row, f"{prefix}author_id"),
        adeli=getattr(row, f"{prefix}adeli"),
        staff_number=getattr(row, f"{prefix}staff_number", None),  # optional contract column
        function_code=(function_code or "").strip() or None,
    )


@functools.cache
def _queries(present: frozenset[str]) -> tuple[sa.Select, sa.Select]:  # type: ignore[type-arg]
    """The reading queries (documents by a list of ids; one document by its id), built once per
    set of optional columns: built per patient, they cost the sender's workers more than the
    reading itself, and a statement built once is compiled once."""
    query = _query(present)
    return (
        query.where(dpi_document.c.document_id.in_(sa.bindparam("ids", expanding=True))),
        query.where(dpi_document.c.document_id == sa.bindparam("id")),
    )


def _query(present: frozenset[str]) -> sa.Select:  # type: ignore[type-arg]
    """The reading query, naming the optional contract columns only when the DPI has them."""
    return (
        sa.select(
            *table_columns(dpi_document, present),
            *(c.label(f"p_{c.name}") for c in dpi_patient.c),
            *(c.label(f"a_{c.name}") for c in table_columns(dpi_author, present)),
            *(_legal.c[c.name].label(f"l_{c.name}") for c in table_columns(dpi_author, present)),
            *(c.label(f"s_{c.name}") for c in table_columns(dpi_stay, present)),
            *(c.label(f"u_{c.name}") for c in dpi_unit.c),
        )
        .join(dpi_patient, dpi_patient.c.ipp == dpi_document.c.ipp)
        .outerjoin(dpi_author, dpi_author.c.author_id == dpi_document.c.author_id)
        .outerjoin(_legal, _legal.c.author_id == dpi_document.c.legal_authenticator_id)
        .outerjoin(dpi_stay, dpi_stay.c.stay_id == dpi_document.c.stay_id)
        .outerjoin(dpi_unit, dpi_unit.c.unit_code == dpi_document.c.unit_code)
    )


@dataclass(frozen=True, slots=True)
class ReadDocument:
    """One document version read from the DPI: the builder's inputs, or why they cannot be had."""

    document_id: str
    document: DocumentInput | None
    patient: Patient | None
    error: CdaError | None


def _to_inputs(
    row: sa.Row, replaces: str | None, content_root: Path | None
) -> tuple[DocumentInput, Patient]:
    patient = Patient(
        ipp=row.p_ipp,
        ins_matricule=row.p_ins_matricule,
        ins_oid=row.p_ins_oid,
        traits=InsTraits(
            birth_family_name=row.p_birth_family_name,
            birth_given_names=row.p_birth_given_names,
            first_birth_given_name=row.p_first_birth_given_name,
            sex=row.p_sex,
            birth_date=row.p_birth_date,
            birth_place_code=row.p_birth_place_code,
        ),
        used_family_name=row.p_used_family_name,
        used_given_name=row.p_used_given_name,
        identity_status=row.p_identity_status,
        identity_doubtful=bool(row.p_identity_doubtful),
        identity_fictitious=bool(row.p_identity_fictitious),
    )
    author = _author(row, "a_", getattr(row, "author_function", None))
    if author is None:
        raise InvalidDocumentData(
            f"document {row.document_id} names no known author", reason="author_unknown"
        )
    stay = (
        Stay(
            row.s_stay_id,
            row.s_encounter_type,
            row.s_admitted_at,
            row.s_discharged_at,
            getattr(row, "s_hospitalisation", None),  # optional contract column
        )
        if row.s_stay_id is not None
        else None
    )
    unit = (
        Unit(row.u_unit_code, row.u_name, row.u_practice_setting_code)
        if row.u_unit_code is not None
        else None
    )
    document = DocumentInput(
        document_id=row.document_id,
        set_id=row.set_id,
        version=row.version,
        kind=row.kind,
        title=row.title,
        created_at=row.created_at,
        content=read_content(row.content, row.content_uri, content_root),
        author=author,
        legal_authenticator=_author(row, "l_"),
        authenticated_at=row.authenticated_at,
        stay=stay,
        unit=unit,
        mime_type=row.mime_type or "",
        masked_ps=bool(row.masked_ps),
        invisible_patient=bool(row.invisible_patient),
        invisible_legal_rep=bool(row.invisible_legal_rep),
        replaces=replaces,
        operated_at=getattr(row, "operated_at", None),  # optional contract column
    )
    return document, patient


def _wrong_type(document_id: str) -> InvalidDocumentData:
    # The faulty value is not quoted: it may be a birth date or a name.
    return InvalidDocumentData(
        f"document {document_id}: a DPI column holds a value of the wrong type "
        "(for instance a date that is not a date); fix the row or the view"
    )


def _read_one(conn: sa.Connection, query: sa.Select, document_id: str) -> sa.Row | CdaError | None:  # type: ignore[type-arg]
    try:
        return conn.execute(query, {"id": document_id}).first()
    except (ValueError, TypeError):
        return _wrong_type(document_id)


def read_documents(
    engine: Engine,
    wanted: Iterable[tuple[str, str | None]],
    *,
    content_root: Path | None = None,
) -> Iterator[ReadDocument]:
    """For each (document_id, uniqueId it replaces or None): its builder inputs, in batches."""
    pending = list(wanted)
    queries: tuple[sa.Select, sa.Select] | None = None  # type: ignore[type-arg]
    for first in range(0, len(pending), _BATCH):
        batch = dict(pending[first : first + _BATCH])
        with engine.connect() as conn:
            if queries is None:
                queries = _queries(present_optional_columns(conn))
            many, one = queries
            try:
                rows: dict[str, sa.Row | CdaError] = {
                    r.document_id: r for r in conn.execute(many, {"ids": list(batch)})
                }
            except (ValueError, TypeError):
                # A value the driver cannot convert (a date that is not a date) spoils the batch:
                # read the documents one by one so only the faulty ones are refused.
                rows = {document_id: _read_one(conn, one, document_id) for document_id in batch}
        for document_id, replaces in batch.items():
            row = rows.get(document_id)
            if isinstance(row, CdaError):
                yield ReadDocument(document_id, None, None, row)
                continue
            if row is None:
                yield ReadDocument(
                    document_id,
                    None,
                    None,
                    InvalidContent(
                        "content_missing", f"document {document_id} is no longer in the DPI"
                    ),
                )
                continue
            try:
                document, patient = _to_inputs(row, replaces, content_root)
            except CdaError as exc:
                yield ReadDocument(document_id, None, None, exc)
                continue
            except (ValueError, TypeError):
                yield ReadDocument(document_id, None, None, _wrong_type(document_id))
                continue
            yield ReadDocument(document_id, document, patient, None)
