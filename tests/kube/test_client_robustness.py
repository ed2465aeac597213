"""The client against hard cases: history lost mid-wait, failed relists, stalls, empty streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from kubernetes.aio import config as kconfig

from nublado.kube.client import KubernetesClient, WatchEvent
from nublado.kube.errors import (
    ExpiredError,
    KubernetesError,
    KubernetesTimeoutError,
    MissingNamespaceError,
)
from nublado.sandbox.server import Sandbox

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}


def _cm(name: str, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "w"},
        "data": {"v": value},
    }


@pytest.fixture
async def namespace(client: KubernetesClient) -> str:
    await client.apply_one(NAMESPACE)
    return "w"


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A bare HTTP server on 127.0.0.1 whose answers the test writes byte by byte.

    Yields its URL and a one-element list counting the requests it received.
    """
    count = [0]
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                count[0] += 1
                await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", count
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_wait_for_deletion_sees_a_deletion_lost_to_a_410(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    await client.apply_one(_cm("a"))
    task = asyncio.create_task(client.wait_for_deletion("ConfigMap", "a", namespace, timeout=5))
    await sandbox.wait_for_async(lambda: sandbox.watch_count() == 1)

    # The watch drops; while it is down the object goes and the history is lost.
    sandbox.cut_watches()
    sandbox.delete("ConfigMap", "a", namespace)
    sandbox.compact()

    start = time.monotonic()
    await asyncio.wait_for(task, 3)
    assert time.monotonic() - start < 2


async def test_a_failed_relist_is_retried_rather_than_ending_the_watch(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    start = await client.apply_one(_cm("a", "1"))
    await client.apply_one(_cm("a", "2"))
    sandbox.compact()  # resuming from `start` answers 410: the watch must relist
    # The relist's first LIST fails through all its own retries.
    fault = sandbox.inject_fault(
        "GET", "/api/v1/namespaces/w/configmaps?limit=*", status=500, count=4
    )
    seen: list[WatchEvent] = []

    async for event in client.watch(
        "ConfigMap", namespace, resource_version=start.resource_version, timeout=1
    ):
        seen.append(event)

    assert fault.hits == 4
    assert [(e.type, e.name, e.object["data"]["v"]) for e in seen] == [("ADDED", "a", "2")]


async def test_a_stalled_body_is_a_kubernetes_timeout() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(10)

    async with (
        _raw_server(stall) as (url, count),
        KubernetesClient.from_url(url, request_timeout=0.2, retries=1, backoff=0.01) as kube,
    ):
        start = time.monotonic()
        with pytest.raises(KubernetesTimeoutError, match="timed out"):
            await kube.get("Namespace", "x")
        assert time.monotonic() - start < 2
        assert count[0] == 2  # retried once, like a connection error


async def test_wait_for_bounds_its_first_list_by_its_timeout(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    sandbox.add_latency(1.0, "GET", "/api/v1/namespaces/w/configmaps", count=1)
    start = time.monotonic()
    with pytest.raises(KubernetesTimeoutError, match=r"after 0\.3s"):
        await client.wait_for("ConfigMap", "a", namespace, lambda o: o is not None, timeout=0.3)
    assert time.monotonic() - start < 0.8


async def test_a_stream_that_ends_at_once_is_not_reopened_in_a_busy_loop() -> None:
    async def empty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    async with (
        _raw_server(empty) as (url, count),
        KubernetesClient.from_url(url, backoff=0.01) as kube,
    ):
        events = [e async for e in kube.watch("ConfigMap", "w", resource_version="1", timeout=0.5)]
    assert events == []
    assert 2 <= count[0] < 15


async def test_configuration_errors_come_out_as_kubernetes_errors(sandbox: Sandbox) -> None:
    assert sandbox.url is not None

    def broken_plugin(configuration: Any) -> None:
        raise kconfig.ConfigException("exec plugin failed: token expired")

    async with KubernetesClient.from_url(sandbox.url, retries=0) as kube:
        kube._api.configuration.api_key = {"BearerToken": "x"}
        kube._api.configuration.refresh_api_key_hook = broken_plugin
        with pytest.raises(KubernetesError, match="exec plugin failed"):
            await kube.get("Namespace", "x")


async def test_list_restarts_once_when_its_continue_token_expires(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    for name in ("a", "b", "c"):
        await client.apply_one(_cm(name))
    fault = sandbox.inject_fault(
        "GET", "/api/v1/namespaces/w/configmaps?*continue=*", status=410, reason="Expired"
    )

    items = await client.list("ConfigMap", namespace, page_size=1)

    assert [i["metadata"]["name"] for i in items] == ["a", "b", "c"]
    assert fault.hits == 1
    sandbox.inject_fault(
        "GET", "/api/v1/namespaces/w/configmaps?*continue=*", status=410, reason="Expired", count=2
    )
    with pytest.raises(ExpiredError):
        await client.list("ConfigMap", namespace, page_size=1)


async def test_delete_does_not_wait_for_a_recreated_object_of_the_same_name(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    await client.apply_one(_cm("a"))
    # Hold the wait's first LIST so that the object is recreated before it runs.
    sandbox.add_latency(0.5, "GET", "/api/v1/namespaces/w/configmaps?*fieldSelector=*", count=1)
    task = asyncio.create_task(client.delete("ConfigMap", "a", namespace, timeout=3))
    await sandbox.wait_for_async(lambda: sandbox.get("ConfigMap", "a", namespace) is None)
    sandbox.apply(_cm("a", "again"))

    assert await asyncio.wait_for(task, 2) is True


async def test_retry_after_is_honoured_on_503(sandbox: Sandbox, namespace: str) -> None:
    assert sandbox.url is not None
    fault = sandbox.inject_fault("GET", "/api/v1/namespaces/w", status=503)  # Retry-After: 1
    async with KubernetesClient.from_url(sandbox.url, backoff=0.01) as kube:
        start = time.monotonic()
        await kube.get("Namespace", "w")
        elapsed = time.monotonic() - start
    assert fault.hits == 1
    assert 0.9 <= elapsed < 3


async def test_timeout_messages_give_the_limit_that_applied(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    sandbox.add_latency(1.0, "GET", "/version")
    with pytest.raises(KubernetesTimeoutError, match=r"after 0\.2s"):
        await client._send("GET", "/version", timeout=aiohttp.ClientTimeout(total=0.2))


async def test_a_namespaced_kind_without_namespace_says_so(client: KubernetesClient) -> None:
    with pytest.raises(MissingNamespaceError, match="ConfigMap 'x' is namespaced"):
        await client.get("ConfigMap", "x")


async def test_a_watch_from_a_version_the_server_lacks_starts_over_from_a_list(
    client: KubernetesClient, sandbox: Sandbox, namespace: str
) -> None:
    await client.apply_one(_cm("a"))
    future = str(sandbox.revision + 100)

    seen = [
        (e.type, e.name)
        async for e in client.watch("ConfigMap", namespace, resource_version=future, timeout=0.5)
    ]

    assert seen == [("ADDED", "a")]
