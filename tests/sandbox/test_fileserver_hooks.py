"""The sandbox's hooks for file-server tests: the ingress address delay and `Sandbox.finish_pod`."""

from __future__ import annotations

import asyncio

import pytest
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox, SandboxSettings

NS = "fileservers"


def address(sandbox: Sandbox) -> object:
    ingress = sandbox.get("Ingress", "rachel-fs", NS)
    return ((ingress or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")


async def make_ingress(client: KubernetesClient) -> None:
    manifests = reference_manifests("fileserver")
    await client.apply([m for m in manifests if m["kind"] in ("Namespace", "GafaelfawrIngress")])


@pytest.mark.parametrize(
    "sandbox_settings", [SandboxSettings(ingress_address_delay=0.3)], indirect=False
)
async def test_the_address_comes_after_the_delay(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await make_ingress(client)
    assert sandbox.get("Ingress", "rachel-fs", NS) is not None
    await asyncio.sleep(0.1)
    assert not address(sandbox)

    await sandbox.wait_for_async(lambda: address(sandbox), timeout=5)

    assert address(sandbox) == [{"ip": "127.0.0.1"}]


@pytest.mark.parametrize(
    "sandbox_settings", [SandboxSettings(ingress_address_delay=None)], indirect=False
)
async def test_no_address_when_the_delay_is_none(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await make_ingress(client)
    await asyncio.sleep(0.3)

    assert sandbox.get("Ingress", "rachel-fs", NS) is not None
    assert not address(sandbox)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
async def test_finish_pod_ends_the_jobs_pod(
    client: KubernetesClient, sandbox: Sandbox, phase: str
) -> None:
    manifests = reference_manifests("fileserver")
    wanted = ("Namespace", "PersistentVolumeClaim", "Job")
    await client.apply([m for m in manifests if m["kind"] in wanted])
    pods = await sandbox.wait_for_async(
        lambda: [
            p
            for p in sandbox.objects(NS, "Pod", label_selector="job-name=rachel-fs")
            if p["status"]["phase"] == "Running"
        ]
    )
    name = pods[0]["metadata"]["name"]

    assert sandbox.finish_pod(NS, name, phase)
    assert not sandbox.finish_pod(NS, name, phase)  # already finished
    assert not sandbox.finish_pod(NS, "absent")

    pod = sandbox.get("Pod", name, NS)
    assert pod is not None and pod["status"]["phase"] == phase
    job = await client.wait_for(
        "Job", "rachel-fs", NS, lambda j: j is not None and j["status"].get("active") == 0
    )
    assert job is not None
    key = "succeeded" if phase == "Succeeded" else "failed"
    assert job["status"][key] == 1
