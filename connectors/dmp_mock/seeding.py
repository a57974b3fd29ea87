"""Seed the mock DMP with what the hospital's live feed already sent, read from the DPI.

    counts = seed_from_dpi(dpi_engine, mock.services_url)    # {"seeded", "already_stored", …}

A replacement (RPLC) needs the entryUUID the DMP gave the version it replaces; against the mock,
that version exists only if the mock is told about it. This reads the DPI's documents with a
`sent_live_at` and a `dmp_unique_id` whose patient has a valid INS, and posts them to
`POST /_mock/seed`; the mock stores them Approved under entryUUIDs of its own.

The live feed's CDA bytes are unknown (the DPI keeps the content, not the CDA the feed built),
so the hash is the SHA-1 of the document's inline content, or of `document_id|content_uri` for
a document held in a file: deterministic, so seeding twice is idempotent, and never equal to the
hash of a CDA we build (a resend of the same uniqueId is then XDSNonIdenticalHash, as it should).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cda.errors import InvalidIdentity
from cda.ins import INS
from connectors.dmp.client import SERVICES_PATH
from connectors.dpi.contract import dpi_document, dpi_patient

__all__ = ["live_feed_documents", "seed_from_dpi"]

_BATCH = 1000


def _base(url: str) -> str:
    """The mock's root URL from its services URL or its root URL."""
    url = url.rstrip("/")
    return url.removesuffix(SERVICES_PATH) if url.endswith(SERVICES_PATH) else url


def live_feed_documents(dpi_engine: Engine) -> Iterator[dict[str, object]]:
    """The control-plane entries (`unique_id`, `patient_id`, `hash`, `size`) of live-sent documents."""
    statement = (
        sa.select(
            dpi_document.c.document_id,
            dpi_document.c.content,
            dpi_document.c.content_uri,
            dpi_document.c.dmp_unique_id,
            dpi_patient.c.ins_matricule,
            dpi_patient.c.ins_oid,
        )
        .join(dpi_patient, dpi_patient.c.ipp == dpi_document.c.ipp)
        .where(dpi_document.c.sent_live_at.is_not(None), dpi_document.c.dmp_unique_id.is_not(None))
        .order_by(dpi_document.c.document_id)
    )
    with dpi_engine.connect() as conn:
        for row in conn.execution_options(yield_per=_BATCH).execute(statement):
            try:
                patient_id = INS(row.ins_matricule or "", row.ins_oid or "").as_cx()
            except InvalidIdentity:
                continue  # the DMP could not have received it under this patient either
            payload = (
                bytes(row.content)
                if row.content is not None
                else f"{row.document_id}|{row.content_uri or ''}".encode()
            )
            yield {
                "unique_id": row.dmp_unique_id,
                "patient_id": patient_id,
                "hash": hashlib.sha1(payload, usedforsecurity=False).hexdigest(),
                "size": len(payload),
            }


def seed_from_dpi(
    dpi_engine: Engine, mock_url: str, *, http: httpx.Client | None = None
) -> dict[str, int]:
    """Post the DPI's live-sent documents to the mock at `mock_url` (root or services URL)."""
    client = http or httpx.Client(timeout=60)
    counts = {"seeded": 0, "already_stored": 0}
    batch: list[dict[str, object]] = []

    def flush() -> None:
        response = client.post(_base(mock_url) + "/_mock/seed", json=batch)
        response.raise_for_status()
        for key, value in response.json().items():
            counts[key] = counts.get(key, 0) + int(value)
        batch.clear()

    try:
        for entry in live_feed_documents(dpi_engine):
            batch.append(entry)
            if len(batch) >= _BATCH:
                flush()
        if batch:
            flush()
    finally:
        if http is None:
            client.close()
    return counts
