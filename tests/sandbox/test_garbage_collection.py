"""Garbage collection through ownerReferences, as kube-controller-manager does it:
background, foreground (``foregroundDeletion``) and orphan (``orphan``) propagation,
dangling owner references, dependents' own finalizers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.sandbox.cli import sandbox as sandbox_command
from nublado.sandbox.server import Sandbox

MERGE = {"content-type": "application/merge-patch+json"}
CM = "/api/v1/namespaces/p/configmaps"
PODS = "/api/v1/namespaces/p/pods"


def _ref(owner: dict[str, Any], *, block: bool = True) -> dict[str, Any]:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


def _cm(
    http: httpx.Client,
    name: str,
    owners: list[dict[str, Any]] | None = None,
    finalizers: list[str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "p"}
    if owners:
        metadata["ownerReferences"] = owners
    if finalizers:
        metadata["finalizers"] = finalizers
    response = http.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _names(http: httpx.Client) -> list[str]:
    return [o["metadata"]["name"] for o in http.get(CM).json()["items"]]


def _release(http: httpx.Client, name: str) -> None:
    response = http.patch(f"{CM}/{name}", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert response.status_code == 200


def test_background_removes_the_owner_then_its_dependents(http: httpx.Client) -> None:
    owner = _cm(http, "owner")
    _cm(http, "blocking", [_ref(owner)])
    _cm(http, "plain", [_ref(owner, block=False)])

    response = http.delete(f"{CM}/owner", params={"propagationPolicy": "Background"})

    assert response.status_code == 200
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "owner", "kind": "configmaps", "uid": owner["metadata"]["uid"]},
    }
    assert _names(http) == []


def test_background_keeps_a_dependent_with_another_owner(http: httpx.Client) -> None:
    owner = _cm(http, "owner")
    other = _cm(http, "other")
    _cm(http, "shared", [_ref(owner), _ref(other)])

    http.delete(f"{CM}/owner")

    shared = http.get(f"{CM}/shared").json()
    assert shared["metadata"]["ownerReferences"] == [_ref(other)]
    assert "deletionTimestamp" not in shared["metadata"]


def test_dependents_finalizers_keep_them_terminating(http: httpx.Client) -> None:
    owner = _cm(http, "owner")
    _cm(http, "held", [_ref(owner)], finalizers=["example.com/x"])

    http.delete(f"{CM}/owner")

    held = http.get(f"{CM}/held").json()
    assert held["metadata"]["finalizers"] == ["example.com/x"]
    assert "deletionTimestamp" in held["metadata"]
    _release(http, "held")
    assert _names(http) == []


def test_an_owner_held_by_a_finalizer_keeps_its_dependents(http: httpx.Client) -> None:
    owner = _cm(http, "owner", finalizers=["example.com/x"])
    _cm(http, "dependent", [_ref(owner)])

    http.delete(f"{CM}/owner")

    assert _names(http) == ["dependent", "owner"]  # an owner that exists is an owner
    _release(http, "owner")
    assert _names(http) == []


def test_foreground_deletes_blocking_dependents_first(http: httpx.Client) -> None:
    owner = _cm(http, "owner")
    _cm(http, "held", [_ref(owner)], finalizers=["example.com/x"])
    _cm(http, "plain", [_ref(owner, block=False)], finalizers=["example.com/x"])
    since = owner["metadata"]["resourceVersion"]

    response = http.delete(f"{CM}/owner", params={"propagationPolicy": "Foreground"})

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "ConfigMap"
    assert body["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert body["metadata"]["deletionGracePeriodSeconds"] == 0
    for name in ("owner", "held", "plain"):
        assert "deletionTimestamp" in http.get(f"{CM}/{name}").json()["metadata"]

    _release(http, "plain")  # not blocking: the owner does not wait for it
    assert _names(http) == ["held", "owner"]
    _release(http, "held")
    assert _names(http) == []

    with http.stream(
        "GET",
        CM,
        params={
            "watch": "1",
            "resourceVersion": since,
            "fieldSelector": "metadata.name=owner",
            "timeoutSeconds": "1",
        },
    ) as stream:
        events = [json.loads(line) for line in stream.iter_lines() if line]
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["finalizers"] == ["foregroundDeletion"]


def test_foreground_goes_down_the_ownership_chain(http: httpx.Client) -> None:
    top = _cm(http, "top")
    middle = _cm(http, "middle", [_ref(top)])
    _cm(http, "bottom", [_ref(middle)], finalizers=["example.com/x"])

    http.delete(f"{CM}/top", params={"propagationPolicy": "Foreground"})

    middle_now = http.get(f"{CM}/middle").json()["metadata"]
    assert middle_now["finalizers"] == ["foregroundDeletion"]  # it has dependents of its own
    assert _names(http) == ["bottom", "middle", "top"]
    _release(http, "bottom")
    assert _names(http) == []


def test_foreground_waits_for_a_terminating_pod(http: httpx.Client, sandbox: Sandbox) -> None:
    owner = _cm(http, "owner")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod", "namespace": "p", "ownerReferences": [_ref(owner)]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert http.post(PODS, json=pod).status_code == 201
    sandbox.wait_for(lambda: (sandbox.get("Pod", "pod", "p") or {})["status"]["phase"] == "Running")

    http.delete(f"{CM}/owner", params={"propagationPolicy": "Foreground"})

    assert "deletionTimestamp" in http.get(f"{PODS}/pod").json()["metadata"]
    assert http.get(f"{CM}/owner").status_code == 200
    sandbox.wait_for(lambda: sandbox.get("ConfigMap", "owner", "p") is None)
    assert sandbox.get("Pod", "pod", "p") is None


def test_orphan_drops_the_references_then_the_owner(http: httpx.Client) -> None:
    owner = _cm(http, "owner")
    other = _cm(http, "other")
    _cm(http, "only", [_ref(owner)])
    _cm(http, "shared", [_ref(owner), _ref(other)])

    response = http.delete(f"{CM}/owner", params={"propagationPolicy": "Orphan"})

    assert response.json()["metadata"]["finalizers"] == ["orphan"]
    assert "deletionTimestamp" in response.json()["metadata"]
    assert _names(http) == ["only", "other", "shared"]
    assert http.get(f"{CM}/only").json()["metadata"]["ownerReferences"] == []
    assert http.get(f"{CM}/shared").json()["metadata"]["ownerReferences"] == [_ref(other)]


def test_orphan_with_another_finalizer_orphans_and_waits(http: httpx.Client) -> None:
    owner = _cm(http, "owner", finalizers=["example.com/x"])
    _cm(http, "dependent", [_ref(owner)])

    http.delete(f"{CM}/owner", params={"propagationPolicy": "Orphan"})

    assert http.get(f"{CM}/owner").json()["metadata"]["finalizers"] == ["example.com/x"]
    assert http.get(f"{CM}/dependent").json()["metadata"]["ownerReferences"] == []
    _release(http, "owner")
    assert _names(http) == ["dependent"]


@pytest.mark.parametrize("uid", ["no-such-uid", None])
def test_dangling_owner_references_are_collected(http: httpx.Client, uid: str | None) -> None:
    owner = _cm(http, "owner")
    ref = _ref(owner) if uid is None else {**_ref(owner), "uid": uid}
    if uid is None:
        http.delete(f"{CM}/owner")
        ref = {**ref, "name": "owner"}  # the right name, but a uid no object has now
        _cm(http, "owner")

    created = http.post(
        CM,
        json={"metadata": {"name": "dangling", "namespace": "p", "ownerReferences": [ref]}},
    )

    assert created.status_code == 201
    assert http.get(f"{CM}/dangling").status_code == 404


def test_owners_of_kinds_the_sandbox_does_not_serve_are_left_alone(http: httpx.Client) -> None:
    ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "d", "uid": "u"}

    http.post(CM, json={"metadata": {"name": "cm", "namespace": "p", "ownerReferences": [ref]}})

    assert http.get(f"{CM}/cm").status_code == 200


def test_an_added_dangling_reference_is_collected(http: httpx.Client) -> None:
    _cm(http, "cm")
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "gone-uid"}

    http.patch(f"{CM}/cm", json={"metadata": {"ownerReferences": [ref]}}, headers=MERGE)

    assert http.get(f"{CM}/cm").status_code == 404


def test_an_unsupported_propagation_policy_is_422(http: httpx.Client) -> None:
    _cm(http, "cm")

    response = http.delete(f"{CM}/cm", params={"propagationPolicy": "Sideways"})

    assert response.status_code == 422
    assert response.json()["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
        '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"'
    )
    assert _names(http) == ["cm"]


async def test_client_foreground_delete_returns_once_dependents_are_gone(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}})
    owner = (
        await client.apply_one(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "owner", "namespace": "p"},
            }
        )
    ).object
    await client.apply_one(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pod", "namespace": "p", "ownerReferences": [_ref(owner)]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    await sandbox.wait_for_async(
        lambda: (sandbox.get("Pod", "pod", "p") or {})["status"]["phase"] == "Running"
    )

    await client.delete("ConfigMap", "owner", "p", propagation_policy="Foreground", timeout=5)

    assert sandbox.get("Pod", "pod", "p") is None
    assert sandbox.get("ConfigMap", "owner", "p") is None


def test_a_gafaelfawr_ingress_held_in_the_foreground_does_not_remake_its_ingress(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    manifest = next(
        m for m in reference_manifests("fileserver") if m["kind"] == "GafaelfawrIngress"
    )
    manifest["metadata"] = {
        **manifest["metadata"],
        "namespace": "p",
        "finalizers": ["example.com/x"],
    }
    path = "/apis/gafaelfawr.lsst.io/v1alpha1/namespaces/p/gafaelfawringresses"
    assert http.post(path, json=manifest).status_code == 201
    name = manifest["metadata"]["name"]
    ingress = f"/apis/networking.k8s.io/v1/namespaces/p/ingresses/{name}"
    assert http.get(ingress).status_code == 200

    http.delete(f"{path}/{name}", params={"propagationPolicy": "Foreground"})

    assert http.get(ingress).status_code == 404
    assert http.get(f"{path}/{name}").json()["metadata"]["finalizers"] == ["example.com/x"]


def test_the_cli_exposes_the_pod_grace_scale() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])

    assert result.exit_code == 0
    assert "--pod-grace-scale" in result.output


def test_a_collected_namespace_terminates_like_a_deleted_one(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.namespace_termination_delay = None
    owner = _cm(http, "owner")
    namespace = {"metadata": {"name": "owned", "ownerReferences": [_ref(owner)]}}
    assert http.post("/api/v1/namespaces", json=namespace).status_code == 201

    http.delete(f"{CM}/owner")

    owned = http.get("/api/v1/namespaces/owned").json()
    assert owned["status"]["phase"] == "Terminating"
    assert owned["spec"]["finalizers"] == ["kubernetes"]
    assert sandbox.finish_namespace("owned")
    assert http.get("/api/v1/namespaces/owned").status_code == 404
