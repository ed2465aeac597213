"""Objects the sandbox makes decode as the official client's typed models (pydantic, strict)."""

from __future__ import annotations

from typing import Any

from kubernetes.aio import client as k
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox


async def test_typed_models_decode_what_the_cluster_writes(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    fileserver = reference_manifests("fileserver")
    await client.apply([m for m in fileserver if m["kind"] != "Pod"])
    await client.wait_for(
        "Pod",
        "rachel-nb",
        "userlabs-rachel",
        lambda p: p is not None and p["status"]["phase"] == "Running",
    )
    await client.wait_for(
        "Ingress",
        "rachel-fs",
        "fileservers",
        lambda i: i is not None and bool(i["status"]["loadBalancer"]),
    )
    assert sandbox.url is not None

    async with k.ApiClient(k.Configuration(host=sandbox.url)) as api:
        core, batch, net = k.CoreV1Api(api), k.BatchV1Api(api), k.NetworkingV1Api(api)
        pod = await core.read_namespaced_pod("rachel-nb", "userlabs-rachel")
        events = await core.list_namespaced_event(
            "userlabs-rachel", field_selector="involvedObject.name=rachel-nb"
        )
        nodes = await core.list_node()
        jobs = await batch.list_namespaced_job("fileservers")
        ingress = await net.read_namespaced_ingress("rachel-fs", "fileservers")
        claims = await core.list_namespaced_persistent_volume_claim("fileservers")
        quota = await core.read_namespaced_resource_quota("rachel-nb", "userlabs-rachel")

    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].ready
    assert {e.reason for e in events.items} >= {"Scheduled", "Pulling", "Created", "Started"}
    assert nodes.items[0].status.node_info.kubelet_version == "v1.32.0"
    assert jobs.items[0].status.active == 1
    assert ingress.status.load_balancer.ingress[0].ip == "127.0.0.1"
    assert claims.items[0].status.phase == "Bound"
    assert quota.status.hard == quota.spec.hard
