"""Reconciliation: what the ledger says the DMP acknowledged, against what the DMP holds.

The payer computes DS1.4 from its own data, so the figure we show is only as good as the ledger's
idea of the DMP. `reconcile` names every difference, by uniqueId:

- `held_not_in_ledger`: the DMP holds a document we never recorded as acknowledged (and that the
  live feed did not send either: the DPI's `dmp_unique_id` says which are the live feed's);
- `in_ledger_not_held`: the ledger says acknowledged, the DMP holds nothing under that uniqueId;
- `hash_differs`: both have it, with different content hashes;
- `deprecated`: the DMP holds it but no longer as Approved (replaced, or withdrawn), while the
  ledger has no later acknowledged version of the same document set to explain it.

Where the holdings come from: the mock DMP's `GET /_mock/documents` (control plane, loopback)
when it answers; otherwise (a real DMP has no listing) ITI-18 FindDocuments, Approved and
Deprecated, for each patient the ledger acknowledged documents of — so there,
`held_not_in_ledger` covers those patients only. Nothing here prints a patient identifier: the
DMP's patient ids are INS.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
import sqlalchemy as sa

from backfill.config import Settings
from backfill.databases import open_engine, translate_errors
from backfill.dmp_session import dmp_client, http_options
from backfill.errors import BackfillError
from backfill.indicator import ACKED_TABLE, load_acked
from backfill.ledger import Ledger
from cda.ins import INS, InvalidIdentity
from connectors.dmp.client import DmpClient, OutcomeKind
from connectors.dmp.vocabulary import XDS
from connectors.dpi.contract import dpi_document, dpi_patient

__all__ = [
    "DIFFERENCE_KINDS",
    "Difference",
    "HeldDocument",
    "LedgerDocument",
    "ReconcileError",
    "Reconciliation",
    "fetch_mock_holdings",
    "fetch_registry_holdings",
    "mock_documents_url",
    "reconcile",
    "reconcile_configured",
]

DIFFERENCE_KINDS = ("held_not_in_ledger", "in_ledger_not_held", "hash_differs", "deprecated")
APPROVED = "Approved"


class ReconcileError(BackfillError):
    """The DMP's holdings cannot be read (wrong URL, control plane off, not a mock)."""


@dataclass(frozen=True, slots=True)
class HeldDocument:
    unique_id: str
    hash: str | None
    status: str


@dataclass(frozen=True, slots=True)
class LedgerDocument:
    """An acknowledged document as the ledger has it (`Ledger.acked_documents()` gives these fields)."""

    document_id: str
    unique_id: str
    hash: str
    set_id: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    unique_id: str
    document_id: str | None = None
    ledger_hash: str | None = None
    dmp_hash: str | None = None
    dmp_status: str | None = None

    def describe(self) -> str:
        who = f"document {self.document_id} " if self.document_id else ""
        what = {
            "held_not_in_ledger": "is held by the DMP but not acknowledged in the ledger",
            "in_ledger_not_held": "is acknowledged in the ledger but the DMP does not hold it",
            "hash_differs": f"differs: ledger hash {self.ledger_hash}, DMP hash {self.dmp_hash}",
            "deprecated": f"is held by the DMP as {self.dmp_status}, not Approved",
        }[self.kind]
        return f"{who}(uniqueId {self.unique_id}) {what}"


@dataclass(frozen=True)
class Reconciliation:
    matched: int
    live_feed: int  # held, sent by the live feed (not ours to account for)
    differences: tuple[Difference, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(DIFFERENCE_KINDS, 0)
        for d in self.differences:
            out[d.kind] += 1
        return out

    def as_json(self) -> dict[str, object]:
        return {
            "matched": self.matched,
            "live_feed": self.live_feed,
            "differences": self.counts(),
            "details": [
                {
                    "kind": d.kind,
                    "unique_id": d.unique_id,
                    "document_id": d.document_id,
                    "ledger_hash": d.ledger_hash,
                    "dmp_hash": d.dmp_hash,
                    "dmp_status": d.dmp_status,
                }
                for d in self.differences
            ],
        }


def _same_hash(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def reconcile(
    acked: Iterable[LedgerDocument],
    held: Iterable[HeldDocument],
    live_unique_ids: Collection[str] = (),
) -> Reconciliation:
    """Every difference between the ledger's acknowledged documents and the DMP's holdings."""
    held_by_id = {h.unique_id: h for h in held}
    ours = list(acked)
    ours_by_id = {a.unique_id: a for a in ours}
    # A deprecated version is explained by a later acknowledged version of the same set.
    latest: dict[str, int] = {}
    for a in ours:
        if a.set_id is not None and a.version is not None:
            latest[a.set_id] = max(latest.get(a.set_id, a.version), a.version)
    differences: list[Difference] = []
    matched = 0
    for a in sorted(ours, key=lambda x: x.unique_id):
        h = held_by_id.get(a.unique_id)
        if h is None:
            differences.append(Difference("in_ledger_not_held", a.unique_id, a.document_id, a.hash))
        elif not _same_hash(a.hash, h.hash):
            differences.append(
                Difference("hash_differs", a.unique_id, a.document_id, a.hash, h.hash, h.status)
            )
        elif h.status != APPROVED and not (
            a.set_id is not None
            and a.version is not None
            and latest.get(a.set_id, a.version) > a.version
        ):
            differences.append(
                Difference("deprecated", a.unique_id, a.document_id, a.hash, h.hash, h.status)
            )
        else:
            matched += 1
    live = 0
    for unique_id in sorted(held_by_id):
        if unique_id in ours_by_id:
            continue
        if unique_id in live_unique_ids:
            live += 1
            continue
        h = held_by_id[unique_id]
        differences.append(
            Difference("held_not_in_ledger", unique_id, dmp_hash=h.hash, dmp_status=h.status)
        )
    return Reconciliation(matched, live, tuple(differences))


def _patient_id(matricule: str | None, oid: str | None) -> str | None:
    """The XDS patient id of an INS (the DMP's), or None when the DPI's INS is not one."""
    if matricule is None or oid is None:
        return None
    try:
        return INS(matricule, oid).as_cx()
    except InvalidIdentity:
        return None


def mock_documents_url(services_url: str) -> str:
    """The mock DMP's listing door, at the root of the host that serves `dmp.url`."""
    parts = urlsplit(services_url)
    return urlunsplit((parts.scheme, parts.netloc, "/_mock/documents", "", ""))


class NoListing(ReconcileError):
    """The DMP has no listing door (a real DMP, or a mock without its control plane)."""


def fetch_mock_holdings(services_url: str, http: httpx.Client) -> list[HeldDocument]:
    """What the mock DMP holds, from `GET /_mock/documents`."""
    url = mock_documents_url(services_url)
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise ReconcileError(f"cannot read the DMP's holdings at {url}: {exc}") from None
    if response.status_code != 200:
        raise NoListing(
            f"the DMP at {url} answered HTTP {response.status_code}: reconciliation needs the mock "
            "DMP's control plane (loopback, --control); a real DMP has no listing door"
        )
    try:
        rows = response.json()
        return [
            HeldDocument(r["unique_id"], r.get("hash"), r.get("status", APPROVED)) for r in rows
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReconcileError(f"{url} did not answer a document listing ({exc})") from None


def reconcile_configured(settings: Settings) -> Reconciliation:
    """Reconcile the configured ledger with the configured (mock) DMP, using the DPI to tell
    the live feed's documents and the versions of each set."""
    settings.require("dmp.url", "dpi.url")
    assert settings.dmp.url is not None
    assert settings.dpi.url is not None
    ledger = Ledger.open_required(settings.ledger.url)
    try:
        acked = list(ledger.acked_documents())
    finally:
        ledger.close()
    engine = open_engine(settings.dpi.url, "DPI", check=False, must_exist=True)
    d, p = dpi_document, dpi_patient
    try:
        with translate_errors("DPI", settings.dpi.url), engine.connect() as conn:
            load_acked(conn, ((a.document_id, a.acked_at) for a in acked))
            versions: dict[str, tuple[str, int]] = {}
            patients: dict[str, str | None] = {}
            rows = conn.execute(
                sa.select(
                    d.c.document_id,
                    d.c.set_id,
                    d.c.version,
                    d.c.ipp,
                    p.c.ins_matricule,
                    p.c.ins_oid,
                )
                .join(ACKED_TABLE, ACKED_TABLE.c.document_id == d.c.document_id)
                .outerjoin(p, p.c.ipp == d.c.ipp)
            )
            for row in rows:
                versions[row.document_id] = (row.set_id, row.version)
                patients[row.ipp] = _patient_id(row.ins_matricule, row.ins_oid)
            live = set(
                conn.execute(
                    sa.select(d.c.dmp_unique_id).where(
                        d.c.sent_live_at.is_not(None), d.c.dmp_unique_id.is_not(None)
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    ours = [
        LedgerDocument(
            a.document_id, a.unique_id, a.hash, *versions.get(a.document_id, (None, None))
        )
        for a in acked
    ]
    with httpx.Client(**http_options(settings)) as http:
        try:
            held = fetch_mock_holdings(settings.dmp.url, http)
        except NoListing:
            held = None
    if held is None:
        with dmp_client(settings) as client:
            held = fetch_registry_holdings(client, patients)
    return reconcile(ours, held, live)


def fetch_registry_holdings(
    client: DmpClient, patients: Mapping[str, str | None]
) -> list[HeldDocument]:
    """ITI-18 FindDocuments (Approved and Deprecated) for each patient: ipp → XDS patient id.

    A patient without an INS, or without a DMP, holds nothing; any other failure stops the
    reconciliation naming the IPP (never the INS).
    """
    held: list[HeldDocument] = []
    for ipp, patient_id in sorted(patients.items()):
        if patient_id is None:
            continue
        found = client.find_documents(patient_id, statuses=(XDS.APPROVED, XDS.DEPRECATED))
        if found.kind is OutcomeKind.PATIENT:
            continue
        if found.kind is not OutcomeKind.DONE:
            raise ReconcileError(
                f"the DMP's FindDocuments for patient {ipp} failed ({found.kind.value}): {found.detail}"
            )
        held.extend(
            HeldDocument(f.unique_id, f.hash, f.status or APPROVED)
            for f in found.documents
            if f.unique_id is not None
        )
    return held
