"""uvicorn's HTTP protocol with the writes of one event-loop pass sent as one.

uvicorn writes to the socket at every ASGI message: a response's headers
with ``http.response.start``, then each body part. With ``TCP_NODELAY`` (set
on every accepted connection) each write is a system call and a TCP segment
that wakes the client, so create's 201 (headers, then ``null``) costs two of
each, and an event stream's headers, its first event, its terminal event and
its closing chunk four more. On this machine a loopback write costs the
controller about 0.2 ms of CPU, most of it in the kernel.

`CoalescingHttpToolsProtocol` gives uvicorn a transport that keeps what is
written during one pass of the event loop and sends it as one write at the
start of the next pass (``call_soon``), before the loop waits for anything.
The bytes on the wire and their order are unchanged; only their grouping into
segments is. A write is never held past the pass that made it, so a stream's
events still go out as they happen, and closing the connection sends what
is pending first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]


class CoalescingTransport(asyncio.Transport):
    """A transport whose writes are gathered until the event loop's next pass.

    Everything but writing is the wrapped transport's; its flow control
    (``pause_writing`` on its protocol) sees the bytes when they are sent.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is pending now, as one write (nothing once the transport is closing)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self._transport.is_closing():
            return  # the connection is gone: the bytes had nowhere to go anyway
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        pending = sum(len(data) for data in self._pending) if self._pending else 0
        return self._transport.get_write_buffer_size() + pending

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a `CoalescingTransport`.

    Pass it as ``uvicorn.Config(http=...)``; everything else is uvicorn's.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
