"""Times as the documents write them: HL7 TS with the Europe/Paris offset, XDS DTM in UTC.

DPIs store naive Europe/Paris wall-clock times. A naive time is read with fold=0: in the autumn
hour that happens twice the first (summer) one is meant, and a spring time that never existed
is read with the winter offset, then written as the real wall-clock time of that instant.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

__all__ = ["PARIS", "hl7_date", "hl7_ts", "to_instant", "xds_dtm"]

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC


def to_instant(value: dt.datetime) -> dt.datetime:
    """The UTC instant of a naive Paris wall-clock time (an aware time is just converted)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=PARIS, fold=0)
    return value.astimezone(UTC)


def hl7_ts(value: dt.datetime) -> str:
    """`YYYYMMDDhhmmss+ZZZZ`: Paris wall-clock time with its offset at that instant."""
    local = to_instant(value).astimezone(PARIS)
    offset = local.utcoffset() or dt.timedelta(0)
    minutes = (offset.days * 86400 + offset.seconds) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    # %-formatting: a few times faster than strftime, and the builder writes ~10 times per document.
    return "%04d%02d%02d%02d%02d%02d%s%02d%02d" % (  # noqa: UP031
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.second,
        sign,
        minutes // 60,
        minutes % 60,
    )


def hl7_date(value: dt.date) -> str:
    """`YYYYMMDD` (a birth date has no time and no offset)."""
    return value.strftime("%Y%m%d")


def xds_dtm(value: dt.datetime) -> str:
    """XDS DTM `YYYYMMDDhhmmss` in UTC."""
    utc = to_instant(value)
    return "%04d%02d%02d%02d%02d%02d" % (  # noqa: UP031
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
    )
