"""TLS between the engine and the DMP: a handshake refused either way stops the run (FATAL).

The clients are made from settings (`backfill.dmp_session`), as the engine makes them. The
refused-client-certificate cases run against a small blocking TLS server, because the mock's
asyncio TLS closes a refused connection without sending the TLS alert a real terminator sends
(without the alert a client cannot tell a refusal from a dropped connection).
"""

from __future__ import annotations

import asyncio
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from backfill.config import Settings, load_settings
from backfill.dmp_session import async_dmp_client, dmp_client
from backfill.errors import ConfigError
from connectors.dmp.client import SERVICES_PATH, AsyncDmpClient, OutcomeKind, SubmitResult
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.pki import TestPki, make_test_pki
from connectors.dmp_mock.server import MockServer, TlsFiles
from connectors.dmp_mock.testing import client_options
from tests.integration.mock_dmp_support import by_patient

DOCUMENTS = by_patient()["IPP000456"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def settings_for(
    monkeypatch, tmp_path: Path, url: str, *, ca: Path, cert: Path | None, key: Path | None
) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKFILL_DMP_URL", url)
    monkeypatch.setenv("BACKFILL_DMP_CA_BUNDLE", str(ca))
    for name, path in (("BACKFILL_DMP_TLS_CERT", cert), ("BACKFILL_DMP_TLS_KEY", key)):
        if path is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(path))
    return load_settings()


def send_blocking(settings: Settings) -> SubmitResult:
    with dmp_client(settings) as dmp:
        return dmp.submit(
            DOCUMENTS[0].entry.patient_id,
            [(d.entry, d.xml) for d in DOCUMENTS],
            content_type=DOCUMENTS[0].content_type,
        )


def send_async(settings: Settings) -> SubmitResult:
    """The sender's client, on its own sockets (`connectors.dmp.sockets`)."""

    async def run() -> SubmitResult:
        async with async_dmp_client(settings) as dmp:
            return await dmp.submit(
                DOCUMENTS[0].entry.patient_id,
                [(d.entry, d.xml) for d in DOCUMENTS],
                content_type=DOCUMENTS[0].content_type,
            )

    return asyncio.run(run())


@pytest.fixture(params=[send_blocking, send_async], ids=["blocking", "async"])
def send(request) -> Callable[[Settings], SubmitResult]:
    return request.param


@pytest.fixture(scope="module")
def mutual_tls_mock(pki) -> Iterator[MockServer]:
    with MockServer(MockConfig(), tls=TlsFiles(pki.server_cert, pki.server_key, pki.ca)) as mock:
        yield mock


def test_the_establishment_certificate_is_served(pki, mutual_tls_mock, send, monkeypatch, tmp_path):
    settings = settings_for(
        monkeypatch, tmp_path, mutual_tls_mock.services_url,
        ca=pki.ca, cert=pki.client_cert, key=pki.client_key,
    )  # fmt: skip
    result = send(settings)
    assert result.kind is OutcomeKind.DONE, result.detail


def test_an_untrusted_dmp_certificate_is_fatal(pki, mutual_tls_mock, send, monkeypatch, tmp_path):
    settings = settings_for(
        monkeypatch, tmp_path, mutual_tls_mock.services_url,
        ca=pki.rogue_ca, cert=pki.client_cert, key=pki.client_key,
    )  # fmt: skip
    result = send(settings)
    assert result.kind is OutcomeKind.FATAL
    assert {d.code for d in result.documents} == {"TLS"}
    assert "not trusted" in result.detail


class _RefusingTls(socketserver.ThreadingTCPServer):
    """A TLS terminator requiring a client certificate of the test CA, as a DMP gateway does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, pki: TestPki) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(pki.ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _RefusingTls

    def handle(self) -> None:
        self.request.settimeout(10)
        # The TLS socket takes over the accepted one's descriptor and closes it as soon as the
        # handshake fails: with the client's data unread that sends a reset, which discards
        # the alert if the client has not read it yet. A duplicate keeps the connection open.
        raw = self.request.dup()
        try:
            tls = self.server.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            # The alert is sent; read what the client still writes, until it closes, so it
            # reads the alert rather than a reset.
            try:
                while raw.recv(65536):
                    pass
            except OSError:
                pass
            return
        finally:
            raw.close()
        received = b""
        while b"\r\n\r\n" not in received:
            received += tls.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += tls.recv(65536)
        tls.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def gateway(pki) -> Iterator[str]:
    server = _RefusingTls(pki)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}{SERVICES_PATH}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("who", [None, "intruder"], ids=["no-certificate", "foreign-certificate"])
def test_a_refused_client_certificate_is_fatal(
    pki, gateway, who, send, monkeypatch, tmp_path
) -> None:
    cert = getattr(pki, f"{who}_cert") if who else None
    key = getattr(pki, f"{who}_key") if who else None
    result = send(settings_for(monkeypatch, tmp_path, gateway, ca=pki.ca, cert=cert, key=key))
    assert result.kind is OutcomeKind.FATAL, result.detail
    assert {d.code for d in result.documents} == {"TLS"}
    assert "refused" in result.detail


def test_the_gateway_serves_the_right_certificate(
    pki, gateway, send, monkeypatch, tmp_path
) -> None:
    """The refusals above are about the certificate: the same gateway serves ours."""
    settings = settings_for(
        monkeypatch, tmp_path, gateway, ca=pki.ca, cert=pki.client_cert, key=pki.client_key
    )
    result = send(settings)
    assert result.http_status == 503
    assert result.kind is OutcomeKind.TRANSIENT


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"BACKFILL_DMP_TLS_CERT": "client_cert"}, "tls_cert and tls_key go together"),
        ({"BACKFILL_DMP_CA_BUNDLE": "/nowhere/ca.pem"}, "dmp.ca_bundle: /nowhere/ca.pem: file not found"),
        ({"BACKFILL_DMP_TLS_CERT": "client_cert", "BACKFILL_DMP_TLS_KEY": "intruder_key"},
         "is not the key of the certificate"),
    ],
    ids=["cert-without-key", "missing-ca", "key-not-of-the-cert"],
)  # fmt: skip
def test_unusable_tls_files_are_a_configuration_error(pki, files, message, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKFILL_DMP_URL", "https://dmp.example" + SERVICES_PATH)
    for name, value in files.items():
        monkeypatch.setenv(name, str(getattr(pki, value, value)))
    with pytest.raises(ConfigError, match=message):
        dmp_client(load_settings())


def test_no_tls_setting_uses_the_default_trust(mutual_tls_mock, send, monkeypatch, tmp_path):
    """No `[dmp]` TLS file: the system's default trust, which does not know the test CA."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKFILL_DMP_URL", mutual_tls_mock.services_url)
    for name in ("BACKFILL_DMP_CA_BUNDLE", "BACKFILL_DMP_TLS_CERT", "BACKFILL_DMP_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = send(load_settings())
    assert result.kind is OutcomeKind.FATAL
    assert "not trusted" in result.detail


def test_a_tls_alert_escaping_httpx_is_read_as_a_refusal(monkeypatch, tmp_path) -> None:
    """Behind a proxy the async client keeps httpx's anyio transport, which can let the alert of
    a refused certificate escape as a bare SSLError: it is still FATAL "TLS", not a crash."""
    alert = ssl.SSLError(
        1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
    )
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise alert

    async def run() -> SubmitResult:
        http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
        async with AsyncDmpClient(
            "https://dmp.example" + SERVICES_PATH, http=http, **client_options()
        ) as dmp:  # type: ignore[arg-type]
            return await dmp.submit(
                DOCUMENTS[0].entry.patient_id,
                [(d.entry, d.xml) for d in DOCUMENTS],
                content_type=DOCUMENTS[0].content_type,
            )

    result = asyncio.run(run())
    assert result.kind is OutcomeKind.FATAL
    assert {d.code for d in result.documents} == {"TLS"}
    assert "refused" in result.detail
