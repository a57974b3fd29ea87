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
