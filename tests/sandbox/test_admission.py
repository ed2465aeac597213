"""Admission: ServiceAccounts must exist, ResourceQuotas are enforced and kept current."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox

APPLY = {"content-type": "application/apply-patch+yaml"}
PODS = "/api/v1/namespaces/p/pods"


def _pod(
    name: str = "lab",
    *,
    account: str | None = None,
    resources: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "lab", "image": "lab:1"}
    if resources is not None:
        container["resources"] = resources
    if command is not None:
        container["command"] = command
    spec: dict[str, Any] = {"containers": [container]}
    if account is not None:
        spec["serviceAccountName"] = account
    if init is not None:
        spec["initContainers"] = [{"name": "setup", "image": "setup:1", "resources": init}]
    if command is not None:
        spec["restartPolicy"] = "Never"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _quota(hard: dict[str, str], name: str = "q") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": hard},
    }


def _forbidden(response: httpx.Response, message: str, name: str, kind: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": {"name": name, "kind": kind},
        "code": 403,
    }


def _used(http: httpx.Client, name: str = "q") -> dict[str, str]:
    quota = http.get(f"/api/v1/namespaces/p/resourcequotas/{name}").json()
    used: dict[str, str] = quota["status"]["used"]
    return used


# ServiceAccount


def test_pod_naming_a_missing_service_account_is_forbidden(http: httpx.Client) -> None:
    created = http.post(PODS, json=_pod("x", account="robot"))
    applied = http.patch(
        f"{PODS}/y", params={"fieldManager": "t"}, headers=APPLY, json=_pod("y", account="robot")
    )

    message = (
        'is forbidden: error looking up service account p/robot: serviceaccount "robot" not found'
    )
    _forbidden(created, f'pods "x" {message}', "x", "pods")
    _forbidden(applied, f'pods "y" {message}', "y", "pods")
    assert http.get(f"{PODS}/x").status_code == 404


def test_pod_without_a_service_account_needs_the_default_one(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.delete("ServiceAccount", "default", "p")

    response = http.post(PODS, json=_pod("x"))

    _forbidden(
        response,
        'pods "x" is forbidden: error looking up service account p/default: '
        'serviceaccount "default" not found',
        "x",
        "pods",
    )


def test_pod_naming_an_existing_service_account_is_admitted(http: httpx.Client) -> None:
    account = {"metadata": {"name": "robot"}}
    assert http.post("/api/v1/namespaces/p/serviceaccounts", json=account).status_code == 201

    response = http.post(PODS, json=_pod("x", account="robot"))

    assert response.status_code == 201
    assert response.json()["spec"]["serviceAccountName"] == "robot"


def test_generated_pod_name_is_the_prefix_in_the_message(http: httpx.Client) -> None:
    pod = _pod(account="robot")
    pod["metadata"] = {"generateName": "lab-"}

    response = http.post(PODS, json=pod)

    assert response.status_code == 403
    assert response.json()["message"].startswith('pods "lab-" is forbidden: ')


# ResourceQuota: what is refused


_LIMITS = {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}


@pytest.mark.parametrize(
    ("hard", "first", "second", "message"),
    [
        (
            {"limits.memory": "1Gi"},
            None,
            ("pods", _pod("big", resources=_LIMITS)),
            'pods "big" is forbidden: exceeded quota: q, requested: limits.memory=2Gi, '
            "used: limits.memory=0, limited: limits.memory=1Gi",
        ),
        (
            {"requests.cpu": "800m", "limits.cpu": "4"},
            ("pods", _pod("one", resources=_LIMITS)),
            ("pods", _pod("two", resources=_LIMITS)),
            'pods "two" is forbidden: exceeded quota: q, requested: requests.cpu=500m, '
            "used: requests.cpu=500m, limited: requests.cpu=800m",
        ),
        (
            {"cpu": "1", "memory": "1Gi"},
            None,
            ("pods", _pod("big", resources={"requests": {"cpu": "2", "memory": "2Gi"}})),
            'pods "big" is forbidden: exceeded quota: q, requested: cpu=2,memory=2Gi, '
            "used: cpu=0,memory=0, limited: cpu=1,memory=1Gi",
        ),
        (
            {"requests.memory": "1Gi"},
            None,
            ("pods", _pod("big", resources={"limits": {"memory": "3Gi"}})),
            'pods "big" is forbidden: exceeded quota: q, requested: requests.memory=3Gi, '
            "used: requests.memory=0, limited: requests.memory=1Gi",
        ),
        (
            {"pods": "1"},
            ("pods", _pod("one")),
            ("pods", _pod("two")),
            'pods "two" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, '
            "limited: pods=1",
        ),
        (
            {"count/pods": "1"},
            ("pods", _pod("one")),
            ("pods", _pod("two")),
            'pods "two" is forbidden: exceeded quota: q, requested: count/pods=1, '
            "used: count/pods=1, limited: count/pods=1",
        ),
        (
            {"configmaps": "1"},
            ("configmaps", {"metadata": {"name": "a"}}),
            ("configmaps", {"metadata": {"name": "b"}}),
            'configmaps "b" is forbidden: exceeded quota: q, requested: configmaps=1, '
            "used: configmaps=1, limited: configmaps=1",
        ),
        (
            {"count/secrets": "1"},
            ("secrets", {"metadata": {"name": "a"}}),
            ("secrets", {"metadata": {"name": "b"}}),
            'secrets "b" is forbidden: exceeded quota: q, requested: count/secrets=1, '
            "used: count/secrets=1, limited: count/secrets=1",
        ),
        (
            {"services": "0"},
            None,
            ("services", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            'services "s" is forbidden: exceeded quota: q, requested: services=1, '
            "used: services=0, limited: services=0",
        ),
        (
            {"persistentvolumeclaims": "5", "requests.storage": "1Gi"},
            None,
            (
                "persistentvolumeclaims",
                {
                    "metadata": {"name": "c"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "2Gi"}},
                    },
                },
            ),
            'persistentvolumeclaims "c" is forbidden: exceeded quota: q, '
            "requested: requests.storage=2Gi, used: requests.storage=0, "
            "limited: requests.storage=1Gi",
        ),
    ],
    ids=[
        "limits.memory",
        "requests.cpu",
        "cpu-and-memory",
        "requests-default-to-limits",
        "pods",
        "count/pods",
        "configmaps",
        "count/secrets",
        "services",
        "requests.storage",
    ],
)
def test_create_past_a_quota_is_forbidden(
    http: httpx.Client,
    hard: dict[str, str],
    first: tuple[str, dict[str, Any]] | None,
    second: tuple[str, dict[str, Any]],
    message: str,
) -> None:
    assert http.post("/api/v1/namespaces/p/resourcequotas", json=_quota(hard)).status_code == 201
    if first is not None:
        assert http.post(f"/api/v1/namespaces/p/{first[0]}", json=first[1]).status_code == 201
    resource, body = second

    response = http.post(f"/api/v1/namespaces/p/{resource}", json=body)

    _forbidden(response, message, body["metadata"]["name"], resource)
    assert (
        http.get(f"/api/v1/namespaces/p/{resource}/{body['metadata']['name']}").status_code == 404
    )


def test_apply_create_past_a_quota_is_forbidden(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota({"limits.memory": "1Gi"}))

    response = http.patch(
        f"{PODS}/big",
        params={"fieldManager": "t"},
        headers=APPLY,
        json=_pod("big", resources=_LIMITS),
    )

    _forbidden(
        response,
        'pods "big" is forbidden: exceeded quota: q, requested: limits.memory=2Gi, '
        "used: limits.memory=0, limited: limits.memory=1Gi",
        "big",
        "pods",
    )


def test_pod_must_specify_what_a_quota_covers(http: httpx.Client) -> None:
    hard = {"limits.cpu": "4", "limits.memory": "4Gi", "requests.memory": "4Gi"}
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota(hard))

    response = http.post(PODS, json=_pod("x", init={"limits": {"cpu": "1"}}))

    _forbidden(
        response,
        'pods "x" is forbidden: failed quota: q: must specify limits.cpu for: lab; '
        "limits.memory for: lab,setup; requests.memory for: lab,setup",
        "x",
        "pods",
    )


def test_limits_alone_satisfy_a_quota_on_requests(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota({"requests.cpu": "2"}))

    response = http.post(PODS, json=_pod("x", resources={"limits": {"cpu": "1"}}))

    assert response.status_code == 201
    assert _used(http) == {"requests.cpu": "1"}


def test_quota_on_other_resources_asks_nothing_of_pods(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota({"configmaps": "3"}))

    assert http.post(PODS, json=_pod("x")).status_code == 201


CLAIMS = "/api/v1/namespaces/p/persistentvolumeclaims"
MERGE = {"content-type": "application/merge-patch+json"}


def _bound_claim(http: httpx.Client, storage_class: str | None = None) -> dict[str, Any]:
    """Create claim ``c`` of 1Gi and wait until the volume controller binds it."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    response = http.post(CLAIMS, json={"metadata": {"name": "c"}, "spec": spec})
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        claim: dict[str, Any] = http.get(f"{CLAIMS}/c").json()
        if claim.get("status", {}).get("phase") == "Bound" or storage_class == "missing":
            return claim
        time.sleep(0.02)
    raise AssertionError("claim c was never bound")


def _expandable_class(http: httpx.Client) -> None:
    storage_class = {
        "metadata": {"name": "expandable"},
        "provisioner": "sandbox.local/hostpath",
        "allowVolumeExpansion": True,
    }
    response = http.post("/apis/storage.k8s.io/v1/storageclasses", json=storage_class)
    assert response.status_code == 201, response.text


def _resize(http: httpx.Client, storage: str) -> httpx.Response:
    return http.patch(
        f"{CLAIMS}/c",
        headers=MERGE,
        json={"spec": {"resources": {"requests": {"storage": storage}}}},
    )


def test_growing_a_claim_whose_class_cannot_expand_is_forbidden(http: httpx.Client) -> None:
    _bound_claim(http)  # the default class, without allowVolumeExpansion

    _forbidden(
        _resize(http, "2Gi"),
        'persistentvolumeclaims "c" is forbidden: only dynamically provisioned pvc can be '
        "resized and the storageclass that provisions the pvc must support resize",
        "c",
        "persistentvolumeclaims",
    )


def test_growing_an_unbound_claim_is_forbidden(http: httpx.Client) -> None:
    _bound_claim(http, "missing")

    _forbidden(
        _resize(http, "2Gi"),
        'persistentvolumeclaims "c" is forbidden: Only bound persistent volume claims can be '
        "expanded",
        "c",
        "persistentvolumeclaims",
    )


def test_growing_a_claim_whose_class_allows_expansion_is_admitted(http: httpx.Client) -> None:
    _expandable_class(http)
    _bound_claim(http, "expandable")

    response = _resize(http, "2Gi")

    assert response.status_code == 200, response.text
    assert response.json()["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_shrinking_a_claim_to_its_capacity_or_below_is_invalid(http: httpx.Client) -> None:
    _expandable_class(http)
    _bound_claim(http, "expandable")
    assert _resize(http, "2Gi").status_code == 200

    # Down to more than the volume's capacity (1Gi) recovers a failed expansion.
    assert _resize(http, "1536Mi").status_code == 200
    response = _resize(http, "500Mi")

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == (
        'PersistentVolumeClaim "c" is invalid: spec.resources.requests.storage: Forbidden: '
        "field can not be less than status.capacity"
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: field can not be less than status.capacity",
            "field": "spec.resources.requests.storage",
        }
    ]


def test_claim_resized_past_a_quota_is_forbidden(http: httpx.Client, sandbox: Sandbox) -> None:
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota({"requests.storage": "2Gi"}))
    _expandable_class(http)
    _bound_claim(http, "expandable")

    response = _resize(http, "3Gi")

    _forbidden(
        response,
        'persistentvolumeclaims "c" is forbidden: exceeded quota: q, '
        "requested: requests.storage=2Gi, used: requests.storage=1Gi, "
        "limited: requests.storage=2Gi",
        "c",
        "persistentvolumeclaims",
    )


def test_dry_run_is_admitted_as_a_create_would_be(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota({"pods": "0"}))

    response = http.post(PODS, params={"dryRun": "All"}, json=_pod("x"))

    assert response.status_code == 403
    assert response.json()["message"].startswith('pods "x" is forbidden: exceeded quota: q,')


# ResourceQuota: status kept current


def test_quota_status_follows_objects_as_they_come_and_go(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    http.post(PODS, json=_pod("before", resources=_LIMITS))
    hard = {
        "pods": "10",
        "count/pods": "10",
        "limits.memory": "10Gi",
        "requests.cpu": "4",
        "configmaps": "5",
    }

    created = http.post("/api/v1/namespaces/p/resourcequotas", json=_quota(hard))
    assert created.status_code == 201
    assert created.json()["status"]["hard"] == hard
    assert _used(http) == {
        "pods": "1",
        "count/pods": "1",
        "limits.memory": "2Gi",
        "requests.cpu": "500m",
        "configmaps": "0",
    }

    http.post(PODS, json=_pod("after", resources=_LIMITS))
    http.post("/api/v1/namespaces/p/configmaps", json={"metadata": {"name": "cm"}})
    used = _used(http)
    assert (used["pods"], used["limits.memory"], used["requests.cpu"]) == ("2", "4Gi", "1")

    http.delete(f"{PODS}/before")
    # A terminating pod counts until its grace period is over and it is gone.
    sandbox.wait_for(lambda: sandbox.get("Pod", "before", "p") is None)
    used = _used(http)
    assert (used["pods"], used["count/pods"], used["limits.memory"]) == ("1", "1", "2Gi")


def test_ended_pods_stop_counting_but_for_their_object_count(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    hard = {"pods": "1", "count/pods": "5", "limits.memory": "2Gi"}
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota(hard))
    http.post(PODS, json=_pod("job", resources=_LIMITS, command=["/bin/true"]))

    sandbox.wait_for(
        lambda: (sandbox.get("Pod", "job", "p") or {})["status"]["phase"] == "Succeeded"
    )

    assert _used(http) == {"pods": "0", "count/pods": "1", "limits.memory": "0"}
    assert http.post(PODS, json=_pod("next", resources=_LIMITS)).status_code == 201


def test_quota_status_follows_a_changed_hard_limit(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/resourcequotas", json=_quota({"pods": "1"}))
    http.post(PODS, json=_pod("one"))

    response = http.patch(
        "/api/v1/namespaces/p/resourcequotas/q",
        headers={"content-type": "application/merge-patch+json"},
        json={"spec": {"hard": {"pods": "2", "secrets": "3"}}},
    )

    assert response.status_code == 200
    quota = http.get("/api/v1/namespaces/p/resourcequotas/q").json()
    assert quota["status"] == {
        "hard": {"pods": "2", "secrets": "3"},
        "used": {"pods": "1", "secrets": "0"},
    }
    assert http.post(PODS, json=_pod("two")).status_code == 201


async def test_reference_lab_fits_its_quota_and_runs(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply(reference_manifests("lab"))

    pod = await client.wait_for(
        "Pod",
        "rachel-nb",
        "userlabs-rachel",
        lambda p: p is not None and p["status"]["phase"] == "Running",
        timeout=5,
    )

    assert pod is not None
    quota = await client.get("ResourceQuota", "rachel-nb", "userlabs-rachel")
    assert quota["status"]["used"] == {"limits.cpu": "1", "limits.memory": "3221225472"}
