"""Rows of a small DPI for the selection tests: valid defaults that a test overrides field by field."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from cda.ins import compute_key
from connectors.dpi.contract import dpi_author, dpi_document, dpi_patient, dpi_stay, dpi_unit

TEST_INS_OID = "1.2.250.1.213.1.4.10"
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def matricule(body13: str) -> str:
    return body13 + compute_key(body13)


def patient(ipp: str, **overrides: Any) -> dict[str, Any]:
    """A qualified man born 1 January 1980 whose INS (its own, per IPP) encodes exactly that."""
    row = {
        "ipp": ipp,
        "ins_matricule": matricule(f"18001751{zlib.crc32(ipp.encode()) % 100_000:05d}"),
        "ins_oid": TEST_INS_OID,
        "identity_status": "QUAL",
        "identity_doubtful": False,
        "identity_fictitious": False,
        "birth_family_name": "NOM",
        "birth_given_names": "PRENOM SECOND",
        "first_birth_given_name": "PRENOM",
        "used_family_name": None,
        "used_given_name": None,
        "sex": "M",
        "birth_date": dt.date(1980, 1, 1),
        "birth_place_code": "75112",
        "deceased": False,
        "death_date": None,
        "dmp_opposition": False,
    }
    row.update(overrides)
    return row


def unit(code: str = "U1", since: dt.date | None = None) -> dict[str, Any]:
    return {
        "unit_code": code,
        "name": f"unit {code}",
        "practice_setting_code": "ETABLISSEMENT",
        "computerized_since": since,
    }


def author(author_id: str = "A1", **overrides: Any) -> dict[str, Any]:
    row = {
        "author_id": author_id,
        "rpps": "10000000001",
        "adeli": None,
        "family_name": "DOC",
        "given_name": "TOR",
        "specialty_code": "G15_10/SM26",
    }
    row.update(overrides)
    return row


def stay(stay_id: str, ipp: str, admitted_at: dt.datetime, **overrides: Any) -> dict[str, Any]:
    row = {
        "stay_id": stay_id,
        "ipp": ipp,
        "encounter_type": "IMP",
        "admitted_at": admitted_at,
        "discharged_at": None,
        "status": "finished",
        "unit_code": "U1",
        "hospitalisation": None,
    }
    row.update(overrides)
    return row


def document(
    document_id: str, ipp: str, created_at: dt.datetime, **overrides: Any
) -> dict[str, Any]:
    row = {
        "document_id": document_id,
        "set_id": document_id,
        "version": 1,
        "ipp": ipp,
        "stay_id": None,
        "kind": "CRH",
        "title": "Compte rendu",
        "created_at": created_at,
        "status": "validated",
        "author_id": "A1",
        "legal_authenticator_id": None,
        "authenticated_at": None,
        "unit_code": "U1",
        "mime_type": "application/pdf",
        "content": PDF,
        "content_uri": None,
        "masked_ps": False,
        "invisible_patient": False,
        "invisible_legal_rep": False,
        "sent_live_at": None,
        "dmp_unique_id": None,
        "withheld": None,
    }
    row.update(overrides)
    return row


def insert(
    bind: sa.Engine | sa.Connection,
    rows: Mapping[str, Iterable[Mapping[str, Any]]],
) -> None:
    """Insert rows keyed by table name (patients, units, authors, stays, documents)."""
    tables = {
        "patients": dpi_patient,
        "units": dpi_unit,
        "authors": dpi_author,
        "stays": dpi_stay,
        "documents": dpi_document,
    }
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            insert(conn, rows)
        return
    for name, table in tables.items():
        batch = list(rows.get(name, ()))
        if batch:
            bind.execute(table.insert(), batch)
