"""Deterministic identifiers of the documents we produce.

A document's uniqueId is the ITU-T X.667 OID form of a UUID v5 of (FINESS géographique,
document_id): `2.25.` + the UUID's 128-bit integer, at most 44 characters. The same DPI document
always gets the same uniqueId, so a resend after a crash is recognised by the DMP as the same one.
"""

from __future__ import annotations

import uuid

__all__ = ["UNIQUE_ID_NAMESPACE", "unique_id_for"]

UNIQUE_ID_NAMESPACE = uuid.UUID("0b3c4a8e-7f51-5d0a-9c1e-6a2d4f8b9e10")


def unique_id_for(finess_geo: str, document_id: str) -> str:
    """The CDA `id@root` and XDS uniqueId of one DPI document version."""
    return "2.25." + str(uuid.uuid5(UNIQUE_ID_NAMESPACE, f"{finess_geo}/{document_id}").int)
