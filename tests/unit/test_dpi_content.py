"""Where `file:` content lives: the same answer for selection (the checks) and the reader (the bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill.selection.facts import check_file_content
from backfill.selection.reasons import Reason
from cda.errors import InvalidContent
from connectors.dpi.content import content_path
from connectors.dpi.reader import read_content

PDF = b"%PDF-1.4\nhello\n%%EOF\n"


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "letters").mkdir(parents=True)
    (root / "letters" / "a.pdf").write_bytes(PDF)
    (tmp_path / "secret.pdf").write_bytes(PDF)
    return root


def test_inside_the_root_absolute_or_relative(share: Path) -> None:
    absolute = (share / "letters" / "a.pdf").as_uri()
    assert content_path(absolute, share) == share / "letters" / "a.pdf"
    assert content_path("file:letters/a.pdf", share) == share / "letters" / "a.pdf"
    assert read_content(None, "file:letters/a.pdf", share) == PDF
    assert (
        check_file_content("file:letters/a.pdf", pdf=True, max_bytes=10**6, content_root=share)
        is None
    )


@pytest.mark.parametrize(
    "uri",
    [
        "file:../secret.pdf",
        "http://host/a.pdf",
        "file://otherhost/letters/a.pdf",
        "file:letters/absent.pdf",
    ],
    ids=["escapes-the-root", "not-file", "remote-host", "missing"],
)
def test_outside_or_unreadable_is_content_missing_for_both(share: Path, uri: str) -> None:
    assert (
        check_file_content(uri, pdf=True, max_bytes=10**6, content_root=share)
        is Reason.CONTENT_MISSING
    )
    with pytest.raises(InvalidContent) as caught:
        read_content(None, uri, share)
    assert caught.value.reason == "content_missing"
