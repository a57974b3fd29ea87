"""Paris wall-clock and instants: the SQL-side wall-clock sets agree with converting every value."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from backfill.selection.paris_time import (
    instant_of,
    minus_years,
    parse_instant,
    wall_clock_after,
    wall_clock_of,
)


def _last_sunday(year: int, month: int) -> dt.date:
    day = dt.date(year, month, 31)
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


@st.composite
def near_changes(draw: st.DrawFn) -> dt.datetime:
    """A naive wall-clock value within three hours of 02:00 on a day the clocks change (or not)."""
    year = draw(st.integers(1990, 2045))
    month = draw(st.sampled_from([3, 10, 6]))
    day = _last_sunday(year, month) if month != 6 else dt.date(year, 6, 15)
    seconds = draw(
        st.one_of(
            st.integers(-3 * 3600, 3 * 3600),
            st.sampled_from([-1, 0, 1, 3599, 3600, 3601, 7199, 7200]),
        )
    )
    micro = draw(st.sampled_from([0, 0, 1, 999_999]))
    return dt.datetime.combine(day, dt.time(2)) + dt.timedelta(seconds=seconds, microseconds=micro)


@given(wall=near_changes(), threshold_wall=near_changes(), shift=st.integers(-7200, 7200))
@example(dt.datetime(2024, 3, 31, 3, 15), dt.datetime(2024, 3, 31, 2, 30), 0)
@example(dt.datetime(2024, 3, 31, 2, 45), dt.datetime(2024, 3, 31, 3, 30), 0)
@example(dt.datetime(2024, 10, 27, 2, 30), dt.datetime(2024, 10, 27, 2, 15), 3600)
def test_wall_clock_sets_match_instants(
    wall: dt.datetime, threshold_wall: dt.datetime, shift: int
) -> None:
    threshold = instant_of(threshold_wall) + dt.timedelta(seconds=shift)
    strict = wall_clock_after(threshold, inclusive=False)
    inclusive = wall_clock_after(threshold, inclusive=True)
    assert (wall in strict) == (instant_of(wall) > threshold)
    assert (wall in inclusive) == (instant_of(wall) >= threshold)


def test_spring_gap_is_a_hole() -> None:
    # 02:30 on the spring day does not exist; fold=0 reads it as 01:30 UTC, like 03:30.
    threshold = instant_of(dt.datetime(2024, 3, 31, 2, 30))
    assert threshold == dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC)
    kept = wall_clock_after(threshold, inclusive=True)
    assert dt.datetime(2024, 3, 31, 2, 45) in kept
    assert dt.datetime(2024, 3, 31, 3, 15) not in kept
    assert dt.datetime(2024, 3, 31, 3, 30) in kept


def test_autumn_fold_first_occurrence() -> None:
    assert instant_of(dt.datetime(2024, 10, 27, 2, 30)) == dt.datetime(
        2024, 10, 27, 0, 30, tzinfo=dt.UTC
    )
    assert wall_clock_of(dt.datetime(2024, 10, 27, 1, 30, tzinfo=dt.UTC)) == dt.datetime(
        2024, 10, 27, 2, 30
    )


@pytest.mark.parametrize(
    ("wall", "years", "expected"),
    [
        (dt.datetime(2024, 2, 29, 13, 5), 5, dt.datetime(2019, 2, 28, 13, 5)),
        (dt.datetime(2024, 2, 29, 13, 5), 4, dt.datetime(2020, 2, 29, 13, 5)),
        (dt.datetime(2026, 11, 23, 0, 0, 1), 20, dt.datetime(2006, 11, 23, 0, 0, 1)),
        (dt.datetime(2026, 3, 1), 0, dt.datetime(2026, 3, 1)),
    ],
)
def test_minus_years(wall: dt.datetime, years: int, expected: dt.datetime) -> None:
    assert minus_years(wall, years) == expected


def test_parse_instant() -> None:
    assert parse_instant("2024-07-01T12:00:00") == dt.datetime(2024, 7, 1, 10, tzinfo=dt.UTC)
    assert parse_instant("2024-07-01T12:00:00Z") == dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC)
    assert parse_instant("2024-01-10") == dt.datetime(2024, 1, 9, 23, tzinfo=dt.UTC)
    assert parse_instant("2024-01-10", end_of_day=True) == dt.datetime(
        2024, 1, 10, 23, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="not an ISO date"):
        parse_instant("tomorrow")
