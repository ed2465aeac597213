"""A lean keep-alive HTTP/1.1 transport for the client's plain requests and watches.

Why not aiohttp here: a spawn sends about 15 Kubernetes requests, and
aiohttp's per-request machinery (request and response objects, a timer
context, a payload writer, a stream reader, cookie and redirect handling,
trace hooks) costs 200-260 us of CPU each against about 40 us for the round
trip itself on uvloop, which made it the largest part of the controller's
CPU per spawn. This transport does only what a Kubernetes request needs: it
writes one request (pre-encoded headers, a Content-Length body), parses the
answer with ``httptools`` (the llhttp parser uvicorn uses: Content-Length,
chunked and read-until-close bodies, keep-alive rules) and keeps the
connection for the next request. Proxied set-ups stay on aiohttp
(`nublado.kube.client`), which knows proxies.

Watches (`HTTPTransport.stream`) get a connection of their own, outside the
pool, read line by line as the body's chunks arrive. On aiohttp each watch
event cost its stream reader, a read-timeout timer rescheduled per packet and
a ``wait_for`` per line: 143 against 119 us of CPU per event (a watch of
1,500 ConfigMaps, three runs each on a busy machine), and a spawn's objects
bring the controller's watches a dozen events.

Failures come out as `TransportError` (connection refused, reset or closed
before the answer was whole, a malformed answer, TLS errors) or
`TimeoutError` (the deadline passed), which the client maps to its own
exceptions exactly as it maps aiohttp's.

A connection being made is never interrupted (`uninterrupted`): a request
cancelled or timed out while its TLS connection is being set up gives up at
once, and the connection is finished in the background and then closed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httptools

from ..loop import LoopMemo

__all__ = ["HTTPTransport", "Response", "Stream", "TransportError", "settle", "uninterrupted"]

_T = TypeVar("_T")

# What aiohttp treats as safe to send again on a fresh connection when a kept-alive
# one turns out closed before any answer: the request cannot have been acted on twice.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An idle connection older than this is closed rather than reused (aiohttp's keep-alive
# timeout): servers and load balancers drop idle connections, and sending on one they
# are about to drop fails a request that cannot always be sent again.
KEEPALIVE_TIMEOUT = 15.0
# A body at least this long, of known length, is received into one buffer (`_Connection.buffer`).
_BUFFER_FROM = 1 << 20
# A stream whose reader lags this far behind stops reading its socket until the reader
# catches up (`_Connection.resume`): TCP then slows the server, as aiohttp's stream reader
# does at its buffer limit, instead of the process holding whatever the server can send.
_STREAM_HIGH_WATER = 1 << 18


async def uninterrupted(
    attempt: Awaitable[_T],
    abandoned: set[asyncio.Task[Any]],
    discard: Callable[[_T], object],
) -> _T:
    """``await attempt``, but a cancellation of the caller leaves ``attempt`` running to its end.

    Why: uvloop's ``create_connection`` with TLS, cancelled at the wrong moment,
    logs an error for a connection nobody wants any more. Cancelled after its
    TCP connection was made (the TLS handshake begun) and before it resumed,
    it closes the TCP handle under its TLS protocol without telling it; when
    the server's handshake answer arrived in between, the protocol then sends
    its Finished message on the closed handle and the loop logs "Fatal error
    on SSL protocol ... the handler is closed" at ERROR (asyncio's own loop
    does not). Over TLS it came about one spawn in two, when the spawn
    cancelled its pod's Event watch (the pod runs) as that watch connected.

    So the connection attempt is never cancelled: the caller's cancellation
    (or timeout) takes effect at once, the attempt goes on in a task kept in
    ``abandoned`` (the owner's, to wait for on close) and ``discard`` is given
    what it made (it closes it). An attempt that fails is forgotten.
    """
    task = asyncio.ensure_future(attempt)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        abandoned.add(task)
        task.add_done_callback(partial(_abandoned_done, abandoned, discard))
        raise


def _abandoned_done(
    abandoned: set[asyncio.Task[Any]], discard: Callable[[Any], object], task: asyncio.Task[Any]
) -> None:
    abandoned.discard(task)
    if not task.cancelled() and task.exception() is None:
        discard(task.result())


async def settle(abandoned: set[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Let abandoned attempts (`uninterrupted`) finish, for at most ``timeout`` seconds.

    Called on close, so the loop does not end with a TLS set-up half done
    (cancelling it then would log the very error `uninterrupted` avoids).
    A connection takes milliseconds; the bound only matters for a server
    that stopped answering.
    """
    if abandoned:
        await asyncio.wait(set(abandoned), timeout=timeout)


class TransportError(Exception):
    """The request got no usable answer: connection failure, early close, bad framing."""


class _Closed(TransportError):
    """The connection closed before the answer began (a reused one may be sent again)."""


class _OutOfStep(Exception):
    """Bytes after the answer was complete: raised from a parser callback to stop parsing."""


class Response:
    """An answer whose status and headers have arrived; `read` waits for the body.

    The connection goes back to the pool (or is closed) when the body has been
    read, so a caller must call `read` once (as the client always does).
    """

    __slots__ = ("_conn", "_pool", "headers", "reason", "status")

    def __init__(
        self,
        pool: HTTPTransport,
        conn: _Connection,
        status: int,
        reason: str,
        headers: dict[str, str],
    ) -> None:
        self._pool = pool
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        """Header names in lower case (the last value of a repeated header)."""

    async def read(self) -> bytes | bytearray:
        """The whole body (decompressed when gzip or deflate encoded)."""
        conn = self._conn
        try:
            # Raises when the connection broke mid-body, or TimeoutError when the
            # exchange's deadline (`_Connection.arm`) passed.
            await conn.body_done
            body: bytes | bytearray
            if conn.buffer is not None:
                body = conn.buffer  # llhttp ends the body at its Content-Length
            else:
                body = b"".join(conn.chunks) if len(conn.chunks) != 1 else conn.chunks[0]
            # An idle connection in the pool must not keep its last answer: a reconcile
            # pass's LISTs left 125 MiB of received packets on the pool's connections.
            conn.chunks = []
            conn.buffer = None
            encoding = self.headers.get("content-encoding")
            if encoding in ("gzip", "deflate"):
                body = _decompress(body, encoding)
        except BaseException:
            self._pool._discard(conn)
            raise
        self._pool._release(conn)
        return body


class Stream:
    """A streamed answer (a watch) on a connection of its own: read line by line, then closed.

    Its connection is outside the pool (a watch holds it as long as it lasts,
    and a hundred watches must not take the connections requests wait for) and
    is never reused: `close` ends it, however the stream ended.
    """

    __slots__ = (
        "_buffer",
        "_conn",
        "_loop",
        "_open",
        "_scanned",
        "_timer",
        "_timer_at",
        "_wait_until",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self, conn: _Connection, loop: asyncio.AbstractEventLoop, open_streams: set[_Connection]
    ) -> None:
        self._conn = conn
        self._open = open_streams
        self._loop = loop
        self._buffer = bytearray()
        self._scanned = 0  # the buffer holds no newline before this offset
        # The time limit of the reader's wait in progress (0.0: none), and the timer that
        # checks it, armed for the limit it was set for (see `readline`).
        self._wait_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.status = conn.status
        self.reason = conn.reason
        self.headers = conn.headers
        """Header names in lower case (the last value of a repeated header)."""

    async def readline(self, timeout: float | None = None) -> bytes:
        """The next line, newline included; the last bytes without one; b"" at the end.

        ``timeout``: seconds to wait for more of the body before TimeoutError.
        A connection that breaks mid-body raises `TransportError`.

        A watch waits here once per event: rather than a timer made and
        cancelled per wait, one timer stays armed across waits and checks the
        limit of the wait in progress when it fires (`_check_wait`); it is
        armed again only when a wait's limit comes before the one it was armed
        for.
        """
        conn = self._conn
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                self._scanned = 0
                return line
            self._scanned = len(buffer)
            if conn.chunks:
                for chunk in conn.chunks:
                    buffer += chunk
                conn.chunks = []
                conn.resume()
                continue
            if conn.body_done.done():
                conn.body_done.result()  # the failure, if the body ended in one
                line = bytes(buffer)
                buffer.clear()
                self._scanned = 0
                return line
            waiter = conn.reader = self._loop.create_future()
            if timeout is not None:
                until = self._wait_until = self._loop.time() + timeout
                if self._timer is None or until < self._timer_at:
                    if self._timer is not None:
                        self._timer.cancel()
                    self._timer = self._loop.call_at(until, self._check_wait)
                    self._timer_at = until
            try:
                await waiter
            finally:
                conn.reader = None
                self._wait_until = 0.0

    def _check_wait(self) -> None:
        """The read timer fired: end the reader's wait with TimeoutError if its limit passed."""
        self._timer = None
        until = self._wait_until
        waiter = self._conn.reader
        if not until or waiter is None or waiter.done():
            return  # no wait with a limit in progress (a woken reader not yet resumed)
        if until > self._timer_at:  # a later wait's limit: the timer was armed for an earlier one
            self._timer = self._loop.call_at(until, self._check_wait)
            self._timer_at = until
            return
        waiter.set_exception(TimeoutError())

    async def read(self, timeout: float | None = None) -> bytes:
        """The rest of the body (an error's Status), decompressed as `Response.read` does."""
        conn = self._conn
        # The whole body is awaited: read the socket to its end, paused or not.
        conn.streaming = False
        conn.resume()
        async with asyncio.timeout(timeout):
            await conn.body_done
        body = bytes(self._buffer) + b"".join(conn.chunks)
        self._buffer.clear()
        conn.chunks = []
        encoding = self.headers.get("content-encoding")
        if encoding in ("gzip", "deflate"):
            body = _decompress(body, encoding)
        return body

    def close(self) -> None:
        """End the stream: its connection is closed (aborted over TLS, as `HTTPTransport.close`)."""
        conn = self._conn
        self._open.discard(conn)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn.disarm()
        if conn.transport is not None and not conn.transport.is_closing():
            conn.abort()


def _decompress(body: bytes | bytearray, encoding: str) -> bytes:
    try:
        if encoding == "gzip":
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    except zlib.error as exc:
        raise TransportError(f"cannot decode the {encoding} body: {exc}") from None


_HEADER_NAMES: dict[bytes, str] = {}
"""Header names as received -> in lower case: every answer repeats the same few."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the parser of the answer in flight on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request before (a reused connection)
        # The exchange's deadline (`arm`), and the timer that checks it: armed at the
        # deadline it was set for, which a later exchange's may have moved on.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.counted = True  # counts against the pool's limit until discarded
        self.keep_alive = False
        self.headers_done: asyncio.Future[None] = loop.create_future()
        self.body_done: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self._reason = b""
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        # A large body of known length is copied here as it arrives (see on_headers_complete).
        self.buffer: bytearray | None = None
        self.filled = 0
        # A stream's connection (`HTTPTransport.stream`): its body goes to ``chunks`` as it
        # comes, whatever its length, for `Stream.readline` to read.
        self.streaming = False
        self._pending = 0  # bytes in ``chunks`` of a stream, not yet taken by its reader
        self._paused = False  # a stream's socket not read until its reader catches up
        self._began = False  # any byte of the answer has arrived
        self._length_known = False  # Content-Length or chunked: the end is not the close
        self._head = False  # the request was HEAD: the answer has no body, whatever it says
        self._final_headers = False  # the final (not 1xx) answer's headers are in
        self._complete = False  # the answer is whole: any byte more is out of step
        # A stream's reader (`Stream.readline`) waiting for more of the body, if any.
        self.reader: asyncio.Future[None] | None = None

    def start(self, *, head: bool = False) -> None:
        """Ready for a new request (``head``: a HEAD request): fresh answer state."""
        self._head = head
        if self.headers_done.done():
            self.headers_done = self._loop.create_future()
            self.body_done = self._loop.create_future()
            self.status = 0
            self._reason = b""
            self.headers = {}
            self.chunks = []
            self.buffer = None
            self.filled = 0
            self._began = False
            self._length_known = False
            self._final_headers = False
            self._complete = False
            self.keep_alive = False

    def arm(self, deadline: float | None) -> None:
        """Bound the exchange in flight: at ``deadline`` it fails with TimeoutError.

        A timer on the loop's clock rather than an ``asyncio.timeout`` block
        around each await (twice the CPU), and not one timer per exchange
        either: a kept-alive connection's timer stays armed across its
        exchanges, each moving the deadline it checks (`_check`). A new timer
        is armed only when none is, or when this deadline comes sooner than the
        one it was armed for (a shorter timeout than the last request's). A
        sequence of requests of the same timeout thus arms one timer per
        timeout period, not two timer operations per request.
        """
        self._deadline = deadline
        if deadline is not None and (self._timer is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._check)
            self._timer_at = deadline

    def disarm(self) -> None:
        """The exchange is over: no deadline (the timer, if armed, finds none and stops)."""
        self._deadline = None

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        """The timer fired: fail the exchange in flight if its deadline has passed."""
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # idle since (or between exchanges): nothing to bound
        if deadline > self._timer_at:
            # A later exchange's deadline than the one the timer was armed for: wait for it.
            self._timer = self._loop.call_at(deadline, self._check)
            self._timer_at = deadline
            return
        self._deadline = None
        self._fail(TimeoutError())
        self.close()  # its answer could still come: the connection is spent

    @property
    def reason(self) -> str:
        return self._reason.decode("latin-1")

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._complete or (self.headers_done.done() and self.body_done.done()):
            # Bytes nobody asked for (or after a complete answer): the stream is out of step.
            self.close()
            return
        self._began = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # After a complete answer (the rest of this packet was more than it):
            # that answer stands, but the connection is never used again.
            if not self._complete:
                self._fail(TransportError(f"malformed answer: {exc}"))
            self.keep_alive = False
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()  # whatever was in flight ends here, one way or the other
        if self.headers_done.done() and not self._length_known and not self.body_done.done():
            # An answer without Content-Length or chunking ends when the server closes.
            self.keep_alive = False
            self.body_done.set_result(None)
            self._wake_reader()
            return
        if not self._began:
            self._fail(_Closed(f"connection closed before the answer{_cause(exc)}"))
        else:
            self._fail(TransportError(f"connection closed mid-answer{_cause(exc)}"))

    # httptools callbacks. Once the final answer is complete, the parser must see
    # no second message: a callback raising `_OutOfStep` stops it (feed_data raises).

    def on_message_begin(self) -> None:
        if self._complete:
            raise _OutOfStep

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._final_headers:
            return  # a chunked answer's trailer: never replaces a header already returned
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_HEADER_NAMES) < 256:  # the names a server sends are few; its values vary
                _HEADER_NAMES[name] = key
        self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:
            return  # an interim answer; the real one follows
        self._final_headers = True
        headers = self.headers
        self._length_known = "content-length" in headers or "transfer-encoding" in headers
        if self._head:
            # An answer to HEAD has no body whatever its Content-Length says, and
            # httptools cannot be told so: the answer ends here, and the next one
            # is parsed by a fresh parser (this one waits for a body).
            self.keep_alive = self._parser.should_keep_alive()
            self._complete = True
            self._parser = httptools.HttpResponseParser(self)
            self.body_done.set_result(None)
        elif "transfer-encoding" not in headers:
            length = headers.get("content-length", "")
            if not self.streaming and length.isdigit() and int(length) >= _BUFFER_FROM:
                # Copied into one buffer as it comes, rather than packets kept and then
                # joined: half the peak (a 50 MB LIST held twice), and the packets, freed
                # at once, leave no 50 MB of heap behind them. The buffer grows with what
                # arrives, never sized from the declared length: a wrong or hostile
                # Content-Length (3 GB) must not take the memory before any byte of it
                # came, and growing (realloc, mremap once mmapped) costs half of filling
                # a zeroed buffer of the whole length (40 against 77 ms for 50 MB).
                self.buffer = bytearray()
        if not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._complete:
            raise _OutOfStep  # a body after an answer to HEAD
        buffer = self.buffer
        if buffer is None:
            self.chunks.append(body)
            if self.streaming:
                self._pending += len(body)
                if self._pending >= _STREAM_HIGH_WATER and not self._paused:
                    self._paused = True
                    if self.transport is not None:
                        self.transport.pause_reading()
            if self.reader is not None:
                self._wake_reader()
            return
        buffer += body
        self.filled += len(body)

    def on_message_complete(self) -> None:
        if self._complete:
            return  # the end of an answer to HEAD, already delivered
        if 100 <= self.status < 200:
            self.headers = {}
            self._reason = b""
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._complete = True
        if not self.body_done.done():
            self.body_done.set_result(None)
            self._wake_reader()

    # Own

    def _fail(self, exc: Exception) -> None:
        for future in (self.headers_done, self.body_done):
            if not future.done():
                future.set_exception(exc)
                # Read by whoever waits; a future nobody awaits must not log a warning.
                future.exception()
        self._wake_reader()

    def resume(self) -> None:
        """A stream's reader took every chunk received: the socket is read again if paused."""
        self._pending = 0
        if self._paused:
            self._paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def _wake_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            reader.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once: over TLS, without waiting for the server's close_notify."""
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()


def _cause(exc: BaseException | None) -> str:
    return f": {exc}" if exc is not None and str(exc) else ""


class HTTPTransport:
    """A pool of at most ``limit`` keep-alive connections to one API server.

    ``base_url``: ``http://`` or ``https://`` host, port and optional path prefix
    (a path the server is mounted under); ``ssl_context`` for https (the one the
    ``kubernetes`` package built: CA, client certificate, verification);
    ``server_hostname`` overrides the name TLS checks (kubeconfig's tls-server-name).
    """

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        limit: int = 100,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._server_hostname = (server_hostname or None) if self._tls else None
        self._prefix = parts.path
        host_header = parts.netloc.rsplit("@", 1)[-1]
        self._host_line = f"Host: {host_header}\r\n"
        self._limit = max(limit, 1) if limit else 2**31  # 0: unbounded, as aiohttp's
        self._idle: list[_Connection] = []
        self._count = 0  # connections open or opening
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._given = 0  # waiters given their turn (`_wake`) that have not resumed yet
        self._head_cache: dict[tuple[tuple[str, str], ...], str] = {}
        self._closed = False
        # Connections whose requester gave up while they were being made (`uninterrupted`):
        # they no longer count against the limit, and are closed once made.
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._streams: set[_Connection] = set()  # connections of open streams (`stream`)
        self._loop = LoopMemo()

    @classmethod
    def supports(cls, base_url: str) -> bool:
        """Whether this transport can talk to ``base_url`` (plain http or https)."""
        parts = urlsplit(base_url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> Response:
        """Send one request; returns once the status and headers have arrived.

        ``target``: the encoded path and query (after the base URL's path prefix).
        ``timeout``: seconds for the whole exchange, the body's read included.
        """
        loop = self._loop.get()
        deadline = loop.time() + timeout if timeout is not None else None
        head = self._head(method, target, headers, body)
        message = head + body if body else head
        # An idle connection is taken only when no request queues for one: a burst wanting
        # more connections than the pool holds is served in order, none passed over.
        conn = None if self._queued() else self._idle_connection()
        if conn is None:
            conn = await self._connect(loop, deadline)
        head_request = method == "HEAD"
        # The exchange runs here rather than in a coroutine of its own: an answer resumes
        # every coroutine its request waits through.
        while True:
            try:
                conn.start(head=head_request)
                if conn.closed or conn.transport is None:
                    raise _Closed("connection closed before the request")
                conn.arm(deadline)
                conn.transport.write(message)
                await conn.headers_done
            except _Closed:
                self._discard(conn)
                # A kept-alive connection the server had closed: once more on a fresh one
                # (whose own early close is not retried: it never carried a request).
                if not conn.used or method not in _IDEMPOTENT:
                    raise
                conn = await self._connect(loop, deadline)
                continue
            except BaseException:
                self._discard(conn)
                raise
            conn.used = True
            return Response(self, conn, conn.status, conn.reason, conn.headers)

    async def stream(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> Stream:
        """Send one request on a new connection outside the pool; returns once headers arrive.

        For watches: the body is read line by line (`Stream.readline`), with no
        deadline on the whole exchange. ``connect_timeout``: seconds to connect;
        ``read_timeout``: then seconds for the answer's headers (as aiohttp's
        sock_connect and sock_read). The body is asked for uncompressed
        (``Accept-Encoding: identity``): a stream is read as it comes.
        """
        loop = self._loop.get()
        if self._closed:
            raise TransportError("the transport is closed")
        message = self._head(method, target, {**headers, "Accept-Encoding": "identity"}, None)
        async with asyncio.timeout(connect_timeout):
            conn = await self._create(loop)
        if self._closed:  # closed while this connected: `close` aborted the streams it knew
            conn.abort()
            raise TransportError("the transport is closed")
        deadline = loop.time() + read_timeout if read_timeout is not None else None
        conn.counted = False  # never in the pool's count
        conn.streaming = True
        self._streams.add(conn)
        try:
            conn.start()
            if conn.closed or conn.transport is None:
                raise TransportError("connection closed before the request")
            conn.arm(deadline)
            conn.transport.write(message)
            await conn.headers_done
            conn.disarm()
        except BaseException:
            self._streams.discard(conn)
            conn.disarm()
            conn.abort()
            raise
        return Stream(conn, loop, self._streams)

    def _head(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> bytes:
        """The request line and headers, the header block cached by its contents."""
        key = tuple(headers.items())
        block = self._head_cache.get(key)
        if block is None:
            lines = []
            for name, value in key:
                if any(c in name or c in value for c in "\r\n\0") or ":" in name:
                    raise TransportError(f"invalid header {name!r}")
                lines.append(f"{name}: {value}\r\n")
            if not any(name.lower() == "accept-encoding" for name, _ in key):
                # As aiohttp asks: a large LIST may come compressed over a slow link.
                lines.append("Accept-Encoding: gzip, deflate\r\n")
            block = "".join(lines)
            if len(self._head_cache) >= 16:
                self._head_cache.clear()  # a token that changes leaves old entries behind
            self._head_cache[key] = block
        length = f"Content-Length: {len(body or b'')}\r\n" if method in _BODY_METHODS else ""
        return (
            f"{method} {self._prefix}{target} HTTP/1.1\r\n{self._host_line}{block}{length}\r\n"
        ).encode("latin-1")

    # The pool

    def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection still fit to carry a request, if any."""
        if self._closed:
            raise TransportError("the transport is closed")
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_TIMEOUT:
                return conn
            self._discard(conn)
        return None

    def _queued(self) -> bool:
        """Whether a request waits for a connection, or was given its turn and not yet resumed."""
        if self._closed:
            raise TransportError("the transport is closed")
        return self._given > 0 or any(not waiter.done() for waiter in self._waiters)

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> _Connection:
        """A connection once the pool has one for this request: an idle one, freed, or a new one.

        Requests are served in the order they queued: a newcomer queues behind
        those waiting (or given their turn and not yet resumed), and one that
        finds its turn gone waits again at the head. One that resumes with more
        room left passes a turn on.
        """
        first = True
        async with asyncio.timeout_at(deadline):
            while self._count >= self._limit or (first and self._queued()):
                waiter = loop.create_future()
                if first:
                    self._waiters.append(waiter)
                else:
                    self._waiters.appendleft(waiter)
                first = False
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._given -= 1
                        self._wake()  # pass the turn this waiter was given on
                    raise
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                self._given -= 1
                conn = self._idle_connection()
                if conn is not None:
                    if (self._idle or self._count < self._limit) and not self._given:
                        self._wake()  # room for the next one too (the last resumed passes it)
                    return conn
            self._count += 1
            if self._count < self._limit and not self._given:
                self._wake()
            try:
                return await self._create(loop)
            except BaseException:
                self._count -= 1
                self._wake()
                raise

    async def _create(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        """A new connection to the server (`uninterrupted`: see there)."""
        try:
            _, made = await uninterrupted(
                loop.create_connection(
                    lambda: _Connection(loop),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                ),
                self._abandoned,
                _close_made,
            )
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise TransportError(f"cannot connect to {self._host}:{self._port}: {exc}") from None
        return made

    def _release(self, conn: _Connection) -> None:
        """A connection whose answer was read: kept for the next request, or closed."""
        conn.disarm()
        if conn.closed or not conn.keep_alive or self._closed:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake()

    def _discard(self, conn: _Connection) -> None:
        """Close a connection that cannot carry another request."""
        conn.disarm()
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.transport is not None and not conn.transport.is_closing():
            conn.close()
        if conn.counted:
            conn.counted = False
            self._count -= 1
        self._wake()

    def _wake(self) -> None:
        """Give the first waiting request its turn (at most one: it passes on what it leaves)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._given += 1
                return

    async def close(self) -> None:
        """Close every idle connection; those in use close when their answer is read.

        Idle connections are aborted, as aiohttp's connector aborts its TLS
        connections on close: a TLS close waits for the server's close_notify,
        and the loop often stops right after the client closes (at the
        controller's exit); uvloop then logs an error for the close it could
        not finish. Connections still being made for a request that gave up are
        waited for (briefly, `settle`) and dropped. Open streams are aborted:
        their readers get a `TransportError`, as do requests queued for a
        connection (each is given its turn and finds the transport closed).
        """
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._given += 1
        while self._idle:
            conn = self._idle.pop()
            conn.abort()
            self._discard(conn)
        while self._streams:
            self._streams.pop().abort()
        await settle(self._abandoned)


def _close_made(made: tuple[asyncio.Transport, Any]) -> None:
    """Drop a connection made for a request that gave up while it was being made.

    Aborted, not closed: a TLS close waits for the server's close_notify, which
    a loop about to stop (the transport closing) may never see.
    """
    made[0].abort()
