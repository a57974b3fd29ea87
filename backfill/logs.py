"""Logging for cron and for terminals, with personal data kept out of every line.

`configure_logging()` sets structlog (and the standard library's loggers, so uvicorn and
SQLAlchemy lines pass through the same processors) to write JSON lines to stderr when stderr is
not a terminal, and readable lines when it is. Standard output stays free for reports.

Privacy (DESIGN §12): `redact_personal_data` runs on every event, after exceptions have been
formatted. It replaces the value of any key that names identity data (INS, NIR, names, birth
traits, patient ids in CX form) and masks anything shaped like a NIR/NIA in any text, the event
message and tracebacks included. Logs may carry internal ids: ipp, document_id, run id.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact_personal_data", "redact_text"]

REDACTED = "<redacted>"

# Key tokens that name identity data; a key is split on "_" and "-" and any token matching wins.
_SENSITIVE_TOKENS = frozenset(
    {
        "ins",
        "nir",
        "nia",
        "matricule",
        "name",
        "names",
        "given",
        "family",
        "birth",
        "birthdate",
        "dob",
        "patientid",
        "traits",
        "resource",
    }
)
_SENSITIVE_KEYS = frozenset({"patient_id", "source_patient_id", "resource_id", "cx"})

# 13 or 15 characters shaped like a NIR/NIA (Corsica included), not glued to other digits/letters.
_NIR_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}(?:[0-9]{2})?(?![0-9])")


def redact_text(text: str) -> str:
    """Mask every NIR/NIA-shaped run in free text."""
    return _NIR_LIKE.sub("<NIR>", text)


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    if lowered in _SENSITIVE_KEYS:
        return True
    return any(token in _SENSITIVE_TOKENS for token in re.split(r"[_\-.]", lowered))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_sensitive(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact_text(str(value))


def redact_personal_data(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no INS, NIR, name or birth trait leaves in a log line."""
    for key in list(event_dict):
        if _is_sensitive(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _drop_terminal_colours(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """uvicorn passes a copy of its message with ANSI colour codes (`color_message`) in `extra`:
    escape codes have no place in a JSON line, and the plain `event` says the same."""
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to `stream` (stderr), JSON or console per `fmt`."""
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_terminal_colours, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries speak at WARNING unless the user asked for DEBUG.
    for noisy in ("sqlalchemy", "httpx", "httpcore", "uvicorn.access", "saxonche"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # SQLAlchemy's statement log carries the bound parameters (names, INS, birth dates) in shapes
    # no redaction rule can recognise: it stays off at every level.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
