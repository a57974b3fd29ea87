"""A private key readable by others is warned about (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill.key_files import exposed_key_warning


@pytest.mark.parametrize(
    ("mode", "warned"),
    [(0o600, False), (0o400, False), (0o640, True), (0o644, True), (0o604, True)],
)
def test_a_key_readable_by_group_or_others_is_named(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----")
    key.chmod(mode)
    warning = exposed_key_warning(key, "dmp.tls_key")
    assert (warning is not None) is warned
    if warning:
        assert "dmp.tls_key" in warning
        assert "chmod 600" in warning


def test_a_signing_key_readable_by_others_is_warned_about_when_the_client_is_made(
    tmp_path: Path,
) -> None:
    """The ORG SIGN key signs every VIHF and set: as sensitive as the TLS key, warned alike."""
    from structlog.testing import capture_logs

    from backfill.config import DmpSettings, Settings
    from backfill.dmp_session import dmp_client
    from connectors.dmp_mock.pki import make_test_pki

    pki = make_test_pki(tmp_path)
    pki.signing_key.chmod(0o644)
    settings = Settings(
        dmp=DmpSettings(
            url="http://127.0.0.1:9/si-dmp-server/v2/services",
            signing_cert=pki.signing_cert,
            signing_key=pki.signing_key,
        )
    )
    with capture_logs() as logs:
        dmp_client(settings).close()
    assert [e for e in logs if e["event"] == "tls.key_exposed" and "dmp.signing_key" in e["detail"]]
