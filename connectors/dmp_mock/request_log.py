"""One log event per request the mock DMP serves: method, path, status, outcome code, duration.

Never identities: no query string, no header, no body; the outcome is the IHE code or the
mock's own word (`throttled`, `outage`, …) that `/_mock/stats` counts. Lines go through the
standard `logging` module ("dmp_mock.request"), so the engine's structlog configuration (JSON or
console, with its redaction) renders them like every other line.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

__all__ = ["RequestLog", "note_outcome"]

log = logging.getLogger("dmp_mock.request")
_outcome: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "dmp_mock_outcome", default=None
)


def note_outcome(outcome: str) -> None:
    """Record what the request being served came to (the last note wins)."""
    holder = _outcome.get()
    if holder is not None:
        holder.append(outcome)


class RequestLog:
    """ASGI middleware: logs each HTTP request once it is answered (or failed)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what the server answers when the app fails before starting a response
        holder: list[str] = []
        token = _outcome.set(holder)

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _outcome.reset(token)
            log.info(
                "mock.request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status[0],
                    "outcome": holder[-1] if holder else None,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
