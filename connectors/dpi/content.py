"""Where a document's `file:` content lives: one rule for selection and for the reader.

A `content_uri` is a `file:` URI (local host only). With a content root configured
(`dpi.content_root`), a relative path is taken under it and a path that leads outside it is
refused: a URI in the DPI must not reach files the establishment did not declare as its share.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["content_path"]


def content_path(uri: str, content_root: Path | None = None) -> Path | None:
    """The file a `file:` URI names, or None (another scheme, another host, outside the root)."""
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parts.path))
    if content_root is not None:
        if not path.is_absolute():
            path = content_root / path
        try:
            path.resolve().relative_to(content_root.resolve())
        except ValueError:
            return None
    return path
