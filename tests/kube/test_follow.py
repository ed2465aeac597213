"""`follow`: a cache's watch, LISTed again whenever the watch fails."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from nublado.kube.client import KubernetesClient, WatchEvent
from nublado.kube.follow import follow
from nublado.sandbox.server import Sandbox

Object = dict[str, Any]


def _cm(name: str, value: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "f"},
        "data": {"v": value},
    }


async def test_events_reach_the_cache_and_a_failed_watch_or_list_is_listed_again(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "f"}})
    await client.apply_one(_cm("a", "1"))
    items, version = await client.list_with_version("ConfigMap", "f")
    cache = {o["metadata"]["name"]: o["data"]["v"] for o in items}
    relists: list[int] = []
    attempts: list[None] = []

    async def changed(event: WatchEvent) -> None:
        if event.type == "DELETED":
            cache.pop(event.name, None)
        else:
            cache[event.name] = event.object["data"]["v"]

    async def relist() -> tuple[list[Object], str]:
        attempts.append(None)
        fresh, fresh_version = await client.list_with_version("ConfigMap", "f")
        cache.clear()
        cache.update({o["metadata"]["name"]: o["data"]["v"] for o in fresh})
        relists.append(len(fresh))
        return fresh, fresh_version

    # The first watch is refused (a Status, not a dropped connection), and so is the
    # first LIST after it: follow lists again until a LIST succeeds.
    sandbox.inject_fault("GET", "/api/v1/namespaces/f/configmaps", status=403, count=2)
    task = asyncio.create_task(
        follow(
            client,
            "ConfigMap",
            "f",
            version=version,
            items=items,
            on_event=changed,
            relist=relist,
            log=structlog.get_logger("test"),
            retry_delay=0.01,
        )
    )
    try:
        await sandbox.wait_for_async(lambda: relists)
        await client.apply_one(_cm("b", "2"))
        await client.apply_one(_cm("a", "3"))
        await client.delete("ConfigMap", "b", "f")
        await sandbox.wait_for_async(lambda: cache == {"a": "3"})
        assert relists == [1]
        assert len(attempts) == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
