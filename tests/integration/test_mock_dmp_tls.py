"""Mutual TLS on the mock DMP: a client without a certificate from the right CA is refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer, TlsFiles
from tests.integration.mock_dmp_support import by_patient, post

NOW = dt.datetime.now(dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str, key, issuer_name: str, issuer_key, *, ca: bool = False, server: bool = False
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, rogue_key = _key(), _key()
    ca = _cert("Test IGC-Santé CA", ca_key, "Test IGC-Santé CA", ca_key, ca=True)
    server_key, client_key, intruder_key = _key(), _key(), _key()
    paths = {"ca": _write(folder, "ca", ca, ca_key)[0]}
    paths["server_cert"], paths["server_key"] = _write(
        folder,
        "server",
        _cert("mock-dmp", server_key, "Test IGC-Santé CA", ca_key, server=True),
        server_key,
    )
    paths["client_cert"], paths["client_key"] = _write(
        folder,
        "client",
        _cert("ORG AUTH_CLI 1999999990", client_key, "Test IGC-Santé CA", ca_key),
        client_key,
    )
    paths["intruder_cert"], paths["intruder_key"] = _write(
        folder, "intruder", _cert("intruder", intruder_key, "Rogue CA", rogue_key), intruder_key
    )
    return paths


def _context(pki: dict[str, Path], who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if who:
        context.load_cert_chain(str(pki[f"{who}_cert"]), str(pki[f"{who}_key"]))
    return context


def test_only_a_client_certified_by_the_ca_is_served(pki) -> None:
    tls = TlsFiles(pki["server_cert"], pki["server_key"], client_ca=pki["ca"])
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
