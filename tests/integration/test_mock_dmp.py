"""The mock DMP over a real TCP socket: registry behaviour, checks, auth, load, faults, control plane."""

from __future__ import annotations

import dataclasses
import hashlib

import httpx
import pytest

from cda.metadata import Coded
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dmp_mock.testing import IDENTITY, request_for, with_entry
from tests.integration.mock_dmp_support import by_patient, post, variant

GROUPS = by_patient()
CAMILLE = GROUPS["IPP000123"]  # LDL, CRH, CRO and a CRH v2 replacing the CRH
ORIGINALS = [d for d in CAMILLE if not d.entry.replaces]
REPLACEMENT = next(d for d in CAMILLE if d.entry.replaces)
ANGE = GROUPS["IPP000456"]


@pytest.fixture(scope="module")
def mock():
    with MockServer(MockConfig(rate=None)) as server:
        yield server


def stored(client: httpx.Client) -> dict[str, dict]:
    return {d["unique_id"]: d for d in client.get("/_mock/documents").json()}


@pytest.mark.parametrize("use_mtom", [True, False], ids=["mtom", "inline"])
def test_a_valid_set_is_stored_once_and_a_resend_is_a_duplicate(
    client, url, use_mtom: bool
) -> None:
    answer = post(client, url, ORIGINALS, use_mtom=use_mtom)
    assert answer.status == 200
    assert answer.outcome.success
    documents = stored(client)
    assert set(documents) == {d.unique_id for d in ORIGINALS}
    assert all(d["status"] == "Approved" and d["submissions"] == 1 for d in documents.values())
    assert {d["hash"] for d in documents.values()} == {d.sha1 for d in ORIGINALS}

    again = post(client, url, ORIGINALS, use_mtom=use_mtom)  # a fresh SubmissionSet uniqueId
    assert set(again.outcome.codes) == {"XDSDuplicateUniqueIdInRegistry"}
    assert len(stored(client)) == len(ORIGINALS)
    assert all(d["submissions"] == 2 for d in stored(client).values())
    assert client.get("/_mock/stats").json() == {"success": 1, "XDSDuplicateUniqueIdInRegistry": 1}


def test_same_unique_id_other_bytes_is_a_non_identical_hash(client, url) -> None:
    assert post(client, url, ORIGINALS[:1]).outcome.success
    answer = post(client, url, [variant(ORIGINALS[0])])
    assert answer.outcome.codes == ("XDSNonIdenticalHash",)
    assert stored(client)[ORIGINALS[0].unique_id]["hash"] == ORIGINALS[0].sha1


def test_a_reused_submission_set_unique_id_is_refused(client, url) -> None:
    assert post(client, url, ORIGINALS[:1], submission_unique_id="2.25.42").outcome.success
    answer = post(client, url, ORIGINALS[1:2], submission_unique_id="2.25.42")
    assert answer.outcome.codes == ("XDSDuplicateUniqueIdInRegistry",)
    assert ORIGINALS[1].unique_id not in stored(client)


def test_a_replacement_deprecates_the_approved_original(client, url) -> None:
    unknown_target = post(client, url, [REPLACEMENT])
    assert unknown_target.outcome.codes == ("XDSRegistryMetadataError",)
    assert post(client, url, ORIGINALS).outcome.success
    assert post(client, url, [REPLACEMENT]).outcome.success
    documents = stored(client)
    assert documents[REPLACEMENT.entry.replaces]["status"] == "Deprecated"
    assert documents[REPLACEMENT.unique_id]["status"] == "Approved"
    # Replacing the deprecated version again is refused.
    second = variant(REPLACEMENT, b"<!-- v3 -->")
    second = with_entry(second, unique_id="2.25.999001")
    assert post(client, url, [second]).outcome.codes == ("XDSRegistryDeprecatedDocumentError",)


@pytest.mark.parametrize("state", ["NO_DMP", "CLOSED", "DECEASED"])
def test_a_patient_without_an_open_dmp_is_unknown(client, url, state: str) -> None:
    matricule, _, rest = ANGE[0].entry.patient_id.partition("^^^&")
    oid = rest.split("&")[0]
    assert (
        client.put(
            "/_mock/patients", json=[{"ins": matricule, "oid": oid, "state": state}]
        ).status_code
        == 200
    )
    answer = post(client, url, ANGE)
    assert answer.outcome.codes == ("XDSUnknownPatientId",)
    assert f"MOCK:{state}" in answer.outcome.errors[0].context
    assert stored(client) == {}


def test_unknown_patients_can_default_to_no_dmp() -> None:
    with MockServer(MockConfig(unknown_patients="NO_DMP")) as server, httpx.Client() as http:
        assert post(http, server.repository_url, ANGE).outcome.codes == ("XDSUnknownPatientId",)


def _lie(document, **changes):
    return with_entry(document, **changes)


@pytest.mark.parametrize(
    ("documents", "code"),
    [
        ([_lie(ORIGINALS[0], hash="0" * 40)], "XDSRepositoryMetadataError"),
        ([_lie(ORIGINALS[0], size=1)], "XDSRepositoryMetadataError"),
        ([ORIGINALS[0], ANGE[0]], "XDSPatientIdDoesNotMatch"),
        ([_lie(ORIGINALS[0], type_code=Coded("11502-2", "2.16.840.1.113883.6.1", "CR de biologie"))], "XDSRegistryMetadataError"),
        ([_lie(ORIGINALS[0], practice_setting=Coded("NOPE", "1.2.250.1.213.1.1.4.9", "?"))], "XDSRegistryMetadataError"),
        ([_lie(ORIGINALS[0], confidentiality=(*ORIGINALS[0].entry.confidentiality,
           Coded("MASQUE_PS", "1.2.250.1.213.1.1.4.13", "m"), Coded("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13", "i")))],
         "XDSRegistryMetadataError"),
        ([ORIGINALS[0], ORIGINALS[0]], "XDSRepositoryDuplicateUniqueIdInMessage"),
    ],
    ids=["hash", "size", "two-patients", "type-code", "practice-setting", "masked-and-invisible", "twice-in-message"],
)  # fmt: skip
def test_metadata_that_lie_are_refused_and_nothing_is_stored(
    client, url, documents, code: str
) -> None:
    if code == "XDSRepositoryDuplicateUniqueIdInMessage":
        # Same uniqueId twice needs two ExtrinsicObjects: give the second its own entryUUID.
        content_type, body = request_for(documents, use_mtom=False)
        eo_id = documents[0].entry.entry_uuid.encode()
        pieces = body.split(eo_id)
        per_entry = (len(pieces) - 1 - 4) // 2  # the EO block twice, 2 associations, 2 documents
        second = {*range(per_entry, 2 * per_entry), 2 * per_entry + 1, 2 * per_entry + 3}
        other = b"urn:uuid:00000000-0000-4000-8000-000000000001"
        body = pieces[0] + b"".join(
            (other if i in second else eo_id) + piece for i, piece in enumerate(pieces[1:])
        )
        answer = post(client, url, content_type=content_type, body=body)
    else:
        answer = post(client, url, documents)
    assert code in answer.outcome.codes
    assert stored(client) == {}


def test_an_ins_with_a_wrong_key_is_an_unknown_patient(client, url) -> None:
    good = ORIGINALS[0].entry.patient_id
    bad_key = f"{int(good[13:15]) % 97 + 1:02d}"
    bad = good[:13] + bad_key + good[15:]
    content_type, body = request_for(ORIGINALS[:1], use_mtom=False)
    body = body.replace(good.replace("&", "&amp;").encode(), bad.replace("&", "&amp;").encode())
    assert post(client, url, content_type=content_type, body=body).outcome.codes == (
        "XDSUnknownPatientId",
    )


def test_a_cda_that_does_not_validate_is_invalid_content(client, url) -> None:
    broken_xml = ORIGINALS[0].xml.replace(b"<realmCode", b"<realmCodeX", 1).replace(b"/>", b"/>", 1)
    broken_xml = broken_xml.replace(b'<realmCodeX code="FR"/>', b"<unexpected/>")
    entry = dataclasses.replace(
        ORIGINALS[0].entry, hash=hashlib.sha1(broken_xml).hexdigest(), size=len(broken_xml)
    )
    broken = dataclasses.replace(ORIGINALS[0], xml=broken_xml, entry=entry)
    assert post(client, url, [broken]).outcome.codes == ("InvalidDocumentContent",)


def test_the_vihf_must_be_there_and_name_the_patient(client, url) -> None:
    content_type, body = request_for(ORIGINALS[:1], use_mtom=False)
    start, end = (
        body.index(b"<wsse:Security"),
        body.index(b"</wsse:Security>") + len(b"</wsse:Security>"),
    )
    missing = post(client, url, content_type=content_type, body=body[:start] + body[end:])
    assert missing.status == 403
    assert "VIHF" in missing.text
    other = dataclasses.replace(IDENTITY)
    content_type, body = request_for(ORIGINALS[:1], use_mtom=False, identity=other)
    patient = ORIGINALS[0].entry.patient_id.replace("&", "&amp;").encode()
    vihf_value = b"<saml:AttributeValue>" + patient
    swapped = body.replace(
        vihf_value,
        b"<saml:AttributeValue>" + ANGE[0].entry.patient_id.replace("&", "&amp;").encode(),
        1,
    )
    assert swapped != body
    assert post(client, url, content_type=content_type, body=swapped).outcome.codes == (
        "XDSPatientIdDoesNotMatch",
    )


def test_over_the_rate_a_client_gets_429_with_retry_after() -> None:
    with MockServer(MockConfig(rate=0.5)) as server, httpx.Client() as http:
        first = post(http, server.repository_url, ANGE)
        assert first.outcome.success
        second = post(http, server.repository_url, ANGE)
        assert second.status == 429
        assert int(second.headers["retry-after"]) >= 1


def test_injected_faults(client, url) -> None:
    assert client.post("/_mock/faults", json={"busy_ratio": 1.0}).status_code == 200
    assert post(client, url, ANGE).outcome.codes == ("XDSRegistryBusy",)
    client.post("/_mock/faults", json={"error500_ratio": 1.0})
    assert post(client, url, ANGE).status == 500
    client.post("/_mock/faults", json={"outage_seconds": 60})
    outage = post(client, url, ANGE)
    assert outage.status == 503
    assert int(outage.headers["retry-after"]) >= 1
    client.post("/_mock/faults", json={})
    assert post(client, url, ANGE).outcome.success
    assert stored(client).keys() == {ANGE[0].unique_id}
    assert client.post("/_mock/faults", json={"busy_ratio": 2}).status_code == 422


def test_a_timeout_after_store_is_the_ambiguous_case(client, url, mock) -> None:
    """The mock stores, then holds the answer: the client times out, a resend is a duplicate."""
    client.post("/_mock/faults", json={"timeout_after_store_ratio": 1.0, "stall_seconds": 30})
    content_type, body = request_for(ANGE)
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=0.5)) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(url, content=body, headers={"content-type": content_type})
    assert stored(client).keys() == {ANGE[0].unique_id}
    client.post("/_mock/faults", json={})
    assert post(client, url, ANGE).outcome.codes == ("XDSDuplicateUniqueIdInRegistry",)


def test_control_plane_validates_its_input(client) -> None:
    typo = client.put("/_mock/patients", json=[{"ins": "x", "oid": "y", "state": "NO_DMP"}])
    assert typo.status_code == 422, "a typo would leave the patient ACTIVE without a word"
    assert (
        client.put(
            "/_mock/patients", json=[{"ins": "1", "oid": "2", "state": "ASLEEP"}]
        ).status_code
        == 422
    )
    assert client.put("/_mock/patients", content=b"not json").status_code == 422
    assert client.get("/_mock/stats").json() == {}


def test_the_store_works_on_sqlite_and_postgresql(database) -> None:
    """The mock's own store (SQLAlchemy) behaves the same on both backends, reset included."""
    with (
        MockServer(MockConfig(db_url=database.url)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        assert post(http, server.repository_url, ORIGINALS).outcome.success
        assert post(http, server.repository_url, [REPLACEMENT]).outcome.success
        assert post(http, server.repository_url, ORIGINALS[:1]).outcome.codes == (
            "XDSDuplicateUniqueIdInRegistry",
        )
        documents = stored(http)
        assert documents[REPLACEMENT.entry.replaces]["status"] == "Deprecated"
        assert documents[ORIGINALS[0].unique_id]["submissions"] == 2
        assert http.post("/_mock/reset").status_code == 200
        assert stored(http) == {}


def test_a_vihf_of_another_structure_is_refused(client, url) -> None:
    """Indirect mode: the VIHF's structure must be the sender named in the submission set."""
    impostor = dataclasses.replace(IDENTITY, structure_id="1000000000")
    answer = post(client, url, ORIGINALS[:1], identity=impostor)
    assert answer.status == 403
    assert "Identifiant_Structure" in answer.text
    assert stored(client) == {}
