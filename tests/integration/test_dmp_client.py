"""The DMP clients against the mock over TCP: every kind of answer is classified as DESIGN §7 says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from backfill.config import load_settings
from backfill.dmp_session import async_dmp_client, dmp_client
from connectors.dmp.client import SERVICES_PATH, AsyncDmpClient, DmpClient, OutcomeKind, classify
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import client_options, request_for, with_entry
from tests.integration.mock_dmp_support import by_patient, post

DOCUMENTS = by_patient()["IPP000456"]
CAMILLE = by_patient()["IPP000123"]
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "backfill.toml"


@pytest.fixture(scope="module")
def mock():
    with MockServer(MockConfig()) as server:
        yield server


@pytest.fixture
def client(mock):
    httpx.post(mock.base_url + "/_mock/reset")
    with DmpClient(mock.services_url, **client_options()) as dmp:  # type: ignore[arg-type]
        yield dmp


def send(client: DmpClient, documents=DOCUMENTS):
    return client.submit(
        documents[0].entry.patient_id,
        [(d.entry, d.xml) for d in documents],
        content_type=documents[0].content_type,
    )


def stored(mock) -> dict[str, str]:
    return {
        d["unique_id"]: d["status"] for d in httpx.get(mock.base_url + "/_mock/documents").json()
    }


def test_success_then_an_idempotent_resend_are_both_done(client, mock) -> None:
    first = send(client)
    assert first.kind is OutcomeKind.DONE
    assert [d.unique_id for d in first.documents] == [d.unique_id for d in DOCUMENTS]
    assert {d.kind for d in first.documents} == {OutcomeKind.DONE}
    again = send(client)
    assert again.kind is OutcomeKind.DONE
    assert again.codes == ("XDSDuplicateUniqueIdInRegistry",) * len(DOCUMENTS)
    # Each attempt went in a submission set of its own, minted by the client.
    assert first.submission_set_id != again.submission_set_id
    assert set(stored(mock)) == {d.unique_id for d in DOCUMENTS}


def _close_patient(mock) -> None:
    matricule, _, rest = DOCUMENTS[0].entry.patient_id.partition("^^^&")
    httpx.put(
        mock.base_url + "/_mock/patients",
        json=[{"ins": matricule, "oid": rest.split("&")[0], "state": "CLOSED"}],
    )


@pytest.mark.parametrize(
    ("setup", "documents", "kind", "code"),
    [
        ({"faults": {"busy_ratio": 1}}, DOCUMENTS, OutcomeKind.TRANSIENT, "XDSRegistryBusy"),
        ({"faults": {"error500_ratio": 1}}, DOCUMENTS, OutcomeKind.TRANSIENT, "HTTP 500"),
        ({"faults": {"outage_seconds": 30}}, DOCUMENTS, OutcomeKind.TRANSIENT, "HTTP 503"),
        ({"patients": True}, DOCUMENTS, OutcomeKind.PATIENT, "XDSUnknownPatientId"),
        ({}, [with_entry(DOCUMENTS[0], hash="0" * 40)], OutcomeKind.DOCUMENT,
         "XDSRepositoryMetadataError"),
        ({}, DOCUMENTS, OutcomeKind.DONE, None),
    ],
    ids=["busy", "http500", "outage", "closed-dmp", "lying-hash", "success"],
)  # fmt: skip
def test_each_answer_of_the_mock_has_its_class(client, mock, setup, documents, kind, code) -> None:
    if "faults" in setup:
        httpx.post(mock.base_url + "/_mock/faults", json=setup["faults"])
    if "patients" in setup:
        _close_patient(mock)
    try:
        result = send(client, documents)
    finally:
        httpx.post(mock.base_url + "/_mock/faults", json={})
    assert result.kind is kind
    assert [d.kind for d in result.documents] == [kind] * len(documents)
    assert {d.code for d in result.documents} == {code}
    if "outage_seconds" in setup.get("faults", {}):
        assert result.retry_after is not None
        assert result.retry_after > 0


def test_the_rate_limit_answers_transient_with_retry_after() -> None:
    with (
        MockServer(MockConfig(rate=0.01)) as limited,
        DmpClient(limited.services_url, **client_options()) as dmp,  # type: ignore[arg-type]
    ):
        results = [send(dmp) for _ in range(3)]
    throttled = [r for r in results if r.http_status == 429]
    assert throttled
    assert all(r.kind is OutcomeKind.TRANSIENT and r.retry_after for r in throttled)


def test_a_wrong_endpoint_is_fatal_and_stores_nothing(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    wrong = mock.base_url + "/si-dmp/v1/services"
    with DmpClient(wrong, **client_options()) as dmp:  # type: ignore[arg-type]
        result = send(dmp)
    assert result.http_status == 404
    assert result.kind is OutcomeKind.FATAL
    assert {d.kind for d in result.documents} == {OutcomeKind.FATAL}
    assert stored(mock) == {}


def test_a_set_over_the_size_limit_is_split_not_rejected() -> None:
    with (
        MockServer(MockConfig(max_body_bytes=20_000)) as small,
        DmpClient(small.services_url, **client_options()) as dmp,  # type: ignore[arg-type]
    ):
        result = send(dmp, CAMILLE)
    assert result.http_status == 413
    assert result.kind is OutcomeKind.SPLIT
    assert OutcomeKind.DOCUMENT not in {d.kind for d in result.documents}


def test_a_timeout_and_a_refused_connection_are_transient(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    httpx.post(
        mock.base_url + "/_mock/faults", json={"timeout_after_store_ratio": 1, "stall_seconds": 30}
    )
    try:
        impatient = DmpClient(
            mock.services_url, http=httpx.Client(timeout=httpx.Timeout(5, read=0.5)),
            **client_options(),  # type: ignore[arg-type]
        )  # fmt: skip
        result = send(impatient)
    finally:
        httpx.post(mock.base_url + "/_mock/faults", json={})
    assert result.kind is OutcomeKind.TRANSIENT
    assert {d.code for d in result.documents} == {"timeout"}
    # Stored though unanswered: the resend (same uniqueIds, a fresh set) is an idempotent done.
    assert send(impatient).kind is OutcomeKind.DONE
    nowhere = DmpClient("http://127.0.0.1:9" + SERVICES_PATH, **client_options())  # type: ignore[arg-type]
    refused = send(nowhere)
    assert refused.kind is OutcomeKind.TRANSIENT
    assert {d.code for d in refused.documents} == {"connection"}


def test_a_reused_submission_set_rejects_no_document(mock) -> None:
    """The DMP refuses a second set under the same uniqueId; the documents in it are not at fault."""
    httpx.post(mock.base_url + "/_mock/reset")
    originals = [d for d in CAMILLE if not d.entry.replaces]
    with httpx.Client(timeout=30) as http:
        assert post(http, mock.repository_url, originals[:1], submission_unique_id="2.25.7").outcome
        content_type, body = request_for(originals[1:], submission_unique_id="2.25.7")
        response = http.post(
            mock.repository_url, content=body, headers={"content-type": content_type}
        )
    result = classify(response, [d.entry for d in originals[1:]], submission_set_id="2.25.7")
    assert result.codes == ("XDSDuplicateUniqueIdInRegistry",)
    assert result.kind is OutcomeKind.TRANSIENT
    assert OutcomeKind.DOCUMENT not in {d.kind for d in result.documents}


def test_a_set_with_some_documents_already_stored_is_split(client, mock) -> None:
    """The DMP stores nothing of a set it refuses: new documents beside a duplicate are not sent."""
    originals = [d for d in CAMILLE if not d.entry.replaces]
    assert send(client, originals[:1]).kind is OutcomeKind.DONE
    mixed = send(client, originals)
    assert mixed.kind is OutcomeKind.SPLIT
    assert [d.kind for d in mixed.documents] == [OutcomeKind.DONE] + [OutcomeKind.SPLIT] * (
        len(originals) - 1
    )
    assert set(stored(mock)) == {originals[0].unique_id}
    # Split, as the sender does: the others go through.
    assert send(client, originals[1:]).kind is OutcomeKind.DONE


def test_one_bad_document_among_good_ones_is_the_only_one_rejected(client, mock) -> None:
    originals = [d for d in CAMILLE if not d.entry.replaces]
    bad = with_entry(originals[1], hash="0" * 40)
    result = send(client, [originals[0], bad, *originals[2:]])
    assert result.kind is OutcomeKind.SPLIT
    verdicts = {d.unique_id: d.kind for d in result.documents}
    assert verdicts.pop(bad.unique_id) is OutcomeKind.DOCUMENT
    assert set(verdicts.values()) == {OutcomeKind.SPLIT}
    assert stored(mock) == {}


def test_the_sample_configuration_submits_to_the_mock(mock, tmp_path, monkeypatch) -> None:
    """samples/backfill.toml, pointed at this mock's port, sends through the client as shipped."""
    httpx.post(mock.base_url + "/_mock/reset")
    text = SAMPLE.read_text(encoding="utf-8")
    assert f'url = "http://127.0.0.1:8700{SERVICES_PATH}"' in text
    config = tmp_path / "backfill.toml"
    config.write_text(text.replace("127.0.0.1:8700", f"127.0.0.1:{mock.port}"), encoding="utf-8")
    for name in ("BACKFILL_DMP_URL", "BACKFILL_DMP_TLS_CERT", "BACKFILL_DMP_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(config)
    with dmp_client(settings) as dmp:
        result = send(dmp)
    assert result.kind is OutcomeKind.DONE, result.detail
    assert set(stored(mock)) == {d.unique_id for d in DOCUMENTS}


# ---- the async client ------------------------------------------------------------------------


def test_the_async_client_sends_many_sets_over_one_pool(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    groups = list(by_patient().values())
    plain = next(g for g in groups if not any(d.entry.replaces for d in g))

    async def run() -> list:
        http = httpx.AsyncClient(timeout=30)
        async with AsyncDmpClient(mock.services_url, http=http, **client_options()) as dmp:  # type: ignore[arg-type]
            first = await asyncio.gather(
                *(
                    dmp.submit(
                        g[0].entry.patient_id,
                        [(d.entry, d.xml) for d in g],
                        content_type=g[0].content_type,
                    )
                    for g in groups
                )
            )
            again = await dmp.submit(
                plain[0].entry.patient_id,
                [(d.entry, d.xml) for d in plain],
                content_type=plain[0].content_type,
            )
        assert http.is_closed
        return [*first, again]

    results = asyncio.run(run())
    assert [len(r.documents) for r in results] == [len(g) for g in groups] + [len(plain)]
    for result, group in zip(results, groups, strict=False):
        # A replacement of a document the DMP never received is refused, and only it.
        verdicts = {d.unique_id: d.kind for d in result.documents}
        for document in group:
            expected = OutcomeKind.DOCUMENT if document.entry.replaces else OutcomeKind.DONE
            if any(d.entry.replaces for d in group) and not document.entry.replaces:
                expected = OutcomeKind.SPLIT
            assert verdicts[document.unique_id] is expected
    assert results[-1].kind is OutcomeKind.DONE  # an idempotent resend
    assert {u for r in results if r.kind is OutcomeKind.DONE for u in
            (d.unique_id for d in r.documents)} == set(stored(mock))  # fmt: skip
    assert all(r.elapsed > 0 for r in results)


def test_the_async_client_from_settings(mock, tmp_path, monkeypatch) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    monkeypatch.setenv("BACKFILL_DMP_URL", mock.services_url)
    monkeypatch.setenv("BACKFILL_DMP_CONCURRENCY", "2")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()

    async def run():
        async with async_dmp_client(settings) as dmp:
            assert dmp.repository_url == mock.services_url + "/repository"
            return await asyncio.gather(
                *(
                    dmp.submit(d.entry.patient_id, [(d.entry, d.xml)], content_type=d.content_type)
                    for d in DOCUMENTS
                )
            )

    results = asyncio.run(run())
    assert [r.kind for r in results] == [OutcomeKind.DONE] * len(DOCUMENTS)
    assert len({r.submission_set_id for r in results}) == len(DOCUMENTS)


def test_before_post_runs_with_the_attempts_set_id_before_anything_is_stored(mock) -> None:
    httpx.post(mock.base_url + "/_mock/reset")
    seen: list[tuple[str, dict]] = []

    async def run():
        async with AsyncDmpClient(mock.services_url, **client_options()) as dmp:  # type: ignore[arg-type]
            return await dmp.submit(
                DOCUMENTS[0].entry.patient_id, [(d.entry, d.xml) for d in DOCUMENTS],
                before_post=lambda set_id: seen.append((set_id, stored(mock))),
                content_type=DOCUMENTS[0].content_type,
            )  # fmt: skip

    result = asyncio.run(run())
    assert result.kind is OutcomeKind.DONE
    assert seen == [(result.submission_set_id, {})]
