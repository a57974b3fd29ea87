"""The mock must catch misfiling, or our tests cannot (issue 17): one patient's document never
lands, or counts as already there, under another patient; a DOCTYPE anywhere is refused."""

from __future__ import annotations

import httpx
import pytest

from connectors.dmp.client import DmpClient, OutcomeKind
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import client_options, with_entry
from tests.integration.mock_dmp_support import by_patient, post, variant

GROUPS = by_patient()
A = GROUPS["IPP000456"][0]
B = next(docs[0] for ipp, docs in GROUPS.items() if ipp != "IPP000456")


@pytest.fixture(scope="module", params=[True, False], ids=["xsd", "no-xsd"])
def mock(request):
    # The structure checks run whether or not the mock checks the XSD.
    with MockServer(MockConfig(check_cda=request.param)) as server:
        yield server


@pytest.fixture
def client(mock):
    with httpx.Client(base_url=mock.base_url, timeout=30) as http:
        http.post("/_mock/reset")
        yield http


def _codes(answer) -> list[str]:
    assert answer.status == 200, answer.text
    return [e.code for e in answer.outcome.errors]


def _stored(client: httpx.Client) -> list[tuple[str, str]]:
    return [(d["unique_id"], d["patient_id"]) for d in client.get("/_mock/documents").json()]


def test_a_cda_under_another_patients_id_is_refused(client, mock) -> None:
    misfiled = with_entry(A, patient_id=B.entry.patient_id)
    assert _codes(post(client, mock.repository_url, [misfiled])) == ["XDSPatientIdDoesNotMatch"]
    assert _stored(client) == []


def test_a_stored_unique_id_sent_for_another_patient_is_not_a_duplicate(client, mock) -> None:
    assert post(client, mock.repository_url, [A]).outcome.success
    # B's own, consistent document, under the uniqueId A's document is stored with.
    reused = with_entry(B, unique_id=A.entry.unique_id)
    assert _codes(post(client, mock.repository_url, [reused])) == ["XDSPatientIdDoesNotMatch"]
    assert _stored(client) == [(A.entry.unique_id, A.entry.patient_id)]


def test_the_client_does_not_count_a_misfiled_resend_as_done(client, mock) -> None:
    assert post(client, mock.repository_url, [A]).outcome.success
    reused = with_entry(B, unique_id=A.entry.unique_id)
    with DmpClient(mock.services_url, **client_options()) as dmp:  # type: ignore[arg-type]
        result = dmp.submit(reused.entry.patient_id, [(reused.entry, reused.xml)])
    assert result.kind is not OutcomeKind.DONE
    assert "XDSPatientIdDoesNotMatch" in result.codes


def test_a_doctype_after_a_long_comment_is_refused(client, mock) -> None:
    marker = b"<!--" + b" padding" * 700 + b'--><!DOCTYPE ClinicalDocument [<!ENTITY e "x">]>'
    hidden = variant(A, marker)
    assert hidden.xml.index(b"<!DOCTYPE") > 4096
    codes = _codes(post(client, mock.repository_url, [hidden]))
    assert codes == ["InvalidDocumentContent"]
    assert _stored(client) == []
