"""GET, LIST by label, DELETE with propagation and awaited disappearance, namespace termination."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import KubernetesError, KubernetesTimeoutError, NotFoundError
from nublado.sandbox.server import Sandbox

NS = "userlabs-rachel"


def _phase(sandbox: Sandbox, name: str) -> str | None:
    pod = sandbox.get("Pod", name, NS)
    return None if pod is None else pod["status"].get("phase")


def _config_map(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
    }


async def test_get_returns_the_object_and_missing_raises_not_found(
    client: KubernetesClient, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)

    service = await client.get("Service", "lab", NS)

    assert service["spec"]["ports"][0]["port"] == 8888
    assert service["spec"]["clusterIP"].startswith("10.96.")
    with pytest.raises(NotFoundError) as caught:
        await client.get("Pod", "nobody-nb", NS)
    assert caught.value.message == 'pods "nobody-nb" not found'
    assert await client.find("Pod", "nobody-nb", NS) is None


@pytest.mark.parametrize("verb", ["list", "watch"])
async def test_malformed_label_selector_is_the_servers_400(
    client: KubernetesClient, verb: str
) -> None:
    with pytest.raises(KubernetesError) as caught:
        if verb == "list":
            await client.list("ConfigMap", label_selector="app in (lab")
        else:
            async for _ in client.watch("ConfigMap", "default", label_selector="app in (lab"):
                pass

    assert (caught.value.status, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == (
        "unable to parse requirement: found 'end', expected: ',' or ')'"
    )


def test_production_client_imports_no_sandbox() -> None:
    """The client ships in the production image, which installs without the sandbox."""
    code = (
        "import sys, nublado.kube.client; print(sorted(m for m in sys.modules if 'sandbox' in m))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


async def test_list_by_label_in_one_namespace_and_across_all(client: KubernetesClient) -> None:
    for ns in ("a", "b"):
        await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await client.apply_one(_config_map("lab", ns, {"app": "lab", "tier": "user"}))
        await client.apply_one(_config_map("other", ns, {"app": "other"}))

    in_a = await client.list("ConfigMap", "a", label_selector="app=lab")
    everywhere = await client.list("ConfigMap", label_selector="app in (lab,other),!missing")
    by_dict = await client.list("ConfigMap", label_selector={"app": "lab", "tier": "user"})
    none = await client.list("ConfigMap", label_selector="app notin (lab,other)")

    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in in_a] == [("a", "lab")]
    assert len(everywhere) == 4
    assert {o["metadata"]["namespace"] for o in by_dict} == {"a", "b"}
    assert none == []
    assert all(o["kind"] == "ConfigMap" for o in everywhere)


async def test_list_follows_pagination(client: KubernetesClient, sandbox: Sandbox) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}})
    for i in range(12):
        await client.apply_one(_config_map(f"cm-{i:02}", "many", {"app": "x"}))

    items = await client.list("ConfigMap", "many", label_selector="app=x", page_size=5)

    assert [o["metadata"]["name"] for o in items] == [f"cm-{i:02}" for i in range(12)]
    limits = [r.target for r in sandbox.requests if r.method == "GET" and "limit=5" in r.target]
    assert len(limits) == 3


async def test_delete_waits_until_the_object_is_gone(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    sandbox.settings.pod_grace_scale = 0.3  # the 1 s grace period lasts 0.3 s
    await client.apply(lab_manifests)
    await sandbox.wait_for_async(lambda: _phase(sandbox, "rachel-nb") == "Running")
    start = time.monotonic()

    deleted = await client.delete("Pod", "rachel-nb", NS, grace_period_seconds=1)

    assert deleted
    assert time.monotonic() - start >= 0.25
    assert sandbox.get("Pod", "rachel-nb", NS) is None
    assert await client.delete("Pod", "rachel-nb", NS) is False


async def test_delete_times_out_while_the_object_stays(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    sandbox.settings.namespace_termination_delay = None
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stuck"}})

    with pytest.raises(KubernetesTimeoutError, match="still exists"):
        await client.delete_namespace("stuck", timeout=0.3)


async def test_namespace_deletion_waits_through_terminating(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    sandbox.settings.namespace_termination_delay = None
    await client.apply(lab_manifests)
    deletion = asyncio.create_task(client.delete_namespace(NS, timeout=10))
    await sandbox.wait_for_async(
        lambda: (sandbox.get("Namespace", NS) or {}).get("status", {}).get("phase") == "Terminating"
    )
    assert sandbox.objects(namespace=NS) != []  # content stays until the controller runs
    assert not deletion.done()

    sandbox.finish_namespace(NS)

    assert await deletion is True
    assert sandbox.objects(namespace=NS) == []
    assert sandbox.get("Namespace", NS) is None


async def test_second_namespace_delete_while_terminating_still_waits(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    sandbox.settings.namespace_termination_delay = 0.2
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "twice"}})
    await client.delete("Namespace", "twice", wait=False)

    # The API answers 409 to the second delete; the client treats it as "on its way".
    assert await client.delete_namespace("twice", timeout=5) is True
    assert sandbox.get("Namespace", "twice") is None


async def test_job_deletion_with_foreground_removes_its_pod_first(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    manifests = reference_manifests("fileserver")
    await client.apply([m for m in manifests if m["kind"] in ("Namespace", "Job")])
    pods = await sandbox.wait_for_async(
        lambda: sandbox.objects("fileservers", "Pod", label_selector="job-name=rachel-fs")
    )
    assert len(pods) == 1

    await client.delete("Job", "rachel-fs", "fileservers", propagation_policy="Foreground")

    assert sandbox.objects("fileservers", "Pod") == []
    assert sandbox.objects("fileservers", "Job") == []


async def test_job_deletion_orphans_its_pod_by_default(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    manifests = reference_manifests("fileserver")
    kinds = ("Namespace", "PersistentVolumeClaim", "Job")
    await client.apply([m for m in manifests if m["kind"] in kinds])
    # Scheduled (its claims bound): only a pod on a node has a grace period.
    await sandbox.wait_for_async(
        lambda: [p for p in sandbox.objects("fileservers", "Pod") if p["spec"].get("nodeName")]
    )

    await client.delete("Job", "rachel-fs", "fileservers")

    pods = sandbox.objects("fileservers", "Pod")
    assert len(pods) == 1
    assert pods[0]["metadata"].get("ownerReferences") == []


async def test_deletecollection_deletes_what_the_selector_matches(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}})
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await client.apply_one(_config_map(name, "d", {"app": app}))

    status, answer = await client._request(
        "DELETE", "/api/v1/namespaces/d/configmaps", query=[("labelSelector", "app=x")]
    )

    assert status == 200
    assert answer["kind"] == "ConfigMapList"
    assert sorted(i["metadata"]["name"] for i in answer["items"]) == ["a", "b"]
    assert [o["metadata"]["name"] for o in sandbox.objects("d", "ConfigMap")] == ["c"]


async def test_delete_preconditions_on_uid_and_resource_version(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}})
    applied = await client.apply_one(_config_map("a", "d", {}))
    meta = applied.object["metadata"]
    path = "/api/v1/namespaces/d/configmaps/a"

    for preconditions in ({"uid": "not-the-uid"}, {"resourceVersion": "1"}):
        with pytest.raises(KubernetesError) as caught:
            await client._request("DELETE", path, body={"preconditions": preconditions})
        assert caught.value.status == 409
        assert "Precondition failed" in caught.value.message
    assert sandbox.get("ConfigMap", "a", "d") is not None

    body = {"preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
    await client._request("DELETE", path, body=body)
    assert sandbox.get("ConfigMap", "a", "d") is None


@pytest.mark.parametrize(("orphan", "terminating"), [("true", False), ("false", True)])
async def test_orphan_dependents_chooses_orphan_or_background(
    client: KubernetesClient, sandbox: Sandbox, orphan: str, terminating: bool
) -> None:
    manifests = reference_manifests("fileserver")
    kinds = ("Namespace", "PersistentVolumeClaim", "Job")
    await client.apply([m for m in manifests if m["kind"] in kinds])
    # Scheduled (its claims bound): only a pod on a node has a grace period.
    await sandbox.wait_for_async(
        lambda: [p for p in sandbox.objects("fileservers", "Pod") if p["spec"].get("nodeName")]
    )

    await client._request(
        "DELETE",
        "/apis/batch/v1/namespaces/fileservers/jobs/rachel-fs",
        query=[("orphanDependents", orphan)],
    )

    assert sandbox.objects("fileservers", "Job") == []
    # Background: the garbage collector deletes the pod, which terminates gracefully.
    pods = sandbox.objects("fileservers", "Pod")
    assert len(pods) == 1
    assert ("deletionTimestamp" in pods[0]["metadata"]) is terminating
    if terminating:
        await sandbox.wait_for_async(lambda: not sandbox.objects("fileservers", "Pod"))
