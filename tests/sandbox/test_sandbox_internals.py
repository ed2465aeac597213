"""Sandbox internals that HTTP cannot reach deterministically: thread races and watch buffers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from nublado.sandbox.cluster import Cluster, new_uid
from nublado.sandbox.selectors import FieldSelector, LabelSelector
from nublado.sandbox.server import Sandbox
from nublado.sandbox.store import Watcher


def test_a_callback_deferred_while_the_loop_attaches_is_not_lost() -> None:
    cluster = Cluster()
    ran = threading.Event()
    appending = threading.Event()

    class SlowList(list[Any]):
        def append(self, item: Any) -> None:
            appending.set()
            time.sleep(0.2)  # attach() gets its chance here unless later() holds the lock
            super().append(item)

    cluster._deferred = SlowList()
    loop = asyncio.new_event_loop()
    try:
        deferring = threading.Thread(target=cluster.later, args=(0, ran.set))
        deferring.start()
        assert appending.wait(2)
        attaching = threading.Thread(target=cluster.attach, args=(loop,))
        attaching.start()
        deferring.join(2)
        attaching.join(2)
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    assert ran.is_set()


def test_a_watch_whose_reader_falls_behind_is_closed_not_buffered_forever() -> None:
    loop = asyncio.new_event_loop()
    try:
        watcher = Watcher(
            kind="ConfigMap",
            namespace="w",
            labels=LabelSelector(),
            fields=FieldSelector(),
            loop=loop,
            limit=5,
        )
        for n in range(50):
            watcher.push(("MODIFIED", {"metadata": {"name": "a", "resourceVersion": str(n)}}))
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()

    assert watcher.overflowed
    queued = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert len(queued) == 6
    assert queued[-1] is None  # the stream ends cleanly after the events it holds
    assert [item[1]["metadata"]["resourceVersion"] for item in queued[:-1] if item] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]


def test_an_ipv6_sandbox_url_brackets_its_address() -> None:
    """``serve("::1")`` gives ``http://[::1]:PORT``, a URL clients and kubeconfigs can use."""
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    sandbox = Sandbox()
    with sandbox.serve("::1", 0) as url:
        assert url.startswith("http://[::1]:")
        assert httpx.get(f"{url}/version").status_code == 200


def test_an_object_uid_is_a_random_version_4_uuid_as_uuid4_prints_it() -> None:
    uids = {new_uid() for _ in range(2000)}
    assert len(uids) == 2000
    for text in uids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower-case hex, dashes where uuid puts them
