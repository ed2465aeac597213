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
from nublado.sandbox.store import Store, Watcher


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


@pytest.mark.parametrize("namespace", ["a", "b", None])
@pytest.mark.parametrize("selector", ["", "app=x", "app!=x"])
def test_a_watch_resumed_from_a_version_replays_what_the_whole_history_offers(
    namespace: str | None, selector: str
) -> None:
    store = Store(history_limit=50)
    for n in range(80):  # more than the history holds: the oldest are forgotten
        ns = "ab"[n % 2]
        name = f"o{n % 7}"
        kind = ("ConfigMap", "Secret")[n % 3 == 0]
        labels = {"app": "xy"[n % 5 == 0]}
        previous = store.get(kind, ns, name)
        obj = {"metadata": {"name": name, "namespace": ns, "labels": labels}}
        if n % 11 == 10 and previous is not None:
            store.remove(kind, ns, name)
        else:
            store.put(kind, obj, "ADDED" if previous is None else "MODIFIED", previous)
    loop = asyncio.new_event_loop()
    try:
        for since in (store.floor, store.floor + 1, store.revision - 20, store.revision - 1):

            def watcher() -> Watcher:
                return Watcher(
                    kind="ConfigMap",
                    namespace=namespace,
                    labels=LabelSelector.parse(selector),
                    fields=FieldSelector(),
                    loop=loop,
                )

            expected_watch = watcher()
            expected = [
                item
                for event in store._history
                if event.revision > since and event.kind == "ConfigMap"
                for item in [expected_watch.offer(event)]
                if item is not None
            ]
            found = store.subscribe(watcher(), since)
            assert found is not None
            assert found[0] == expected
            assert found[1] == store.revision
        assert store.subscribe(watcher(), store.floor - 1) is None  # 410: forgotten
    finally:
        loop.close()
