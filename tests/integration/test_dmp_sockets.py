"""The async client's sockets (`connectors.dmp.sockets`) over real TCP: what httpx's own backend
did, they do: keep-alive, a connection the server closed is not reused, large bodies either way
are whole, and the network's failures reach the client as the httpx errors it classifies."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest

from backfill.config import load_settings
from backfill.dmp_session import async_dmp_client
from connectors.dmp.client import OutcomeKind
from connectors.dmp.sockets import AsyncioBackend, AsyncioTransport
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from tests.integration.mock_dmp_support import by_patient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    return await reader.readexactly(length)


def answer(body: bytes, *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), connection, body)


def client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    transport = AsyncioTransport(verify=ssl.create_default_context(), limits=limits)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(10))


@pytest.fixture
def connects(monkeypatch) -> list[tuple[str, int]]:
    """Every connection the backend opens, so a test can see the requests went through it."""
    opened: list[tuple[str, int]] = []
    connect = AsyncioBackend.connect_tcp

    async def counting(self, host, port, *args, **kwargs):
        opened.append((host, port))
        return await connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", counting)
    return opened


def test_the_sender_submits_to_the_mock_over_one_kept_alive_connection(
    connects, tmp_path, monkeypatch
) -> None:
    documents = by_patient()["IPP000456"]
    monkeypatch.chdir(tmp_path)
    with MockServer(MockConfig()) as mock:
        monkeypatch.setenv("BACKFILL_DMP_URL", mock.services_url)
        settings = load_settings()

        async def run() -> list[OutcomeKind]:
            async with async_dmp_client(settings) as dmp:
                return [
                    (await dmp.submit(d.entry.patient_id, [(d.entry, d.xml)],
                                      content_type=d.content_type)).kind
                    for d in documents
                ]  # fmt: skip

        kinds = asyncio.run(run())
    assert kinds == [OutcomeKind.DONE] * len(documents)
    assert len(connects) == 1  # one after the other: the same connection each time


@pytest.mark.parametrize("bypass", [False, True], ids=["proxied", "no_proxy"])
def test_a_proxy_from_the_environment_is_still_honoured(
    bypass: bool, connects, tmp_path, monkeypatch
) -> None:
    """Behind `HTTP(S)_PROXY` the sender keeps httpx's transports (which read it); here the
    proxy refuses connections, so a request that went to it fails, one that did not succeeds."""
    document = by_patient()["IPP000456"][0]
    monkeypatch.chdir(tmp_path)
    with MockServer(MockConfig()) as mock:
        monkeypatch.setenv("BACKFILL_DMP_URL", mock.services_url)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        if bypass:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        settings = load_settings()

        async def run() -> OutcomeKind:
            async with async_dmp_client(settings) as dmp:
                return (await dmp.submit(document.entry.patient_id,
                                         [(document.entry, document.xml)],
                                         content_type=document.content_type)).kind  # fmt: skip

        kind = asyncio.run(run())
    assert kind is (OutcomeKind.DONE if bypass else OutcomeKind.TRANSIENT)
    assert len(connects) == (1 if bypass else 0)


def test_a_connection_the_server_closed_is_not_reused(connects) -> None:
    served: list[int] = []

    async def one_answer_then_close(reader, writer) -> None:
        await read_request(reader)
        served.append(len(served))
        # Keep-alive announced, then closed: the client must notice before its next request.
        writer.write(answer(b"ok"))
        await writer.drain()
        writer.close()

    async def run() -> list[bytes]:
        async with serving(one_answer_then_close) as url, client() as http:
            first = await http.post(url, content=b"one")
            transport = http._transport  # type: ignore[attr-defined]
            for _ in range(1000):  # the loop's turns until it has read the server's close
                if all(c.has_expired() for c in transport.idle_connections):
                    break  # (the pool may already have dropped it when the answer was read)
                await asyncio.sleep(0)
            second = await http.post(url, content=b"two")
            return [first.content, second.content]

    assert asyncio.run(run()) == [b"ok", b"ok"]
    assert len(connects) == 2
    assert served == [0, 1]


@pytest.mark.parametrize("size", [1 << 10, 3 << 20], ids=["1KiB", "3MiB"])
def test_large_bodies_arrive_whole_both_ways(size: int) -> None:
    payload = bytes(range(256)) * (size // 256)

    async def echo_digest_and_payload(reader, writer) -> None:
        body = await read_request(reader)
        writer.write(answer(hashlib.sha256(body).hexdigest().encode() + b"\n" + body))
        await writer.drain()
        writer.close()

    async def run() -> bytes:
        async with serving(echo_digest_and_payload) as url, client() as http:
            return (await http.post(url, content=payload)).content

    digest, _, echoed = asyncio.run(run()).partition(b"\n")
    assert digest == hashlib.sha256(payload).hexdigest().encode()
    assert echoed == payload


def test_a_silent_server_is_a_read_timeout() -> None:
    async def never_answers(reader, writer) -> None:
        await read_request(reader)
        await reader.read()  # until the client gives up and closes

    async def run() -> None:
        async with serving(never_answers) as url, client() as http:
            await http.post(url, content=b"x", timeout=httpx.Timeout(10, read=0.2))

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(run())


def test_a_refused_connection_is_a_connect_error_with_its_cause() -> None:
    async def run() -> None:
        async with client() as http:
            await http.post("http://127.0.0.1:9/", content=b"x")

    with pytest.raises(httpx.ConnectError) as raised:
        asyncio.run(run())
    assert {httpcore.ConnectError, ConnectionRefusedError} <= {type(e) for e in chain(raised.value)}


def chain(error: BaseException | None) -> Iterator[BaseException]:
    """An error and what it was raised from or while handling, as the client walks it."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def test_a_server_gone_mid_answer_is_a_read_error_not_a_short_body() -> None:
    async def half_an_answer(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some")
        await writer.drain()
        writer.transport.abort()

    async def run() -> None:
        async with serving(half_an_answer) as url, client() as http:
            await http.post(url, content=b"x")

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        asyncio.run(run())


async def _answer_each(reader, writer) -> None:
    """Answers every request on the connection until the client closes it."""
    while True:
        try:
            await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(answer(b"ok"))
        await writer.drain()


def test_requests_in_flight_share_at_most_max_connections(connects) -> None:
    async def run() -> list[bytes]:
        async with serving(_answer_each) as url, client() as http:  # 4 connections at most
            return [
                r.content
                for r in await asyncio.gather(*(http.post(url, content=b"x") for _ in range(40)))
            ]

    assert asyncio.run(run()) == [b"ok"] * 40
    assert 1 <= len(connects) <= 4


def test_a_request_waits_for_a_free_connection_no_longer_than_the_pool_timeout() -> None:
    """With every connection taken, the next request fails as a PoolTimeout (transient for the
    client), and the taken ones are not disturbed."""
    release, arrived = asyncio.Event(), asyncio.Event()

    async def slow(reader, writer) -> None:
        await read_request(reader)
        arrived.set()
        await release.wait()
        writer.write(answer(b"late"))
        await writer.drain()

    async def run() -> tuple[list[bytes], type[BaseException]]:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        transport = AsyncioTransport(verify=ssl.create_default_context(), limits=limits)
        async with serving(slow) as url, httpx.AsyncClient(transport=transport) as http:
            first = asyncio.create_task(http.post(url, content=b"1", timeout=10))
            await arrived.wait()  # the first holds the only connection
            try:
                await http.post(url, content=b"2", timeout=httpx.Timeout(10, pool=0.1))
                waited: type[BaseException] = type(None)  # type: ignore[assignment]
            except httpx.TransportError as exc:
                waited = type(exc)
            release.set()
            return [(await first).content], waited

    contents, waited = asyncio.run(run())
    assert waited is httpx.PoolTimeout
    assert contents == [b"late"]


def test_a_cancelled_request_gives_its_connection_back(connects) -> None:
    """A request cut in flight (a stop's grace ran out) frees its slot: with one connection
    allowed, the next request still goes, on a new connection (the cut one is not reused)."""
    answered = asyncio.Event()

    async def first_never_answered(reader, writer) -> None:
        await read_request(reader)
        if not answered.is_set():
            answered.set()
            await reader.read()  # the first request: never answered
            return
        writer.write(answer(b"ok"))
        await writer.drain()

    async def run() -> bytes:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        transport = AsyncioTransport(verify=ssl.create_default_context(), limits=limits)
        async with (
            serving(first_never_answered) as url,
            httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=2)) as http,
        ):
            cut = asyncio.create_task(http.post(url, content=b"1"))
            await answered.wait()
            cut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cut
            return (await http.post(url, content=b"2")).content

    assert asyncio.run(run()) == b"ok"
    assert len(connects) == 2


def test_the_senders_client_waits_for_an_answer_no_longer_than_dmp_read_timeout(
    tmp_path, monkeypatch
) -> None:
    """The sender's client posts straight to its transport: `[dmp] read_timeout` still bounds
    the wait (a timeout, transient: the set may have been stored, a resend is safe), and the
    request carries the headers a DMP expects."""
    document = by_patient()["IPP000456"][0]
    heads: list[bytes] = []

    async def silent(reader, writer) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.read()

    async def run() -> tuple[OutcomeKind, str]:
        async with serving(silent) as url:
            monkeypatch.setenv("BACKFILL_DMP_URL", url + "si-dmp-server/v2/services")
            monkeypatch.setenv("BACKFILL_DMP_READ_TIMEOUT", "0.3")
            settings = load_settings()
            assert settings.dmp.read_timeout == 0.3
            async with async_dmp_client(settings) as dmp:
                result = await dmp.submit(
                    document.entry.patient_id, [(document.entry, document.xml)],
                    content_type=document.content_type,
                )  # fmt: skip
                return result.kind, result.detail

    monkeypatch.chdir(tmp_path)
    kind, detail = asyncio.run(run())
    assert (kind, detail) == (OutcomeKind.TRANSIENT, "timeout (ReadTimeout)")
    head = heads[0].lower()
    assert head.startswith(b"post /si-dmp-server/v2/services/repository http/1.1\r\n")
    for header in (b"host: 127.0.0.1:", b"content-type: multipart/related", b"content-length: ",
                   b"user-agent: dmp-backfill"):  # fmt: skip
        assert b"\r\n" + header in head, header
