"""ITI-18 against the mock over TCP: lookups by uniqueId, a patient's documents, seeding, RPLC."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import httpx
import pytest
import sqlalchemy as sa

from connectors.dmp.client import AsyncDmpClient, DmpClient, OutcomeKind
from connectors.dmp.query import build_query_request, find_documents
from connectors.dmp.vocabulary import XDS
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.seeding import live_feed_documents, seed_from_dpi
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import IDENTITY, client_options
from connectors.dpi.contract import dpi_document
from connectors.dpi.synthetic.generator import GenerationOptions, generate
from tests.integration.mock_dmp_support import by_patient

ANGE = by_patient()["IPP000456"]
CAMILLE = by_patient()["IPP000123"]
ORIGINALS = [d for d in CAMILLE if not d.entry.replaces]
REPLACEMENT = next(d for d in CAMILLE if d.entry.replaces)


@pytest.fixture(scope="module")
def mock():
    with MockServer(MockConfig()) as server:
        yield server


@pytest.fixture
def dmp(mock):
    httpx.post(mock.base_url + "/_mock/reset")
    with DmpClient(mock.services_url, **client_options()) as client:  # type: ignore[arg-type]
        yield client


def documents(mock) -> dict[str, dict]:
    return {d["unique_id"]: d for d in httpx.get(mock.base_url + "/_mock/documents").json()}


def seed(mock, *entries: dict) -> httpx.Response:
    return httpx.post(mock.base_url + "/_mock/seed", json=list(entries))


def live(document, hash_: str = "ab" * 20) -> dict:
    return {"unique_id": document.unique_id, "patient_id": document.entry.patient_id,
            "hash": hash_, "size": 1234}  # fmt: skip


def test_a_stored_document_is_found_by_unique_id(dmp, mock) -> None:
    assert dmp.submit(
        ANGE[0].entry.patient_id,
        [(d.entry, d.xml) for d in ANGE],
        content_type=ANGE[0].content_type,
    ).kind is (OutcomeKind.DONE)
    found = dmp.find_entry_uuid(ANGE[0].unique_id, patient_id=ANGE[0].entry.patient_id)
    assert found.kind is OutcomeKind.DONE
    assert found.entry_uuid == ANGE[0].entry.entry_uuid  # the id the mock stored it under
    missing = dmp.find_entry_uuid("1.2.250.1.999.42.3.404.1", patient_id=ANGE[0].entry.patient_id)
    assert (missing.kind, missing.entry_uuid) == (OutcomeKind.DONE, None)


def test_another_patients_document_is_not_found(dmp) -> None:
    dmp.submit(
        ANGE[0].entry.patient_id, [(ANGE[0].entry, ANGE[0].xml)], content_type=ANGE[0].content_type
    )
    other = dmp.find_entry_uuid(ANGE[0].unique_id, patient_id=CAMILLE[0].entry.patient_id)
    assert (other.kind, other.entry_uuid) == (OutcomeKind.DONE, None)


def test_a_patients_documents_carry_hash_and_status(dmp) -> None:
    patient = CAMILLE[0].entry.patient_id
    assert dmp.submit(patient, [(d.entry, d.xml) for d in ORIGINALS]).kind is OutcomeKind.DONE
    listed = dmp.find_documents(patient)
    assert listed.kind is OutcomeKind.DONE
    assert {(d.unique_id, d.entry_uuid, d.hash, d.size, d.status) for d in listed.documents} == {
        (d.unique_id, d.entry.entry_uuid, d.sha1, d.size, "Approved") for d in ORIGINALS
    }
    assert dmp.find_documents(ANGE[0].entry.patient_id).documents == ()


def test_seeded_live_documents_are_replaced_by_their_looked_up_entry(dmp, mock) -> None:
    """What the live feed sent, seeded; the RPLC targets the entryUUID the mock assigned."""
    patient = CAMILLE[0].entry.patient_id
    target = next(d for d in ORIGINALS if d.unique_id == REPLACEMENT.entry.replaces)
    assert seed(mock, live(target)).json() == {"seeded": 1, "already_stored": 0}
    assert seed(mock, live(target)).json() == {"seeded": 0, "already_stored": 1}
    found = dmp.find_entry_uuid(target.unique_id, patient_id=patient)
    assert found.kind is OutcomeKind.DONE
    assert found.entry_uuid is not None
    assert found.entry_uuid != target.entry.entry_uuid  # the mock's own, not one we could guess

    replacing = dataclasses.replace(REPLACEMENT.entry, replaces_entry_uuid=found.entry_uuid)
    result = dmp.submit(patient, [(replacing, REPLACEMENT.xml)])
    assert result.kind is OutcomeKind.DONE, result.detail
    held = documents(mock)
    assert held[target.unique_id]["status"] == "Deprecated"
    assert held[REPLACEMENT.unique_id]["status"] == "Approved"
    assert [d.unique_id for d in dmp.find_documents(patient).documents] == [REPLACEMENT.unique_id]
    deprecated = dmp.find_documents(patient, statuses=[XDS.DEPRECATED]).documents
    assert [(d.unique_id, d.entry_uuid) for d in deprecated] == [
        (target.unique_id, found.entry_uuid)
    ]


def test_a_replacement_of_a_guessed_entry_uuid_is_refused(dmp, mock) -> None:
    """Without the lookup (our own entryUUID of the target), the DMP's entry is not found."""
    target = next(d for d in ORIGINALS if d.unique_id == REPLACEMENT.entry.replaces)
    seed(mock, live(target))
    result = dmp.submit(REPLACEMENT.entry.patient_id, [(REPLACEMENT.entry, REPLACEMENT.xml)])
    assert result.kind is OutcomeKind.DOCUMENT
    assert documents(mock)[target.unique_id]["status"] == "Approved"


@pytest.mark.parametrize(
    ("entry", "status"),
    [
        ({"unique_id": "1.2.3", "patient_id": "not-an-ins", "hash": "ab" * 20, "size": 1}, 422),
        ({"unique_id": "x y", "patient_id": CAMILLE[0].entry.patient_id, "hash": "ab" * 20,
          "size": 1}, 422),
        ({"unique_id": "1.2.3", "patient_id": CAMILLE[0].entry.patient_id, "hash": "AB",
          "size": 1}, 422),
    ],
    ids=["not-an-ins", "not-an-oid", "not-a-sha1"],
)  # fmt: skip
def test_the_seed_door_refuses_bad_entries(mock, entry, status) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    assert seed(mock, entry).status_code == status
    assert documents(mock) == {}


def test_seeding_another_hash_for_a_stored_unique_id_is_a_conflict(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    assert seed(mock, live(ORIGINALS[0])).status_code == 200
    conflict = seed(mock, live(ORIGINALS[0], hash_="cd" * 20))
    assert conflict.status_code == 409
    assert documents(mock)[ORIGINALS[0].unique_id]["hash"] == "ab" * 20


def test_a_patient_without_dmp_answers_patient(dmp, mock) -> None:
    matricule, _, rest = ANGE[0].entry.patient_id.partition("^^^&")
    httpx.put(mock.base_url + "/_mock/patients",
              json=[{"ins": matricule, "oid": rest.split("&")[0], "state": "NO_DMP"}])  # fmt: skip
    found = dmp.find_entry_uuid(ANGE[0].unique_id, patient_id=ANGE[0].entry.patient_id)
    assert found.kind is OutcomeKind.PATIENT


def test_a_query_for_another_patient_than_the_vihf_is_refused(mock) -> None:
    """FindDocuments about patient B under a VIHF naming patient A: XDSPatientIdDoesNotMatch."""
    content_type, body = build_query_request(
        find_documents(CAMILLE[0].entry.patient_id), IDENTITY, ANGE[0].entry.patient_id
    )
    response = httpx.post(
        mock.services_url + "/registry", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200
    assert b"XDSPatientIdDoesNotMatch" in response.content
    assert b"ExtrinsicObject" not in response.content


def test_queries_share_the_rate_limit_and_the_outages(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    httpx.post(mock.base_url + "/_mock/faults", json={"outage_seconds": 30})
    try:
        with DmpClient(mock.services_url, **client_options()) as client:  # type: ignore[arg-type]
            found = client.find_entry_uuid(ANGE[0].unique_id, patient_id=ANGE[0].entry.patient_id)
    finally:
        httpx.post(mock.base_url + "/_mock/faults", json={})
    assert found.kind is OutcomeKind.TRANSIENT
    assert found.retry_after


def test_a_wrong_endpoint_for_queries_is_fatal(mock) -> None:
    with DmpClient(mock.base_url + "/elsewhere/v2/services", **client_options()) as client:  # type: ignore[arg-type]
        found = client.find_entry_uuid(ANGE[0].unique_id, patient_id=ANGE[0].entry.patient_id)
    assert found.kind is OutcomeKind.FATAL


def test_the_async_client_looks_up_and_lists(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    patient = CAMILLE[0].entry.patient_id
    seed(mock, *(live(d) for d in ORIGINALS))

    async def run():
        async with AsyncDmpClient(mock.services_url, **client_options()) as client:  # type: ignore[arg-type]
            found = await asyncio.gather(
                *(client.find_entry_uuid(d.unique_id, patient_id=patient) for d in ORIGINALS)
            )
            return found, await client.find_documents(patient)

    found, listed = asyncio.run(run())
    assert all(f.kind is OutcomeKind.DONE and f.entry_uuid for f in found)
    assert {f.entry_uuid for f in found} == {d.entry_uuid for d in listed.documents}


# ---- seeding from the DPI (both backends) ------------------------------------------------------


def test_seeding_from_the_dpi_makes_live_documents_findable(database, mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    engine = database.engine()
    generate(engine, GenerationOptions(patients=40, seed=3, as_of=dt.date(2026, 11, 1), pdf_kb=1))
    entries = list(live_feed_documents(engine))
    with engine.connect() as conn:
        live_sent = conn.scalar(
            sa.select(sa.func.count()).where(
                dpi_document.c.sent_live_at.is_not(None), dpi_document.c.dmp_unique_id.is_not(None)
            )
        )
    assert 0 < len(entries) <= live_sent
    counts = seed_from_dpi(engine, mock.services_url)
    assert counts == {"seeded": len(entries), "already_stored": 0}
    # Idempotent: the same hashes again.
    assert seed_from_dpi(engine, mock.base_url) == {"seeded": 0, "already_stored": len(entries)}
    held = documents(mock)
    assert {e["unique_id"]: e["hash"] for e in entries} == {u: d["hash"] for u, d in held.items()}
    first = entries[0]
    with DmpClient(mock.services_url, **client_options()) as client:  # type: ignore[arg-type]
        found = client.find_entry_uuid(str(first["unique_id"]), patient_id=str(first["patient_id"]))
    assert found.kind is OutcomeKind.DONE
    assert found.entry_uuid is not None
    engine.dispose()
