"""Server-side Table output (``as=Table;v=v1;g=meta.k8s.io``), as ``kubectl get`` reads it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from nublado.sandbox.kinds import ResourceKind, kind_named
from nublado.sandbox.server import Sandbox
from nublado.sandbox.table import human_duration, pod_status, table, wants_table

NS = "t"
TABLE = {"accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client on the served sandbox, with namespace ``t`` created."""
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).is_success
        yield client


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _names(columns: list[dict[str, Any]], wide: bool = False) -> list[str]:
    return [c["name"] for c in columns if wide or c["priority"] == 0]


# -- Accept ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_ACCEPT, True),
        ("application/json;as=Table;g=meta.k8s.io;v=v1", True),
        ("application/json", False),
        ("", False),
        ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", False),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False),
    ],
)
def test_table_is_served_when_accept_asks_for_it_first(accept: str, expected: bool) -> None:
    assert wants_table(accept) is expected


# -- durations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (5 * 3600, "5h"),
        (30 * 3600, "30h"),
        (6 * 86400 + 2 * 3600, "6d2h"),
        (3 * 86400, "3d"),
        (100 * 86400, "100d"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_ages_are_written_as_kubectl_writes_them(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


# -- pod STATUS ----------------------------------------------------------------


def _pod_with(
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    init_specs: int = 0,
    deleting: bool = False,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p", "creationTimestamp": _ago(10)}
    if deleting:
        metadata["deletionTimestamp"] = _ago(0)
    return {
        "metadata": metadata,
        "spec": {
            "containers": [{"name": f"c{i}"} for i in range(len(containers or [{}]))],
            "initContainers": [{"name": f"i{i}"} for i in range(init_specs)],
        },
        "status": {
            "phase": phase,
            "containerStatuses": containers or [],
            "initContainerStatuses": init or [],
            "conditions": conditions or [],
        },
    }


RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {"startedAt": _ago(5)}}}


def _waiting(reason: str) -> dict[str, Any]:
    return {"ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}


def _terminated(code: int, reason: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": code}
    if reason:
        state["reason"] = reason
    return {"ready": False, "restartCount": 0, "state": {"terminated": state}}


@pytest.mark.parametrize(
    ("pod", "status", "ready"),
    [
        (_pod_with("Pending"), "Pending", "0/1"),
        (_pod_with("Pending", [_waiting("ContainerCreating")]), "ContainerCreating", "0/1"),
        (_pod_with("Pending", [_waiting("ErrImagePull")]), "ErrImagePull", "0/1"),
        (_pod_with("Pending", [_waiting("ImagePullBackOff")]), "ImagePullBackOff", "0/1"),
        (_pod_with("Running", [RUNNING]), "Running", "1/1"),
        (_pod_with("Running", [RUNNING, _waiting("CrashLoopBackOff")]), "CrashLoopBackOff", "1/2"),
        (_pod_with("Succeeded", [_terminated(0, "Completed")]), "Completed", "0/1"),
        (_pod_with("Failed", [_terminated(1, "Error")]), "Error", "0/1"),
        (_pod_with("Failed", [_terminated(137)]), "ExitCode:137", "0/1"),
        (
            _pod_with(
                "Running",
                [RUNNING, _terminated(0, "Completed")],
                conditions=[{"type": "Ready", "status": "True"}],
            ),
            "Running",
            "1/2",
        ),
        (
            _pod_with("Pending", [_waiting("PodInitializing")], [_waiting("")], init_specs=2),
            "Init:0/2",
            "0/1",
        ),
        (
            _pod_with(
                "Pending",
                [_waiting("PodInitializing")],
                [_terminated(0, "Completed"), _waiting("ErrImagePull")],
                init_specs=2,
            ),
            "Init:ErrImagePull",
            "0/1",
        ),
        (
            _pod_with("Pending", [], [_terminated(2)], init_specs=1),
            "Init:ExitCode:2",
            "0/1",
        ),
        (_pod_with("Running", [RUNNING], deleting=True), "Terminating", "1/1"),
        (_pod_with("Succeeded", [_terminated(0, "Completed")], deleting=True), "Completed", "0/1"),
        (
            _pod_with(
                "Pending", conditions=[{"type": "PodScheduled", "reason": "SchedulingGated"}]
            ),
            "SchedulingGated",
            "0/1",
        ),
    ],
)
def test_pod_status_follows_kubectls_rules(pod: dict[str, Any], status: str, ready: str) -> None:
    reason, ready_count, total, _, _ = pod_status(pod)

    assert (reason, f"{ready_count}/{total}") == (status, ready)


def test_pod_restarts_show_when_the_last_one_was() -> None:
    container = {
        **RUNNING,
        "restartCount": 3,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": _ago(125)}},
    }
    pod = _pod_with("Running", [container])

    rows = table(kind_named("Pod"), [pod], {})["rows"]

    assert rows[0]["cells"][3] == "3 (2m5s ago)"


# -- over HTTP ---------------------------------------------------------------


def test_pod_list_table_has_kubectls_columns(http: httpx.Client, sandbox: Sandbox) -> None:
    pod = {
        "metadata": {"name": "lab"},
        "spec": {"containers": [{"name": "notebook", "image": "example/lab:1"}]},
    }
    http.post(f"/api/v1/namespaces/{NS}/pods", json=pod)
    sandbox.wait_for(
        lambda: (sandbox.get("Pod", "lab", NS) or {}).get("status", {}).get("phase") == "Running"
    )

    response = http.get(f"/api/v1/namespaces/{NS}/pods", headers=TABLE)

    body = response.json()
    assert response.status_code == 200
    assert (body["kind"], body["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert body["metadata"]["resourceVersion"] == str(sandbox.revision)
    assert _names(body["columnDefinitions"]) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert _names(body["columnDefinitions"], wide=True)[5:] == [
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert body["columnDefinitions"][0]["format"] == "name"
    cells = body["rows"][0]["cells"]
    assert cells[:4] == ["lab", "1/1", "Running", "0"]
    assert cells[6:] == ["node1", "<none>", "<none>"]
    row_object = body["rows"][0]["object"]
    assert row_object["kind"] == "PartialObjectMetadata"
    assert row_object["apiVersion"] == "meta.k8s.io/v1"
    assert row_object["metadata"]["name"] == "lab"
    assert "spec" not in row_object


@pytest.mark.parametrize(
    ("include", "expected"),
    [("Object", "ConfigMap"), ("Metadata", "PartialObjectMetadata"), ("None", None)],
)
def test_include_object_chooses_the_row_object(
    http: httpx.Client, include: str, expected: str | None
) -> None:
    http.post(
        f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "c"}, "data": {"a": "b"}}
    )

    body = http.get(
        f"/api/v1/namespaces/{NS}/configmaps",
        headers=TABLE,
        params={"includeObject": include},
    ).json()

    assert body["rows"][0].get("object", {}).get("kind") == expected


def test_a_single_get_answers_a_one_row_table(http: httpx.Client) -> None:
    body = http.get(f"/api/v1/namespaces/{NS}", headers=TABLE).json()

    assert _names(body["columnDefinitions"]) == ["Name", "Status", "Age"]
    assert [r["cells"][:2] for r in body["rows"]] == [[NS, "Active"]]


def test_without_the_table_accept_a_list_is_a_list(http: httpx.Client) -> None:
    body = http.get("/api/v1/namespaces").json()

    assert body["kind"] == "NamespaceList"


def _columns_and_cells(http: httpx.Client, path: str) -> tuple[list[str], list[Any]]:
    body = http.get(path, headers=TABLE).json()
    return _names(body["columnDefinitions"]), body["rows"][0]["cells"]


def test_configmap_and_secret_tables_count_their_data(http: httpx.Client) -> None:
    http.post(
        f"/api/v1/namespaces/{NS}/configmaps",
        json={"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}},
    )
    http.post(
        f"/api/v1/namespaces/{NS}/secrets",
        json={
            "metadata": {"name": "s"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "AA==", "tls.key": "AA=="},
        },
    )

    columns, cells = _columns_and_cells(http, f"/api/v1/namespaces/{NS}/configmaps/c")
    assert (columns, cells[:2]) == (["Name", "Data", "Age"], ["c", 2])
    columns, cells = _columns_and_cells(http, f"/api/v1/namespaces/{NS}/secrets/s")
    assert (columns, cells[:3]) == (["Name", "Type", "Data", "Age"], ["s", "kubernetes.io/tls", 2])


def test_service_table(http: httpx.Client) -> None:
    http.post(
        f"/api/v1/namespaces/{NS}/services",
        json={
            "metadata": {"name": "lab"},
            "spec": {
                "selector": {"app": "lab"},
                "ports": [
                    {"name": "http", "port": 8888, "targetPort": 8888},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                ],
            },
        },
    )

    columns, cells = _columns_and_cells(http, f"/api/v1/namespaces/{NS}/services/lab")

    assert columns == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    assert cells[0:2] == ["lab", "ClusterIP"]
    assert cells[2].startswith("10.96.")
    assert cells[3:5] == ["<none>", "8888/TCP,53/UDP"]
    assert cells[6] == "app=lab"


def test_node_table(http: httpx.Client) -> None:
    columns, cells = _columns_and_cells(http, "/api/v1/nodes/node1")

    assert columns == ["Name", "Status", "Roles", "Age", "Version"]
    assert cells[:3] == ["node1", "Ready", "<none>"]
    assert cells[4:6] == ["v1.32.0", "10.0.0.1"]


def test_pvc_table(http: httpx.Client) -> None:
    http.post(
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        json={
            "metadata": {"name": "home"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "standard",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )

    columns, cells = _columns_and_cells(
        http, f"/api/v1/namespaces/{NS}/persistentvolumeclaims/home"
    )

    assert columns == [
        "Name",
        "Status",
        "Volume",
        "Capacity",
        "Access Modes",
        "StorageClass",
        "VolumeAttributesClass",
        "Age",
    ]
    assert cells[0] == "home"
    assert cells[5:7] == ["standard", "<unset>"]


def test_pvc_cells_once_bound() -> None:
    pvc = {
        "metadata": {"name": "home", "creationTimestamp": _ago(30)},
        "spec": {"volumeName": "pv-1", "storageClassName": "standard"},
        "status": {
            "phase": "Bound",
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
        },
    }

    cells = table(kind_named("pvc"), [pvc], {})["rows"][0]["cells"]

    assert cells == [
        "home",
        "Bound",
        "pv-1",
        "1Gi",
        "RWO,RWX",
        "standard",
        "<unset>",
        "30s",
        "<unset>",
    ]


@pytest.mark.parametrize(
    ("status", "spec", "expected"),
    [
        ({}, {}, ["Running", "0/1", ""]),
        (
            {"succeeded": 1, "startTime": _ago(100), "completionTime": _ago(40)},
            {"completions": 1},
            ["Running", "1/1", "60s"],
        ),
        (
            {
                "succeeded": 1,
                "startTime": _ago(100),
                "completionTime": _ago(40),
                "conditions": [{"type": "Complete", "status": "True"}],
            },
            {"completions": 1},
            ["Complete", "1/1", "60s"],
        ),
        (
            {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]},
            {"parallelism": 2},
            ["Failed", "0/1 of 2", ""],
        ),
    ],
)
def test_job_cells(status: dict[str, Any], spec: dict[str, Any], expected: list[str]) -> None:
    job = {"metadata": {"name": "j", "creationTimestamp": _ago(200)}, "spec": spec}
    job["status"] = status

    body = table(kind_named("Job"), [job], {})

    assert _names(body["columnDefinitions"]) == [
        "Name",
        "Status",
        "Completions",
        "Duration",
        "Age",
    ]
    assert body["rows"][0]["cells"][1:4] == expected


def test_event_table(http: httpx.Client) -> None:
    http.post(
        f"/api/v1/namespaces/{NS}/events",
        json={
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "lab"},
            "reason": "Pulled",
            "message": "Pulled the image ",
            "type": "Normal",
            "firstTimestamp": _ago(300),
            "lastTimestamp": _ago(65),
            "count": 4,
        },
    )

    body = http.get(f"/api/v1/namespaces/{NS}/events", headers=TABLE).json()

    assert _names(body["columnDefinitions"]) == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    assert body["rows"][0]["cells"] == [
        "65s",
        "Normal",
        "Pulled",
        "pod/lab",
        "",
        "",
        "Pulled the image",
        "5m",
        4,
        "e",
    ]


def test_events_k8s_io_table_shows_the_new_form(http: httpx.Client) -> None:
    http.post(
        f"/api/v1/namespaces/{NS}/events",
        json={"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "lab"}},
    )

    body = http.get(
        f"/apis/events.k8s.io/v1/namespaces/{NS}/events",
        headers=TABLE,
        params={"includeObject": "Object"},
    ).json()

    assert body["rows"][0]["cells"][3] == "pod/lab"
    assert body["rows"][0]["object"]["regarding"] == {"kind": "Pod", "name": "lab"}


def test_lease_table_shows_the_holder(http: httpx.Client) -> None:
    http.post(
        f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
        json={"metadata": {"name": "leader"}, "spec": {"holderIdentity": "replica-a"}},
    )

    columns, cells = _columns_and_cells(
        http, f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    )

    assert (columns, cells[:2]) == (["Name", "Holder", "Age"], ["leader", "replica-a"])


def test_custom_resource_table_uses_the_crds_printer_columns() -> None:
    gafaelfawr = {
        "metadata": {"name": "gi", "creationTimestamp": _ago(20)},
        "status": {"create": {"status": "True", "reason": "Created"}},
    }

    body = table(kind_named("GafaelfawrIngress"), [gafaelfawr], {})

    assert _names(body["columnDefinitions"]) == [
        "Name",
        "Succeeded",
        "Reason",
        "Message",
        "Last Transition",
        "Age",
    ]
    assert body["rows"][0]["cells"] == ["gi", "True", "Created", None, None, "20s"]


def test_kinds_without_a_printer_show_name_and_age() -> None:
    widget = {"metadata": {"name": "w", "creationTimestamp": _ago(3)}}
    kind = ResourceKind("Widget", "example.com/v1", "widgets", True)

    body = table(kind, [widget], {})

    assert _names(body["columnDefinitions"]) == ["Name", "Age"]
    assert body["rows"][0]["cells"] == ["w", "3s"]


def test_a_table_watch_sends_columns_once(http: httpx.Client, sandbox: Sandbox) -> None:
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        with http.stream(
            "GET",
            f"/api/v1/namespaces/{NS}/configmaps",
            params={"watch": "1", "timeoutSeconds": "2"},
            headers=TABLE,
        ) as stream:
            for line in stream.iter_lines():
                seen.append(json.loads(line))
                if len(seen) == 2:
                    return

    thread = threading.Thread(target=watch)
    thread.start()
    sandbox.wait_for(lambda: sandbox.watch_count() == 1)
    for name in ("a", "b"):
        http.post(f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": name}})
    thread.join(5)

    assert [e["object"]["kind"] for e in seen] == ["Table", "Table"]
    assert _names(seen[0]["object"]["columnDefinitions"]) == ["Name", "Data", "Age"]
    assert seen[1]["object"]["columnDefinitions"] is None
    assert [e["object"]["rows"][0]["cells"][0] for e in seen] == ["a", "b"]


def test_include_object_must_be_known(http: httpx.Client) -> None:
    response = http.get("/api/v1/namespaces", headers=TABLE, params={"includeObject": "All"})

    assert response.status_code == 400
    assert response.json()["message"] == (
        'includeObject: Unsupported value: "All": supported values: "Metadata", "None", "Object"'
    )


def test_resource_quota_cells_split_requests_and_limits() -> None:
    quota = {
        "metadata": {"name": "q", "creationTimestamp": _ago(4)},
        "status": {
            "hard": {"pods": "2", "limits.cpu": "1", "requests.memory": "1Gi"},
            "used": {"pods": "1", "limits.cpu": "500m"},
        },
    }

    body = table(kind_named("ResourceQuota"), [quota], {})

    assert _names(body["columnDefinitions"]) == ["Name", "Age", "Request", "Limit"]
    assert body["rows"][0]["cells"] == [
        "q",
        "4s",
        "pods: 1/2, requests.memory: 0/1Gi",
        "limits.cpu: 500m/1",
    ]


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        ({}, "<none>"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchExpressions": [
                    {"key": "k", "operator": "In", "values": ["x", "y"]},
                    {"key": "e", "operator": "Exists"},
                    {"key": "n", "operator": "DoesNotExist"},
                ]
            },
            "k in (x,y),e,!n",
        ),
    ],
)
def test_network_policy_shows_its_pod_selector(selector: dict[str, Any], text: str) -> None:
    policy = {
        "metadata": {"name": "np", "creationTimestamp": _ago(1)},
        "spec": {"podSelector": selector},
    }

    body = table(kind_named("NetworkPolicy"), [policy], {})

    assert _names(body["columnDefinitions"]) == ["Name", "Pod-Selector", "Age"]
    assert body["rows"][0]["cells"] == ["np", text, "1s"]


def test_ingress_cells() -> None:
    ingress = {
        "metadata": {"name": "lab", "creationTimestamp": _ago(2)},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "data.example.com"}],
            "tls": [{"hosts": ["data.example.com"]}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}},
    }

    body = table(kind_named("Ingress"), [ingress], {})

    assert _names(body["columnDefinitions"]) == [
        "Name",
        "Class",
        "Hosts",
        "Address",
        "Ports",
        "Age",
    ]
    assert body["rows"][0]["cells"] == [
        "lab",
        "nginx",
        "data.example.com",
        "127.0.0.1",
        "80, 443",
        "2s",
    ]
