"""What the sandbox does on its own: kubelet, events, failures, Jobs, ingresses, nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import PodFailure, Sandbox, SandboxSettings

NS = "userlabs-rachel"


def _phase(sandbox: Sandbox, name: str, namespace: str) -> str | None:
    pod = sandbox.get("Pod", name, namespace)
    return None if pod is None else pod.get("status", {}).get("phase")


def _reasons(events: list[dict[str, Any]], field_path: str | None = None) -> list[str]:
    ordered = sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [
        e["reason"]
        for e in ordered
        if field_path is None or e["involvedObject"].get("fieldPath") in (None, field_path)
    ]


async def test_new_namespace_gets_a_default_service_account(client: KubernetesClient) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})

    account = await client.get("ServiceAccount", "default", "n")

    assert account["metadata"]["namespace"] == "n"
    namespace = await client.get("Namespace", "n")
    assert namespace["status"]["phase"] == "Active"
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == "n"


async def test_lab_pod_goes_pending_to_running_with_kubelet_events(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    results = await client.apply(lab_manifests)
    assert results[-1].object["status"]["phase"] == "Pending"

    running = await client.wait_for(
        "Pod",
        "rachel-nb",
        NS,
        lambda p: p is not None and p["status"]["phase"] == "Running",
        timeout=5,
    )

    assert running is not None
    assert running["spec"]["nodeName"] == "node1"
    assert running["status"]["podIP"].startswith("10.244.")
    assert all(s["ready"] for s in running["status"]["containerStatuses"])
    events = await client.list("Event", NS, field_selector="involvedObject.name=rachel-nb")
    reasons = _reasons(events, "spec.containers{notebook}")
    assert reasons[0] == "Scheduled"
    assert reasons[-3:] == ["Pulled", "Created", "Started"]
    assert "Pulling" not in reasons  # node1 lists its image by digest: already present
    pulling = [e for e in events if e["reason"] == "Pulling"]
    assert pulling  # the init containers' images are not on the node
    assert {e["source"]["component"] for e in events} == {"default-scheduler", "kubelet"}


async def test_image_already_on_the_node_is_not_pulled(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    await client.apply_one(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {
                "nodeName": "node2",
                "containers": [
                    {"name": "c", "image": "lighthouse.ceres/library/sketchbook:w_2077_43"}
                ],
            },
        }
    )

    await sandbox.wait_for_async(lambda: _phase(sandbox, "p", "n") == "Running")

    messages = [e["message"] for e in sandbox.objects("n", "Event")]
    assert any("already present on machine" in m for m in messages)
    assert not any(m.startswith("Pulling") for m in messages)


class TestSlowKubelet:
    """With delays, each step is visible in turn."""

    @pytest.fixture
    def sandbox_settings(self) -> SandboxSettings:
        return SandboxSettings(schedule_delay=0.2, pull_delay=0.2, start_delay=0.2)

    async def test_pod_stays_pending_until_the_delays_pass(
        self, client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
    ) -> None:
        await client.apply(lab_manifests)
        assert _phase(sandbox, "rachel-nb", NS) == "Pending"
        await asyncio.sleep(0.25)  # Running comes no sooner than 0.6 s after creation
        assert _phase(sandbox, "rachel-nb", NS) == "Pending"
        await sandbox.wait_for_async(
            lambda: (sandbox.get("Pod", "rachel-nb", NS) or {})["spec"].get("nodeName")
        )

        await sandbox.wait_for_async(lambda: _phase(sandbox, "rachel-nb", NS) == "Running")


@pytest.mark.parametrize(
    ("failure", "phase", "waiting", "event"),
    [
        (PodFailure.ERR_IMAGE_PULL, "Pending", "ErrImagePull", "Failed"),
        (PodFailure.IMAGE_PULL_BACK_OFF, "Pending", "ImagePullBackOff", "BackOff"),
        (PodFailure.CRASH_LOOP_BACK_OFF, "Running", "CrashLoopBackOff", "BackOff"),
        (PodFailure.FAILED, "Failed", None, "Started"),
    ],
)
async def test_pod_failures_on_demand(
    client: KubernetesClient,
    sandbox: Sandbox,
    lab_manifests: list[dict[str, Any]],
    failure: PodFailure,
    phase: str,
    waiting: str | None,
    event: str,
) -> None:
    sandbox.set_pod_failure(failure, name="rachel-nb")

    await client.apply(lab_manifests)

    def settled() -> dict[str, Any] | None:
        pod = sandbox.get("Pod", "rachel-nb", NS)
        statuses = (pod or {}).get("status", {}).get("containerStatuses")
        return pod if statuses else None

    pod = await sandbox.wait_for_async(settled)
    assert pod["status"]["phase"] == phase
    state = pod["status"]["containerStatuses"][0]["state"]
    if waiting is None:
        assert state["terminated"]["exitCode"] == 1
    else:
        assert state["waiting"]["reason"] == waiting
    reasons = _reasons(sandbox.objects(NS, "Event"))
    assert event in reasons
    assert any(e["type"] == "Warning" for e in sandbox.objects(NS, "Event")) or phase == "Failed"


async def test_failure_can_hit_a_running_pod(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    await sandbox.wait_for_async(lambda: _phase(sandbox, "rachel-nb", NS) == "Running")

    sandbox.set_pod_failure("Failed", name="rachel-nb", namespace=NS)

    assert _phase(sandbox, "rachel-nb", NS) == "Failed"
    sandbox.clear_pod_failures()


def _controller_pod(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nublado-controller", "namespace": namespace},
        "spec": {"containers": [{"name": "controller", "image": "ghcr.io/lsst-sqre/nublado:1"}]},
    }


async def test_prepull_pod_runs_to_completion(client: KubernetesClient, sandbox: Sandbox) -> None:
    await client.apply_one(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nublado"}}
    )
    pod = reference_manifests("prepull")[0]
    # The prepull pod is owned by the controller's pod: without it, the garbage
    # collector removes the prepull pod at once (a dangling owner reference).
    owner = (await client.apply_one(_controller_pod(pod["metadata"]["namespace"]))).object
    pod["metadata"]["ownerReferences"][0]["uid"] = owner["metadata"]["uid"]

    await client.apply_one(pod)

    done = await client.wait_for(
        "Pod",
        pod["metadata"]["name"],
        "nublado",
        lambda p: p is not None and p["status"]["phase"] not in ("Pending", "Running"),
        timeout=5,
    )
    assert done is not None and done["status"]["phase"] == "Succeeded"
    node = await client.get("Node", "node2")
    names = {n for image in node["status"]["images"] for n in image["names"]}
    assert pod["spec"]["containers"][0]["image"] in names


async def test_job_creates_its_pod_and_records_completion(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    manifests = reference_manifests("fileserver")
    # The Job's pod mounts the scratch claim: without it the pod is never scheduled.
    wanted = ("Namespace", "PersistentVolumeClaim", "Job")
    await client.apply([m for m in manifests if m["kind"] in wanted])

    pods = await sandbox.wait_for_async(
        lambda: [
            p
            for p in sandbox.objects("fileservers", "Pod", label_selector="job-name=rachel-fs")
            if p["status"]["phase"] == "Running"
        ]
    )

    pod = pods[0]
    assert pod["metadata"]["name"].startswith("rachel-fs-")
    assert pod["metadata"]["labels"]["nublado.lsst.io/user"] == "rachel"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    job = await client.get("Job", "rachel-fs", "fileservers")
    assert job["status"]["active"] == 1

    sandbox.set_pod_failure("Failed", name=pod["metadata"]["name"])

    job = await client.wait_for(
        "Job",
        "rachel-fs",
        "fileservers",
        lambda j: j is not None and j["status"].get("failed") == 1,
    )
    assert job is not None
    assert [c["type"] for c in job["status"]["conditions"]][-1] == "Failed"


async def test_gafaelfawr_ingress_makes_an_ingress_with_an_address(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    manifests = reference_manifests("fileserver")
    await client.apply([m for m in manifests if m["kind"] in ("Namespace", "GafaelfawrIngress")])

    ingress = await client.wait_for(
        "Ingress",
        "rachel-fs",
        "fileservers",
        lambda i: i is not None and bool(i["status"]["loadBalancer"].get("ingress")),
    )

    assert ingress is not None
    assert ingress["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/files/rachel"
    await client.delete("GafaelfawrIngress", "rachel-fs", "fileservers")
    await client.wait_for_deletion("Ingress", "rachel-fs", "fileservers", timeout=5)


async def test_nodes_come_from_the_nodes_file_with_images(client: KubernetesClient) -> None:
    nodes = await client.list("Node", label_selector="some-label=some-value")

    assert [n["metadata"]["name"] for n in nodes] == ["node1", "node2"]
    first = nodes[0]["status"]["images"][0]
    assert first["names"][0] == "lighthouse.ceres/library/sketchbook:latest_daily"
    assert first["sizeBytes"] == 69105
