"""The scheduler: node selectors, required node affinity, taints, claims, and rescheduling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.scheduler import _image_names
from nublado.sandbox.server import Sandbox

PODS = "/api/v1/namespaces/p/pods"
_PREEMPTION = "preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."

NODES: dict[str, Any] = {
    "a": {"labels": {"zone": "east", "size": "4", "disk": "ssd"}},
    "b": {
        "labels": {"zone": "west", "size": "16"},
        "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
    },
    "c": {
        "labels": {"zone": "west", "size": "64"},
        "taints": [{"key": "maintenance", "value": "", "effect": "NoExecute"}],
    },
}


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """HTTP on a sandbox with nodes a, b (tainted dedicated=gpu) and c (maintenance NoExecute)."""
    sandbox.reset(sandbox.settings, nodes=NODES)
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": "p"}}).is_success
        yield client


def _pod(name: str = "x", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "lab:1"}], **spec},
    }


def _required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expression["values"] = list(values)
    return expression


_ALL = [{"operator": "Exists"}]


def _node_of(sandbox: Sandbox, name: str = "x") -> str | None:
    pod = sandbox.wait_for(
        lambda: (p := sandbox.get("Pod", name, "p")) and p["status"]["phase"] == "Running" and p
    )
    return pod["spec"]["nodeName"]  # type: ignore[no-any-return]


def _failed_scheduling(sandbox: Sandbox, name: str = "x") -> str:
    def found() -> str | None:
        for event in sandbox.objects("p", "Event"):
            if event["reason"] == "FailedScheduling" and event["involvedObject"]["name"] == name:
                return str(event["message"])
        return None

    return str(sandbox.wait_for(found))


@pytest.mark.parametrize(
    ("spec", "node"),
    [
        ({"nodeSelector": {"zone": "east"}}, "a"),
        (
            {
                "affinity": _required({"matchExpressions": [_expr("zone", "In", "west")]}),
                "tolerations": _ALL,
            },
            "b",
        ),
        ({"affinity": _required({"matchExpressions": [_expr("zone", "NotIn", "west")]})}, "a"),
        ({"affinity": _required({"matchExpressions": [_expr("disk", "Exists")]})}, "a"),
        (
            {
                "affinity": _required({"matchExpressions": [_expr("disk", "DoesNotExist")]}),
                "tolerations": _ALL,
            },
            "b",
        ),
        (
            {
                "affinity": _required({"matchExpressions": [_expr("size", "Gt", "20")]}),
                "tolerations": _ALL,
            },
            "c",
        ),
        (
            {
                "affinity": _required({"matchExpressions": [_expr("size", "Lt", "10")]}),
                "tolerations": _ALL,
            },
            "a",
        ),
        (
            {
                "affinity": _required({"matchFields": [_expr("metadata.name", "In", "c")]}),
                "tolerations": _ALL,
            },
            "c",
        ),
        (
            {
                "affinity": _required(
                    {"matchExpressions": [_expr("zone", "In", "nowhere")]},
                    {"matchExpressions": [_expr("size", "In", "16")]},
                ),
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}],
            },
            "b",
        ),
        (
            {
                "nodeSelector": {"zone": "west"},
                "tolerations": [
                    {"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}
                ],
            },
            "c",
        ),
    ],
    ids=[
        "nodeSelector",
        "In",
        "NotIn",
        "Exists",
        "DoesNotExist",
        "Gt",
        "Lt",
        "matchFields",
        "terms-are-ORed-and-Equal-toleration",
        "Exists-toleration",
    ],
)
def test_pod_goes_to_the_node_its_affinity_and_tolerations_allow(
    http: httpx.Client, sandbox: Sandbox, spec: dict[str, Any], node: str
) -> None:
    assert http.post(PODS, json=_pod(**spec)).status_code == 201

    assert _node_of(sandbox) == node


@pytest.mark.parametrize(
    ("spec", "reasons"),
    [
        (
            {"nodeSelector": {"zone": "north"}},
            "1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) had untolerated taint {dedicated: gpu}, "
            "1 node(s) had untolerated taint {maintenance: }",
        ),
        (
            {
                "affinity": _required({"matchExpressions": [_expr("zone", "In", "north")]}),
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
            },
            "1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) had untolerated taint {dedicated: gpu}, "
            "1 node(s) had untolerated taint {maintenance: }",
        ),
        (
            {"nodeSelector": {"zone": "north"}, "tolerations": [{"operator": "Exists"}]},
            "3 node(s) didn't match Pod's node affinity/selector",
        ),
        (
            {
                "affinity": _required({}),  # an empty term matches no node
                "tolerations": [{"operator": "Exists"}],
            },
            "3 node(s) didn't match Pod's node affinity/selector",
        ),
        (
            {
                "nodeSelector": {"zone": "west"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "cpu"}],
            },
            "1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) had untolerated taint {dedicated: gpu}, "
            "1 node(s) had untolerated taint {maintenance: }",
        ),
    ],
    ids=[
        "selector-and-taints",
        "affinity-and-wrong-effect",
        "tolerate-all",
        "empty-term",
        "wrong-value",
    ],
)
def test_pod_no_node_fits_stays_pending_with_the_real_message(
    http: httpx.Client, sandbox: Sandbox, spec: dict[str, Any], reasons: str
) -> None:
    http.post(PODS, json=_pod(**spec))

    message = _failed_scheduling(sandbox)

    expected = f"0/3 nodes are available: {reasons}. {_PREEMPTION.format(n=3)}"
    assert message == expected
    pod = http.get(f"{PODS}/x").json()
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    assert pod["status"]["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": pod["status"]["conditions"][0]["lastTransitionTime"],
            "reason": "Unschedulable",
            "message": expected,
        }
    ]
    event = next(e for e in sandbox.objects("p", "Event") if e["reason"] == "FailedScheduling")
    assert event["type"] == "Warning"
    assert event["source"] == {"component": "default-scheduler"}


def test_unschedulable_node_is_skipped(http: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.reset(sandbox.settings, nodes={"a": {"unschedulable": True}})
    http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}})

    http.post(PODS, json=_pod())

    message = _failed_scheduling(sandbox)
    assert (
        message
        == f"0/1 nodes are available: 1 node(s) were unschedulable. {_PREEMPTION.format(n=1)}"
    )


def test_pod_tolerating_unschedulable_goes_to_a_cordoned_node(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.reset(sandbox.settings, nodes={"a": {"unschedulable": True}})
    http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}})
    toleration = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}

    http.post(PODS, json=_pod(tolerations=[toleration]))

    assert _node_of(sandbox) == "a"


def test_pod_is_scheduled_when_a_fitting_node_appears(http: httpx.Client, sandbox: Sandbox) -> None:
    http.post(PODS, json=_pod(nodeSelector={"zone": "north"}))
    _failed_scheduling(sandbox)

    node = {"metadata": {"name": "d", "labels": {"zone": "north"}}}
    assert http.post("/api/v1/nodes", json=node).status_code == 201

    assert _node_of(sandbox) == "d"


def test_pod_bound_to_a_missing_node_stays_pending_until_it_registers(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    """No kubelet runs a pod whose nodeName names no node (a prepull pod for a node gone)."""
    http.post(PODS, json=_pod(nodeName="ghost"))
    time.sleep(0.2)

    pod = sandbox.get("Pod", "x", "p")
    assert pod is not None
    assert (pod["status"]["phase"], pod["status"].get("containerStatuses")) == ("Pending", None)
    assert [e["reason"] for e in sandbox.objects("p", "Event")] == []

    assert http.post("/api/v1/nodes", json={"metadata": {"name": "ghost"}}).status_code == 201

    assert _node_of(sandbox) == "ghost"


def test_pod_with_a_missing_claim_waits_for_it(http: httpx.Client, sandbox: Sandbox) -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    http.post(PODS, json=_pod(volumes=volumes, nodeSelector={"zone": "east"}))

    message = _failed_scheduling(sandbox)

    assert message == (
        f'0/3 nodes are available: persistentvolumeclaim "data" not found. '
        f"{_PREEMPTION.format(n=3)}"
    )
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    assert http.post("/api/v1/namespaces/p/persistentvolumeclaims", json=claim).is_success
    assert _node_of(sandbox) == "a"


def test_pod_with_an_unbound_immediate_claim_waits_for_its_class(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "storageClassName": "fast",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    http.post("/api/v1/namespaces/p/persistentvolumeclaims", json=claim)
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    http.post(PODS, json=_pod(volumes=volumes, nodeSelector={"zone": "east"}))

    message = _failed_scheduling(sandbox)

    assert message == (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        f"{_PREEMPTION.format(n=3)}"
    )
    storage_class = {"metadata": {"name": "fast"}, "provisioner": "sandbox.local/hostpath"}
    assert http.post("/apis/storage.k8s.io/v1/storageclasses", json=storage_class).is_success
    assert _node_of(sandbox) == "a"


def test_no_nodes_at_all(http: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.reset(sandbox.settings)
    http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}})

    http.post(PODS, json=_pod())

    assert _failed_scheduling(sandbox) == "no nodes available to schedule pods"


def test_preferred_affinity_then_cached_images_choose_among_fitting_nodes(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.reset(
        sandbox.settings,
        nodes={
            "a": {"labels": {"zone": "east"}},
            "b": {"labels": {"zone": "west"}, "images": [{"names": ["lab:1"]}]},
        },
    )
    http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}})
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [_expr("zone", "In", "east")]}}
            ]
        }
    }

    http.post(PODS, json=_pod("cached"))
    http.post(PODS, json=_pod("preferred", affinity=preferred))

    assert _node_of(sandbox, "cached") == "b"
    assert _node_of(sandbox, "preferred") == "a"


def test_pod_is_scheduled_when_a_node_is_relabelled(http: httpx.Client, sandbox: Sandbox) -> None:
    http.post(PODS, json=_pod(nodeSelector={"zone": "north"}))
    _failed_scheduling(sandbox)

    response = http.patch(
        "/api/v1/nodes/a",
        headers={"content-type": "application/merge-patch+json"},
        json={"metadata": {"labels": {"zone": "north"}}},
    )

    assert response.status_code == 200
    assert _node_of(sandbox) == "a"


def test_node_status_writes_do_not_retry_unschedulable_pods(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    http.post(PODS, json=_pod(nodeSelector={"zone": "north"}))
    _failed_scheduling(sandbox)
    http.post(PODS, json=_pod("other", nodeSelector={"zone": "east"}))  # its pull updates node a

    sandbox.wait_for(
        lambda: (sandbox.get("Pod", "other", "p") or {})["status"]["phase"] == "Running"
    )

    failed = [e for e in sandbox.objects("p", "Event") if e["reason"] == "FailedScheduling"]
    assert len(failed) == 1


def test_a_nodes_image_names_follow_its_stored_version() -> None:
    node = {"metadata": {"name": "n"}, "status": {"images": [{"names": ["a:1", "a@sha256:1"]}]}}
    assert _image_names(node) == {"a:1", "a@sha256:1"}
    assert _image_names(node) is _image_names(node)  # gathered once for that version
    newer = {**node, "status": {"images": [*node["status"]["images"], {"names": ["b:2"]}]}}
    assert _image_names(newer) == {"a:1", "a@sha256:1", "b:2"}
    assert _image_names({"metadata": {"name": "bare"}}) == set()
