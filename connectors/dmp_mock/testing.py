"""Ready-made ITI-41 requests for tests, demos and benchmarks (shipped, like structlog.testing).

Built from `cda.examples` (fictitious patients with test INS), so every request is one the real
client would send: valid CDA, exact hash and size, one patient, a fresh SubmissionSet uniqueId.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from cda import codes
from cda.build import BuiltDocument, build_document
from cda.entry import system_xcn, xon
from cda.examples import ESTABLISHMENT, example_documents
from cda.metadata import Coded, SubmissionSet
from connectors.dmp.request import build_request, new_submission_set
from connectors.dmp.signing import Signer
from connectors.dmp.vihf import FACILITY_TYPE_SCHEME, VihfIdentity

__all__ = [
    "IDENTITY",
    "INSTITUTION_XON",
    "SOURCE_ID",
    "built_examples",
    "client_options",
    "request_for",
    "submission_set_for",
    "with_entry",
]

IDENTITY = VihfIdentity(
    structure_id="1" + ESTABLISHMENT.finess_geo,
    sector=f"{ESTABLISHMENT.facility_type_code}^{FACILITY_TYPE_SCHEME}",
    author_person=system_xcn(ESTABLISHMENT.finess_geo, "DMP-BACKFILL", "dmp-backfill", "backfill"),
)
SOURCE_ID = ESTABLISHMENT.source_oid
INSTITUTION_XON = xon(ESTABLISHMENT)


def client_options() -> dict[str, object]:
    """The keyword arguments of a DmpClient / AsyncDmpClient sending as the example establishment."""
    return {"identity": IDENTITY, "source_id": SOURCE_ID, "institution_xon": INSTITUTION_XON}


def built_examples(pdf_size: int = 0, *, patient: str | None = None) -> list[BuiltDocument]:
    """One built document per example (optionally only those of one example patient)."""
    out = []
    for document, who in example_documents(pdf_size).values():
        if patient is None or who.ipp == patient:
            out.append(build_document(document, who, ESTABLISHMENT, xsd_check=False))
    return out


def submission_set_for(
    patient_id: str, *, unique_id: str | None = None, content_type: Coded | None = None
) -> SubmissionSet:
    submission = new_submission_set(
        patient_id,
        source_id=SOURCE_ID,
        institution_xon=INSTITUTION_XON,
        content_type=content_type or codes.CONTENT_TYPES["full"],
    )
    return dataclasses.replace(submission, unique_id=unique_id) if unique_id else submission


def request_for(
    documents: Sequence[BuiltDocument],
    *,
    use_mtom: bool = True,
    identity: VihfIdentity = IDENTITY,
    submission_unique_id: str | None = None,
    xml_override: dict[str, bytes] | None = None,
    signer: Signer | None = None,
    symbolic_ids: bool = False,
) -> tuple[str, bytes]:
    """(Content-Type, body) of one submission of `documents` (all of one patient).

    `xml_override` maps a uniqueId to other bytes to send (hash and size stay those of the
    built document), to make a request whose metadata lie about its content.
    """
    patient_id = documents[0].entry.patient_id
    pairs = [(d.entry, (xml_override or {}).get(d.unique_id, d.xml)) for d in documents]
    return build_request(
        submission_set_for(
            patient_id, unique_id=submission_unique_id, content_type=documents[0].content_type
        ),
        pairs,
        identity,
        use_mtom=use_mtom,
        signer=signer,
        symbolic_ids=symbolic_ids,
    )


def with_entry(document: BuiltDocument, **changes: object) -> BuiltDocument:
    """A copy of a built document whose DocumentEntry has some fields changed."""
    return dataclasses.replace(document, entry=dataclasses.replace(document.entry, **changes))  # type: ignore[arg-type]
