"""Europe/Paris wall-clock time (what DPIs store) and instants, and how to compare them in SQL.

A naive DPI timestamp means the instant it has in Europe/Paris with `fold=0`: in the autumn
repeated hour the first (summer) occurrence, in the spring gap the offset before the change
(02:30 on the spring day is 01:30 UTC, the same instant as 03:30). That mapping is not monotonic
over wall-clock time inside the gap, so "created_at after instant T" is not always one
wall-clock comparison: `wall_clock_after` gives the exact set of wall-clock values as an interval
with at most one hole, which the SQL side binds as naive datetimes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = [
    "EARLIEST_DAY",
    "LATEST_DAY",
    "PARIS",
    "WallClockSet",
    "instant_of",
    "minus_years",
    "parse_day",
    "parse_instant",
    "shown",
    "wall_clock_after",
    "wall_clock_of",
]

PARIS = ZoneInfo("Europe/Paris")
_MICRO = dt.timedelta(microseconds=1)

# The dates a command accepts (--as-of, --from, --to): wide enough for any hospital's history,
# narrow enough that depths of up to 200 years and a day either side never leave `datetime`.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(2199, 12, 31)
_RANGE = f"dates from {EARLIEST_DAY.isoformat()} to {LATEST_DAY.isoformat()} are accepted"


def _in_range(text: str, day: dt.date) -> None:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"{text!r} is out of range: {_RANGE}")


def parse_day(text: str) -> dt.date:
    """An ISO date (YYYY-MM-DD) within the accepted range."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-11-01") from None
    _in_range(text, day)
    return day


def shown(instant: dt.datetime) -> str:
    """An instant as people read it: Paris time with its offset, e.g. 2026-12-01 22:15:00+01:00."""
    if instant.tzinfo is None:
        raise ValueError("an instant needs a time zone")
    return instant.astimezone(PARIS).isoformat(sep=" ", timespec="seconds")


def instant_of(wall: dt.datetime) -> dt.datetime:
    """The UTC instant of a naive Paris wall-clock time (fold=0)."""
    return wall.replace(tzinfo=PARIS, fold=0).astimezone(dt.UTC)


def wall_clock_of(instant: dt.datetime) -> dt.datetime:
    """The naive Paris wall-clock time of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("an instant needs a time zone")
    return instant.astimezone(PARIS).replace(tzinfo=None, fold=0)


def parse_instant(text: str, *, end_of_day: bool = False) -> dt.datetime:
    """An ISO date or date-time as an aware instant; naive values are Paris wall-clock.

    A bare date means its midnight, or the next day's midnight with `end_of_day` (so
    `--to 2024-03-10` includes the whole of that day).
    """
    value = text.strip()
    try:
        parsed = (
            dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
            if len(value) == 10
            else dt.datetime.fromisoformat(value)
        )
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date or date-time (e.g. 2024-03-10 or 2024-03-10T14:00:00+01:00)"
        ) from None
    _in_range(text, parsed.date())
    if len(value) == 10 and end_of_day:
        parsed += dt.timedelta(days=1)
    return instant_of(parsed) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def minus_years(wall: dt.datetime, years: int) -> dt.datetime:
    """`years` calendar years earlier, same time of day; 29 February becomes 28 February."""
    year = wall.year - years
    try:
        return wall.replace(year=year)
    except ValueError:  # 29 February into a common year
        return wall.replace(year=year, day=28)


def _offset(wall: dt.datetime) -> dt.timedelta:
    offset = wall.replace(tzinfo=PARIS, fold=0).utcoffset()
    assert offset is not None
    return offset


@dataclass(frozen=True, slots=True)
class WallClockSet:
    """Wall-clock values w with `w > low` (or `>=` when `low_inclusive`), minus `[hole_start, hole_end)`.

    `hole_end_inclusive` makes the hole `[hole_start, hole_end]`.
    """

    low: dt.datetime
    low_inclusive: bool
    hole_start: dt.datetime | None = None
    hole_end: dt.datetime | None = None
    hole_end_inclusive: bool = False

    def __contains__(self, wall: object) -> bool:
        assert isinstance(wall, dt.datetime)
        if wall < self.low or (wall == self.low and not self.low_inclusive):
            return False
        if self.hole_start is not None and self.hole_end is not None and wall >= self.hole_start:
            return wall > self.hole_end or (wall == self.hole_end and not self.hole_end_inclusive)
        return True


def wall_clock_after(threshold: dt.datetime, *, inclusive: bool) -> WallClockSet:
    """The wall-clock values whose instant is after `threshold` (at or after it if `inclusive`).

    Paris wall-clock is UTC plus one of two offsets. With w1 = threshold + the smaller offset and
    w2 = threshold + the larger, every w beyond w2 qualifies, none before w1 does, and in between
    (one hour) exactly those whose own offset is the smaller one: at most one change of offset
    falls in that hour, which makes the set an interval with at most one hole.
    """
    if threshold.tzinfo is None:
        raise ValueError("the threshold must be an instant")
    utc = threshold.astimezone(dt.UTC).replace(tzinfo=None)
    offsets = sorted(
        {_offset(utc + dt.timedelta(hours=h)) for h in (-48, -24, -2, -1, 0, 1, 2, 24, 48)}
    )
    small, large = offsets[0], offsets[-1]
    w1, w2 = utc + small, utc + large
    if small == large:
        return WallClockSet(w1, inclusive)
    # The middle band: (w1, w2] when strict, [w1, w2) when inclusive.
    first = w1 if inclusive else w1 + _MICRO
    last = w2 - _MICRO if inclusive else w2
    first_small, last_small = _offset(first) == small, _offset(last) == small
    if first_small and last_small:
        return WallClockSet(w1, inclusive)
    if not first_small and not last_small:
        return WallClockSet(w2, inclusive)
    change = _first_change(first, last)
    if first_small:  # summer time starts inside the band: [change, w2] is excluded
        return WallClockSet(w1, inclusive, change, w2, hole_end_inclusive=not inclusive)
    return WallClockSet(change, True)  # summer time ends inside the band


def _first_change(first: dt.datetime, last: dt.datetime) -> dt.datetime:
    """The first wall-clock value in (first, last] whose offset differs from first's."""
    start = _offset(first)
    lo, hi = 0, (last - first) // _MICRO
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(first + mid * _MICRO) == start:
            lo = mid
        else:
            hi = mid
    return first + hi * _MICRO
