"""The coalescing transport under uvicorn: same bytes, fewer writes, nothing held back."""

from __future__ import annotations

import asyncio
from typing import Any

from lab_api_support import on_uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nublado.api.labs import EventStream
from nublado.httpwire import CoalescingHTTPProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """A transport that records each write it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof = False

    def write(self, data: Any) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1234)}.get(name, default)


async def test_writes_of_one_pass_go_out_as_one_at_the_next_pass() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"HTTP/1.1 201 Created\r\n\r\n")
    transport.write(memoryview(b"null"))
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 7 + 28

    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 201 Created\r\n\r\nnull"]

    transport.write(b"later")  # a later pass: a write of its own, never merged backwards
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 201 Created\r\n\r\nnull", b"later"]
    assert transport.get_write_buffer_size() == 7


async def test_close_and_write_eof_send_what_is_pending_first() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.writelines([b"a", b"b"])
    transport.write_eof()
    assert inner.writes == [b"ab"]
    assert inner.eof

    transport.write(b"c")
    transport.close()
    assert inner.writes == [b"ab", b"c"]
    assert inner.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert inner.writes == [b"ab", b"c"]


async def test_abort_and_a_lost_connection_drop_what_is_pending() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"a")
    transport.abort()
    await asyncio.sleep(0)
    assert inner.writes == []
    assert inner.aborted

    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"a")
    inner.closed = True  # the peer went: the real transport is closing
    await asyncio.sleep(0)
    assert inner.writes == []
    assert transport.is_closing()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)


async def test_uvicorn_through_it_answers_pipelined_requests_with_the_same_bytes() -> None:
    async def created(request: Request) -> JSONResponse:
        return JSONResponse(None, status_code=201, headers={"Location": "http://x/y"})

    app = Starlette(routes=[Route("/create", created, methods=["POST"])])
    async with on_uvicorn(app, http=CoalescingHTTPProtocol, lifespan="off") as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"POST /create HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
        writer.write(request * 2)  # pipelined: both answered, in order, on one connection
        await writer.drain()
        received = b""
        async with asyncio.timeout(10):
            while received.count(b"null") < 2:
                chunk = await reader.read(65536)
                assert chunk
                received += chunk
        writer.close()

    first, second = received.split(b"null")[:2]
    assert first.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"location: http://x/y\r\n" in first
    assert b"content-length: 4\r\n" in first
    assert first.endswith(b"\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 201 Created\r\n")


async def test_an_event_stream_ends_in_the_same_pass_as_its_last_event() -> None:
    """The closing chunk follows the terminal event without a pass between: one write."""
    loop = asyncio.get_running_loop()
    passes = [0]
    sent: list[tuple[int, dict[str, Any]]] = []

    def next_pass() -> None:
        passes[0] += 1

    async def send(message: Any) -> None:
        sent.append((passes[0], message))
        loop.call_soon(next_pass)

    async def receive() -> Any:
        await asyncio.Event().wait()  # the client stays until the stream ends

    async def frames() -> Any:
        yield {"event": "info", "data": "one"}
        await asyncio.sleep(0)
        yield {"event": "complete", "data": "two"}

    scope = {"type": "http", "method": "GET", "headers": []}
    await EventStream(frames(), ping=15)(scope, receive, send)

    kinds = [
        (message["type"], message.get("body"), message.get("more_body")) for _, message in sent
    ]
    assert kinds == [
        ("http.response.start", None, None),
        ("http.response.body", b"event: info\r\ndata: one\r\n\r\n", True),
        ("http.response.body", b"event: complete\r\ndata: two\r\n\r\n", True),
        ("http.response.body", b"", False),
    ]
    assert sent[0][0] == sent[1][0]  # the headers and the first event
    assert sent[2][0] == sent[3][0]  # the last event and the end of the stream
