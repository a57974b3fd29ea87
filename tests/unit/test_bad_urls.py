"""A URL whose port is not a number is one clear line, not an internal ValueError (issue 17)."""

from __future__ import annotations

import pytest

from backfill.databases import describe_url, open_engine
from backfill.errors import ConfigError


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@h:abc/db", "sqlite://h:x/db"])
def test_a_port_that_is_not_a_number_is_named(url: str) -> None:
    with pytest.raises(ConfigError, match="port must be a number"):
        open_engine(url, "DPI")
    assert describe_url(url) == "<unparseable URL>"
