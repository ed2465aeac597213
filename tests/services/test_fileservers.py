"""FileServerService on the sandbox, below the routes: what needs short Lease durations."""

from __future__ import annotations

import asyncio

import pytest
from fileserver_support import FS_NAMESPACE, fileserver_config
from lab_api_support import CONTROLLER_NAMESPACE, RecordingAlerts, user_for

from nublado.kube.client import KubernetesClient
from nublado.models.user import UserInfo
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.fileservers import (
    FileServerCreationError,
    FileServerDeletionError,
    FileServerService,
)

SLOW = SandboxSettings(pod_grace_scale=0.0, start_delay=2.5)
"""Pods take 2.5 s to start: longer than a 1 s Lease, so only renewals keep it held."""


def service(client: KubernetesClient, identity: str) -> FileServerService:
    config = fileserver_config()
    return FileServerService(
        config,
        client,
        Renderer(config.template_dirs),
        namespace=CONTROLLER_NAMESPACE,
        identity=identity,
        lease_duration=1.0,
    )


async def started_replicas(client: KubernetesClient) -> tuple[FileServerService, FileServerService]:
    """Two started replicas, ``replica-a`` and ``replica-b``, in a new controller namespace."""
    await client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    )
    a, b = service(client, "replica-a"), service(client, "replica-b")
    await a.start()
    await b.start()
    return a, b


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=False)
async def test_a_long_creation_keeps_its_record_renewed(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    a, b = await started_replicas(client)
    user = UserInfo.model_validate(user_for("rachel"))
    try:
        first = asyncio.create_task(a.ensure(user))
        await sandbox.wait_for_async(lambda: sandbox.get("Job", "rachel-fs", FS_NAMESPACE))
        # b waits for a's record the whole time a creates: it is renewed every 1/3 s.
        await asyncio.wait_for(asyncio.gather(first, b.ensure(user)), timeout=15)
    finally:
        await a.stop()
        await b.stop()

    job_writes = [r for r in sandbox.requests if r.method == "PATCH" and "/jobs/" in r.target]
    assert len(job_writes) == 1
    lease = sandbox.get("Lease", "fs-rachel", CONTROLLER_NAMESPACE)
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]
    renewals = [
        r for r in sandbox.requests if r.method == "PUT" and "/leases/fs-rachel?" in r.target
    ]
    assert len(renewals) >= 4  # several renewals, then the release (and b's claim and release)


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=False)
async def test_a_replica_whose_record_is_taken_over_stops(
    client: KubernetesClient, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stalls (its renewals never come) while its pod starts: b takes the record
    # over once it expires and makes the server; a's creation must stop, not go on
    # beside b's.
    async def stalled(self: FileServerService, username: str, operation: str) -> None:
        if self.identity == "replica-a":
            await asyncio.sleep(3600)
        await renew(self, username, operation)

    renew = FileServerService._renew
    monkeypatch.setattr(FileServerService, "_renew", stalled)
    a, b = await started_replicas(client)
    user = UserInfo.model_validate(user_for("rachel"))
    try:
        first = asyncio.create_task(a.ensure(user))
        await sandbox.wait_for_async(lambda: sandbox.get("Job", "rachel-fs", FS_NAMESPACE))
        await asyncio.wait_for(b.ensure(user), timeout=15)
        with pytest.raises(FileServerCreationError) as failed:
            await asyncio.wait_for(first, timeout=5)
        assert str(failed.value) == (
            "Failed to create file server: Another replica took over the file server of rachel"
        )
        assert b.is_running("rachel")
        await asyncio.sleep(0.5)  # a writes nothing more
        assert b.is_running("rachel")
    finally:
        await a.stop()
        await b.stop()

    lease = sandbox.get("Lease", "fs-rachel", CONTROLLER_NAMESPACE)
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]
    assert lease["metadata"]["annotations"]["nublado.lsst.io/result"] == "complete"


async def test_creation_and_deletion_failures_are_alerted(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    # api.md 2.4: the 500 of a failed creation or deletion was "already reported".
    await client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    )
    alerts = RecordingAlerts()
    config = fileserver_config()
    fileservers = FileServerService(
        config,
        client,
        Renderer(config.template_dirs),
        namespace=CONTROLLER_NAMESPACE,
        identity="replica-a",
        alerts=alerts,
    )
    await fileservers.start()
    user = UserInfo.model_validate(user_for("rachel"))
    services = f"/api/v1/namespaces/{FS_NAMESPACE}/services*"
    fault = "injected fault: 500 InternalError (500 InternalError)"
    try:
        sandbox.inject_fault("PATCH", services, status=500, count=None)
        with pytest.raises(FileServerCreationError):
            await asyncio.gather(fileservers.ensure(user), fileservers.ensure(user))
        sandbox.clear_faults()
        await fileservers.ensure(user)
        sandbox.inject_fault("DELETE", services, status=500, count=None)
        with pytest.raises(FileServerDeletionError):
            await fileservers.delete("rachel")
        sandbox.clear_faults()
    finally:
        await fileservers.stop()

    assert alerts.reports == [  # one creation for both requests: one alert
        ("File server creation failed", "rachel", f"Failed to create file server: {fault}"),
        ("File server deletion failed", "rachel", f"Failed to delete file server: {fault}"),
    ]
