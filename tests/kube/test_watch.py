"""Watches through the real client: resume, relist on 410, cut connections, errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nublado.kube.client import KubernetesClient, WatchEvent
from nublado.kube.errors import KubernetesError
from nublado.sandbox.server import Sandbox


def _cm(name: str, value: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "w", "labels": labels or {"app": "w"}},
        "data": {"v": value},
    }


@pytest.fixture
async def namespace(client: KubernetesClient) -> str:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}})
    return "w"


async def _collect(stream: AsyncIterator[WatchEvent], into: list[tuple[str, str, str]]) -> None:
    async for event in stream:
        into.append((event.type, event.name, event.object.get("data", {}).get("v", "")))


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a collecting task and wait until it has closed its watch."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _watching(sandbox: Sandbox, count: int = 1) -> None:
    await sandbox.wait_for_async(lambda: sandbox.watch_count() >= count)


async def _watch_in_background(
    client: KubernetesClient,
    sandbox: Sandbox,
    seen: list[tuple[str, str, str]],
    **options: Any,
) -> asyncio.Task[None]:
    """Collect a ConfigMap watch of namespace w into ``seen``, once the sandbox serves it."""
    task = asyncio.create_task(_collect(client.watch("ConfigMap", "w", **options), seen))
    await _watching(sandbox)
    return task


async def test_watch_from_a_resource_version_sees_later_changes_only(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    first = await client.apply_one(_cm("a", "1"))
    seen: list[tuple[str, str, str]] = []
    task = await _watch_in_background(
        client, sandbox, seen, resource_version=first.resource_version, timeout=2
    )

    await client.apply_one(_cm("a", "2"))
    await client.apply_one(_cm("b", "1"))
    await client.delete("ConfigMap", "a", namespace)
    await sandbox.wait_for_async(lambda: len(seen) >= 3)
    await _stop(task)

    assert seen == [("MODIFIED", "a", "2"), ("ADDED", "b", "1"), ("DELETED", "a", "2")]


async def test_watch_without_version_starts_with_the_current_objects(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    await client.apply_one(_cm("a", "1"))
    await client.apply_one(_cm("skip", "1", {"app": "other"}))
    seen: list[tuple[str, str, str]] = []

    await _collect(client.watch("ConfigMap", namespace, label_selector="app=w", timeout=0.3), seen)

    assert seen == [("ADDED", "a", "1")]


async def test_watch_ends_at_its_timeout(client: KubernetesClient, namespace: str) -> None:
    seen: list[tuple[str, str, str]] = []
    await asyncio.wait_for(_collect(client.watch("ConfigMap", namespace, timeout=0.5), seen), 5)
    assert seen == []


async def test_watch_resumes_after_a_cut_connection_without_losing_events(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    start = await client.apply_one(_cm("a", "1"))
    seen: list[tuple[str, str, str]] = []
    task = await _watch_in_background(
        client, sandbox, seen, resource_version=start.resource_version, timeout=5
    )
    await client.apply_one(_cm("a", "2"))
    await sandbox.wait_for_async(lambda: len(seen) == 1)

    assert sandbox.cut_watches() == 1
    await client.apply_one(_cm("a", "3"))  # happens while the watch is down
    await _watching(sandbox)
    await client.apply_one(_cm("a", "4"))
    await sandbox.wait_for_async(lambda: len(seen) == 3)
    await _stop(task)

    assert seen == [("MODIFIED", "a", "2"), ("MODIFIED", "a", "3"), ("MODIFIED", "a", "4")]
    resumed = [r.target for r in sandbox.requests if "watch=true" in r.target]
    assert len(resumed) == 2
    assert f"resourceVersion={int(start.resource_version) + 1}" in resumed[1]


async def test_watch_relists_when_its_version_has_expired(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    start = await client.apply_one(_cm("a", "1"))
    await client.apply_one(_cm("gone", "1"))
    await client.apply_one(_cm("a", "2"))
    await client.delete("ConfigMap", "gone", namespace)
    await client.apply_one(_cm("new", "1"))
    sandbox.compact()  # the history after `start` is lost: resuming from it answers 410
    seen: list[tuple[str, str, str]] = []

    await _collect(
        client.watch("ConfigMap", namespace, resource_version=start.resource_version, timeout=0.5),
        seen,
    )

    # After a relist the client reports the current state it had not seen.
    assert sorted(seen) == [("ADDED", "a", "2"), ("ADDED", "new", "1")]
    assert any("watch=true" in r.target for r in sandbox.requests)
    assert any(
        r.method == "GET" and "watch" not in r.target and "configmaps" in r.target
        for r in sandbox.requests
    )


async def test_relist_reports_deletions_of_objects_seen_before(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    await client.apply_one(_cm("a", "1"))
    await client.apply_one(_cm("b", "1"))
    seen: list[tuple[str, str, str]] = []
    task = asyncio.create_task(_collect(client.watch("ConfigMap", namespace, timeout=5), seen))
    await sandbox.wait_for_async(lambda: len(seen) == 2 and sandbox.watch_count() == 1)

    # The stream drops; while it is down, b goes and history is compacted.
    sandbox.inject_fault("GET", "/api/v1/namespaces/w/configmaps", status=None, delay=0.2)
    sandbox.cut_watches()
    sandbox.delete("ConfigMap", "b", namespace)
    sandbox.compact()
    await sandbox.wait_for_async(lambda: len(seen) == 3, timeout=5)
    await _stop(task)

    assert seen[2] == ("DELETED", "b", "1")


async def test_watch_retries_server_errors_then_raises_instead_of_stopping(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    sandbox.inject_fault("GET", "/api/v1/namespaces/w/configmaps", status=500, count=2)
    seen: list[tuple[str, str, str]] = []
    task = await _watch_in_background(client, sandbox, seen, resource_version="1", timeout=5)
    await client.apply_one(_cm("a", "1"))
    await sandbox.wait_for_async(lambda: seen)
    await _stop(task)
    assert seen == [("ADDED", "a", "1")]

    sandbox.inject_fault("GET", "/api/v1/namespaces/w/configmaps", status=503, count=None)
    with pytest.raises(KubernetesError) as caught:
        await _collect(
            client.watch("ConfigMap", namespace, resource_version="1", timeout=10, max_failures=3),
            seen,
        )
    assert caught.value.status == 503
    assert caught.value.reason == "ServiceUnavailable"


async def test_watch_with_label_selector_sees_objects_leave_it(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    start = await client.apply_one(_cm("a", "1"))
    seen: list[tuple[str, str, str]] = []
    task = await _watch_in_background(
        client,
        sandbox,
        seen,
        label_selector="app=w",
        resource_version=start.resource_version,
        timeout=3,
    )

    await client.apply_one(_cm("a", "2", {"app": "moved"}))
    await client.apply_one(_cm("a", "3", {"app": "w"}))
    await sandbox.wait_for_async(lambda: len(seen) == 2)
    await _stop(task)

    assert seen == [("DELETED", "a", "2"), ("ADDED", "a", "3")]


async def test_watch_resumes_from_a_bookmark_without_relisting(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    sandbox.settings.bookmark_interval = 0.05
    start = await client.apply_one(_cm("a", "1"))
    seen: list[tuple[str, str, str]] = []
    task = await _watch_in_background(
        client, sandbox, seen, resource_version=start.resource_version, timeout=10
    )

    # A change outside the watch's view: the watch sees only bookmarks at its version.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "other", "namespace": namespace},
        "data": {"k": "dg=="},
    }
    quiet = (await client.apply_one(secret)).resource_version
    await asyncio.sleep(0.3)
    sandbox.compact()  # resuming from `start` would now be answered 410
    assert sandbox.cut_watches() == 1
    await _watching(sandbox)
    await client.apply_one(_cm("a", "2"))
    await sandbox.wait_for_async(lambda: seen)
    await _stop(task)

    assert seen == [("MODIFIED", "a", "2")]
    watches = [r.target for r in sandbox.requests if "watch=true" in r.target]
    assert len(watches) == 2
    assert "allowWatchBookmarks=true" in watches[0]
    assert f"resourceVersion={quiet}" in watches[1]
    lists = [
        r for r in sandbox.requests if "configmaps" in r.target and "watch=true" not in r.target
    ]
    assert [r.method for r in lists] == ["PATCH", "PATCH"]  # the two applies, no relist


async def test_watches_filling_the_connection_pool_leave_requests_room(
    sandbox: Sandbox, namespace: str
) -> None:
    """Open watches never take the connections requests need (they would wait for ever).

    A hundred spawns each watching their pod's Events held every connection of
    the pool (100): the record writes they waited on before ending their watches
    queued for a connection until their 30 s timeout, and every spawn stalled.
    """
    assert sandbox.url is not None
    pool = 2
    async with KubernetesClient.from_url(sandbox.url, request_timeout=5) as kube:
        kube._api.configuration.connection_pool_maxsize = pool  # read when its pool is built
        kube._api.rest_client.maxsize = pool
        seen: list[tuple[str, str, str]] = []
        watches = [
            asyncio.create_task(_collect(kube.watch("ConfigMap", "w"), seen)) for _ in range(pool)
        ]
        try:
            await _watching(sandbox, pool)
            async with asyncio.timeout(2):
                await kube.apply_one(_cm("a", "1"))
                assert await kube.find("ConfigMap", "a", "w") is not None
        finally:
            for task in watches:
                await _stop(task)
