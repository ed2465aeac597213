"""A request cancelled while its TLS connection is being made logs nothing, on uvloop.

uvloop's ``create_connection`` with TLS, cancelled after its TCP connection
was made (handshake begun) but before it resumed, closes the TCP handle under
its TLS protocol; when the server's handshake answer arrived in between, the
protocol writes its Finished message to the closed handle and the loop logs
"Fatal error on SSL protocol ... the handler is closed" at ERROR. The image
test (tests/deploy/test_image.py) saw it about one spawn in two, just before
the lab ran: when a spawn cancels its pod's Event watch, which has often only
just begun to connect.

Here the moment is made exact rather than waited for: the client runs on a
uvloop loop that, at the next TLS connection, holds the connecting task's
wake-up until the server (a TLS terminator in front of the sandbox, in a
thread) has sent its whole handshake answer, then cancels the caller. Without
`nublado.kube.transport.uninterrupted` both the watch (aiohttp) and a plain
request (the lean transport) log the error line.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop
from kubernetes.aio import client as kclient

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox
from tests.kube.test_transport import _certificate, _pipe

# Seconds to wait for the terminator: it answers in milliseconds.
WAIT = 10.0


class _CancellingLoop(uvloop.Loop):
    """A uvloop loop that cancels ``victim`` at the worst moment of its next TLS connection.

    That moment: the TCP connection is made and the ClientHello sent (the
    connecting task's wake-up is being scheduled), and the server's whole
    answer is already in the socket, so the loop's next poll completes the
    handshake before the connecting task resumes. The wake-up is held (in
    ``call_soon``) until the terminator says it has sent that answer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.victim: asyncio.Task[Any] | None = None
        self.answered: threading.Event | None = None
        self.fired = False
        self._connecting: asyncio.Task[Any] | None = None

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.victim is not None and kwargs.get("ssl") and self._connecting is None:
            self._connecting = asyncio.current_task()
        return await super().create_connection(*args, **kwargs)

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:  # type: ignore[override]
        # The connecting task's first wake-up since create_connection began is the one
        # its TCP connection's waiter schedules (an IP address needs no lookup first).
        if self._connecting is not None and getattr(callback, "__self__", None) is (
            self._connecting
        ):
            assert self.victim is not None and self.answered is not None
            self._connecting = None
            assert self.answered.wait(WAIT), "the terminator never answered the ClientHello"
            self.victim.cancel()
            self.victim = None
            self.fired = True
        return super().call_soon(callback, *args, context=context)


@contextmanager
def _tls_terminator(upstream: str, cert: Path, key: Path) -> Iterator[tuple[int, threading.Event]]:
    """A TLS terminator in front of ``upstream`` (host:port), on its own loop in a thread.

    Yields its port and an event set once it has sent a handshake answer (the
    server's TLS 1.3 flight, up to its Finished) for a ClientHello.
    """
    answered = threading.Event()

    class Signalling(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except ssl.SSLWantReadError:
                if self.cipher() is not None:  # the ClientHello is in and answered
                    # Set on the loop's next turn: after the answer was written out.
                    asyncio.get_running_loop().call_soon(answered.set)
                raise

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sslobject_class = Signalling
    host, port = upstream.rsplit(":", 1)
    ports: list[int] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        relays: set[asyncio.Task[Any]] = set()

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            both = {
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            }
            relays.update(both)
            await asyncio.gather(*both)

        server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
        ports.append(server.sockets[0].getsockname()[1])
        started.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(WAIT)
    try:
        yield ports[0], answered
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT)
        loop.close()


def _client(port: int, ca: Path) -> KubernetesClient:
    configuration = kclient.Configuration(host=f"https://127.0.0.1:{port}")
    configuration.ssl_ca_cert = str(ca)
    configuration.client_session_kwargs = {"trust_env": False}
    return KubernetesClient(kclient.ApiClient(configuration), retries=0)


async def _watch(kube: KubernetesClient) -> None:
    async for _ in kube.watch("Namespace", resource_version="1"):
        pass


async def _get(kube: KubernetesClient) -> None:
    await kube.get("Namespace", "default")


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(_watch, id="a watch (aiohttp)"),
        pytest.param(_get, id="a plain request (the lean transport)"),
    ],
)
def test_cancelled_during_the_tls_handshake_logs_no_error(
    operation: Callable[[KubernetesClient], Coroutine[Any, Any, None]],
    sandbox: Sandbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert sandbox.url is not None
    cert, key = _certificate(tmp_path)

    async def main(port: int, answered: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _CancellingLoop)
        async with _client(port, cert) as kube:
            task = asyncio.create_task(operation(kube))
            loop.victim, loop.answered = task, answered
            with pytest.raises(asyncio.CancelledError):
                await task
            assert loop.fired  # cancelled at that moment, not before or after
            # The client goes on: its next request is served (a new connection, or the
            # one the cancelled request left behind).
            assert (await kube.get("Namespace", "default"))["metadata"]["name"] == "default"

    caplog.set_level(logging.DEBUG, logger="asyncio")
    with (
        _tls_terminator(sandbox.url.removeprefix("http://"), cert, key) as (port, answered),
        asyncio.Runner(loop_factory=_CancellingLoop) as runner,
    ):
        runner.run(main(port, answered))

    # The client's loop ran in this thread (the terminator's in its own).
    client = threading.get_ident()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.thread == client]
    assert [r.getMessage() for r in errors] == []


def test_a_client_closed_as_the_loop_stops_logs_no_error(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its idle TLS connections are aborted: a TLS close left waiting for the server's
    close_notify when the loop closes makes uvloop log "Error occurred during shutdown"."""
    assert sandbox.url is not None
    cert, key = _certificate(tmp_path)

    async def main(port: int) -> None:
        async with _client(port, cert) as kube:
            assert (await kube.get("Namespace", "default"))["metadata"]["name"] == "default"

    caplog.set_level(logging.DEBUG, logger="asyncio")
    with _tls_terminator(sandbox.url.removeprefix("http://"), cert, key) as (port, _):
        for _ in range(5):  # the close_notify often comes in time, five times in a row rarely
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main(port))

    client = threading.get_ident()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.thread == client]
    assert [r.getMessage() for r in errors] == []
