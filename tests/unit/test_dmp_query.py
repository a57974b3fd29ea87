"""ITI-18 on the wire: what we write validates against ebRS query.xsd and reads back the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from connectors.dmp import mtom
from connectors.dmp.errors import MetadataProblem
from connectors.dmp.query import (
    ACTION_QUERY,
    FIND_DOCUMENTS,
    GET_DOCUMENTS,
    FoundDocument,
    build_query,
    build_query_request,
    build_query_response,
    find_documents,
    get_documents,
    query_errors,
    read_query,
    read_query_response,
)
from connectors.dmp.response import RegistryError
from connectors.dmp.soap import parse_xml, read_envelope
from connectors.dmp.vihf import RESOURCE_ID, read_attributes
from connectors.dmp.vocabulary import XDS
from connectors.dmp_mock.testing import IDENTITY

PATIENT = "1234567890123^^^&1.2.250.1.213.1.4.10&ISO^NH"


@pytest.mark.parametrize(
    "query",
    [
        get_documents(unique_ids=["1.2.250.1.999.42.3.7.1"]),
        get_documents(unique_ids=["1.2.3", "1.2.4"], return_type="LeafClass"),
        get_documents(entry_uuids=["urn:uuid:0b8f2cbd-9bd5-4c2f-b2c1-0b7a1d0c0a11"]),
        find_documents(PATIENT),
        find_documents(PATIENT, statuses=[XDS.APPROVED, XDS.DEPRECATED], return_type="ObjectRef"),
    ],
    ids=["by-unique-id", "two-leaf", "by-entry-uuid", "find", "find-both-statuses"],
)
def test_a_query_validates_and_reads_back(specs, query) -> None:
    element = build_query(query)
    assert query_errors(element) == []
    assert read_query(element) == query


def test_the_stored_query_ids_are_the_ihe_ones() -> None:
    assert (
        get_documents(unique_ids=["1"]).query_id == "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
    )
    assert find_documents(PATIENT).query_id == "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
    values = [v.text for v in build_query(find_documents(PATIENT)).iter("{*}Value")]
    assert values == [f"'{PATIENT}'", f"('{XDS.APPROVED}')"]


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1,
                        max_size=20), min_size=1, max_size=4))  # fmt: skip
def test_any_value_survives_the_quoting(values: list[str]) -> None:
    query = get_documents(unique_ids=values)
    assert read_query(build_query(query)).parameters == query.parameters


def test_the_request_is_a_soap_call_with_the_vihf_of_the_patient() -> None:
    content_type, body = build_query_request(
        get_documents(unique_ids=["1.2.3"]), IDENTITY, PATIENT, to="https://dmp/registry"
    )
    envelope = read_envelope(parse_xml(mtom.unpack(content_type, body).root))
    assert envelope.action == ACTION_QUERY
    assert read_attributes(envelope.security)[RESOURCE_ID] == PATIENT
    assert read_query(envelope.body).query_id == GET_DOCUMENTS


def _request(
    query_id: str, slots: dict[str, str], return_type: str = "ObjectRef"
) -> etree._Element:
    rim = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
    q = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
    request = etree.Element(f"{{{q}}}AdhocQueryRequest", nsmap={"query": q, "rim": rim})
    etree.SubElement(request, f"{{{q}}}ResponseOption", returnType=return_type)
    adhoc = etree.SubElement(request, f"{{{rim}}}AdhocQuery", id=query_id)
    for name, text in slots.items():
        slot = etree.SubElement(adhoc, f"{{{rim}}}Slot", name=name)
        etree.SubElement(
            etree.SubElement(slot, f"{{{rim}}}ValueList"), f"{{{rim}}}Value"
        ).text = text
    return request


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (_request("urn:uuid:00000000-0000-0000-0000-000000000000", {}), "XDSUnknownStoredQuery"),
        (_request(GET_DOCUMENTS, {}), "XDSStoredQueryParamNumber"),
        (
            _request(GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": "('1')",
                                     "$XDSDocumentEntryEntryUUID": "('urn:uuid:1')"}),
            "XDSStoredQueryParamNumber",
        ),
        (_request(FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": f"'{PATIENT}'"}),
         "XDSStoredQueryParamNumber"),
        (_request(GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": "1.2.3"}), "XDSRegistryError"),
        (_request(GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": "('1')"}, "RegistryObject"),
         "XDSRegistryError"),
    ],
    ids=["unknown-query", "no-parameter", "both-ids", "no-status", "unquoted", "return-type"],
)  # fmt: skip
def test_a_wrong_query_names_its_ihe_code(request_, code: str) -> None:
    with pytest.raises(MetadataProblem) as caught:
        read_query(request_)
    assert caught.value.code == code


@pytest.mark.parametrize("return_type", ["ObjectRef", "LeafClass"])
def test_answers_validate_and_read_back(specs, return_type: str) -> None:
    found = [
        FoundDocument("urn:uuid:a1", "1.2.3.1", PATIENT, "ab" * 20, 1234, "Approved"),
        FoundDocument("urn:uuid:a2", "1.2.3.2", PATIENT, "cd" * 20, 99, "Deprecated"),
    ]
    answer = build_query_response(found, return_type)
    assert query_errors(answer) == []
    outcome = read_query_response(answer)
    assert outcome.success
    expected = found if return_type == "LeafClass" else [FoundDocument(f.entry_uuid) for f in found]
    assert list(outcome.documents) == expected


def test_a_failed_answer_carries_its_errors_and_no_documents(specs) -> None:
    answer = build_query_response(
        [FoundDocument("urn:uuid:a1")], "ObjectRef",
        [RegistryError("XDSUnknownPatientId", "MOCK:NO_DMP")],
    )  # fmt: skip
    assert query_errors(answer) == []
    outcome = read_query_response(answer)
    assert not outcome.success
    assert outcome.codes == ("XDSUnknownPatientId",)
    assert outcome.documents == ()
