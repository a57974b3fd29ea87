"""Fixtures of the integration tests: an empty DPI contract on each backend, a ledger whose clock
stands still with a run started on it, a client on a mock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from backfill.ledger import Ledger
from connectors.dpi.contract import create_contract
from tests.integration.ledger_support import NOW


@pytest.fixture
def contract_engine(database) -> Iterator[sa.Engine]:
    """An engine on this test's database, holding the five empty contract tables."""
    engine = database.engine()
    create_contract(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(database) -> Iterator[Ledger]:
    """A new ledger on this test's database, its clock at `ledger_support.NOW`."""
    with Ledger.open(database.url, clock=lambda: NOW) as ledger:
        yield ledger


@pytest.fixture
def run(ledger: Ledger) -> int:
    return ledger.start_run(mode="run", rule_name="history-5y", rule_digest="x", as_of=NOW)


# For mock test modules that define a module-scoped `mock` server: a client on it, reset per test,
# and its ITI-41 door.
@pytest.fixture
def client(mock):
    with httpx.Client(base_url=mock.base_url, timeout=10) as http:
        assert http.post("/_mock/reset").status_code == 200
        yield http


@pytest.fixture
def url(mock) -> str:
    return mock.repository_url
