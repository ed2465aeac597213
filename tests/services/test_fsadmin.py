"""FSAdminService on the sandbox: objects.md 7.5's Kubernetes behaviour, the lock, failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from fsadmin_support import (
    fsadmin_config,
    fsadmin_service,
    pod_posts,
    reference_fsadmin_differences,
)
from lab_api_support import CONTROLLER_NAMESPACE, wait_until

from nublado.api.errors import InvalidPhaseError, NotFoundError
from nublado.kube.client import KubernetesClient
from nublado.kube.errors import KubernetesError
from nublado.sandbox.server import Sandbox
from nublado.services.fsadmin import FSAdminService, FSAdminTimeoutError

NS = CONTROLLER_NAMESPACE


@pytest.fixture
async def fsadmin(client: KubernetesClient) -> FSAdminService:
    """The service for upstream's fsadmin.yaml, its namespace created."""
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return fsadmin_service(fsadmin_config(), client)


def pod_phase(sandbox: Sandbox) -> str | None:
    pod = sandbox.get("Pod", "fsadmin", NS)
    return None if pod is None else pod["status"].get("phase")


def calls(sandbox: Sandbox) -> list[tuple[str, str]]:
    """The pod and PVC writes the sandbox received, in order, as (method, target)."""
    return [
        (r.method, r.target.split("?")[0])
        for r in sandbox.requests
        if r.method in ("POST", "PUT", "DELETE")
        and ("/persistentvolumeclaims" in r.target or "/pods" in r.target)
    ]


async def test_status_without_a_pod_is_not_found_named_namespace_slash_pod(
    fsadmin: FSAdminService,
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await fsadmin.status()

    assert caught.value.message == "nublado/fsadmin"


async def test_start_creates_the_reference_objects_and_answers_the_pod_start_time(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    started = await fsadmin.start()

    assert reference_fsadmin_differences(sandbox) == []
    pod = sandbox.get("Pod", "fsadmin", NS)
    assert pod is not None
    assert started == datetime.fromisoformat(pod["status"]["startTime"])
    assert started.tzinfo == UTC
    assert await fsadmin.status() == started
    pvcs = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
    assert calls(sandbox) == [("POST", pvcs), ("POST", f"/api/v1/namespaces/{NS}/pods")]


async def test_start_leaves_a_running_pod_alone(fsadmin: FSAdminService, sandbox: Sandbox) -> None:
    first = await fsadmin.start()
    writes = calls(sandbox)

    again = await fsadmin.start()

    assert again == first
    assert calls(sandbox) == writes


async def test_a_new_service_finds_the_running_pod(
    fsadmin: FSAdminService, client: KubernetesClient, sandbox: Sandbox
) -> None:
    started = await fsadmin.start()
    restarted = fsadmin_service(fsadmin_config(), client)

    assert await restarted.status() == started
    assert await restarted.start() == started
    assert pod_posts(sandbox) == 1


async def test_a_pod_that_fails_at_once_is_invalid_phase_and_the_next_start_replaces_it(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    sandbox.set_pod_failure("Failed", "fsadmin", NS)

    with pytest.raises(InvalidPhaseError) as caught:
        await fsadmin.start()
    assert caught.value.message == "Failed"
    with pytest.raises(InvalidPhaseError) as caught:
        await fsadmin.status()
    assert caught.value.message == "Failed"

    sandbox.clear_pod_failures()
    await fsadmin.start()

    assert pod_phase(sandbox) == "Running"
    assert pod_posts(sandbox) == 2
    assert reference_fsadmin_differences(sandbox) == []


async def test_status_of_a_pending_pod_is_invalid_phase_pending(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    sandbox.settings.pull_delay = 30.0
    sandbox.create(next(m for m in fsadmin.manifests() if m["kind"] == "Pod"))

    with pytest.raises(InvalidPhaseError) as caught:
        await fsadmin.status()

    assert caught.value.message == "Pending"


async def test_start_replaces_a_pending_pod_and_a_stale_pvc(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    """A same-named PVC is deleted and created again (replace=True); the stale pod goes first."""
    manifests = fsadmin.manifests()
    pvc = next(m for m in manifests if m["kind"] == "PersistentVolumeClaim")
    stale = {**pvc, "metadata": {**pvc["metadata"], "labels": {"stale": "yes"}}}
    sandbox.create(stale)
    sandbox.settings.pull_delay = 30.0
    sandbox.create(next(m for m in manifests if m["kind"] == "Pod"))
    old_uid = sandbox.get("Pod", "fsadmin", NS)["metadata"]["uid"]  # type: ignore[index]
    sandbox.settings.pull_delay = 0.0

    await fsadmin.start()

    assert reference_fsadmin_differences(sandbox) == []
    assert sandbox.get("Pod", "fsadmin", NS)["metadata"]["uid"] != old_uid  # type: ignore[index]
    pvcs = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
    pods = f"/api/v1/namespaces/{NS}/pods"
    assert calls(sandbox) == [
        ("DELETE", f"{pods}/fsadmin"),
        ("POST", pvcs),
        ("DELETE", f"{pvcs}/fsadmin-pvc-scratch"),
        ("POST", pvcs),
        ("POST", pods),
    ]


async def test_delete_removes_the_pod_then_its_pvcs_and_a_missing_instance_is_success(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    await fsadmin.start()
    before = len(calls(sandbox))

    await fsadmin.delete()

    assert sandbox.objects(NS, "Pod") == []
    assert sandbox.objects(NS, "PersistentVolumeClaim") == []
    assert calls(sandbox)[before:] == [
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/fsadmin"),
        ("DELETE", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/fsadmin-pvc-scratch"),
    ]
    await fsadmin.delete()
    with pytest.raises(NotFoundError):
        await fsadmin.status()


async def test_a_start_during_a_pending_start_waits_and_sees_the_pod(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    sandbox.settings.pull_delay = 0.5

    first, second = await asyncio.gather(fsadmin.start(), fsadmin.start())

    assert first == second
    assert pod_posts(sandbox) == 1


async def test_a_delete_during_a_pending_start_waits_for_it_then_deletes(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    sandbox.settings.pull_delay = 0.5
    order: list[str] = []

    async def start() -> None:
        await fsadmin.start()
        order.append("started")

    async def delete() -> None:
        await wait_until(lambda: pod_phase(sandbox) == "Pending")
        await fsadmin.delete()
        order.append("deleted")

    await asyncio.gather(start(), delete())

    assert order == ["started", "deleted"]
    assert sandbox.objects(NS, "Pod") == []
    assert sandbox.objects(NS, "PersistentVolumeClaim") == []


async def test_a_pod_still_pending_after_the_timeout_fails_the_start(
    client: KubernetesClient, fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    sandbox.settings.pull_delay = 30.0
    quick = fsadmin_service(fsadmin_config(timeout=0.3), client)

    with pytest.raises(FSAdminTimeoutError, match="nublado/fsadmin not started after 0.3s"):
        await quick.start()


async def test_a_kubernetes_failure_escapes(fsadmin: FSAdminService, sandbox: Sandbox) -> None:
    sandbox.inject_fault("POST", f"/api/v1/namespaces/{NS}/pods", status=500, count=None)

    with pytest.raises(KubernetesError):
        await fsadmin.start()


async def test_start_replaces_a_running_pod_someone_is_deleting(
    fsadmin: FSAdminService, sandbox: Sandbox
) -> None:
    """A Terminating pod is no pod to answer with: the start waits for it and makes a new one."""
    sandbox.settings.pod_grace_scale = 0.03  # the default 30 s grace period lasts ~1 s
    await fsadmin.start()
    old = sandbox.get("Pod", "fsadmin", NS)
    assert old is not None
    sandbox.delete("Pod", "fsadmin", NS)
    terminating = sandbox.get("Pod", "fsadmin", NS)
    assert terminating is not None
    assert terminating["metadata"].get("deletionTimestamp")

    await fsadmin.start()

    new = sandbox.get("Pod", "fsadmin", NS)
    assert new is not None
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["status"]["phase"] == "Running"
    assert pod_posts(sandbox) == 2
