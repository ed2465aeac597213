"""uvicorn's HTTP protocol with each answer leaving in one write to the socket.

Both servers run on it: the controller (`nublado serve`) and the sandbox API
server. uvicorn writes a response's status line and headers, then its body, as
two writes, and each becomes its own ``send`` on the socket (``TCP_NODELAY`` is
set on every accepted connection): on loopback that is two wake-ups of the
client and two system calls for every answer, the largest single cost of a
small request in the sandbox's profile, and about 0.2 ms of the controller's
CPU each. Create's 201 was two writes, an event stream's headers, first event,
terminal event and closing chunk four more. The protocol here is
uvicorn's own (whichever ``auto`` picks), given a transport that holds what
one pass of the event loop writes and sends it together at the end of the pass.
The bytes on the wire are the same; only how they are cut into segments
changes. A large write goes out at once, so uvicorn's flow control (pause
when the socket's buffer is full) works as before.

The same holds on uvloop's loop (which uvicorn's ``loop="auto"`` picks when it is
installed): its TCP transport also sends each ``write`` at once when nothing is
queued, so it is wrapped too. It is no `asyncio.Transport` subclass, so the
transport is taken by the methods it has (`_Transport`), not by its class.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["CoalescingHTTPProtocol", "CoalescingTransport"]

_FLUSH_AT = 64 * 1024  # the transport's default high-water mark: pending bytes sent now


class _Transport(Protocol):
    """What the proxy calls on the socket's transport: asyncio's and uvloop's both have it."""

    def write(self, data: bytes, /) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class CoalescingTransport:
    """A transport proxy whose writes within one loop pass become one write."""

    def __init__(self, transport: _Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        # Asked at the end of every response and by flow control: the socket's own methods,
        # bound here, rather than found through `__getattr__` (a failed lookup first) each time.
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if len(data) >= _FLUSH_AT:
            # A large body goes out as it is, after what is pending (a head): joining them
            # copied the whole body (a 50 MB LIST) only to save one system call.
            self._flush()
            self._transport.write(bytes(data))
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= _FLUSH_AT:
            self._flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._size = 0
        if self._transport.is_closing():
            return  # the peer is gone: the bytes had nowhere to go (asyncio would warn)
        self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = []
        self._size = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading flow control, extra info, is_closing) is the socket's own.
        return getattr(self._transport, name)


class CoalescingHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol writing through `CoalescingTransport`.

    Pass it as ``uvicorn.Config(http=...)``; everything else is uvicorn's.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's _SelectorSocketTransport or uvloop's TCPTransport (not a subclass of
        # asyncio.Transport, though it has the same methods): both write at once.
        wrapped = CoalescingTransport(cast(_Transport, transport), asyncio.get_running_loop())
        super().connection_made(wrapped)
