"""Fixtures of the integration tests: an empty DPI contract on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from connectors.dpi.contract import create_contract


@pytest.fixture
def contract_engine(database) -> Iterator[sa.Engine]:
    """An engine on this test's database, holding the five empty contract tables."""
    engine = database.engine()
    create_contract(engine)
    yield engine
    engine.dispose()


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
