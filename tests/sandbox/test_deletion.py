"""Deletion as kube-apiserver does it: finalizers, graceful pod termination, PVC protection,
namespaces that stay Terminating with the namespace controller's conditions."""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

import httpx
import pytest

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import KubernetesError
from nublado.sandbox.server import Sandbox

MERGE = {"content-type": "application/merge-patch+json"}
CM = "/api/v1/namespaces/p/configmaps"
PODS = "/api/v1/namespaces/p/pods"
PVCS = "/api/v1/namespaces/p/persistentvolumeclaims"


def _cm(name: str = "cm", finalizers: list[str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "p"}
    if finalizers is not None:
        metadata["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"A": "1"}}


def _pod(name: str = "pod", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def _pvc(name: str = "home") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "p"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def _running_pod(http: httpx.Client, sandbox: Sandbox, body: dict[str, Any]) -> dict[str, Any]:
    assert http.post(PODS, json=body).status_code == 201
    name = body["metadata"]["name"]
    sandbox.wait_for(lambda: (sandbox.get("Pod", name, "p") or {})["status"]["phase"] == "Running")
    pod = sandbox.get("Pod", name, "p")
    assert pod is not None
    return pod


def _events(http: httpx.Client, path: str, name: str, since: str) -> list[dict[str, Any]]:
    """The watch events of one object from resourceVersion ``since`` to its DELETED."""
    events = []
    params = {
        "watch": "1",
        "resourceVersion": since,
        "fieldSelector": f"metadata.name={name}",
        "timeoutSeconds": "5",
    }
    with http.stream("GET", path, params=params) as stream:
        for line in stream.iter_lines():
            if line:
                events.append(json.loads(line))
                if events[-1]["type"] == "DELETED":
                    break
    return events


def _seconds(timestamp: str) -> int:
    return calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))


def _gone(http: httpx.Client, path: str) -> bool:
    return http.get(path).status_code == 404


# Finalizers


def test_finalizer_holds_a_deleted_object_until_an_update_removes_it(http: httpx.Client) -> None:
    created = http.post(CM, json=_cm(finalizers=["example.com/x"])).json()
    since = created["metadata"]["resourceVersion"]

    deleted = http.delete(f"{CM}/cm")
    again = http.delete(f"{CM}/cm")

    assert deleted.status_code == 200
    body = deleted.json()
    assert body["kind"] == "ConfigMap"  # not a Status: the object is not gone
    assert body["metadata"]["finalizers"] == ["example.com/x"]
    assert body["metadata"]["deletionGracePeriodSeconds"] == 0
    assert "deletionTimestamp" in body["metadata"]
    assert again.status_code == 200
    assert again.json()["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]
    assert (
        http.get(f"{CM}/cm").json()["metadata"]["deletionTimestamp"]
        == (body["metadata"]["deletionTimestamp"])
    )

    labelled = http.patch(
        f"{CM}/cm", json={"metadata": {"labels": {"still": "writable"}}}, headers=MERGE
    )
    assert labelled.status_code == 200
    released = http.patch(f"{CM}/cm", json={"metadata": {"finalizers": None}}, headers=MERGE)

    assert released.status_code == 200
    assert _gone(http, f"{CM}/cm")
    events = _events(http, CM, "cm", since)
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert "deletionTimestamp" in events[0]["object"]["metadata"]


def _finalizer_error(name: str, added: str) -> str:
    return (
        f'ConfigMap "{name}" is invalid: metadata.finalizers: Forbidden: no new finalizers can '
        f"be added if the object is being deleted, found new finalizers {added}"
    )


@pytest.mark.parametrize(
    ("method", "finalizers", "added"),
    [
        ("merge-patch", ["example.com/x", "example.com/y"], '[]string{"example.com/y"}'),
        ("put", ["example.com/y", "example.com/x"], '[]string{"example.com/y"}'),
        (
            "apply",
            ["example.com/x", "b.example.com/z", "a.example.com/w"],
            '[]string{"a.example.com/w", "b.example.com/z"}',
        ),
    ],
)
def test_no_new_finalizers_once_deleting(
    http: httpx.Client, method: str, finalizers: list[str], added: str
) -> None:
    http.post(CM, json=_cm(finalizers=["example.com/x"]))
    http.delete(f"{CM}/cm")
    body = _cm(finalizers=finalizers)

    if method == "merge-patch":
        response = http.patch(
            f"{CM}/cm", json={"metadata": {"finalizers": finalizers}}, headers=MERGE
        )
    elif method == "put":
        response = http.put(f"{CM}/cm", json=body)
    else:
        response = http.patch(
            f"{CM}/cm",
            params={"fieldManager": "tester", "force": "true"},
            json=body,
            headers={"content-type": "application/apply-patch+yaml"},
        )

    assert response.status_code == 422
    assert response.json()["reason"] == "Invalid"
    assert response.json()["message"] == _finalizer_error("cm", added)
    assert response.json()["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: no new finalizers can be added if the object is being "
            f"deleted, found new finalizers {added}",
            "field": "metadata.finalizers",
        }
    ]
    assert http.get(f"{CM}/cm").json()["metadata"]["finalizers"] == ["example.com/x"]


def test_removing_one_of_two_finalizers_keeps_the_object(http: httpx.Client) -> None:
    http.post(CM, json=_cm(finalizers=["example.com/x", "example.com/y"]))
    http.delete(f"{CM}/cm")

    one = http.patch(
        f"{CM}/cm", json={"metadata": {"finalizers": ["example.com/y"]}}, headers=MERGE
    )
    assert one.status_code == 200
    assert http.get(f"{CM}/cm").json()["metadata"]["finalizers"] == ["example.com/y"]

    http.patch(f"{CM}/cm", json={"metadata": {"finalizers": []}}, headers=MERGE)
    assert _gone(http, f"{CM}/cm")


def test_finalizers_may_be_added_before_deletion(http: httpx.Client) -> None:
    http.post(CM, json=_cm())

    response = http.patch(
        f"{CM}/cm", json={"metadata": {"finalizers": ["example.com/x"]}}, headers=MERGE
    )

    assert response.status_code == 200
    assert response.json()["metadata"]["finalizers"] == ["example.com/x"]


def test_a_create_while_the_name_is_being_deleted_is_409(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    http.post(CM, json=_cm(finalizers=["example.com/x"]))
    http.delete(f"{CM}/cm")
    _running_pod(http, sandbox, _pod())
    sandbox.settings.pod_grace_scale = 1.0  # 30 s: Terminating for the whole test
    http.delete(f"{PODS}/pod")

    for path, body, resource in ((CM, _cm(), "configmaps"), (PODS, _pod(), "pods")):
        response = http.post(path, json=body)
        assert response.status_code == 409
        assert response.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'object is being deleted: {resource} "{body["metadata"]["name"]}" '
            "already exists",
            "reason": "AlreadyExists",
            "details": {"name": body["metadata"]["name"], "kind": resource},
            "code": 409,
        }

    http.patch(f"{CM}/cm", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert http.post(CM, json=_cm()).status_code == 201


# Pods


def test_a_deleted_pod_terminates_for_its_grace_period(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    pod = _running_pod(http, sandbox, _pod())
    since = pod["metadata"]["resourceVersion"]
    before = time.time()

    response = http.delete(f"{PODS}/pod")

    assert response.status_code == 200
    meta = response.json()["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30
    deadline = _seconds(meta["deletionTimestamp"])
    assert before + 28 <= deadline <= time.time() + 31
    terminating = http.get(f"{PODS}/pod")
    assert terminating.status_code == 200
    assert terminating.json()["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
    killing = [e for e in sandbox.objects("p", "Event") if e["reason"] == "Killing"]
    assert [e["message"] for e in killing] == ["Stopping container c"]

    events = _events(http, PODS, "pod", since)  # 30 s at the default scale 0.01: 0.3 s
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["object"]["metadata"]["deletionGracePeriodSeconds"] == 30
    assert events[-1]["type"] == "DELETED"
    assert {e["type"] for e in events[1:-1]} <= {"MODIFIED"}
    assert time.time() - before >= 0.25


@pytest.mark.parametrize(
    ("spec", "query", "expected"),
    [
        ({}, {"gracePeriodSeconds": "5"}, 5),
        ({"terminationGracePeriodSeconds": 10}, {}, 10),
        ({"terminationGracePeriodSeconds": 10}, {"gracePeriodSeconds": "2"}, 2),
        ({}, {"gracePeriodSeconds": "-3"}, 1),
    ],
)
def test_the_grace_period_comes_from_the_request_else_the_pod(
    http: httpx.Client, sandbox: Sandbox, spec: dict[str, Any], query: dict[str, str], expected: int
) -> None:
    sandbox.settings.pod_grace_scale = 1.0
    _running_pod(http, sandbox, _pod(**spec))

    response = http.delete(f"{PODS}/pod", params=query)

    assert response.json()["metadata"]["deletionGracePeriodSeconds"] == expected
    assert http.get(f"{PODS}/pod").status_code == 200


def test_grace_zero_unscheduled_and_finished_pods_go_at_once(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    _running_pod(http, sandbox, _pod("forced"))
    http.post(PODS, json=_pod("pending", nodeSelector={"nowhere": "true"}))
    done = _pod("done", restartPolicy="Never")
    done["spec"]["containers"][0]["command"] = ["/bin/true"]
    http.post(PODS, json=done)
    sandbox.wait_for(
        lambda: (sandbox.get("Pod", "done", "p") or {})["status"]["phase"] == "Succeeded"
    )
    sandbox.wait_for(
        lambda: any(e["reason"] == "FailedScheduling" for e in sandbox.objects("p", "Event"))
    )

    forced = http.delete(f"{PODS}/forced", params={"gracePeriodSeconds": "0"})
    pending = http.delete(f"{PODS}/pending")
    finished = http.delete(f"{PODS}/done")

    for response in (forced, pending, finished):
        assert response.status_code == 200
        assert response.json()["metadata"]["deletionGracePeriodSeconds"] == 0
    for name in ("forced", "pending", "done"):
        assert _gone(http, f"{PODS}/{name}")


def test_a_second_delete_may_only_shorten_the_grace_period(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.pod_grace_scale = 0.1  # 30 s last 3 s, 1 s lasts 0.1 s
    _running_pod(http, sandbox, _pod())
    first = http.delete(f"{PODS}/pod").json()["metadata"]

    longer = http.delete(f"{PODS}/pod", params={"gracePeriodSeconds": "60"})
    assert longer.status_code == 200
    assert longer.json()["metadata"] == first
    start = time.monotonic()
    shorter = http.delete(f"{PODS}/pod", params={"gracePeriodSeconds": "1"}).json()["metadata"]

    assert shorter["deletionGracePeriodSeconds"] == 1
    assert _seconds(first["deletionTimestamp"]) - _seconds(shorter["deletionTimestamp"]) == 29
    sandbox.wait_for(lambda: sandbox.get("Pod", "pod", "p") is None, timeout=2)
    assert time.monotonic() - start < 2


def test_a_pod_with_a_finalizer_stays_after_its_grace_period(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    body = _pod()
    body["metadata"]["finalizers"] = ["example.com/x"]
    _running_pod(http, sandbox, body)

    http.delete(f"{PODS}/pod")
    sandbox.wait_for(
        lambda: (
            (sandbox.get("Pod", "pod", "p") or {})["metadata"]["deletionGracePeriodSeconds"] == 0
        )
    )
    time.sleep(0.1)

    assert http.get(f"{PODS}/pod").json()["metadata"]["finalizers"] == ["example.com/x"]
    http.patch(f"{PODS}/pod", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert _gone(http, f"{PODS}/pod")


def test_dry_run_deletes_change_nothing(http: httpx.Client, sandbox: Sandbox) -> None:
    _running_pod(http, sandbox, _pod())
    http.post(CM, json=_cm(finalizers=["example.com/x"]))
    before = [http.get(f"{PODS}/pod").json(), http.get(f"{CM}/cm").json()]

    pod = http.delete(f"{PODS}/pod", params={"dryRun": "All"})
    cm = http.delete(f"{CM}/cm", params={"dryRun": "All", "propagationPolicy": "Foreground"})

    assert pod.json()["metadata"]["deletionGracePeriodSeconds"] == 30
    assert cm.json()["metadata"]["finalizers"] == ["example.com/x", "foregroundDeletion"]
    assert [http.get(f"{PODS}/pod").json(), http.get(f"{CM}/cm").json()] == before
    assert not [e for e in sandbox.objects("p", "Event") if e["reason"] == "Killing"]


# PersistentVolumeClaims


def test_pvcs_get_the_protection_finalizer_on_create(http: httpx.Client) -> None:
    created = http.post(PVCS, json=_pvc("posted"))
    applied = http.patch(
        f"{PVCS}/applied",
        params={"fieldManager": "tester"},
        json=_pvc("applied"),
        headers={"content-type": "application/apply-patch+yaml"},
    )

    for response in (created, applied):
        assert response.json()["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    managed = json.dumps(applied.json()["metadata"]["managedFields"])
    assert "f:finalizers" not in managed  # set by admission, owned by no one


def test_an_unused_pvc_goes_at_once(http: httpx.Client) -> None:
    http.post(PVCS, json=_pvc())

    response = http.delete(f"{PVCS}/home")

    assert response.status_code == 200
    assert "deletionTimestamp" in response.json()["metadata"]
    assert _gone(http, f"{PVCS}/home")


def test_the_protection_controller_releases_a_claim_after_the_delete(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    # kube-controller-manager removes the finalizer from its own queue, after the
    # DELETE: for a moment the claim is Terminating even though no pod uses it.
    http.post(PVCS, json=_pvc())

    with sandbox.cluster.store.lock:  # the controller cannot run in between
        assert sandbox.delete("PersistentVolumeClaim", "home", "p")
        pvc = sandbox.get("PersistentVolumeClaim", "home", "p")

    assert pvc is not None
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert "deletionTimestamp" in pvc["metadata"]
    assert _gone(http, f"{PVCS}/home")


def test_a_pvc_in_use_stays_terminating_until_its_pod_is_gone(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.pod_grace_scale = 0.1  # the pod stays Terminating 3 s
    http.post(PVCS, json=_pvc())
    pod = _pod()
    pod["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "home", "mountPath": "/home"}]
    _running_pod(http, sandbox, pod)

    http.delete(f"{PVCS}/home")
    time.sleep(0.05)

    pvc = http.get(f"{PVCS}/home").json()
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert "deletionTimestamp" in pvc["metadata"]
    http.delete(f"{PODS}/pod")
    assert http.get(f"{PVCS}/home").status_code == 200  # the pod is still Terminating
    sandbox.wait_for(lambda: sandbox.get("Pod", "pod", "p") is None, timeout=10)
    assert _gone(http, f"{PVCS}/home")


# Namespaces


def _conditions(ns: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (c["type"], c["status"], c["reason"], c["message"])
        for c in ns.get("status", {}).get("conditions", [])
    ]


_ALL_REMOVED = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "False",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "False",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "False",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "False", "ContentRemoved", "All content successfully removed"),
    (
        "NamespaceFinalizersRemaining",
        "False",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
]


def test_a_namespace_stays_terminating_while_content_has_finalizers(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    http.post(CM, json=_cm(finalizers=["example.com/x"]))
    http.post(CM, json=_cm("plain"))

    deleted = http.delete("/api/v1/namespaces/p")

    assert deleted.status_code == 200
    assert deleted.json()["status"]["phase"] == "Terminating"
    assert "deletionGracePeriodSeconds" not in deleted.json()["metadata"]
    ns = sandbox.wait_for(
        lambda: (
            _conditions(http.get("/api/v1/namespaces/p").json())
            and http.get("/api/v1/namespaces/p").json()
        )
    )
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert _conditions(ns) == [
        *_ALL_REMOVED[:3],
        (
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances",
        ),
        (
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: example.com/x in 1 "
            "resource instances",
        ),
    ]
    assert _gone(http, f"{CM}/plain")
    assert _gone(http, "/api/v1/namespaces/p/serviceaccounts/default")
    assert "deletionTimestamp" in http.get(f"{CM}/cm").json()["metadata"]

    http.patch(f"{CM}/cm", json={"metadata": {"finalizers": None}}, headers=MERGE)

    assert _gone(http, "/api/v1/namespaces/p")


def test_a_namespace_waits_for_its_pods_and_their_claims(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.pod_grace_scale = 0.1  # 3 s
    http.post(PVCS, json=_pvc())
    pod = _pod()
    pod["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}]
    _running_pod(http, sandbox, pod)
    since = str(sandbox.revision)

    http.delete("/api/v1/namespaces/p")
    ns = sandbox.wait_for(
        lambda: (
            len(_conditions(http.get("/api/v1/namespaces/p").json())) == 5
            and http.get("/api/v1/namespaces/p").json()
        )
    )

    remaining = dict((c[0], c[1:]) for c in _conditions(ns))
    assert remaining["NamespaceContentRemaining"] == (
        "True",
        "SomeResourcesRemain",
        "Some resources are remaining: persistentvolumeclaims. has 1 resource instances, "
        "pods. has 1 resource instances",
    )
    assert remaining["NamespaceFinalizersRemaining"] == (
        "True",
        "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection "
        "in 1 resource instances",
    )
    events = _events(http, "/api/v1/namespaces", "p", since)
    assert events[-1]["type"] == "DELETED"
    assert _conditions(events[-2]["object"]) == _ALL_REMOVED
    assert sandbox.objects("p") == []


def test_finish_namespace_starts_the_controller_when_termination_is_held(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.namespace_termination_delay = None
    http.post(CM, json=_cm())
    http.delete("/api/v1/namespaces/p")
    time.sleep(0.05)

    assert http.get(f"{CM}/cm").status_code == 200
    assert "conditions" not in http.get("/api/v1/namespaces/p").json()["status"]
    assert sandbox.finish_namespace("p") is True
    assert _gone(http, "/api/v1/namespaces/p")
    assert sandbox.finish_namespace("p") is False


# With the real client


async def test_client_delete_waits_through_terminating_and_create_gets_409_meanwhile(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}})
    await client.apply_one(_pod())
    await sandbox.wait_for_async(
        lambda: (sandbox.get("Pod", "pod", "p") or {})["status"]["phase"] == "Running"
    )

    await client.delete("Pod", "pod", "p", wait=False)
    with pytest.raises(KubernetesError) as caught:
        await client._request("POST", "/api/v1/namespaces/p/pods", body=_pod())
    assert caught.value.status == 409
    assert caught.value.message == 'object is being deleted: pods "pod" already exists'

    start = time.monotonic()
    assert await client.delete("Pod", "pod", "p") is True
    assert time.monotonic() - start < 1
    assert sandbox.get("Pod", "pod", "p") is None
    await client._request("POST", "/api/v1/namespaces/p/pods", body=_pod())
    assert sandbox.get("Pod", "pod", "p") is not None


async def test_client_namespace_deletion_waits_for_finalized_content(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}})
    await client.apply_one(_cm(finalizers=["example.com/x"]))

    with pytest.raises(KubernetesError, match="still exists"):
        await client.delete_namespace("p", timeout=0.3)
    await client._request(
        "PATCH",
        "/api/v1/namespaces/p/configmaps/cm",
        body={"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )

    # The update that removes the last finalizer of the last content finishes the namespace.
    await client.wait_for_deletion("Namespace", "p", timeout=2)
    assert sandbox.get("Namespace", "p") is None
