"""The root of every connector's exceptions.

    ConnectorError
     ├── connectors.dmp.errors.DmpWireError          a message we cannot read or whose metadata break a rule
     └── connectors.dpi.synthetic.errors.GenerationError

Whether to try again is never a property of an exception: what the DMP answers (and what the
network does) comes back from the DMP client as a value, `connectors.dmp.client.OutcomeKind`,
and the engine decides on that value. One vocabulary, so there are no retry markers here.
"""

from __future__ import annotations

__all__ = ["ConnectorError"]


class ConnectorError(Exception):
    """Root of the connectors' errors; the engine translates them where it catches them."""
