"""Log redaction: no INS, NIR, name or birth trait survives into a log line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.logs import REDACTED, configure_logging, get_logger, redact_text
from cda.ins import compute_key


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_identity_keys_are_redacted_and_ids_kept(log_stream: io.StringIO) -> None:
    """Keys naming identity data lose their value; internal ids (ipp, document_id) stay."""
    get_logger("t").info(
        "document sent",
        ipp="IPP0042",
        document_id="DOC-1",
        ins="279035121518989",
        birth_family_name="DUPONT",
        given_name="Zoé",
        birth_date="1979-03-01",
        patient_id="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH",
        details={"family": "DUPONT", "count": 3},
    )
    (line,) = _lines(log_stream)
    assert line["ipp"] == "IPP0042"
    assert line["document_id"] == "DOC-1"
    for key in ("ins", "birth_family_name", "given_name", "birth_date", "patient_id"):
        assert line[key] == REDACTED
    assert line["details"] == {"family": REDACTED, "count": 3}
    assert "DUPONT" not in log_stream.getvalue()


def test_nir_in_free_text_and_tracebacks_is_masked(log_stream: io.StringIO) -> None:
    """An INS inside a message or an exception's text is masked, Corsican ones too."""
    log = get_logger("t")
    log.warning("DMP said: Patient Id 279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH unknown")
    try:
        raise ValueError("bad matricule 185052A00412356")
    except ValueError:
        log.exception("failed")
    logging.getLogger("uvicorn.error").error("peer sent 2790351215189")
    text = log_stream.getvalue()
    assert "279035121518989" not in text
    assert "185052A004123" not in text
    assert "2790351215189" not in text
    assert text.count("<NIR>") >= 3  # message, exception text (and its source line), stdlib record


def test_uvicorn_lines_carry_no_terminal_escape_codes(log_stream: io.StringIO) -> None:
    """uvicorn hands a coloured copy of its message in `extra`; a JSON line must not carry it."""
    logging.getLogger("uvicorn.error").warning(  # uvicorn sets its logger's level: warn to pass
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    (line,) = _lines(log_stream)
    assert line["event"] == "Started server process [42]"
    assert "color_message" not in line
    assert "\x1b" not in log_stream.getvalue()


@given(
    st.text(alphabet="0123456789", min_size=12, max_size=12).map(lambda s: "1" + s),
)
def test_every_valid_matricule_is_masked(body: str) -> None:
    """Property: a well-formed matricule never survives redact_text, whatever its digits."""
    matricule = body + compute_key(body)
    assert matricule not in redact_text(f"x {matricule} y")
    assert matricule not in redact_text(f"id={matricule},")


def test_long_oids_and_document_ids_are_left_alone() -> None:
    """uniqueIds (2.25.<39 digits>) and internal ids are not mistaken for NIRs."""
    text = "uniqueId 2.25.123456789012345678901234567890123456789 doc DOC000123456789012"
    assert redact_text(text) == text


def test_console_format_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal-like console format, redaction applies too."""
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    get_logger("t").info("hello", ins="279035121518989")
    assert "279035121518989" not in stream.getvalue()
    assert "hello" in stream.getvalue()
