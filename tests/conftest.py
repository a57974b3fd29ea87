"""Fixtures every test layer shares: databases (SQLite and PostgreSQL), the shared schemas, the CLI.

Database tests take the `db_url` fixture and run once per backend. PostgreSQL runs when
BACKFILL_TEST_PG_URL is set (CI sets it) and then *fails* if the server is unreachable; each test
gets a schema of its own, so tests run in parallel and leave nothing behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cda.schematron import CACHE_DIR_ENV
from cda.specs import SHARED_DIR_ENV, SpecPaths, find_specs

PG_ENV = "BACKFILL_TEST_PG_URL"
BACKENDS = ("sqlite", "postgresql")
CHECKOUT = Path(__file__).resolve().parents[1]

# The schemas where the Makefile points (a bare `pytest` in a checkout finds them too), and every
# cache the tests make inside the checkout, never under the user's home.
os.environ.setdefault(SHARED_DIR_ENV, str(CHECKOUT.parent / "shared"))
os.environ.setdefault(CACHE_DIR_ENV, str(CHECKOUT / ".pytest_cache" / "dmp-backfill"))


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis: deterministic in CI so a failure reproduces; examples stay small on 2 cores.
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        derandomize=True,
        deadline=None,
        max_examples=60,
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
    )
    settings.register_profile("dev", deadline=None, max_examples=60, print_blob=True)
    settings.load_profile(
        "ci" if os.environ.get(PG_ENV) else os.environ.get("HYPOTHESIS_PROFILE", "dev")
    )


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (CI sets it)")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {exc}", pytrace=False)
    finally:
        engine.dispose()
    return url


@dataclass(frozen=True)
class Database:
    """One empty database for one test: its URL and backend name."""

    url: str
    backend: str

    def engine(self, **kwargs: object) -> sa.Engine:
        return sa.create_engine(self.url, **kwargs)


def _pg_schema_url(admin_url: str, schema: str) -> str:
    url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def postgresql_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    admin_url = request.getfixturevalue("pg_admin_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Database(_pg_schema_url(admin_url, schema), "postgresql")
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'test.sqlite'}", "sqlite")


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Database:
    """An empty database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_database")


@pytest.fixture(scope="session")
def specs() -> SpecPaths:
    """The official CDA/XDS schemas (../shared). Missing is a failure, not a skip."""
    try:
        return find_specs()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


# ---- a summary line that counts database tests per backend -------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = dict.fromkeys(BACKENDS, 0)
    for report in terminalreporter.stats.get("passed", []):
        for backend in BACKENDS:
            # The `database` fixture's ids: exactly `sqlite` / `postgresql` among the params.
            params = report.nodeid.rpartition("[")[2].rstrip("]").split("-")
            if backend in params:
                counts[backend] += 1
                break
    terminalreporter.write_sep(
        "-",
        f"database tests passed: {counts['sqlite']} on SQLite, {counts['postgresql']} on PostgreSQL",
    )
