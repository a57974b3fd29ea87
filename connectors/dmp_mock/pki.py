"""A throwaway test PKI (never IGC-Santé): a CA, the mock's server certificate, the
establishment's client certificate, and an intruder certified by another CA.

    pki = make_test_pki(tmp_path)        # PEM files in that folder
    MockServer(tls=TlsFiles(pki.server_cert, pki.server_key, client_ca=pki.ca))

For tests and demos of mutual TLS (and signatures); real certificates are the hospital's to
install. RSA keys, since the DMP's signatures are RSA-SHA256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["TestPki", "make_test_pki"]

CA_NAME = "Test IGC-Santé CA (not a real CA)"
ROGUE_CA_NAME = "Rogue CA"
CLIENT_NAME = "ORG AUTH_CLI 1999999990"


@dataclass(frozen=True)
class TestPki:
    """Paths of the PEM files."""

    __test__ = False  # not a pytest class, whatever its name

    ca: Path
    rogue_ca: Path
    """Another CA: trusting only it, a client refuses the mock's certificate."""
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    intruder_cert: Path
    """Certified by the rogue CA: the mock refuses it."""
    intruder_key: Path
    signing_cert: Path
    """The establishment's "ORG SIGN" certificate: subject O=<name>, OU=<structure id>."""
    signing_key: Path


def _signing_cert(
    structure_id: str, organisation: str, key: rsa.RSAPrivateKey, ca_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    # What a signature verifier demands of a signer: key usage, and the CA's key identifier.
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"ORG SIGN {structure_id}"),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=True, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: str,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        # Signature verifiers (signxml through cryptography) require a CA's key usage.
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)  # fmt: skip
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey | None) -> Path:
    cert_path = folder / f"{name}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = folder / f"{name}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    return cert_path


def make_test_pki(
    folder: Path, *, structure_id: str = "1999999990", organisation: str = "CH Fictif de Test"
) -> TestPki:
    """Write a fresh test PKI into `folder` (created if missing) and return its paths."""
    folder.mkdir(parents=True, exist_ok=True)
    signing_key = _key()
    ca_key, rogue_key, server_key, client_key, intruder_key = (_key() for _ in range(5))
    ca = _write(folder, "ca", _cert(CA_NAME, ca_key, CA_NAME, ca_key, ca=True), None)
    rogue = _write(
        folder, "rogue-ca", _cert(ROGUE_CA_NAME, rogue_key, ROGUE_CA_NAME, rogue_key, ca=True), None
    )
    server = _write(
        folder, "server", _cert("mock-dmp", server_key, CA_NAME, ca_key, server=True), server_key
    )
    client = _write(folder, "client", _cert(CLIENT_NAME, client_key, CA_NAME, ca_key), client_key)
    intruder = _write(
        folder, "intruder", _cert("intruder", intruder_key, ROGUE_CA_NAME, rogue_key), intruder_key
    )
    return TestPki(
        ca=ca,
        rogue_ca=rogue,
        server_cert=server,
        server_key=server.with_suffix(".key"),
        client_cert=client,
        client_key=client.with_suffix(".key"),
        intruder_cert=intruder,
        intruder_key=intruder.with_suffix(".key"),
        signing_cert=_write(
            folder,
            "sign",
            _signing_cert(structure_id, organisation, signing_key, ca_key),
            signing_key,
        ),
        signing_key=folder / "sign.key",
    )
