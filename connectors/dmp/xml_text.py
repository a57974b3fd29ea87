"""XML written as text: escaping and the few element shapes the request writers need.

The sender writes every request's metadata and envelope; building them as lxml trees cost
more of its CPU than the rest of a POST (87 elements for one DocumentEntry, about 190 µs),
and as text they cost a tenth of it. What lxml checked as it built, this checks too: a string
holding a character XML 1.0 cannot carry is refused with a ValueError, as lxml refuses it.
Reading stays with lxml (`connectors.dmp.soap.parse_xml`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["attr", "element", "empty", "start", "text"]

# Outside XML 1.0's Char production: C0 controls but tab, LF and CR; surrogates; U+FFFE/U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTR_SPECIAL = re.compile('[&<>"\t\n\r]')
# Most values need nothing: one search of one class (what is neither refused nor replaced) finds
# those that need a look.
_PLAIN = "\x20-\x21\x23-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff"
_TEXT_HAZARD = re.compile(f'[^\t\n"{_PLAIN}]')
_ATTR_HAZARD = re.compile(f"[^{_PLAIN}]")
_REFERENCES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
    "\r": "&#13;",
}  # fmt: skip


def _reference(match: re.Match[str]) -> str:
    return _REFERENCES[match.group()]


def _checked(value: str) -> str:
    if found := _NOT_XML.search(value):
        raise ValueError(
            "All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control "
            f"characters (found {found.group()!r})"
        )
    return value


def text(value: str) -> str:
    """`value` as character data."""
    if _TEXT_HAZARD.search(value) is None:
        return value
    return _TEXT_SPECIAL.sub(_reference, _checked(value))


def attr(value: str) -> str:
    """`value` as a double-quoted attribute value (without the quotes); tabs and line ends
    are written as references, so a reader gets them back rather than spaces."""
    if _ATTR_HAZARD.search(value) is None:
        return value
    return _ATTR_SPECIAL.sub(_reference, _checked(value))


def _attributes(attrs: Iterable[tuple[str, str]]) -> str:
    return "".join([f' {name}="{attr(value)}"' for name, value in attrs])


def start(tag: str, *attrs: tuple[str, str]) -> str:
    """A start tag; `tag` and attribute names are ours (never escaped), values are escaped."""
    return f"<{tag}{_attributes(attrs)}>"


def empty(tag: str, *attrs: tuple[str, str]) -> str:
    """An element without content."""
    return f"<{tag}{_attributes(attrs)}/>"


def element(tag: str, content: str, *attrs: tuple[str, str]) -> str:
    """An element holding `content` as text (escaped here)."""
    return f"<{tag}{_attributes(attrs)}>{text(content)}</{tag}>"
