"""Where a document's `file:` content lives, and opening it: one rule for selection and the reader.

A `content_uri` is a `file:` URI on the local host (`file:` / `FILE:`, no host or `localhost`).
`file:` content is read only when the establishment declared its share (`dpi.content_root`): a
URI in the DPI must never reach a file the establishment did not declare, since what is read here
is embedded in a CDA and sent to the DMP. A relative path is taken under the root; an absolute
one must lie under it; a `..` component is refused (also when it came percent-encoded).

The file is opened by walking from the root one component at a time with `O_NOFOLLOW` on each
(`dir_fd`), so a symbolic link anywhere under the root is refused, and nothing can swap a
component for a link between a check and the open: there is no separate check.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

__all__ = ["ContentRefused", "open_content"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted on the share must not block the open


class ContentRefused(ValueError):
    """A `content_uri` that is not read, and why (one line for a person)."""


def _parts_under_root(uri: str, content_root: Path | None) -> list[str]:
    """The path components of `uri` below the root, or `ContentRefused`."""
    if content_root is None:
        raise ContentRefused(
            "file: content is read only from a declared share: set dpi.content_root "
            "(BACKFILL_DPI_CONTENT_ROOT) to the folder holding the DPI's files"
        )
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() != "file" or parts.netloc.lower() not in ("", "localhost"):
        raise ContentRefused("content_uri is not a file: URI on this host")
    if parts.query or parts.fragment:
        raise ContentRefused("content_uri carries a query or fragment; a file: URI names a file")
    text = unquote(parts.path, errors="strict")
    if "\x00" in text:
        raise ContentRefused("content_uri names a path with a NUL character")
    path = PurePosixPath(text)
    if path.is_absolute():
        for root in {os.path.abspath(content_root), os.path.realpath(content_root)}:
            try:
                path = path.relative_to(root)
                break
            except ValueError:
                continue
        else:
            raise ContentRefused("content_uri names a file outside dpi.content_root")
    components = [part for part in path.parts if part not in ("", ".")]
    if ".." in components:
        raise ContentRefused("content_uri climbs out of its folder (..)")
    if not components:
        raise ContentRefused("content_uri names the content root itself, not a file")
    return components


def open_content(uri: str, content_root: Path | None) -> BinaryIO:
    """The regular file `uri` names under `content_root`, opened for reading, links refused.

    Raises `ContentRefused` for a URI that may not be read and `OSError` for a file that is not
    there or cannot be opened (a symbolic link shows as `ELOOP` or `ENOTDIR`).
    """
    components = _parts_under_root(uri, content_root)
    assert content_root is not None
    folder = os.open(content_root, os.O_RDONLY | _DIRECTORY)  # the root is configured: trusted
    try:
        for part in components[:-1]:
            below = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = below
        fd = os.open(components[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContentRefused("content_uri names something that is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
