"""`--until HH:MM`: the next such Europe/Paris wall-clock time, whatever the day (DST included)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.errors import ConfigError
from backfill.pipeline import until_instant
from backfill.selection.paris_time import PARIS

nows = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),
    max_value=dt.datetime(2035, 12, 31),
    timezones=st.just(dt.UTC),
)
clocks = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@given(now=nows, clock=clocks)
def test_the_next_paris_time_of_that_clock_after_now(now: dt.datetime, clock: dt.time) -> None:
    until = until_instant(clock.strftime("%H:%M"), now)
    assert until > now
    # At most a day and the hour a DST change adds away.
    assert until - now <= dt.timedelta(hours=25)
    local = until.astimezone(PARIS)
    if local.time() != clock:  # only a clock time a spring-forward night skips may move
        assert clock.hour == 2
        assert local.month == 3


def test_later_today_or_tomorrow() -> None:
    now = dt.datetime(2026, 12, 2, 5, 0, tzinfo=dt.UTC)  # 06:00 in Paris
    assert until_instant("07:30", now) == dt.datetime(2026, 12, 2, 6, 30, tzinfo=dt.UTC)
    assert until_instant("06:00", now) == dt.datetime(2026, 12, 3, 5, 0, tzinfo=dt.UTC)
    assert until_instant(" 05:59 ", now) == dt.datetime(2026, 12, 3, 4, 59, tzinfo=dt.UTC)


@pytest.mark.parametrize("text", ["7h30", "25:00", "", "tomorrow"])
def test_a_malformed_until_names_the_option_and_the_format(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--until .*expected HH:MM \(Europe/Paris time\)"):
        until_instant(text, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
