"""What the client makes of each kind of DMP answer (DESIGN §7), on answers built by hand."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import httpx
import pytest
from lxml import etree

from connectors.dmp import mtom
from connectors.dmp.client import OutcomeKind, classify, retry_after, services_url_problem
from connectors.dmp.response import RegistryError, build_response
from connectors.dmp.soap import build_envelope, build_fault
from connectors.dmp.vocabulary import ACTION_RESPONSE, NS, XDS
from connectors.dmp_mock.testing import built_examples

DOCS = [d for d in built_examples() if d.entry.source_patient_id.startswith("IPP000123")][:3]
ENTRIES = [d.entry for d in DOCS]
SET_ID = "2.25.1234567890"
DUP = "XDSDuplicateUniqueIdInRegistry"


def answer(status: int = 200, body: bytes = b"", **headers: str) -> httpx.Response:
    headers.setdefault("content-type", "application/soap+xml; charset=UTF-8")
    return httpx.Response(
        status, content=body, headers=headers, request=httpx.Request("POST", "http://dmp/x")
    )


def registry_answer(*errors: RegistryError, **headers: str) -> httpx.Response:
    envelope = build_envelope(
        build_response(errors), action=ACTION_RESPONSE, message_id="urn:uuid:1"
    )
    return answer(200, envelope, **headers)


def judge(response: httpx.Response, entries=ENTRIES, **options):
    return classify(response, entries, submission_set_id=SET_ID, **options)


def kinds(result) -> list[OutcomeKind]:
    return [d.kind for d in result.documents]


# ---- answers without a RegistryResponse are never document rejections -------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (404, b"<html>Not Found</html>", OutcomeKind.FATAL),
        (405, b"", OutcomeKind.FATAL),
        (413, build_fault("Sender", "too large"), OutcomeKind.SPLIT),
        (400, b"", OutcomeKind.TRANSIENT),
        (400, b"Bad Request", OutcomeKind.TRANSIENT),
        (400, build_fault("Sender", "not well-formed XML"), OutcomeKind.TRANSIENT),
        (409, b"", OutcomeKind.TRANSIENT),
        (500, build_fault("Receiver", "oops"), OutcomeKind.TRANSIENT),
        (502, b"", OutcomeKind.TRANSIENT),
        (401, b"", OutcomeKind.FATAL),
        (403, b"", OutcomeKind.FATAL),
    ],
)
def test_answers_without_a_registry_response(status: int, body: bytes, kind: OutcomeKind) -> None:
    result = judge(answer(status, body))
    assert result.kind is kind
    assert kinds(result) == [kind] * len(ENTRIES)
    assert all(d.code == f"HTTP {status}" for d in result.documents)
    assert OutcomeKind.DOCUMENT not in kinds(result)


def test_a_wrong_endpoint_names_the_setting() -> None:
    result = judge(answer(404, b"Not Found"))
    assert "dmp.url" in result.detail
    assert "/si-dmp-server/v2/services" in result.detail


# ---- authentication faults, by QName ---------------------------------------------------------


def fault_with_subcode(prefix: str, namespace: str, local: str) -> bytes:
    """A SOAP 1.2 fault whose Subcode value is `prefix:local` with `prefix` bound to `namespace`."""
    soap = NS["soap"]
    envelope = etree.Element(f"{{{soap}}}Envelope", nsmap={"env": soap})
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{soap}}}Body"), f"{{{soap}}}Fault")
    code = etree.SubElement(fault, f"{{{soap}}}Code")
    etree.SubElement(code, f"{{{soap}}}Value").text = "env:Sender"
    sub = etree.SubElement(code, f"{{{soap}}}Subcode", nsmap={prefix: namespace})
    etree.SubElement(sub, f"{{{soap}}}Value").text = f"{prefix}:{local}"
    reason = etree.SubElement(fault, f"{{{soap}}}Reason")
    etree.SubElement(reason, f"{{{soap}}}Text").text = "certificate and VIHF structure differ"
    return etree.tostring(envelope)


@pytest.mark.parametrize("status", [200, 400, 500])
@pytest.mark.parametrize("prefix", ["sec", "wsse", "ns7"])
def test_a_ws_security_fault_is_fatal_whatever_its_prefix(status: int, prefix: str) -> None:
    body = fault_with_subcode(prefix, NS["wsse"], "FailedAuthentication")
    result = judge(answer(status, body))
    assert result.kind is OutcomeKind.FATAL
    assert "certificate and VIHF structure differ" in result.detail


def test_a_wsse_prefix_bound_elsewhere_is_not_authentication() -> None:
    body = fault_with_subcode("wsse", "urn:example:not-security", "FailedAuthentication")
    assert judge(answer(500, body)).kind is OutcomeKind.TRANSIENT


def test_a_ws_security_name_that_is_not_a_security_fault_is_not_authentication() -> None:
    body = fault_with_subcode("wsse", NS["wsse"], "SomethingElse")
    assert judge(answer(500, body)).kind is OutcomeKind.TRANSIENT


# ---- MTOM-packaged answers -------------------------------------------------------------------


def mtom_answer(envelope: bytes, status: int = 200) -> httpx.Response:
    content_type, body = mtom.package(envelope, [], action=ACTION_RESPONSE)
    return answer(status, body, **{"content-type": content_type})


def test_an_mtom_packaged_success_is_read() -> None:
    envelope = build_envelope(build_response(), action=ACTION_RESPONSE, message_id="urn:uuid:1")
    result = judge(mtom_answer(envelope))
    assert result.kind is OutcomeKind.DONE
    assert kinds(result) == [OutcomeKind.DONE] * len(ENTRIES)


def test_an_mtom_packaged_authentication_fault_is_fatal() -> None:
    body = fault_with_subcode("wss", NS["wsse"], "InvalidSecurity")
    assert judge(mtom_answer(body, status=500)).kind is OutcomeKind.FATAL


def test_an_mtom_answer_written_by_another_tool_is_read() -> None:
    """A multipart/related answer composed by the stdlib email package, not by our packer."""
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart
    from email.policy import HTTP

    envelope = build_envelope(build_response(), action=ACTION_RESPONSE, message_id="urn:uuid:1")
    message = MIMEMultipart("related", type="application/xop+xml", start="<root@dmp>")
    root = MIMEApplication(envelope, "xop+xml", _encoder=lambda part: None)
    root.set_param("type", "application/soap+xml")
    root["Content-ID"] = "<root@dmp>"
    message.attach(root)
    raw = message.as_bytes(policy=HTTP)
    _headers, _, body = raw.partition(b"\r\n\r\n")
    content_type = message["Content-Type"].replace("\n", "").replace("\r", "")
    assert judge(answer(200, body, **{"content-type": content_type})).kind is OutcomeKind.DONE


# ---- RegistryResponse errors, located by document --------------------------------------------


def test_a_duplicate_on_the_submission_set_rejects_nothing() -> None:
    result = judge(
        registry_answer(RegistryError(DUP, f"submission set {SET_ID} was already received",
                                      "SubmissionSet"))
    )  # fmt: skip
    assert result.kind is OutcomeKind.TRANSIENT
    assert kinds(result) == [OutcomeKind.TRANSIENT] * len(ENTRIES)


def test_a_duplicate_naming_the_set_only_in_its_context_rejects_nothing() -> None:
    result = judge(registry_answer(RegistryError(DUP, f"UniqueId {SET_ID} already exists")))
    assert result.kind is OutcomeKind.TRANSIENT


@pytest.mark.parametrize(
    "where",
    ["entry_uuid", "unique_id", "context", "symbolic"],
)
def test_an_idempotent_resend_is_recognised_by_unique_id(where: str) -> None:
    symbolic = [f"Document{n:02d}" for n in range(1, len(ENTRIES) + 1)]

    def duplicate(n: int, entry) -> RegistryError:
        location = {
            "entry_uuid": entry.entry_uuid,
            "unique_id": entry.unique_id,
            "context": "",
            "symbolic": symbolic[n],
        }[where]
        return RegistryError(DUP, f"UniqueId {entry.unique_id} already exists.", location)

    result = judge(
        registry_answer(*(duplicate(n, e) for n, e in enumerate(ENTRIES))), object_ids=symbolic
    )
    assert result.kind is OutcomeKind.DONE
    assert kinds(result) == [OutcomeKind.DONE] * len(ENTRIES)


def test_a_unique_id_that_is_a_prefix_of_another_is_not_confused() -> None:
    first = ENTRIES[0]
    longer = first.unique_id + "0"
    result = judge(registry_answer(RegistryError(DUP, f"UniqueId {longer} already exists")))
    # The registry named a document we did not send: nothing is known to be done.
    assert kinds(result)[0] is not OutcomeKind.DONE


def test_some_documents_stored_some_at_fault_is_split() -> None:
    result = judge(
        registry_answer(
            RegistryError(DUP, "already stored", ENTRIES[0].entry_uuid),
            RegistryError("XDSRepositoryMetadataError", "hash differs", ENTRIES[1].entry_uuid),
        )
    )
    assert result.kind is OutcomeKind.SPLIT
    assert kinds(result) == [OutcomeKind.DONE, OutcomeKind.DOCUMENT, OutcomeKind.SPLIT]
    assert result.documents[1].code == "XDSRepositoryMetadataError"


def test_an_unlocated_error_in_a_set_is_split_and_in_a_single_document_rejected() -> None:
    error = RegistryError("XDSRegistryMetadataError", "does not validate")
    several = judge(registry_answer(error))
    assert several.kind is OutcomeKind.SPLIT
    assert kinds(several) == [OutcomeKind.SPLIT] * len(ENTRIES)
    one = judge(registry_answer(error), ENTRIES[:1])
    assert one.kind is OutcomeKind.DOCUMENT
    assert one.documents[0].code == "XDSRegistryMetadataError"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("XDSRegistryBusy", OutcomeKind.TRANSIENT),
        ("XDSRepositoryOutOfResources", OutcomeKind.TRANSIENT),
        ("XDSRegistryError", OutcomeKind.TRANSIENT),
        ("XDSUnknownPatientId", OutcomeKind.PATIENT),
        ("XDSNonIdenticalHash", OutcomeKind.DOCUMENT),
        ("XDSPatientIdDoesNotMatch", OutcomeKind.DOCUMENT),
    ],
)
def test_each_code_has_its_class(code: str, kind: OutcomeKind) -> None:
    result = judge(registry_answer(RegistryError(code, "x", ENTRIES[0].entry_uuid)), ENTRIES[:1])
    assert result.kind is kind
    assert result.documents[0].kind is kind


def test_warnings_keep_a_success() -> None:
    result = judge(registry_answer(RegistryError("XDSExtraMetadataNotSaved", "w",
                                                 severity=XDS.WARNING)))  # fmt: skip
    assert result.kind is OutcomeKind.DONE


def test_texts_never_carry_the_patient_identifier() -> None:
    patient = ENTRIES[0].patient_id
    result = judge(registry_answer(RegistryError("XDSUnknownPatientId", f"no DMP for {patient}")))
    assert patient.split("^")[0] not in result.detail
    assert all(patient.split("^")[0] not in d.text for d in result.documents)
    assert all(patient.split("^")[0] not in e.context for e in result.errors)


# ---- Retry-After -------------------------------------------------------------------------------


NOW = dt.datetime(2026, 12, 1, 21, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (format_datetime(NOW + dt.timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - dt.timedelta(seconds=90), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_in_both_forms(value: str, seconds: float | None) -> None:
    assert retry_after(httpx.Headers({"retry-after": value}), now=NOW) == seconds


@pytest.mark.parametrize(
    "response",
    [
        answer(429, b"", **{"retry-after": "12"}),
        answer(503, build_fault("Receiver", "outage"), **{"retry-after": "12"}),
        registry_answer(RegistryError("XDSRegistryBusy", "busy"), **{"retry-after": "12"}),
        registry_answer(RegistryError(DUP, "set", "SubmissionSet"), **{"retry-after": "12"}),
    ],
    ids=["429", "503", "busy", "reused-set"],
)
def test_every_transient_answer_carries_retry_after(response: httpx.Response) -> None:
    result = judge(response)
    assert result.kind is OutcomeKind.TRANSIENT
    assert result.retry_after == 12.0


def test_retry_after_as_an_http_date_reaches_the_result() -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    result = judge(answer(503, b"", **{"retry-after": format_datetime(later, usegmt=True)}))
    assert result.retry_after is not None
    assert 100 < result.retry_after <= 120


# ---- the services URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://dmp.example/si-dmp-server/v2/services", None),
        ("https://dmp.example/si-dmp-server/v2/services/repository", "is the repository endpoint"),
        ("https://dmp.example/si-dmp-server/v2/services/registry/", "is the registry endpoint"),
        ("ftp://dmp.example", "must be an http:// or https:// URL"),
    ],
)
def test_the_services_url_convention(url: str, problem: str | None) -> None:
    found = services_url_problem(url)
    assert (found is None) if problem is None else (problem in (found or ""))
