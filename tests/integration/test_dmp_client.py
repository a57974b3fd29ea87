"""The DMP client against the mock over TCP: every kind of answer is classified as DESIGN §7 says."""

from __future__ import annotations

import httpx
import pytest

from connectors.dmp.client import DmpClient, OutcomeKind, classify
from connectors.dmp.soap import build_fault
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import IDENTITY, submission_set_for, with_entry
from tests.integration.mock_dmp_support import by_patient

DOCUMENTS = by_patient()["IPP000456"]


@pytest.fixture(scope="module")
def mock():
    with MockServer(MockConfig()) as server:
        yield server


@pytest.fixture
def client(mock):
    httpx.post(mock.base_url + "/_mock/reset")
    dmp = DmpClient(mock.base_url, IDENTITY)
    yield dmp
    dmp.close()


def send(client: DmpClient, documents=DOCUMENTS):
    return client.submit(
        submission_set_for(documents[0].entry.patient_id), [(d.entry, d.xml) for d in documents]
    )


def test_success_then_an_idempotent_resend_are_both_done(client) -> None:
    assert send(client).kind is OutcomeKind.DONE
    again = send(client)
    assert again.kind is OutcomeKind.DONE
    assert again.codes == ("XDSDuplicateUniqueIdInRegistry",)


@pytest.mark.parametrize(
    ("faults", "kind"),
    [({"busy_ratio": 1}, OutcomeKind.TRANSIENT), ({"error500_ratio": 1}, OutcomeKind.TRANSIENT),
     ({"outage_seconds": 30}, OutcomeKind.TRANSIENT)],
    ids=["busy", "http500", "outage"],
)  # fmt: skip
def test_pushback_is_transient(client, mock, faults, kind) -> None:
    httpx.post(mock.base_url + "/_mock/faults", json=faults)
    result = send(client)
    assert result.kind is kind
    if "outage_seconds" in faults:
        assert result.retry_after is not None
    httpx.post(mock.base_url + "/_mock/faults", json={})


def test_a_patient_without_dmp_is_a_patient_outcome(client, mock) -> None:
    matricule, _, rest = DOCUMENTS[0].entry.patient_id.partition("^^^&")
    httpx.put(
        mock.base_url + "/_mock/patients",
        json=[{"ins": matricule, "oid": rest.split("&")[0], "state": "CLOSED"}],
    )
    assert send(client).kind is OutcomeKind.PATIENT


def test_lying_metadata_is_a_document_outcome(client) -> None:
    result = send(client, [with_entry(DOCUMENTS[0], hash="0" * 40)])
    assert result.kind is OutcomeKind.DOCUMENT
    assert result.codes == ("XDSRepositoryMetadataError",)


def test_a_timeout_and_a_refused_connection_are_transient(mock) -> None:
    httpx.post(
        mock.base_url + "/_mock/faults", json={"timeout_after_store_ratio": 1, "stall_seconds": 30}
    )
    impatient = DmpClient(
        mock.base_url, IDENTITY, http=httpx.Client(timeout=httpx.Timeout(5, read=0.3))
    )
    assert send(impatient).kind is OutcomeKind.TRANSIENT
    httpx.post(mock.base_url + "/_mock/faults", json={})
    nowhere = DmpClient("http://127.0.0.1:9", IDENTITY)
    assert send(nowhere).kind is OutcomeKind.TRANSIENT


@pytest.mark.parametrize("status", [401, 403])
def test_refused_authentication_is_fatal(status: int) -> None:
    response = httpx.Response(status, request=httpx.Request("POST", "http://dmp"))
    assert classify(response).kind is OutcomeKind.FATAL


@pytest.mark.parametrize("status", [200, 400, 500])
def test_an_authentication_fault_is_fatal_whatever_the_http_status(status: int) -> None:
    """A WS-Security fault stops the run even when a gateway wraps it in 200, 400 or 500."""
    body = build_fault(
        "Sender", "certificate and VIHF structure differ", subcode="wsse:FailedAuthentication"
    )
    response = httpx.Response(status, content=body, request=httpx.Request("POST", "http://dmp"))
    result = classify(response)
    assert result.kind is OutcomeKind.FATAL
    assert "certificate and VIHF structure differ" in result.detail


def test_other_faults_are_document_or_transient() -> None:
    body = build_fault("Sender", "not well-formed XML")
    request = httpx.Request("POST", "http://dmp")
    assert classify(httpx.Response(400, content=body, request=request)).kind is OutcomeKind.DOCUMENT
    assert (
        classify(httpx.Response(500, content=build_fault("Receiver", "oops"), request=request)).kind
        is OutcomeKind.TRANSIENT
    )


def test_a_set_with_some_documents_already_stored_is_not_done(client, mock) -> None:
    """The DMP stores nothing of a set it refuses: new documents beside a duplicate are not sent."""
    camille = by_patient()["IPP000123"]
    originals = [d for d in camille if not d.entry.replaces]
    assert send(client, originals[:1]).kind is OutcomeKind.DONE
    mixed = send(client, originals)
    assert mixed.kind is OutcomeKind.DOCUMENT
    stored = {d["unique_id"] for d in httpx.get(mock.base_url + "/_mock/documents").json()}
    assert stored == {originals[0].unique_id}
    # Split, as the sender does: the duplicate is done on its own, the others go through.
    assert all(send(client, [d]).kind is OutcomeKind.DONE for d in originals)
