"""Inputs checked at the edge: dates in range, URLs that hide secrets, drivers named, rule paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.config import EstablishmentSettings
from backfill.databases import describe_url, require_driver
from backfill.errors import ConfigError, RuleError
from backfill.selection.paris_time import EARLIEST_DAY, LATEST_DAY, parse_day, parse_instant, shown
from backfill.selection.rules import load_rule

outside = st.one_of(
    st.dates(max_value=EARLIEST_DAY - dt.timedelta(days=1)),
    st.dates(min_value=LATEST_DAY + dt.timedelta(days=1)),
)


@given(outside)
def test_a_date_outside_the_range_is_refused_with_the_range(day: dt.date) -> None:
    text = day.isoformat()
    for parse in (parse_day, parse_instant, lambda t: parse_instant(t, end_of_day=True)):
        with pytest.raises(ValueError, match="dates from 1900-01-01 to 2199-12-31 are accepted"):
            parse(text)
    with pytest.raises(ValueError, match="accepted"):
        parse_instant(f"{text}T23:59:59+14:00")


@given(st.dates(min_value=EARLIEST_DAY, max_value=LATEST_DAY))
def test_every_date_in_the_range_parses_whole_day_included(day: dt.date) -> None:
    assert parse_day(day.isoformat()) == day
    start = parse_instant(day.isoformat())
    end = parse_instant(day.isoformat(), end_of_day=True)
    assert end > start


def test_not_a_date_is_not_called_out_of_range() -> None:
    with pytest.raises(ValueError, match="is not a date like"):
        parse_day("2024-02-30")
    with pytest.raises(ValueError, match="is not an ISO date"):
        parse_instant("2024-02-30")


def test_times_for_people_are_paris_time_with_the_offset() -> None:
    assert shown(dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)) == "2026-07-01 12:00:00+02:00"
    assert shown(dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)) == "2026-12-01 11:00:00+01:00"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@h/db?password=s3cret",
        "postgresql+psycopg://u@h/db?sslmode=require&PASSWORD=s3cret",
        "mssql+pyodbc://u@h/db?driver=ODBC+Driver+18&pwd=s3cret",
        "postgresql+psycopg://u:s3cret@h/db",
    ],
)
def test_describe_url_hides_a_password_wherever_the_url_puts_it(url: str) -> None:
    shown_url = describe_url(url)
    assert "s3cret" not in shown_url
    assert "***" in shown_url


@pytest.mark.parametrize(
    ("url", "package", "advice"),
    [
        ("oracle+oracledb://u:pw@h/x", "oracledb", "pip install 'dmp-backfill[oracle]'"),
        ("oracle://u@h/x", "oracledb", "pip install 'dmp-backfill[oracle]'"),
        ("mssql+pyodbc://u@h/x", "pyodbc", "pip install 'dmp-backfill[mssql]'"),
        ("mssql+pymssql://u@h/x", "pymssql", "pip install 'dmp-backfill[mssql]'"),
        ("mysql://u@h/x", "mysqlclient", "ships no extra"),
    ],
)
def test_a_missing_driver_is_named_with_what_installs_it(
    url: str, package: str, advice: str
) -> None:
    try:
        __import__({"oracledb": "oracledb", "mysqlclient": "MySQLdb"}.get(package, package))
    except ImportError:
        pass
    else:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(ConfigError) as caught:
        require_driver(url, "DPI")
    message = str(caught.value)
    assert f"needs the Python driver {package}" in message
    assert advice in message
    assert ":pw@" not in message


def test_an_installed_driver_passes() -> None:
    require_driver("sqlite:///x.sqlite", "DPI")
    require_driver("postgresql+psycopg://u@h/x", "DPI")


def test_a_rule_path_that_is_a_folder_or_a_device_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="is a folder, not a rule file"):
        load_rule(tmp_path)
    with pytest.raises(RuleError, match="not a regular file"):
        load_rule("/dev/null")
    with pytest.raises(RuleError, match="no such rule file"):
        load_rule(tmp_path / "absent.toml")


def test_facility_type_code_is_checked_against_jdv_j02() -> None:
    assert EstablishmentSettings(facility_type_code="SA03").facility_type_code == "SA03"
    with pytest.raises(ValueError, match="JDV_J02"):
        EstablishmentSettings(facility_type_code="XYZ")
