"""The DMP client's sockets: httpcore's network backend on asyncio's own transports.

httpx's async client reaches the network through httpcore, whose default backend goes through
anyio: every read and write enters a cancel scope and yields to the loop once more, and before
each request the pool asks every idle connection whether it is readable, a `poll()` system call
each (0.83 ms of the client's CPU per POST to the mock, against 0.71 here). This backend reads and writes through an asyncio protocol instead: a read
returns what has arrived and waits only when nothing has; a connection the server closed is known
from the loop's own callback, without a system call.

    pool = httpcore.AsyncConnectionPool(ssl_context=…, network_backend=AsyncioBackend())
    transport = asyncio_transport(verify=context, limits=httpx.Limits(…))   # for httpx

Errors are httpcore's (`ConnectError`, `ReadError`, `WriteError`, their timeouts), each raised
while handling the OS or TLS error that caused it, so that httpx maps every one to its
`TransportError`s and the client's reading of a refused handshake (`client._tls_failure`) finds
the TLS reason. (Over anyio, the default, an alert read after the handshake escaped httpx as a
bare `ssl.SSLError`: a refused client certificate raised out of the async client.)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any, NoReturn

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

# Reading pauses while this much has arrived unread (answers are small; a bound all the same).
_HIGH_WATER = 1 << 20

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _Receiver(asyncio.Protocol):
    """What the loop tells us of one connection: bytes arrived, end of stream, writes paused."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        self.error: BaseException | None = None
        self.writing_paused = False
        self.reading_paused = False
        self._arrived: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        _wake(self._arrived)

    def eof_received(self) -> bool:
        self.ended = True
        _wake(self._arrived)
        return False  # close our side as well: HTTP/1.1 has no half-open use here

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.writing_paused = False
        _wake(self._arrived)
        _wake(self._drained)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self._drained)

    def arrival(self) -> asyncio.Future[None]:
        self._arrived = asyncio.get_running_loop().create_future()
        return self._arrived

    def drain(self) -> asyncio.Future[None]:
        self._drained = asyncio.get_running_loop().create_future()
        return self._drained


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _fail(kind: type[Exception], error: BaseException) -> NoReturn:
    """Raise `kind` for `error` while handling it. httpcore's pool re-raises its errors `from
    None`, which drops a cause but keeps the context: the client reads a refused TLS handshake
    (the peer's alert, delivered at the first read) from there, as with httpcore's own backends."""
    try:
        raise error
    except BaseException as exc:
        raise kind(str(exc) or type(exc).__name__) from exc


async def _wait(waiter: asyncio.Future[None], timeout: float | None, late: type[Exception]) -> None:
    try:
        async with asyncio.timeout(timeout):
            await waiter
    except TimeoutError as exc:
        raise late(f"no progress in {timeout} s") from exc


class AsyncioStream(AsyncNetworkStream):
    """One connection (plain or TLS) as httpcore reads and writes it."""

    def __init__(self, transport: asyncio.Transport, receiver: _Receiver) -> None:
        self._transport = transport
        self._receiver = receiver

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        receiver = self._receiver
        if not receiver.buffer and not receiver.ended:
            await _wait(receiver.arrival(), timeout, httpcore.ReadTimeout)
        if receiver.buffer:
            data = bytes(receiver.buffer[:max_bytes])
            del receiver.buffer[:max_bytes]
            if receiver.reading_paused and len(receiver.buffer) <= _HIGH_WATER:
                receiver.reading_paused = False
                if not receiver.ended:
                    self._transport.resume_reading()
            return data
        if receiver.error is not None:
            _fail(httpcore.ReadError, receiver.error)
        return b""  # the server closed the connection: httpcore reads this as a disconnect

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        receiver = self._receiver
        if receiver.error is not None:
            _fail(httpcore.WriteError, receiver.error)
        if receiver.ended or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if receiver.writing_paused:
            await _wait(receiver.drain(), timeout, httpcore.WriteTimeout)
        if receiver.error is not None:
            _fail(httpcore.WriteError, receiver.error)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._receiver, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake not done in {timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:  # the peer went away during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._receiver.transport = transport
        return AsyncioStream(transport, self._receiver)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Idle and readable means the server closed it (or spoke out of turn): the pool
            # then drops the connection. Known from the loop's callbacks, no system call.
            return bool(self._receiver.buffer) or self._receiver.ended
        name = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }.get(info)
        return None if name is None else self._transport.get_extra_info(name)


class AsyncioBackend(AsyncNetworkBackend):
    """httpcore's network backend over the running asyncio loop (uvloop's or the standard one)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        receiver = _Receiver()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: receiver,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection to {host}:{port} in {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, receiver)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def asyncio_transport(*, verify: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport whose connection pool runs on `AsyncioBackend`.

    httpx takes no network backend, so its pool is replaced by one with the same settings and
    ours (`tests/integration/test_dmp_sockets.py` checks the requests go through it). A client
    given this transport no longer reads proxies from the environment: `backfill.dmp_session`
    keeps httpx's transports when one applies.
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=verify,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend(),
    )
    return transport
