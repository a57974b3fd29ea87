"""Where `file:` content lives: the same answer for selection (the checks) and the reader (the bytes).

Content read here is embedded in a CDA and sent to the DMP, so every way out of the declared
share is tried: no share declared, absolute paths, `localhost`, `FILE:`, `..`, `%2f`, links.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backfill.selection.facts import check_file_content
from backfill.selection.reasons import Reason
from cda.errors import InvalidContent
from connectors.dpi.content import ContentRefused, open_content
from connectors.dpi.reader import read_content

PDF = b"%PDF-1.4\nhello\n%%EOF\n"
SECRET = b"%PDF-1.4\nsomeone else's file\n%%EOF\n"


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "letters").mkdir(parents=True)
    (root / "letters" / "a.pdf").write_bytes(PDF)
    (tmp_path / "secret.pdf").write_bytes(SECRET)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.pdf").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.pdf", root / "letters" / "link.pdf")
    os.symlink(tmp_path / "elsewhere", root / "linked-folder")
    return root


def _refused_by_both(uri: str, root: Path | None) -> None:
    assert (
        check_file_content(uri, pdf=True, max_bytes=10**6, content_root=root)
        is Reason.CONTENT_MISSING
    )
    with pytest.raises(InvalidContent) as caught:
        read_content(None, uri, root)
    assert caught.value.reason == "content_missing"


@pytest.mark.parametrize(
    "uri",
    [
        "file:letters/a.pdf",
        "file:./letters//a.pdf",
        "FILE:letters/a.pdf",
        "file:letters%2fa.pdf",
    ],
)
def test_relative_inside_the_root(share: Path, uri: str) -> None:
    assert read_content(None, uri, share) == PDF
    assert check_file_content(uri, pdf=True, max_bytes=10**6, content_root=share) is None


def test_absolute_inside_the_root_with_or_without_localhost(share: Path) -> None:
    absolute = (share / "letters" / "a.pdf").as_uri()
    assert read_content(None, absolute, share) == PDF
    localhost = absolute.replace("file://", "file://localhost", 1)
    assert read_content(None, localhost, share) == PDF


def test_no_declared_share_reads_no_file(share: Path) -> None:
    uri = (share / "letters" / "a.pdf").as_uri()
    _refused_by_both(uri, None)
    with pytest.raises(ContentRefused, match=r"dpi\.content_root"):
        open_content(uri, None)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/hostname",
        "file://localhost/etc/hostname",
        "FILE:///etc/hostname",
        "file:/etc/hostname",
        "file:../secret.pdf",
        "file:letters/../../secret.pdf",
        "file:..%2fsecret.pdf",
        "file:letters%2f..%2f..%2fsecret.pdf",
        "file:%2e%2e/secret.pdf",
        "file:letters/link.pdf",
        "file:linked-folder/b.pdf",
        "file:letters",
        "file:",
        "file:letters/a.pdf%00.txt",
        "http://host/a.pdf",
        "file://otherhost/letters/a.pdf",
        "file:letters/absent.pdf",
    ],
)
def test_everything_else_is_content_missing_for_both(share: Path, uri: str) -> None:
    _refused_by_both(uri, share)


def test_absolute_paths_that_leave_the_root_lexically_are_refused(share: Path) -> None:
    _refused_by_both(share.as_uri() + "/../secret.pdf", share)
    _refused_by_both((share.parent / "secret.pdf").as_uri(), share)


def test_a_fifo_on_the_share_does_not_hang(share: Path) -> None:
    os.mkfifo(share / "letters" / "pipe.pdf")
    _refused_by_both("file:letters/pipe.pdf", share)
