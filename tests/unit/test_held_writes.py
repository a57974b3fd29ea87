"""Writes held back to leave in one system call: the client's request (head and body, until the
answer is read) and the mock's answer (status line and headers with the body, one loop turn).
Fewer, larger writes are the point (each wakes the peer); what leaves must be the same bytes, in
order, and nothing may be lost or left unsent."""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.dmp.sockets import AsyncioStream, _Receiver
from connectors.dmp_mock.server import _HeldWrites


class FakeTransport:
    """What the loop's transport was asked to send, call by call."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append([data])

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(list(lines))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def stream() -> tuple[AsyncioStream, _Receiver, FakeTransport]:
    transport, receiver = FakeTransport(), _Receiver()
    receiver.connection_made(transport)  # type: ignore[arg-type]
    return AsyncioStream(transport, receiver), receiver, transport  # type: ignore[arg-type]


def test_a_requests_head_and_body_leave_together_when_its_answer_is_awaited() -> None:
    async def go() -> None:
        s, receiver, transport = stream()
        await s.write(b"POST / HTTP/1.1\r\ncontent-length: 4\r\n\r\n")
        await s.write(b"body")
        assert transport.calls == []  # held: the answer is not awaited yet
        receiver.data_received(b"HTTP/1.1 200 OK\r\n")
        assert await s.read(100) == b"HTTP/1.1 200 OK\r\n"
        assert transport.calls == [[b"POST / HTTP/1.1\r\ncontent-length: 4\r\n\r\n", b"body"]]

    asyncio.run(go())


def test_a_large_body_leaves_without_waiting_for_the_read() -> None:
    async def go() -> None:
        s, _, transport = stream()
        await s.write(b"head\r\n\r\n")
        await s.write(b"x" * (1 << 18))  # a large set: the server reads it before it answers
        assert transport.calls == [[b"head\r\n\r\n", b"x" * (1 << 18)]]

    asyncio.run(go())


def test_held_writes_on_a_connection_that_closed_are_a_write_error_not_lost_silently() -> None:
    async def go() -> None:
        s, receiver, transport = stream()
        await s.write(b"head\r\n\r\n")
        transport.closed = True
        receiver.connection_lost(None)
        with pytest.raises(httpcore.WriteError):
            await s.read(100)
        assert transport.calls == []

    asyncio.run(go())


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8))
def test_the_mocks_answer_leaves_in_one_call_with_its_bytes_in_order(parts: list[bytes]) -> None:
    async def go() -> FakeTransport:
        transport = FakeTransport()
        held = _HeldWrites(transport)  # type: ignore[arg-type]
        for part in parts:
            held.write(part)
        assert transport.calls == []  # until the loop's next turn
        await asyncio.sleep(0)
        return transport

    transport = asyncio.run(go())
    assert transport.calls == [parts]


def test_closing_the_mocks_connection_sends_what_is_held_first() -> None:
    async def go() -> FakeTransport:
        transport = FakeTransport()
        held = _HeldWrites(transport)  # type: ignore[arg-type]
        held.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
        held.write(b"last")
        held.close()
        await asyncio.sleep(0)  # the turn's flush finds nothing left
        return transport

    transport = asyncio.run(go())
    assert transport.calls == [[b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", b"last"]]
    assert transport.closed


def test_the_mocks_held_transport_answers_for_the_real_one() -> None:
    # uvicorn reads the peer (the control plane trusts loopback peers only) through it.
    held = _HeldWrites(FakeTransport())  # type: ignore[arg-type]
    assert held.get_extra_info("peername") == ("127.0.0.1", 1)
