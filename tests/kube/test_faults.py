"""Injected faults, and how the client meets each kind: errors, retries, latency, cut watches."""

from __future__ import annotations

import time
from typing import Any

import pytest

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import ConflictError, KubernetesError, KubernetesTimeoutError
from nublado.sandbox.cluster import SYSTEM_NAMESPACES
from nublado.sandbox.server import Sandbox

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "f"}}
CM: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cm", "namespace": "f"},
    "data": {"A": "1"},
}


async def test_transient_server_errors_are_retried(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one(NAMESPACE)
    fault = sandbox.inject_fault("PATCH", "/api/v1/namespaces/f/configmaps/*", status=503, count=2)

    result = await client.apply_one(CM)

    assert result.created
    assert fault.hits == 2
    patches = [
        r.target for r in sandbox.requests if r.method == "PATCH" and "configmaps" in r.target
    ]
    assert len(patches) == 3


async def test_persistent_errors_surface_with_their_status(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one(NAMESPACE)
    sandbox.inject_fault(
        "PATCH", "*/configmaps/*", status=500, count=None, message="etcdserver: request timed out"
    )

    with pytest.raises(KubernetesError) as caught:
        await client.apply_one(CM)

    assert caught.value.status == 500
    assert caught.value.reason == "InternalError"
    assert caught.value.message == "etcdserver: request timed out"
    assert str(caught.value) == "etcdserver: request timed out (500 InternalError)"


async def test_client_errors_are_not_retried(client: KubernetesClient, sandbox: Sandbox) -> None:
    await client.apply_one(NAMESPACE)
    fault = sandbox.inject_fault("PATCH", "*/configmaps/cm", status=409, count=5)

    with pytest.raises(ConflictError):
        await client.apply_one(CM)

    assert fault.hits == 1


async def test_creates_are_not_retried(client: KubernetesClient, sandbox: Sandbox) -> None:
    await client.apply_one(NAMESPACE)
    fault = sandbox.inject_fault("POST", "*/configmaps", status=503, count=5)

    with pytest.raises(KubernetesError) as caught:
        await client.create(CM)

    assert caught.value.status == 503
    assert fault.hits == 1


async def test_fault_matching_by_method_path_and_query(
    sandbox: Sandbox, client: KubernetesClient
) -> None:
    fault = sandbox.inject_fault(
        "GET", "/api/v1/namespaces?*labelSelector=a*", status=500, count=None
    )
    listed = await client.list("Namespace")  # no selector: not matched
    assert [ns["metadata"]["name"] for ns in listed] == list(SYSTEM_NAMESPACES)
    with pytest.raises(KubernetesError):
        await client.list("Namespace", label_selector="a=b")
    assert fault.hits == 4  # the first try and three retries
    sandbox.clear_faults()
    assert await client.list("Namespace", label_selector="a=b") == []


async def test_latency_slows_requests_and_a_short_timeout_fails_them(sandbox: Sandbox) -> None:
    assert sandbox.url is not None
    sandbox.add_latency(0.3, "GET", "/version")
    sandbox.add_latency(0.5, "GET", "/api/v1/namespaces", count=None)
    async with KubernetesClient.from_url(
        sandbox.url, request_timeout=0.1, retries=1, backoff=0.01
    ) as impatient:
        start = time.monotonic()
        with pytest.raises(KubernetesTimeoutError, match="timed out"):
            await impatient.list("Namespace")
        assert time.monotonic() - start < 2.0  # two short attempts, not the 0.5 s latency
    async with KubernetesClient.from_url(sandbox.url) as patient:
        start = time.monotonic()
        listed = await patient.list("Namespace")
        assert [ns["metadata"]["name"] for ns in listed] == list(SYSTEM_NAMESPACES)
        assert time.monotonic() - start >= 0.5


async def test_connection_refused_is_a_connection_error() -> None:
    async with KubernetesClient.from_url("http://127.0.0.1:9", retries=1, backoff=0.01) as nowhere:
        with pytest.raises(KubernetesError) as caught:
            await nowhere.get("Namespace", "x")
    assert type(caught.value).__name__ == "KubernetesConnectionError"
