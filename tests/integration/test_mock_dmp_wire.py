"""The mock DMP over TCP refuses each field the real DMP requires when it is missing or wrong,
accepts symbolic ids, and answers its own failures with a SOAP fault instead of a reset."""

from __future__ import annotations

import dataclasses

import pytest

from cda import codes
from connectors.dmp.soap import parse_xml, read_envelope
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import IDENTITY, with_entry
from tests.integration.mock_dmp_support import by_patient, post

GROUPS = by_patient()
CAMILLE = [d for d in GROUPS["IPP000123"] if not d.entry.replaces]  # LDL, CRH, CRO of one stay
URG = GROUPS["IPP000456"]  # an emergency visit


@pytest.fixture(scope="module")
def mock():
    with MockServer(MockConfig()) as server:
        yield server


def codes_of(answer) -> tuple[str, ...]:
    assert answer.status == 200, answer.text
    return answer.outcome.codes


def test_the_examples_are_accepted(client, url) -> None:
    assert post(client, url, CAMILLE).outcome.success
    assert post(client, url, URG).outcome.success


@pytest.mark.parametrize(
    ("change", "context"),
    [({"source_patient_info": ()}, "PID-5"),
     ({"source_patient_info": ("PID-5|TESTFICTIF^CAMILLE^^^^^L", "PID-8|F")}, "PID-7"),
     ({"source_patient_info": ("PID-5|TESTFICTIF^CAMILLE^^^^^L", "PID-7|19850614", "PID-8|X")}, "PID-8")],
    ids=["no-source-patient-info", "no-birth-date", "bad-sex"],
)  # fmt: skip
def test_a_document_entry_without_source_patient_info_is_refused(
    client, url, change, context
) -> None:
    answer = post(client, url, [with_entry(CAMILLE[0], **change)])
    assert set(codes_of(answer)) == {"XDSRegistryMetadataError"}
    assert any(context in e.context for e in answer.outcome.errors)


@pytest.mark.parametrize(
    "person",
    ["10001234567^DUPONT-TEST^Jean^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",  # RPPS without its 8
     "810001234567^DUPONT-TEST^Jean^^^^^^&1.2.250.1.71.4.2.2&ISO^D^^^IDNPS",  # structure OID
     "3999999990/M17^X^Y^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"],  # staff number typed IDNPS
    ids=["rpps-unprefixed", "wrong-authority", "staff-as-national"],
)  # fmt: skip
def test_an_author_outside_the_dmp_identifier_scheme_is_refused(client, url, person) -> None:
    document = CAMILLE[0]
    author = dataclasses.replace(document.entry.author, person=person)
    answer = post(client, url, [with_entry(document, author=author)])
    assert codes_of(answer) == ("XDSRegistryMetadataError",)
    assert "authorPerson" in answer.outcome.errors[0].context


@pytest.mark.parametrize(
    "person",
    ["0759912345^SAGEFEMME-TEST^Lucie^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
     "3999999990/M00017^INTERNE-TEST^Léo^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^EI"],
    ids=["adeli", "staff-number"],
)  # fmt: skip
def test_adeli_and_staff_number_authors_are_accepted(client, url, person) -> None:
    document = CAMILLE[0]
    author = dataclasses.replace(document.entry.author, person=person)
    assert post(client, url, [with_entry(document, author=author)]).outcome.success


@pytest.mark.parametrize(
    "author_person",
    [None, "810001234567^DUPONT-TEST^Jean^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"],
    ids=["missing", "a-person-not-the-system"],
)
def test_the_submission_set_author_must_be_the_sending_system(client, url, author_person) -> None:
    identity = dataclasses.replace(IDENTITY, author_person=author_person)
    answer = post(client, url, CAMILLE[:1], identity=identity)
    assert codes_of(answer) == ("XDSRegistryMetadataError",)
    assert answer.outcome.errors[0].location == "SubmissionSet"
    assert "authorPerson" in answer.outcome.errors[0].context


def test_an_unknown_content_type_is_refused(client, url) -> None:
    wrong = dataclasses.replace(
        CAMILLE[0], content_type=codes.Coded("99", "1.2.250.1.213.2.2", "Inconnu")
    )
    assert codes_of(post(client, url, [wrong])) == ("XDSRegistryMetadataError",)


@pytest.mark.parametrize(
    ("documents", "content"),
    [(CAMILLE[:1], "external"), (URG, "full"), (URG, "day")],
    ids=["stay-sent-as-consultation", "emergency-sent-as-stay", "emergency-sent-as-day-case"],
)
def test_a_content_type_that_does_not_fit_the_stay_is_refused(
    client, url, documents, content
) -> None:
    wrong = [dataclasses.replace(d, content_type=codes.CONTENT_TYPES[content]) for d in documents]
    answer = post(client, url, wrong)
    assert codes_of(answer) == ("XDSRegistryMetadataError",)
    assert "does not fit the encounter" in answer.outcome.errors[0].context


def test_a_day_case_of_an_inpatient_stay_is_accepted(client, url) -> None:
    day = [dataclasses.replace(d, content_type=codes.CONTENT_TYPES["day"]) for d in CAMILLE[:1]]
    assert post(client, url, day).outcome.success


def test_a_set_mixing_a_stay_and_an_emergency_visit_is_refused(client, url) -> None:
    # One patient in the test, whatever the stays: give the emergency report Camille's identity.
    urg = with_entry(URG[0], patient_id=CAMILLE[0].entry.patient_id)
    answer = post(client, url, [CAMILLE[0], urg])
    assert "XDSRegistryMetadataError" in codes_of(answer) or "XDSPatientIdDoesNotMatch" in codes_of(
        answer
    )


# ---- symbolic ids, and the registry's own entryUUIDs ----------------------------------------


def test_symbolic_ids_twice_are_stored_under_fresh_entry_uuids(client, url) -> None:
    first = post(client, url, CAMILLE[:1], symbolic_ids=True)
    second = post(client, url, CAMILLE[1:2], symbolic_ids=True)  # `Document01` again
    assert first.outcome.success
    assert second.outcome.success
    stored = {d["unique_id"]: d["entry_uuid"] for d in client.get("/_mock/documents").json()}
    assert set(stored) == {CAMILLE[0].unique_id, CAMILLE[1].unique_id}
    uuids = list(stored.values())
    assert len(set(uuids)) == 2
    assert all(u.startswith("urn:uuid:") and u != "Document01" for u in uuids)
    # The same document again under a symbolic id is a duplicate, not a crash.
    assert post(client, url, CAMILLE[:1], symbolic_ids=True).outcome.codes == (
        "XDSDuplicateUniqueIdInRegistry",
    )


def test_an_unexpected_error_answers_a_soap_fault_and_the_mock_keeps_serving(
    client, url, mock
) -> None:
    registry = mock.app.state.registry

    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    registry._store = broken  # an instance attribute shadows the method
    try:
        answer = post(client, url, CAMILLE[:1])
    finally:
        del registry._store
    assert answer.status == 500
    envelope = read_envelope(parse_xml(answer.text.encode()))
    assert envelope.body.tag.endswith("Fault")
    assert "XDSRegistryError" in answer.text
    assert "injected" not in answer.text
    assert client.get("/_mock/stats").json()["fault:internal"] == 1
    assert post(client, url, CAMILLE[:1]).outcome.success  # still serving, nothing half-stored


def test_a_client_with_a_signer_sends_a_signed_set_the_mock_accepts(mock, client, tmp_path) -> None:
    from connectors.dmp.client import DmpClient, OutcomeKind
    from connectors.dmp.signing import Signer
    from connectors.dmp_mock.pki import make_test_pki
    from connectors.dmp_mock.testing import client_options

    pki = make_test_pki(tmp_path)
    signer = Signer.from_files(pki.signing_cert, pki.signing_key)
    with DmpClient(mock.services_url, signer=signer, **client_options()) as dmp:  # type: ignore[arg-type]
        result = dmp.submit(
            CAMILLE[0].entry.patient_id,
            [(d.entry, d.xml) for d in CAMILLE],
            content_type=CAMILLE[0].content_type,
        )
    assert result.kind is OutcomeKind.DONE
    # The signature entry is not one of the documents.
    assert {d["unique_id"] for d in client.get("/_mock/documents").json()} == {
        d.unique_id for d in CAMILLE
    }
