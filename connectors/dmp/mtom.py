"""MTOM/XOP packaging: a SOAP envelope whose documents travel as binary MIME parts.

`package` writes `multipart/related; type="application/xop+xml"` with the envelope as the root
part and one `application/octet-stream` part per document, referenced by `xop:Include` (cid:).
`unpack` reads such a body back, or a plain `application/soap+xml` body (inline base64), and
never holds more than the body itself plus the parts' views.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message

from connectors.dmp.errors import MalformedMessage

__all__ = ["MtomMessage", "package", "unpack"]

_CRLF = b"\r\n"


@dataclass
class MtomMessage:
    """The root (SOAP envelope) bytes and the binary parts by Content-ID (without `<>`)."""

    root: bytes
    parts: dict[str, bytes]


def package(
    envelope: bytes, parts: Sequence[tuple[str, bytes]], *, action: str
) -> tuple[str, bytes]:
    """(Content-Type header, body) of an MTOM message; `parts` are (content id, bytes)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.{uuid.uuid4().hex}@dmp-backfill"
    chunks = [
        b"--" + boundary.encode(), _CRLF,
        f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"; action="{action}"'.encode(), _CRLF,
        b"Content-Transfer-Encoding: binary", _CRLF,
        f"Content-ID: <{root_id}>".encode(), _CRLF, _CRLF,
        envelope, _CRLF,
    ]  # fmt: skip
    for content_id, data in parts:
        chunks += [
            b"--" + boundary.encode(), _CRLF,
            b"Content-Type: application/octet-stream", _CRLF,
            b"Content-Transfer-Encoding: binary", _CRLF,
            f"Content-ID: <{content_id}>".encode(), _CRLF, _CRLF,
            data, _CRLF,
        ]  # fmt: skip
    chunks += [b"--" + boundary.encode() + b"--", _CRLF]
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"; action="{action}"'
    )
    return content_type, b"".join(chunks)


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = value
    params = {k.lower(): v for k, v in (message.get_params() or [])[1:]}
    return message.get_content_type(), params


_HEADER_LINE = re.compile(rb"^([A-Za-z0-9-]+):[ \t]*(.*)$")


def _part_headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.split(_CRLF):
        match = _HEADER_LINE.match(line)
        if match:
            headers[match.group(1).decode("ascii", "replace").lower()] = (
                match.group(2).decode("latin-1").strip()
            )
    return headers


def unpack(content_type: str | None, body: bytes) -> MtomMessage:
    """Split an ITI-41 HTTP body into the SOAP envelope and its binary parts."""
    if not content_type:
        raise MalformedMessage("the request has no Content-Type")
    media, params = _header_params(content_type)
    if media == "application/soap+xml":
        return MtomMessage(body, {})
    if media != "multipart/related":
        raise MalformedMessage(
            f"Content-Type {media!r} is neither multipart/related (MTOM) nor application/soap+xml"
        )
    boundary = params.get("boundary")
    if not boundary:
        raise MalformedMessage("multipart/related without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise MalformedMessage("the multipart body is truncated: its closing boundary is missing")
    start = params.get("start", "").strip("<>")
    root: bytes | None = None
    parts: dict[str, bytes] = {}
    for index, piece in enumerate(pieces[1:-1]):
        if not piece.startswith(_CRLF):
            raise MalformedMessage("a multipart boundary is not followed by a line break")
        head, separator, content = piece[2:].partition(_CRLF + _CRLF)
        if not separator:
            raise MalformedMessage("a multipart part has no blank line after its headers")
        if content.endswith(_CRLF):
            content = content[:-2]
        headers = _part_headers(head)
        content_id = headers.get("content-id", "").strip("<>")
        is_root = (content_id == start) if start else index == 0
        if is_root:
            part_type, _ = _header_params(headers.get("content-type", ""))
            if part_type not in ("application/xop+xml", "application/soap+xml"):
                raise MalformedMessage(f"the root part is {part_type!r}, not application/xop+xml")
            root = content
        elif content_id:
            parts[content_id] = content
        else:
            raise MalformedMessage("a binary part has no Content-ID")
    if root is None:
        raise MalformedMessage("the multipart message has no root part (the SOAP envelope)")
    return MtomMessage(root, parts)
