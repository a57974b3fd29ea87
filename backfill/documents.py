"""From selected decisions to built CDA documents: read from the DPI, build, or say why not.

Shared by `audit --export-cda`, the demo and the sender. A document that cannot be built is not
an exception here: it comes back with the reason code of its `CdaError` (DESIGN §5, plus
`author_unknown` and `visibility_conflict`), for the ledger or the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from backfill.selection.compiler import Environment, foreign_ins_oids
from backfill.selection.reasons import Reason
from cda.build import BuiltDocument, build_document
from cda.errors import CdaError
from cda.model import Establishment
from connectors.dpi.reader import read_documents

__all__ = ["BuildOutcome", "build_selected"]


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    document_id: str
    ipp: str | None
    built: BuiltDocument | None
    reason: str | None
    """None when built; otherwise the reason code that stopped it."""
    metadata: bytes | None = None
    """The built entry's ebRIM ExtrinsicObject, where the builder was asked for it (the sender)."""


def build_selected(
    engine: Engine,
    wanted: Iterable[tuple[str, str | None]],
    establishment: Establishment,
    *,
    content_root: Path | None = None,
    xsd_check: bool = True,
    hidden_from_legal_rep: Collection[str] = (),
    environment: Environment | None = None,
) -> Iterator[BuildOutcome]:
    """For each (document_id, uniqueId it replaces): the built document, or its reason.

    `hidden_from_legal_rep`: document ids selection marked to send invisible to the legal
    representatives (`Decision.hide_from_legal_rep`, a minor's `[minors]` policy). With
    `environment` (`[dmp] environment`), a patient whose INS belongs to the other environment is
    refused again here, whatever selection said.
    """
    foreign = frozenset(foreign_ins_oids(environment)) if environment is not None else frozenset()
    for read in read_documents(engine, wanted, content_root=content_root):
        document, patient = read.document, read.patient
        if document is None or patient is None:
            yield BuildOutcome(
                read.document_id, None, None, read.error.reason if read.error else "content_missing"
            )
            continue
        if patient.ins_oid in foreign:
            yield BuildOutcome(
                read.document_id, patient.ipp, None, Reason.INS_WRONG_ENVIRONMENT.value
            )
            continue
        if read.document_id in hidden_from_legal_rep:
            document = dataclasses.replace(document, invisible_legal_rep=True)
        try:
            built = build_document(document, patient, establishment, xsd_check=xsd_check)
        except CdaError as exc:
            yield BuildOutcome(read.document_id, patient.ipp, None, exc.reason)
        else:
            yield BuildOutcome(read.document_id, patient.ipp, built, None)
