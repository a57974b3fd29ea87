"""Who the mock trusts, and what it logs (issue 17): the control plane answers loopback *socket
peers* only, whatever the headers say; uvicorn's lines and one line per request go through the
engine's logging, as JSON, without identities."""

from __future__ import annotations

import io
import json
import logging
import socket

import httpx
import pytest
from starlette.requests import Request

from backfill.cli.mock_dmp_cmd import _control_plane
from backfill.logs import configure_logging
from connectors.dmp_mock.app import MockConfig, peer_is_loopback
from connectors.dmp_mock.server import MockServer, uvicorn_config
from tests.integration.mock_dmp_support import by_patient, post

DOCUMENTS = by_patient()["IPP000456"]


def _request(peer: tuple[str, int] | None, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": peer, "headers": headers, "method": "GET"})


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        (("127.0.0.1", 5000), True),
        (("127.0.0.2", 5000), True),
        (("::1", 5000), True),
        (("::ffff:127.0.0.1", 5000), True),
        (("10.1.2.3", 5000), False),
        (("localhost", 5000), False),  # a name is not a socket peer address
        (None, False),
    ],
)
def test_loopback_is_the_socket_peer_address(peer, loopback: bool) -> None:
    assert peer_is_loopback(_request(peer, forwarded="127.0.0.1")) is loopback


def _own_non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent, a route is chosen
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_a_forwarded_header_does_not_open_the_control_plane() -> None:
    address = _own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    with MockServer(MockConfig(), host="0.0.0.0") as mock:
        spoofed = {"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
        remote = httpx.get(f"http://{address}:{mock.port}/_mock/documents", headers=spoofed)
        assert remote.status_code == 403
        local = httpx.get(f"http://127.0.0.1:{mock.port}/_mock/documents")
        assert local.status_code == 200


@pytest.mark.parametrize(
    ("host", "asked", "served"),
    [
        ("127.0.0.1", None, True),
        ("::1", None, True),
        ("localhost", None, True),
        ("0.0.0.0", None, False),
        ("0.0.0.0", True, True),
        ("127.0.0.1", False, False),
    ],
)
def test_the_control_plane_is_off_on_a_reachable_host_unless_asked(host, asked, served) -> None:
    assert _control_plane(host, asked) is served


@pytest.fixture
def json_log():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", "json", stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_one_json_line_per_request_and_no_identity(json_log) -> None:
    with MockServer(MockConfig()) as mock, httpx.Client(base_url=mock.base_url) as client:
        assert post(client, mock.repository_url, DOCUMENTS).outcome.success
        again = post(client, mock.repository_url, DOCUMENTS)  # a duplicate: an IHE code
        assert not again.outcome.success
        client.get("/_mock/stats")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]  # JSON only
    requests = [line for line in lines if line["event"] == "mock.request"]
    assert [(r["method"], r["path"], r["status"], r["outcome"]) for r in requests] == [
        ("POST", "/si-dmp-server/v2/services/repository", 200, "success"),
        ("POST", "/si-dmp-server/v2/services/repository", 200, "XDSDuplicateUniqueIdInRegistry"),
        ("GET", "/_mock/stats", 200, None),
    ]
    assert all(isinstance(r["duration_ms"], float) for r in requests)
    matricule = DOCUMENTS[0].entry.patient_id.split("^")[0]
    assert matricule not in json_log.getvalue()


def test_uvicorn_s_own_lines_go_through_the_engine_s_logging(json_log) -> None:
    uvicorn_config(MockConfig(), "127.0.0.1", 0)  # uvicorn configures logging when asked to
    logging.getLogger("uvicorn.error").warning("patient 1850599123456 12 failed")
    [line] = [json.loads(text) for text in json_log.getvalue().splitlines()]
    assert line["logger"] == "uvicorn.error"
    assert "1850599123456" not in line["event"]
