"""Serving the mock DMP with uvicorn: in the foreground (`backfill mock-dmp`) or in a background
thread (`MockServer`, for tests, the demo and benchmarks), plain HTTP or mutual TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from connectors.dmp.client import REPOSITORY_PATH, SERVICES_PATH
from connectors.dmp_mock.app import MockConfig, create_app

__all__ = ["MockServer", "TlsFiles", "uvicorn_config"]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None
    """When set, clients must present a certificate signed by this CA (mutual TLS)."""


class _HeldWrites:
    """A connection's transport whose writes of one loop turn leave together.

    uvicorn writes an answer's status line and headers, then its body: two system calls, and
    two segments for the client to wake up for. Held until the loop's next turn (the ASGI app
    sends both without yielding), they go out in one `writelines`."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.append(data)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.writelines(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HttpToolsHeld(HttpToolsProtocol):
    """uvicorn's httptools protocol over `_HeldWrites`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_HeldWrites(transport))  # type: ignore[arg-type]


def uvicorn_config(
    config: MockConfig,
    host: str,
    port: int,
    tls: TlsFiles | None = None,
    log_level: str = "warning",
) -> uvicorn.Config:
    options: dict[str, object] = {}
    if tls is not None:
        options = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
        if tls.client_ca is not None:
            options |= {"ssl_ca_certs": str(tls.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    # proxy_headers off: the client address is the socket peer, never an X-Forwarded-For header
    # (the control plane trusts loopback peers). log_config None: uvicorn's lines go to the
    # root logger, which the engine's logging renders and redacts like its own.
    return uvicorn.Config(
        create_app(config), host=host, port=port, log_level=log_level, access_log=False,
        lifespan="off", timeout_graceful_shutdown=2, proxy_headers=False, forwarded_allow_ips="",
        http=_HttpToolsHeld,
        log_config=None, **options,  # type: ignore[arg-type]
    )  # fmt: skip


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        self.ready.set()


class MockServer:
    """The mock DMP on a real TCP socket in a background thread; a free port unless given.

    with MockServer(MockConfig()) as mock:
        DmpClient(mock.services_url, …)      # or httpx.post(mock.repository_url, …)
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsFiles | None = None,
    ) -> None:
        self._server = _Server(uvicorn_config(config or MockConfig(), host, port, tls))
        self._thread = threading.Thread(target=self._server.run, name="mock-dmp", daemon=True)
        self.host = host
        self.scheme = "https" if tls else "http"
        self.port = port

    @property
    def app(self):  # type: ignore[no-untyped-def]
        return self._server.config.app

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def services_url(self) -> str:
        """What `dmp.url` is set to for this mock: the services base (the client adds the door)."""
        return self.base_url + SERVICES_PATH

    @property
    def repository_url(self) -> str:
        return self.base_url + REPOSITORY_PATH

    def __enter__(self) -> MockServer:
        self._thread.start()
        if not self._server.ready.wait(timeout=30) or not self._server.started:
            raise RuntimeError("the mock DMP did not start (port taken? bad TLS files?)")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
