"""Fixtures of the integration tests: an empty DPI contract on each backend."""

from __future__ import annotations

from collections.abc import Iterator

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
