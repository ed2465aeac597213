"""The lean HTTP transport of plain requests: framing, the pool's edges, errors, timeouts, TLS."""

from __future__ import annotations

import asyncio
import base64
import gzip
import itertools
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import (
    ConflictError,
    KubernetesConnectionError,
    KubernetesError,
    KubernetesTimeoutError,
    NotFoundError,
)
from nublado.kube.kinds import kind_named
from nublado.kube.transport import _BUFFER_FROM, HTTPTransport, TransportError
from nublado.sandbox.server import Sandbox
from nublado.sandbox.tls import serving_certificate

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}
OBJECT = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "uid": "u1"}}
OBJECT_BYTES = orjson.dumps(OBJECT)


def _answer(
    body: bytes, status: str = "200 OK", *, headers: str = "", length: bool = True
) -> bytes:
    size = f"Content-Length: {len(body)}\r\n" if length else ""
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{size}{headers}\r\n".encode()
        + body
    )


def _status(code: int, reason: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    )


@dataclass
class Exchange:
    """One request a raw server received: its connection's number and its head."""

    connection: int
    head: bytes
    body: bytes


@dataclass
class RawServer:
    url: str
    received: list[Exchange] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0


# The handler gets the request and writes (or withholds) the answer; returning False
# closes the connection after it.
Handler = Callable[[Exchange, asyncio.StreamWriter], Awaitable[bool | None]]


@asynccontextmanager
async def _raw_server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    """An HTTP/1.1 server on 127.0.0.1 whose answers the test writes byte by byte."""
    scheme = "https" if ssl_context else "http"
    server_state = RawServer("")
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        server_state.connections += 1
        number = server_state.connections
        server_state.open_now += 1
        server_state.most_open = max(server_state.most_open, server_state.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                exchange = Exchange(number, head, body)
                server_state.received.append(exchange)
                if await handler(exchange, writer) is False:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            server_state.open_now -= 1
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    server_state.url = f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield server_state
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 2 s) until ``condition()`` holds: a state the loop reaches soon."""
    async with asyncio.timeout(2):
        while not condition():
            await asyncio.sleep(0.001)


def _client(url: str, **options: Any) -> KubernetesClient:
    options = {"backoff": 0.01, "max_retry_after": 0.05, **options}
    return KubernetesClient.from_url(url, **options)


async def test_a_chunked_body_split_across_packets_is_read_whole() -> None:
    async def chunked(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for start in range(0, len(OBJECT_BYTES), 7):
            piece = OBJECT_BYTES[start : start + 7]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")

    async with _raw_server(chunked) as server, _client(server.url) as kube:
        assert await kube.get("Namespace", "x") == OBJECT
        assert await kube.get("Namespace", "x") == OBJECT

    assert server.connections == 1  # the connection was kept after a chunked answer


@pytest.mark.parametrize(
    ("headers", "length", "connections"),
    [
        ("Connection: close\r\n", True, 2),  # the server says it closes: not reused
        ("", False, 2),  # no length: the body ends when the server closes
        ("", True, 1),  # kept alive
    ],
    ids=["connection-close", "read-until-close", "keep-alive"],
)
async def test_answer_framings(headers: str, length: bool, connections: int) -> None:
    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(_answer(OBJECT_BYTES, headers=headers, length=length))
        await writer.drain()
        return not headers and length

    async with _raw_server(answer) as server, _client(server.url) as kube:
        assert await kube.get("Namespace", "x") == OBJECT
        assert await kube.get("Namespace", "x") == OBJECT

    assert server.connections == connections


async def test_a_gzip_body_is_decompressed_and_the_request_asks_for_it() -> None:
    async def compressed(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(_answer(gzip.compress(OBJECT_BYTES), headers="Content-Encoding: gzip\r\n"))

    async with _raw_server(compressed) as server, _client(server.url) as kube:
        assert await kube.get("Namespace", "x") == OBJECT

    assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in server.received[0].head


async def test_the_request_is_what_aiohttp_sent() -> None:
    async def created(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(_answer(OBJECT_BYTES, "201 Created"))

    async with _raw_server(created) as server, _client(server.url) as kube:
        await kube.create(NAMESPACE)
        await kube.get("Namespace", "a b")

    post, get = server.received
    lines = post.head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/namespaces?fieldManager=nublado HTTP/1.1"
    port = server.url.rsplit(":", 1)[1]
    user_agent = kube._api.default_headers["User-Agent"]
    assert set(lines[1:-2]) == {
        f"Host: 127.0.0.1:{port}",
        f"User-Agent: {user_agent}",
        "Content-Type: application/json",
        "Accept: application/json",
        "Accept-Encoding: gzip, deflate",
        f"Content-Length: {len(post.body)}",
    }
    assert orjson.loads(post.body) == NAMESPACE
    assert get.head.startswith(b"GET /api/v1/namespaces/a%20b HTTP/1.1\r\n")
    assert b"Content-Length" not in get.head


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def once(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(_answer(OBJECT_BYTES))
        await writer.drain()
        return False  # answers, then closes the kept-alive connection

    async with _raw_server(once) as server, _client(server.url, retries=0) as kube:
        await kube.get("Namespace", "x")
        assert kube._transport is not None
        idle = kube._transport._idle[0]
        await _until(lambda: idle.closed)  # the close reaches the client
        await kube.create(NAMESPACE)  # not retried, yet never sent on the closed one

    assert [e.connection for e in server.received] == [1, 2]


async def test_an_idle_connection_keeps_nothing_of_the_answer_it_carried() -> None:
    """A connection back in the pool holds no packet of the body it delivered (a LIST of
    5,000 pods' metadata is 50 MB: each pooled connection kept its last one until reused)."""
    body = orjson.dumps({**OBJECT, "data": "x" * 300_000})

    async def big(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(_answer(body))
        await writer.drain()

    async with _raw_server(big) as server, _client(server.url) as kube:
        assert (await kube.get("Namespace", "x"))["data"] == "x" * 300_000
        assert kube._transport is not None
        assert [conn.chunks for conn in kube._transport._idle] == [[]]


@pytest.mark.parametrize("how", ["length", "gzip", "chunked", "until-close"])
async def test_a_large_body_is_read_whole_whatever_its_framing(how: str) -> None:
    """Past `_BUFFER_FROM` with a Content-Length, the body is received into one buffer as it
    comes in packets; chunked and read-until-close answers keep their packets. Either way
    the caller gets the same body, twice on the same connection when it is kept."""
    data = base64.b64encode(random.Random(11).randbytes(1_500_000)).decode()  # 2 MB, 1.5 gzipped
    body = orjson.dumps({**OBJECT, "data": data})
    buffered: list[bool] = []

    async def big(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        if how == "chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for start in range(0, len(body), 300_000):
                piece = body[start : start + 300_000]
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            writer.write(b"0\r\n\r\n")
        elif how == "gzip":
            writer.write(_answer(gzip.compress(body), headers="Content-Encoding: gzip\r\n"))
        else:
            writer.write(_answer(body, length=how == "length"))
        await writer.drain()
        return how != "until-close"

    async with _raw_server(big) as server, _client(server.url) as kube:
        assert (await kube.get("Namespace", "x"))["data"] == data
        assert kube._transport is not None
        transport = kube._transport
        original = transport._release

        def release(conn: Any) -> None:
            buffered.append(conn.buffer is None and conn.filled > 0)  # handed over by read()
            original(conn)

        transport._release = release  # type: ignore[method-assign]
        assert (await kube.get("Namespace", "x"))["data"] == data
        assert all(conn.buffer is None and conn.chunks == [] for conn in transport._idle)

    assert buffered == [how in ("length", "gzip")]
    assert server.connections == (2 if how == "until-close" else 1)


async def test_a_reused_connection_closed_before_the_answer() -> None:
    """Closed as the request went out: an idempotent one is sent again once, a POST is not."""

    async def drop_second(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        if not exchange.head.startswith(b"GET") or len(server.received) == 2:
            return False  # read the request, close without an answer
        writer.write(_answer(OBJECT_BYTES))
        await writer.drain()
        return True

    async with _raw_server(drop_second) as server, _client(server.url, retries=0) as kube:
        await kube.get("Namespace", "x")
        assert await kube.get("Namespace", "x") == OBJECT  # sent again on a new connection
        assert [e.connection for e in server.received] == [1, 1, 2]

        with pytest.raises(KubernetesConnectionError) as caught:
            await kube.create(NAMESPACE)
        assert str(caught.value) == (
            "POST /api/v1/namespaces failed: connection closed before the answer"
        )
        assert [e.connection for e in server.received] == [1, 1, 2, 2]

        # A fresh connection that closes at once is a failure, not a resend.
        with pytest.raises(KubernetesConnectionError):
            await kube.delete("Namespace", "x", wait=False)
        assert [e.connection for e in server.received][4:] == [3]


@pytest.mark.parametrize(
    ("method", "status", "reason", "error", "expected"),
    [
        (
            "GET",
            "404 Not Found",
            "NotFound",
            NotFoundError,
            'namespaces "x" not found (404 NotFound)',
        ),
        (
            "PUT",
            "409 Conflict",
            "Conflict",
            ConflictError,
            "the object has been modified (409 Conflict)",
        ),
        (
            "GET",
            "500 Internal Server Error",
            "InternalError",
            KubernetesError,
            "etcd down (500 InternalError)",
        ),
    ],
    ids=["404", "409", "500"],
)
async def test_error_statuses_carry_their_status_body_and_keep_the_connection(
    method: str, status: str, reason: str, error: type[KubernetesError], expected: str
) -> None:
    message = expected.rsplit(" (", 1)[0]
    code = int(status.split()[0])

    async def refuse(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(_answer(_status(code, reason, message), status))

    async with _raw_server(refuse) as server, _client(server.url, retries=1) as kube:
        with pytest.raises(error) as caught:
            if method == "PUT":
                await kube.replace(OBJECT)
            else:
                await kube.get("Namespace", "x")

    assert type(caught.value) is error
    assert str(caught.value) == expected
    assert caught.value.status == code
    # 500 is retried (once here), the others are not; all on the one connection.
    assert len(server.received) == (2 if code == 500 else 1)
    assert server.connections == 1


async def test_a_server_that_never_answers_is_a_timeout_and_its_connection_is_dropped() -> None:
    async def silent(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        if exchange.connection == 1:
            await asyncio.sleep(10)
        writer.write(_answer(OBJECT_BYTES))

    async with (
        _raw_server(silent) as server,
        _client(server.url, request_timeout=0.2, retries=0) as kube,
    ):
        start = time.monotonic()
        with pytest.raises(KubernetesTimeoutError) as caught:
            await kube.get("Namespace", "x")
        assert time.monotonic() - start < 1
        assert str(caught.value) == "GET /api/v1/namespaces/x timed out after 0.2s"
        # The timed-out connection is not reused: its answer could still arrive.
        assert await kube.get("Namespace", "x") == OBJECT
    assert [e.connection for e in server.received] == [1, 2]


async def test_a_stalled_body_times_out_reading_the_answer() -> None:
    async def stall(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(10)

    async with (
        _raw_server(stall) as server,
        _client(server.url, request_timeout=0.2, retries=0) as kube,
    ):
        with pytest.raises(KubernetesTimeoutError) as caught:
            await kube.get("Namespace", "x")
    assert str(caught.value) == ("GET /api/v1/namespaces/x timed out after 0.2s reading the answer")


async def test_a_malformed_answer_and_a_refused_connection_are_connection_errors() -> None:
    async def garbage(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 2x0 OK\r\n\r\n")

    async with _raw_server(garbage) as server, _client(server.url, retries=0) as kube:
        with pytest.raises(
            KubernetesConnectionError, match=r"^GET /api/v1/namespaces/x failed: malformed answer"
        ):
            await kube.get("Namespace", "x")
        url = server.url
    async with _client(url, retries=0) as kube:  # the server is gone now
        with pytest.raises(KubernetesConnectionError) as caught:
            await kube.get("Namespace", "x")
    assert str(caught.value).startswith(
        f"GET /api/v1/namespaces/x failed: cannot connect to 127.0.0.1:{url.rsplit(':', 1)[1]}: "
    )


async def test_the_pool_holds_at_most_its_limit_and_frees_cancelled_requests() -> None:
    release = asyncio.Event()

    async def slow(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(slow) as server, _client(server.url) as kube:
        kube._api.rest_client.maxsize = 2
        stuck = asyncio.create_task(kube.get("Namespace", "x"))
        await _until(lambda: len(server.received) == 1)
        stuck.cancel()  # its connection is closed, its place in the pool freed
        with suppress(asyncio.CancelledError):
            await stuck
        tasks = [asyncio.create_task(kube.get("Namespace", "x")) for _ in range(5)]
        await _until(lambda: len(server.received) == 3)
        await asyncio.sleep(0.05)  # time for a third connection, were the bound not kept
        assert len(server.received) == 3  # the cancelled one, and two of the five
        release.set()
        assert await asyncio.gather(*tasks) == [OBJECT] * 5
    assert len(server.received) == 6
    assert {e.connection for e in server.received[1:]} == {2, 3}


async def test_a_request_queued_for_the_pool_is_not_passed_over() -> None:
    """A connection freed while requests queue goes to the first of them, not a newcomer.

    The newcomer here starts in the same pass as the freed connection's release,
    ahead of the queued request's turn: it queues behind it instead of taking the
    connection, and the server sees the requests in the order they queued.
    """
    gate = asyncio.Event()

    async def held(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        if b"/a " in exchange.head:
            await gate.wait()
        writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(held) as server, _client(server.url) as kube:
        kube._api.rest_client.maxsize = 1
        first = asyncio.create_task(kube.get("Namespace", "a"))
        await _until(lambda: len(server.received) == 1)
        queued = asyncio.create_task(kube.get("Namespace", "b"))
        await asyncio.sleep(0.05)  # b waits for the pool's one connection
        transport = kube._transport
        assert transport is not None
        release = transport._release
        newcomers: list[asyncio.Task[Any]] = []

        def release_with_a_newcomer(conn: Any) -> None:
            if not newcomers:  # scheduled before b is given its turn
                newcomers.append(asyncio.create_task(kube.get("Namespace", "c")))
            release(conn)

        transport._release = release_with_a_newcomer  # type: ignore[method-assign]
        gate.set()
        assert await asyncio.gather(first, queued) == [OBJECT] * 2
        assert len(newcomers) == 1
        assert await newcomers[0] == OBJECT
    assert [e.head.split(b" ")[1].rsplit(b"/", 1)[1] for e in server.received] == [
        b"a",
        b"b",
        b"c",
    ]


async def test_a_burst_through_a_small_pool_ends_with_some_requests_cancelled() -> None:
    """Turns handed on in order never stall: 200 requests through 3 connections, 40
    cancelled at random points, every other one answered and the bound kept."""
    rng = random.Random(9)

    async def jittered(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(rng.random() * 0.004)
        writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(jittered) as server, _client(server.url) as kube:
        kube._api.rest_client.maxsize = 3
        tasks = [asyncio.create_task(kube.get("Namespace", "x")) for _ in range(200)]
        await asyncio.sleep(0)
        transport = kube._transport
        assert transport is not None
        counts: list[int] = []

        async def sample() -> None:  # connections counted against the bound, every pass
            while True:
                counts.append(transport._count)
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        for task in rng.sample(tasks, 40):
            await asyncio.sleep(rng.random() * 0.003)
            task.cancel()
        async with asyncio.timeout(20):
            results = await asyncio.gather(*tasks, return_exceptions=True)
        sampler.cancel()
        assert transport._given == 0 and not transport._waiters
    assert max(counts) == 3
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert answered == [OBJECT] * len(answered)
    assert all(isinstance(r, asyncio.CancelledError) for r in results if r not in answered)
    assert len(answered) >= 160


async def test_turns_keep_the_queue_order_when_several_connections_end_at_once() -> None:
    """Three connections closed by their answers in one pass: the eight queued requests
    reach the server in the order they queued, none passed by a later one."""
    gate = asyncio.Event()
    seen: list[bytes] = []

    async def closing(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        name = exchange.head.split(b" ")[1].rsplit(b"/", 1)[1]
        seen.append(name)
        if name.startswith(b"held"):
            await gate.wait()
        writer.write(_answer(OBJECT_BYTES, headers="Connection: close\r\n"))
        return False

    async with _raw_server(closing) as server, _client(server.url) as kube:
        kube._api.rest_client.maxsize = 3
        held = [asyncio.create_task(kube.get("Namespace", f"held{i}")) for i in range(3)]
        await _until(lambda: len(server.received) == 3)
        queued = []
        for i in range(1, 9):
            queued.append(asyncio.create_task(kube.get("Namespace", f"w{i}")))
            await asyncio.sleep(0.002)
        gate.set()
        assert await asyncio.gather(*held, *queued) == [OBJECT] * 11
    assert [name for name in seen if name.startswith(b"w")] == [b"w%d" % i for i in range(1, 9)]


async def test_closing_the_transport_ends_the_requests_queued_for_it() -> None:
    gate = asyncio.Event()

    async def held(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(held) as server:
        kube = _client(server.url, request_timeout=None, retries=0)
        async with kube:
            kube._api.rest_client.maxsize = 1
            first = asyncio.create_task(kube.get("Namespace", "a"))
            await _until(lambda: len(server.received) == 1)
            queued = [asyncio.create_task(kube.get("Namespace", "b")) for _ in range(3)]
            await asyncio.sleep(0.05)
            transport = kube._transport
            assert transport is not None
            await transport.close()
            async with asyncio.timeout(2):
                ended = await asyncio.gather(*queued, return_exceptions=True)
            assert all(isinstance(e, KubernetesError) for e in ended), ended
            assert transport._given == 0 and not transport._waiters
            gate.set()
            await asyncio.gather(first, return_exceptions=True)


SECOND = b"HTTP/1.1 500 Evil\r\nContent-Length: 5\r\nX-Evil: 1\r\n\r\nevil!"


@pytest.mark.parametrize(
    "how",
    ["same packet", "after the body, with its last bytes", "a packet of its own"],
)
async def test_bytes_after_a_complete_answer_are_never_a_second_answer(how: str) -> None:
    """The first answer stands; the connection is closed, never pooled for the next request."""

    async def two(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        first = _answer(OBJECT_BYTES)
        if exchange.connection > 1:
            writer.write(first)
        elif how == "same packet":
            writer.write(first + SECOND)
        elif how == "after the body, with its last bytes":
            writer.write(first[:-2])
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(first[-2:] + SECOND)
        else:
            writer.write(first)
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(SECOND)

    async with _raw_server(two) as server:
        transport = HTTPTransport(server.url)
        response = await transport.request("GET", "/x", {}, None, 2)
        assert (response.status, await response.read()) == (200, OBJECT_BYTES)
        assert "x-evil" not in response.headers
        assert response.headers["content-length"] == str(len(OBJECT_BYTES))
        if how == "a packet of its own":
            idle = transport._idle[0]
            await _until(lambda: idle.closed)
        else:
            assert transport._idle == []
        again = await transport.request("GET", "/x", {}, None, 2)
        assert (again.status, await again.read()) == (200, OBJECT_BYTES)
        await transport.close()

    assert [e.connection for e in server.received] == [1, 2]


async def test_chunked_trailers_never_replace_the_headers_returned() -> None:
    async def trailers(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\nTrailer: Content-Type\r\n\r\n"
            b"2\r\n{}\r\n0\r\nContent-Type: text/evil\r\nX-T: 1\r\n\r\n"
        )

    async with _raw_server(trailers) as server:
        transport = HTTPTransport(server.url)
        for _ in range(2):
            response = await transport.request("GET", "/x", {}, None, 2)
            assert await response.read() == b"{}"
            assert response.headers["content-type"] == "application/json"
            assert "x-t" not in response.headers
        await transport.close()

    assert server.connections == 1  # a whole chunked answer: the connection is kept


async def test_an_answer_to_head_has_no_body_whatever_its_length_says() -> None:
    async def head(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        if exchange.head.startswith(b"HEAD "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        else:
            writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(head) as server:
        transport = HTTPTransport(server.url)
        response = await transport.request("HEAD", "/x", {}, None, 1)
        assert (response.status, await response.read()) == (200, b"")
        assert response.headers["content-length"] == "10"
        # The next answer on the same connection is parsed from its start.
        response = await transport.request("GET", "/x", {}, None, 1)
        assert (response.status, await response.read()) == (200, OBJECT_BYTES)
        await transport.close()

    assert server.connections == 1


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
async def test_a_bodiless_status_with_a_large_length_is_an_empty_body(status: str) -> None:
    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {_BUFFER_FROM * 4}\r\n\r\n".encode())

    async with _raw_server(answer) as server:
        transport = HTTPTransport(server.url)
        response = await transport.request("GET", "/x", {}, None, 1)
        assert await response.read() == b""
        await transport.close()


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover - Linux only; the test is skipped elsewhere


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_a_declared_length_takes_no_memory_before_its_bytes_come() -> None:
    """A wrong or hostile Content-Length (3 GB) is not a 3 GB buffer: the buffer grows with
    what arrives, and the body that stops short is a connection error."""
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3000000000\r\n\r\n")
        writer.write(b"x" * 2 * _BUFFER_FROM)
        await writer.drain()
        arrived.set()
        await release.wait()
        return False

    async with _raw_server(answer) as server:
        transport = HTTPTransport(server.url)
        before = _rss_mib()
        response = await transport.request("GET", "/x", {}, None, 5)
        reading = asyncio.create_task(response.read())
        await arrived.wait()
        await asyncio.sleep(0.05)
        assert _rss_mib() - before < 100
        release.set()
        with pytest.raises(TransportError):
            await reading
        await transport.close()


async def test_a_watch_whose_reader_lags_stops_reading_its_socket() -> None:
    """Flow control: a server pushing events faster than they are read is slowed by TCP,
    not buffered whole in the controller; every event still comes, in order."""
    count = 40_000
    line = _event("n" * 400, 1)  # ~0.5 KB: 20 MB in all
    sent = [0]

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(count // 100):
            piece = line * 100
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            sent[0] += 100
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return False

    async with _raw_server(answer) as server, _client(server.url) as kube:
        seen = 0
        async for _ in kube._stream(kind_named("Namespace"), None, [("watch", "true")], None):
            seen += 1
            if seen == 1:
                await asyncio.sleep(0.5)  # the consumer busy elsewhere
                # Socket buffers hold a few MB at most; unpaused, all 20 MB were sent.
                assert sent[0] * len(line) < 12_000_000
        assert seen == count


async def test_a_watch_through_a_proxy_is_streamed_by_aiohttp() -> None:
    """With a proxy configured, watches too go through aiohttp (the lean transport has no
    proxy support), event by event."""
    lines = b"".join(_event(f"n{i}", i) for i in range(3))

    async def proxy(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(lines):x}\r\n".encode()
            + lines
            + b"\r\n0\r\n\r\n"
        )
        return False

    async with _raw_server(proxy) as server, _client("http://kube.invalid:6443") as kube:
        kube._api.configuration.proxy = server.url
        assert await _stream_events(kube) == ["n0", "n1", "n2"]
    assert server.received[0].head.startswith(b"GET http://kube.invalid:6443/api/v1/namespaces?")


async def test_a_proxy_is_served_by_aiohttp() -> None:
    """The lean transport knows no proxies: with one configured, requests go through it."""

    async def proxy(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(proxy) as server, _client("http://kube.invalid:6443") as kube:
        kube._api.configuration.proxy = server.url
        assert await kube.get("Namespace", "x") == OBJECT
    assert server.received[0].head.startswith(
        b"GET http://kube.invalid:6443/api/v1/namespaces/x HTTP/1.1\r\n"
    )


def _labelled(obj: dict[str, Any] | None) -> bool:
    return obj is not None and obj["metadata"].get("labels", {}).get("a") == "b"


# TLS: the sandbox behind a TLS terminator, with a CA of the test's own


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (its own CA), and its key.

    The sandbox's own (`nublado.sandbox.tls.serving_certificate`), written as files.
    """
    made = serving_certificate()
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(made.certificate)
    key_path.write_bytes(made.key)
    return cert_path, key_path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until either side ends; then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _tls_front(upstream: str, cert: Path, key: Path) -> AsyncIterator[str]:
    """A TLS terminator on 127.0.0.1 passing bytes to ``upstream`` (host:port) and back."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    host, port = upstream.rsplit(":", 1)
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        both = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        tasks.update(both)
        await asyncio.gather(*both)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_client_talks_tls_with_the_kubeconfig_ca(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert sandbox.url is not None
    cert, key = _certificate(tmp_path)
    path = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    async with _tls_front(sandbox.url.removeprefix("http://"), cert, key) as url:
        config = yaml.safe_load(path.read_text())
        cluster = config["clusters"][0]["cluster"]
        cluster["server"] = url
        cluster["certificate-authority-data"] = base64.b64encode(cert.read_bytes()).decode()
        path.write_text(yaml.safe_dump(config))

        async with await KubernetesClient.from_kubeconfig(path) as kube:
            applied = await kube.apply_one(NAMESPACE)
            assert applied.created
            assert (await kube.get("Namespace", "t"))["metadata"]["uid"] == applied.object[
                "metadata"
            ]["uid"]
            assert isinstance(kube._transport, HTTPTransport)
            # A watch (aiohttp, same TLS settings) sees a change made after it began.
            seen = asyncio.create_task(kube.wait_for("Namespace", "t", None, _labelled, timeout=5))
            await sandbox.wait_for_async(lambda: sandbox.watch_count() == 1)
            await kube.apply_one({**NAMESPACE, "metadata": {"name": "t", "labels": {"a": "b"}}})
            assert (await seen) is not None

        # Without the CA, the server's certificate is refused: a connection error.
        del cluster["certificate-authority-data"]
        path.write_text(yaml.safe_dump(config))
        async with await KubernetesClient.from_kubeconfig(path, retries=0) as kube:
            with pytest.raises(KubernetesConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await kube.get("Namespace", "t")


# Watches on the lean transport: a connection of their own, read line by line.


def _event(name: str, version: int) -> bytes:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    obj["metadata"]["resourceVersion"] = str(version)
    return orjson.dumps({"type": "ADDED", "object": obj}) + b"\n"


async def _stream_events(kube: KubernetesClient, left: float | None = None) -> list[str]:
    names = []
    async for _, obj in kube._stream(kind_named("Namespace"), None, [("watch", "true")], left):
        names.append(obj["metadata"]["name"])
    return names


async def test_a_watch_stream_is_read_event_by_event_on_a_connection_of_its_own() -> None:
    lines = b"".join(_event(f"n{i}", i) for i in range(6))
    cuts = [0, 5, 40, 41, len(lines) - 3, len(lines)]  # within, at and across line ends

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool | None:
        if b"watch=true" not in exchange.head:
            writer.write(_answer(OBJECT_BYTES))
            return None
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for start, end in itertools.pairwise(cuts):
            writer.write(f"{end - start:x}\r\n".encode() + lines[start:end] + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.005)
        writer.write(b"0\r\n\r\n")
        return None

    async with _raw_server(answer) as server, _client(server.url) as kube:
        assert await kube.get("Namespace", "x") == OBJECT  # a pooled connection first
        assert await _stream_events(kube) == [f"n{i}" for i in range(6)]
        assert await kube.get("Namespace", "x") == OBJECT
    watch = next(e for e in server.received if b"watch=true" in e.head)
    assert watch.connection == 2  # not the pool's: the GETs share connection 1
    assert [e.connection for e in server.received if e is not watch] == [1, 1]
    assert b"\r\nAccept-Encoding: identity\r\n" in watch.head
    assert b"gzip" not in watch.head


async def test_a_long_watch_body_of_known_length_is_still_read_line_by_line() -> None:
    """A stream's body is never gathered into the one buffer of a large LIST, however long the
    Content-Length it declares: its lines are read as they come."""
    count = _BUFFER_FROM // len(_event("n0", 0)) + 10
    lines = b"".join(_event(f"n{i}", i) for i in range(count))
    assert len(lines) >= _BUFFER_FROM

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        writer.write(head + f"Content-Length: {len(lines)}\r\n\r\n".encode() + lines)
        return False

    async with _raw_server(answer) as server, _client(server.url) as kube:
        assert await _stream_events(kube) == [f"n{i}" for i in range(count)]


async def test_a_watch_refused_raises_its_status_and_a_dropped_one_is_a_connection_error() -> None:
    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        if b"resourceVersion=1" in exchange.head:
            writer.write(_answer(_status(403, "Forbidden", "no watching"), "403 Forbidden"))
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        line = _event("a", 1)
        writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n" + b"40\r\n{")
        await writer.drain()
        await asyncio.sleep(0.02)
        return False  # closed mid-chunk

    async with _raw_server(answer) as server, _client(server.url) as kube:
        query = [("watch", "true"), ("resourceVersion", "1")]
        with pytest.raises(KubernetesError, match="no watching") as refused:
            async for _ in kube._stream(kind_named("Namespace"), None, query, None):
                pass
        assert refused.value.status == 403
        seen = []
        with pytest.raises(KubernetesConnectionError, match="watch connection dropped"):
            async for _, obj in kube._stream(kind_named("Namespace"), None, [], None):
                seen.append(obj["metadata"]["name"])
        assert seen == ["a"]  # the whole event before the break still came


async def test_a_silent_watch_ends_at_its_deadline_and_closing_the_client_ends_open_ones() -> None:
    release = asyncio.Event()

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        if b"resourceVersion=5" in exchange.head:
            line = _event("a", 5)
            writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        await writer.drain()
        with suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), 5)
        return False

    got: list[str] = []

    async def follow(kube: KubernetesClient) -> None:
        query = [("watch", "true"), ("resourceVersion", "5")]
        async for _, obj in kube._stream(kind_named("Namespace"), None, query, None):
            got.append(obj["metadata"]["name"])

    async with _raw_server(answer) as server:
        async with _client(server.url) as kube:
            start = time.monotonic()
            assert await _stream_events(kube, left=0.2) == []
            assert 0.15 < time.monotonic() - start < 1
            task = asyncio.create_task(follow(kube))
            await _until(lambda: got == ["a"])
        # The client closed with the stream open: its reader gets a connection error.
        with pytest.raises(KubernetesConnectionError, match="watch connection dropped"):
            await asyncio.wait_for(task, 2)
        release.set()
        await _until(lambda: server.open_now == 0)


async def test_a_kept_connection_bounds_each_exchange_by_its_own_timeout() -> None:
    """A connection's timer stays armed across exchanges: an exchange whose deadline comes
    sooner than the one it was armed for still times out at its own, and one whose deadline
    is later is not failed when the timer armed for an earlier exchange fires."""

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        path = exchange.head.split(b" ")[1]
        if path == b"/stall":
            await asyncio.sleep(5)
        elif path == b"/late":
            await asyncio.sleep(0.3)
        writer.write(_answer(OBJECT_BYTES))

    async with _raw_server(answer) as server:
        transport = HTTPTransport(server.url)
        try:

            async def get(path: str, timeout: float) -> bytes | bytearray:
                response = await transport.request("GET", path, {}, None, timeout)
                return await response.read()

            assert await get("/now", 10) == OBJECT_BYTES  # the timer armed 10 s ahead
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await get("/stall", 0.1)  # sooner than the armed timer: its own deadline
            assert time.monotonic() - start < 1
            assert await get("/now", 0.15) == OBJECT_BYTES  # a new connection, armed 0.15 s
            # The timer armed for 0.15 s fires during this exchange, which has 2 s.
            assert await get("/late", 2) == OBJECT_BYTES
        finally:
            await transport.close()
    assert [e.connection for e in server.received] == [1, 1, 2, 2]


async def test_a_stream_bounds_each_wait_by_its_own_timeout() -> None:
    """A stream's read timer stays armed across waits: a wait whose limit comes later than
    the timer's is not cut short when it fires, and one whose limit comes sooner ends then."""

    async def answer(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for name, pause in (("a", 0.05), ("b", 0.35)):
            await asyncio.sleep(pause)
            line = _event(name, 1)
            writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            await writer.drain()
        await asyncio.sleep(5)
        return False

    async with _raw_server(answer) as server:
        transport = HTTPTransport(server.url)
        try:
            stream = await transport.stream("GET", "/w", {}, 5, 5)
            assert b'"a"' in await stream.readline(0.2)  # the timer armed 0.2 s ahead
            # It fires while this wait, allowed 2 s, goes on: the event comes at 0.35 s.
            assert b'"b"' in await stream.readline(2)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await stream.readline(0.1)  # sooner than the armed timer: its own limit
            assert time.monotonic() - start < 1
            stream.close()
        finally:
            await transport.close()
