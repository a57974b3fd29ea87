"""The DMP client's sockets and connection pool: httpx's transport on asyncio's own transports.

httpx's async client reaches the network through httpcore, whose default backend goes through
anyio: every read and write enters a cancel scope and yields to the loop once more, and before
each request the pool asks every idle connection whether it is readable, a `poll()` system call
each (0.83 ms of the client's CPU per POST to the mock, against 0.71 here). `AsyncioBackend`
reads and writes through an asyncio protocol instead: a read returns what has arrived and waits
only when nothing has; a connection the server closed is known from the loop's own callback,
without a system call. `AsyncioTransport` keeps httpcore's HTTP/1.1 connection but pools the
connections itself (see its docstring for why).

    transport = AsyncioTransport(verify=context, limits=httpx.Limits(…))   # for httpx
    http = httpx.AsyncClient(transport=transport, timeout=…)

Errors are httpx's `TransportError`s, raised from httpcore's (`ConnectError`, `ReadError`,
`WriteError`, their timeouts), each raised while handling the OS or TLS error that caused it, so
the client's reading of a refused handshake (`client._tls_failure`) finds the TLS reason. (Over
anyio, the default, an alert read after the handshake escaped httpx as a bare `ssl.SSLError`: a
refused client certificate raised out of the async client.)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, NoReturn

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

# Reading pauses while this much has arrived unread (answers are small; a bound all the same).
_HIGH_WATER = 1 << 20
# Writes are held until the answer is read, or until this much is held (a large set's body).
_WRITE_AT = 1 << 18

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
        # httpcore writes a request's head and its body apart: held until the request is read
        # back (or grows large), they leave in one system call, and reach the server as one.
        self._held: list[bytes] = []
        self._held_size = 0
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            await self._flush()
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
        self._held.append(buffer)
        self._held_size += len(buffer)
        self._write_timeout = timeout
        if self._held_size >= _WRITE_AT:
            await self._flush()

    async def _flush(self) -> None:
        held, self._held, self._held_size = self._held, [], 0
        receiver = self._receiver
        if receiver.ended or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.writelines(held)
        if receiver.writing_paused:
            await _wait(receiver.drain(), self._write_timeout, httpcore.WriteTimeout)
        if receiver.error is not None:
            _fail(httpcore.WriteError, receiver.error)

    async def aclose(self) -> None:
        self._held, self._held_size = [], 0
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


# httpcore's errors as httpx's, by the nearest class (what httpx's own transport does).
_HTTPX_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
}


def _httpx_error(exc: Exception) -> type[httpx.TransportError] | None:
    for kind in type(exc).__mro__:
        if (mapped := _HTTPX_ERRORS.get(kind)) is not None:
            return mapped
    return None


_Key = tuple[bytes, bytes, int]


class AsyncioTransport(httpx.AsyncBaseTransport):
    """httpx's transport for the DMP: HTTP/1.1 as httpcore speaks it, over `AsyncioBackend`, in a
    connection pool of its own.

    httpcore's pool, under the sender's eight requests in flight, cost more of the event loop
    than the HTTP itself: it walks every connection and every queued request each time one
    starts or ends (`bench/send.py`). Here a request takes a slot (at most `max_connections`,
    waiting `pool` seconds at most), the last idle connection to its server that is still open
    (a connection the server closed is known from the loop's callbacks), or a new one, and gives
    both back when its answer is closed. Errors are httpx's, each raised from httpcore's, which
    was raised from the OS or TLS error (the client reads a refused handshake from that chain).
    A client given this transport no longer reads proxies from the environment:
    `backfill.dmp_session` keeps httpx's transports when one applies.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext,
        limits: httpx.Limits,
        backend: AsyncNetworkBackend | None = None,
    ) -> None:
        verify.set_alpn_protocols(["http/1.1"])  # as httpcore does to the context it is given
        self._tls = verify
        self._backend = backend or AsyncioBackend()
        self._keep = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._slots = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None
        self._idle: dict[_Key, list[httpcore.AsyncHTTP11Connection]] = {}
        self._closed = False

    @property
    def idle_connections(self) -> list[httpcore.AsyncHTTP11Connection]:
        """The connections kept alive for a next request, every server's."""
        return [c for idle in self._idle.values() for c in idle]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"no {url.scheme!r} here (http, https)", request=request
            )
        if self._closed:
            raise RuntimeError("the DMP transport is closed")
        timeouts = request.extensions.get("timeout", {})
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.raw_scheme, url.raw_host, port)
        await self._take_slot(timeouts.get("pool"), request)
        connection: httpcore.AsyncHTTP11Connection | None = None
        try:
            connection = await self._connection(key, request, timeouts.get("connect"))
            answer = await connection.handle_async_request(
                httpcore.Request(
                    method=request.method,
                    url=httpcore.URL(
                        scheme=url.raw_scheme, host=url.raw_host, port=port, target=url.raw_path
                    ),
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=request.extensions,
                )
            )
        except BaseException as exc:
            if connection is not None:
                await connection.aclose()
            self._give_slot()
            mapped = _httpx_error(exc) if isinstance(exc, Exception) else None
            if mapped is None:
                raise
            raise mapped(str(exc), request=request) from exc
        assert isinstance(answer.stream, AsyncIterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Answer(self, key, connection, answer.stream, request),
            extensions=answer.extensions,
        )

    async def _take_slot(self, timeout: float | None, request: httpx.Request) -> None:
        if self._slots is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                f"no connection to the DMP free in {timeout} s", request=request
            ) from None

    def _give_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _connection(
        self, key: _Key, request: httpx.Request, timeout: float | None
    ) -> httpcore.AsyncHTTP11Connection:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()  # the last one back: the most likely to be still open
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        scheme, host, port = key
        stream = await self._backend.connect_tcp(host.decode("ascii"), port, timeout=timeout)
        if scheme == b"https":
            server_name = request.extensions.get("sni_hostname") or host.decode("ascii")
            stream = await stream.start_tls(self._tls, server_hostname=server_name, timeout=timeout)
        return httpcore.AsyncHTTP11Connection(
            httpcore.Origin(scheme, host, port), stream, keepalive_expiry=self._expiry
        )

    async def _returned(self, key: _Key, connection: httpcore.AsyncHTTP11Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if (
            connection.is_idle()
            and not self._closed
            and (self._keep is None or len(idle) < self._keep)
        ):
            idle.append(connection)
        else:
            await connection.aclose()
        self._give_slot()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connection in (c for kept in idle.values() for c in kept):
            await connection.aclose()


class _Answer(httpx.AsyncByteStream):
    """An answer's body; once closed (read to its end or not), its connection and slot go back."""

    def __init__(
        self,
        transport: AsyncioTransport,
        key: _Key,
        connection: httpcore.AsyncHTTP11Connection,
        stream: AsyncIterable[bytes],
        request: httpx.Request,
    ) -> None:
        self._transport, self._key, self._connection = transport, key, connection
        self._stream, self._request = stream, request
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped(str(exc), request=self._request) from exc

    async def aclose(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            closing = getattr(self._stream, "aclose", None)
            if closing is not None:
                await closing()  # httpcore makes the connection idle, or closes it
        finally:
            await self._transport._returned(self._key, self._connection)
