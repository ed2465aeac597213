"""NodeResourcesFit: a pod goes only where its requests fit what the node has left.

The sandbox's nodes have allocatable cpu 8, memory 32Gi and 110 pods, as the
example nodes do; messages are kube-scheduler's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.scheduler import pod_requests
from nublado.sandbox.server import Sandbox

PODS = "/api/v1/namespaces/p/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """HTTP on a sandbox with nodes a and b, and namespace ``p``."""
    sandbox.reset(sandbox.settings, nodes={"a": {}, "b": {}})
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": "p"}}).is_success
        yield client


def _container(name: str = "c", **resources: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "lab:1"}
    if resources:
        container["resources"] = resources
    return container


def _pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": list(containers) or [_container()], **spec},
    }


def _node_of(sandbox: Sandbox, name: str) -> str:
    pod = sandbox.wait_for(
        lambda: (p := sandbox.get("Pod", name, "p")) and p["status"]["phase"] == "Running" and p
    )
    return str(pod["spec"]["nodeName"])


def _failed_scheduling(sandbox: Sandbox, name: str) -> str:
    def found() -> str | None:
        for event in sandbox.objects("p", "Event"):
            if event["reason"] == "FailedScheduling" and event["involvedObject"]["name"] == name:
                return str(event["message"])
        return None

    return str(sandbox.wait_for(found))


def _pending_condition(sandbox: Sandbox, name: str) -> dict[str, Any]:
    pod = sandbox.get("Pod", name, "p")
    assert pod is not None
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    return condition  # type: ignore[no-any-return]


def test_requests_larger_than_any_node_stay_pending(http: httpx.Client, sandbox: Sandbox) -> None:
    big = _container(requests={"cpu": "5000", "memory": "100Ti"})
    assert http.post(PODS, json=_pod("big", big)).status_code == 201

    message = _failed_scheduling(sandbox, "big")

    assert message == (
        "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    condition = _pending_condition(sandbox, "big")
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "Unschedulable",
        message,
    )


def test_requests_count_against_pods_already_bound(http: httpx.Client, sandbox: Sandbox) -> None:
    for name in ("one", "two"):
        pod = _pod(name, _container(requests={"cpu": "6", "memory": "1Gi"}))
        assert http.post(PODS, json=pod).status_code == 201
    assert {_node_of(sandbox, "one"), _node_of(sandbox, "two")} == {"a", "b"}

    third = _pod("three", _container(requests={"cpu": "3"}))
    assert http.post(PODS, json=third).status_code == 201

    assert _failed_scheduling(sandbox, "three") == (
        "0/2 nodes are available: 2 Insufficient cpu. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    )
    # Room made by a deletion is noticed: the waiting pod goes where it was freed.
    freed = sandbox.get("Pod", "one", "p")
    assert freed is not None
    assert http.delete(f"{PODS}/one", params={"gracePeriodSeconds": "0"}).is_success
    assert _node_of(sandbox, "three") == freed["spec"]["nodeName"]


def test_a_finished_pod_frees_its_requests(http: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.reset(sandbox.settings, nodes={"a": {}})
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}}).is_success
    holder = _pod("holder", _container(requests={"cpu": "8"}))
    assert http.post(PODS, json=holder).status_code == 201
    assert _node_of(sandbox, "holder") == "a"
    waiting = _pod("waiting", _container(requests={"cpu": "1"}))
    assert http.post(PODS, json=waiting).status_code == 201
    _failed_scheduling(sandbox, "waiting")

    # A pod that ran to completion holds nothing: its requests no longer count.
    done = _pod(
        "done",
        {**_container(requests={"cpu": "1"}), "command": ["/bin/true"]},
        restartPolicy="Never",
    )
    assert http.delete(f"{PODS}/holder", params={"gracePeriodSeconds": "0"}).is_success
    assert _node_of(sandbox, "waiting") == "a"
    assert http.post(PODS, json=done).status_code == 201
    sandbox.wait_for(
        lambda: (sandbox.get("Pod", "done", "p") or {})["status"]["phase"] == "Succeeded"
    )
    last = _pod("last", _container(requests={"cpu": "7"}))
    assert http.post(PODS, json=last).status_code == 201
    assert _node_of(sandbox, "last") == "a"


def test_pods_without_requests_fit_a_full_node(http: httpx.Client, sandbox: Sandbox) -> None:
    for name in ("a-full", "b-full"):
        pod = _pod(name, _container(requests={"cpu": "8", "memory": "32Gi"}))
        assert http.post(PODS, json=pod).status_code == 201
        _node_of(sandbox, name)

    assert http.post(PODS, json=_pod("free")).status_code == 201

    assert _node_of(sandbox, "free") in ("a", "b")


def test_the_pod_count_limit_is_too_many_pods(http: httpx.Client, sandbox: Sandbox) -> None:
    for node in ("a", "b"):
        patch = {"status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "1"}}}
        response = http.patch(f"/api/v1/nodes/{node}/status", json=patch, headers=MERGE)
        assert response.status_code == 200
    for name in ("one", "two"):
        assert http.post(PODS, json=_pod(name)).status_code == 201
        _node_of(sandbox, name)

    assert http.post(PODS, json=_pod("three")).status_code == 201

    assert _failed_scheduling(sandbox, "three") == (
        "0/2 nodes are available: 2 Too many pods. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    )
    # A node whose allocatable grows takes the waiting pod.
    patch = {"status": {"allocatable": {"pods": "2"}}}
    assert http.patch("/api/v1/nodes/b/status", json=patch, headers=MERGE).status_code == 200
    assert _node_of(sandbox, "three") == "b"


def test_resource_and_taint_reasons_are_counted_together(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    taint = {"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}
    assert http.patch("/api/v1/nodes/b", json=taint, headers=MERGE).status_code == 200
    holder = _pod("holder", _container(requests={"cpu": "7"}))
    assert http.post(PODS, json=holder).status_code == 201
    assert _node_of(sandbox, "holder") == "a"

    assert http.post(PODS, json=_pod("x", _container(requests={"cpu": "2"}))).status_code == 201

    assert _failed_scheduling(sandbox, "x") == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {dedicated: gpu}. "
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling."
    )


def test_limits_alone_count_as_requests(http: httpx.Client, sandbox: Sandbox) -> None:
    pod = _pod("limited", _container(limits={"cpu": "9", "memory": "1Gi"}))
    assert http.post(PODS, json=pod).status_code == 201

    assert _failed_scheduling(sandbox, "limited").startswith(
        "0/2 nodes are available: 2 Insufficient cpu. "
    )


def test_extended_resources_a_node_lacks_are_insufficient(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    gpu = {"nvidia.com/gpu": "1"}
    pod = _pod("gpu", _container(requests=gpu, limits=gpu))
    assert http.post(PODS, json=pod).status_code == 201

    assert _failed_scheduling(sandbox, "gpu") == (
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [{"name": "c"}]}, {}),
        (
            {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "0.5"}}},
                ]
            },
            {"cpu": 750, "memory": 2**30},
        ),
        (
            {
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
            },
            {"cpu": 2000},
        ),
        (
            # A sidecar runs beside the containers and beside later init containers.
            {
                "initContainers": [
                    {
                        "name": "s",
                        "restartPolicy": "Always",
                        "resources": {"requests": {"cpu": "1"}},
                    },
                    {"name": "i", "resources": {"requests": {"cpu": "3"}}},
                ],
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
            },
            {"cpu": 4000},
        ),
        (
            {
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
                "overhead": {"cpu": "100m", "memory": "120Mi"},
            },
            {"cpu": 1100, "memory": 120 * 2**20},
        ),
        (
            {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1m", "storage": "1"}}}]},
            {"cpu": 1},
        ),
    ],
    ids=["none", "containers-summed", "init-max", "sidecar", "overhead", "limits-default"],
)
def test_pod_requests_as_upstream_computes_them(
    spec: dict[str, Any], expected: dict[str, int]
) -> None:
    assert pod_requests({"spec": spec}) == expected
