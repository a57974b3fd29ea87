"""Mutual TLS on the mock DMP: a client without a certificate from the right CA is refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.pki import TestPki, make_test_pki
from connectors.dmp_mock.server import MockServer, TlsFiles
from tests.integration.mock_dmp_support import by_patient, post


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _context(pki: TestPki, who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if who:
        cert: Path = getattr(pki, f"{who}_cert")
        key: Path = getattr(pki, f"{who}_key")
        context.load_cert_chain(str(cert), str(key))
    return context


def test_only_a_client_certified_by_the_ca_is_served(pki) -> None:
    tls = TlsFiles(pki.server_cert, pki.server_key, client_ca=pki.ca)
    documents = by_patient()["IPP000456"]
    with MockServer(MockConfig(), tls=tls) as mock:
        assert mock.repository_url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=_context(pki, "client")) as good:
            assert post(good, mock.repository_url, documents).outcome.success
        for who in (None, "intruder"):
            with (
                httpx.Client(verify=_context(pki, who)) as bad,
                pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
            ):
                post(bad, mock.repository_url, documents)
        # The refused clients left nothing behind, and the mock still serves the good one.
        with httpx.Client(verify=_context(pki, "client")) as good:
            assert len(good.get(mock.base_url + "/_mock/documents").json()) == 1
