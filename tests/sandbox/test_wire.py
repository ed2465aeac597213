"""The sandbox's HTTP protocol on either event loop: one write per answer, whatever the transport.

uvicorn (loop "auto") serves the sandbox on uvloop wherever it is installed, and
uvloop's TCP transport is no `asyncio.Transport` subclass: the protocol must take
any transport with the methods it calls.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.server import ServerState

from nublado.httpwire import CoalescingHTTPProtocol, CoalescingTransport
from nublado.sandbox.server import Sandbox

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    if HAS_UVLOOP:
        import uvloop

        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


class DuckTransport:
    """A socket transport of no asyncio class (as uvloop's TCPTransport), recording writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 6443)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app answering in two sends (headers, then body), as the sandbox's routes do."""
    assert scope["type"] == "http"
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.mark.parametrize("loop_factory", loop_factories())
def test_an_answer_leaves_in_one_write_on_a_transport_of_any_class(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def serve_one() -> list[bytes]:
        config = uvicorn.Config(
            hello, http=CoalescingHTTPProtocol, lifespan="off", access_log=False
        )
        config.load()
        protocol = CoalescingHTTPProtocol(config=config, server_state=ServerState(), app_state={})
        transport = DuckTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: sandbox\r\n\r\n")
        for _ in range(20):  # the app's task, then the flush at the end of its pass
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        writes = runner.run(serve_one())

    assert writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
def test_the_served_sandbox_runs_on_uvloop_where_installed(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    import uvloop

    assert isinstance(sandbox.cluster.loop, uvloop.Loop)
    assert http.get("/api/v1/namespaces").status_code == 200


class _Socketish:
    """A transport's reading and closing methods, recording what the proxy passes on."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_the_coalescing_transport_answers_for_its_socket() -> None:
    loop = asyncio.new_event_loop()
    try:
        socket = _Socketish()
        proxy = CoalescingTransport(socket, loop)  # type: ignore[arg-type]
        assert proxy.is_closing() is False
        socket.closing = True
        assert proxy.is_closing() is True
        proxy.pause_reading()
        proxy.resume_reading()
        assert socket.calls == ["pause", "resume"]
        assert proxy.get_extra_info("peername") == ("127.0.0.1", 1)
    finally:
        loop.close()
