"""Times in documents: Paris offset of that very instant (DST aware), XDS times in UTC."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cda.timefmt import PARIS, hl7_date, hl7_ts, to_instant, xds_dtm


@pytest.mark.parametrize(
    ("wall", "hl7", "utc"),
    [
        (dt.datetime(2024, 1, 15, 12, 0), "20240115120000+0100", "20240115110000"),
        (dt.datetime(2024, 7, 15, 12, 0), "20240715120000+0200", "20240715100000"),
        # Spring forward, 31 March 2024: 02:00 → 03:00.
        (dt.datetime(2024, 3, 31, 1, 59, 59), "20240331015959+0100", "20240331005959"),
        (dt.datetime(2024, 3, 31, 3, 0), "20240331030000+0200", "20240331010000"),
        # 02:30 never existed: read with the winter offset, written as the real wall-clock time.
        (dt.datetime(2024, 3, 31, 2, 30), "20240331033000+0200", "20240331013000"),
        # Fall back, 27 October 2024: 02:30 happens twice; the first (summer) one is meant.
        (dt.datetime(2024, 10, 27, 2, 30), "20241027023000+0200", "20241027003000"),
        (dt.datetime(2024, 10, 27, 3, 0), "20241027030000+0100", "20241027020000"),
        (dt.datetime(2024, 10, 26, 23, 0), "20241026230000+0200", "20241026210000"),
        (dt.datetime(2024, 12, 31, 23, 30), "20241231233000+0100", "20241231223000"),
    ],
)
def test_offsets_across_dst(wall: dt.datetime, hl7: str, utc: str) -> None:
    assert hl7_ts(wall) == hl7
    assert xds_dtm(wall) == utc


def test_aware_times_are_converted_not_reinterpreted() -> None:
    instant = dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC)
    assert hl7_ts(instant) == "20240701120000+0200"
    assert xds_dtm(instant) == "20240701100000"


def test_birth_dates_have_no_time() -> None:
    assert hl7_date(dt.date(1905, 2, 3)) == "19050203"


@given(st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 1, 1)))
def test_hl7_and_xds_times_name_the_same_instant(wall: dt.datetime) -> None:
    wall = wall.replace(microsecond=0)
    written = dt.datetime.strptime(hl7_ts(wall), "%Y%m%d%H%M%S%z")
    in_utc = dt.datetime.strptime(xds_dtm(wall), "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    assert written == in_utc == to_instant(wall)
    assert written.utcoffset() == written.astimezone(PARIS).utcoffset()
