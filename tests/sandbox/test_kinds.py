"""Kinds an operator meets on a real cluster: system namespaces, Leases, events.k8s.io,
health checks, pod logs, and kubectl's protobuf bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox

NS = "k"
EVENTS = f"/apis/events.k8s.io/v1/namespaces/{NS}/events"
CORE_EVENTS = f"/api/v1/namespaces/{NS}/events"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client on the served sandbox, with namespace ``k`` created."""
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).is_success
        yield client


# -- namespaces ----------------------------------------------------------------

SYSTEM = ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_a_new_cluster_has_the_system_namespaces(sandbox: Sandbox) -> None:
    names = [ns["metadata"]["name"] for ns in sandbox.objects(kind="Namespace")]

    assert names == SYSTEM
    assert sandbox.get("ServiceAccount", "default", "default") is not None


def test_reset_brings_the_system_namespaces_back(sandbox: Sandbox) -> None:
    sandbox.delete("Namespace", "kube-node-lease")
    sandbox.reset()

    assert [ns["metadata"]["name"] for ns in sandbox.objects(kind="Namespace")] == SYSTEM
    assert sandbox.get("Namespace", "default")["status"] == {"phase": "Active"}  # type: ignore[index]


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_may_not_be_deleted(http: httpx.Client, name: str) -> None:
    response = http.delete(f"/api/v1/namespaces/{name}")

    assert response.status_code == 403
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'namespaces "{name}" is forbidden: this namespace may not be deleted',
        "reason": "Forbidden",
        "details": {"name": name, "kind": "namespaces"},
        "code": 403,
    }


def test_objects_can_be_created_in_default_without_creating_it(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "c"}, "data": {}}
    )

    assert response.status_code == 201


# -- Lease -------------------------------------------------------------------


def _lease(holder: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "nublado-leader", **meta},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


def test_lease_create_get_update_and_list(http: httpx.Client) -> None:
    created = http.post(LEASES, json=_lease("replica-a"))
    assert created.status_code == 201
    version = created.json()["metadata"]["resourceVersion"]

    got = http.get(f"{LEASES}/nublado-leader").json()
    assert got["spec"] == {"holderIdentity": "replica-a", "leaseDurationSeconds": 15}

    taken = http.put(f"{LEASES}/nublado-leader", json=_lease("replica-b", resourceVersion=version))
    assert taken.status_code == 200
    assert taken.json()["spec"]["holderIdentity"] == "replica-b"

    stale = http.put(f"{LEASES}/nublado-leader", json=_lease("replica-c", resourceVersion=version))
    assert stale.status_code == 409
    assert stale.json()["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "nublado-leader": the '
        "object has been modified; please apply your changes to the latest version and try again"
    )
    listed = http.get(LEASES).json()
    assert listed["kind"] == "LeaseList"
    assert [i["spec"]["holderIdentity"] for i in listed["items"]] == ["replica-b"]


def test_lease_missing_is_a_404_in_its_group(http: httpx.Client) -> None:
    response = http.get(f"{LEASES}/nope")

    assert response.status_code == 404
    assert response.json()["message"] == 'leases.coordination.k8s.io "nope" not found'


# -- events.k8s.io/v1 ---------------------------------------------------------

CORE_EVENT = {
    "metadata": {"name": "lab.1"},
    "involvedObject": {"kind": "Pod", "name": "lab", "namespace": NS},
    "reason": "Started",
    "message": "Started container notebook",
    "type": "Normal",
    "source": {"component": "kubelet", "host": "node1"},
    "firstTimestamp": "2026-01-01T00:00:00Z",
    "lastTimestamp": "2026-01-01T00:00:05Z",
    "count": 2,
    "reportingComponent": "kubelet",
    "reportingInstance": "node1",
}
NEW_EVENT = {
    "apiVersion": "events.k8s.io/v1",
    "kind": "Event",
    "metadata": {"name": "lab.2"},
    "eventTime": "2026-01-01T00:00:06.000000Z",
    "regarding": {"kind": "Pod", "name": "lab", "namespace": NS},
    "note": "Back-off restarting failed container",
    "reason": "BackOff",
    "type": "Warning",
    "action": "Restarting",
    "reportingController": "nublado.lsst.io/controller",
    "reportingInstance": "nublado-0",
}


def test_a_core_event_reads_through_events_k8s_io(http: httpx.Client) -> None:
    assert http.post(CORE_EVENTS, json=CORE_EVENT).status_code == 201

    event = http.get(f"{EVENTS}/lab.1").json()

    assert event["apiVersion"] == "events.k8s.io/v1"
    assert event["kind"] == "Event"
    assert event["note"] == "Started container notebook"
    assert event["regarding"] == {"kind": "Pod", "name": "lab", "namespace": NS}
    assert event["reportingController"] == "kubelet"
    assert event["reportingInstance"] == "node1"
    assert event["deprecatedSource"] == {"component": "kubelet", "host": "node1"}
    assert event["deprecatedFirstTimestamp"] == "2026-01-01T00:00:00Z"
    assert event["deprecatedLastTimestamp"] == "2026-01-01T00:00:05Z"
    assert event["deprecatedCount"] == 2
    assert event["eventTime"] is None
    for core_only in ("message", "involvedObject", "source", "count", "reportingComponent"):
        assert core_only not in event


def test_events_k8s_io_refuses_an_event_without_its_required_fields(
    http: httpx.Client,
) -> None:
    response = http.post(
        EVENTS,
        json={
            "metadata": {"name": "bare"},
            "regarding": {"kind": "Pod", "name": "lab", "namespace": NS},
            "type": "Info",
            "deprecatedCount": 3,
        },
    )

    assert response.status_code == 422
    body = response.json()
    assert body["message"] == (
        'Event.events.k8s.io "bare" is invalid: [eventTime: Required value, type: Invalid '
        'value: "": has invalid value: Info, count: Invalid value: "": needs to be unset]'
    )
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "eventTime",
    }


def test_events_k8s_io_requires_the_reporter_of_a_new_event(http: httpx.Client) -> None:
    event = {k: v for k, v in NEW_EVENT.items() if k not in ("reportingInstance", "action")}

    response = http.post(EVENTS, json=event)

    assert response.status_code == 422
    assert response.json()["message"] == (
        'Event.events.k8s.io "lab.2" is invalid: [reportingInstance: Required value, '
        "action: Required value]"
    )


def test_core_v1_stays_lenient_about_events(http: httpx.Client) -> None:
    bare = {"metadata": {"name": "bare"}, "involvedObject": {"namespace": NS}, "type": "Info"}

    assert http.post(CORE_EVENTS, json=bare).status_code == 201


def test_an_events_k8s_io_event_reads_as_a_core_event(http: httpx.Client) -> None:
    created = http.post(EVENTS, json=NEW_EVENT)
    assert created.status_code == 201
    assert created.json()["note"] == "Back-off restarting failed container"

    core = http.get(f"{CORE_EVENTS}/lab.2").json()

    assert core["apiVersion"] == "v1"
    assert core["message"] == "Back-off restarting failed container"
    assert core["involvedObject"] == {"kind": "Pod", "name": "lab", "namespace": NS}
    assert core["reportingComponent"] == "nublado.lsst.io/controller"
    assert core["eventTime"] == "2026-01-01T00:00:06.000000Z"
    assert core["action"] == "Restarting"


def test_a_missing_events_k8s_io_event_is_named_in_its_group(http: httpx.Client) -> None:
    response = http.get(f"{EVENTS}/nope")

    assert response.status_code == 404
    assert response.json()["message"] == 'events.events.k8s.io "nope" not found'
    assert response.json()["details"] == {
        "name": "nope",
        "kind": "events",
        "group": "events.k8s.io",
    }


def test_both_versions_list_the_same_events(http: httpx.Client) -> None:
    http.post(CORE_EVENTS, json=CORE_EVENT)
    http.post(EVENTS, json=NEW_EVENT)

    new = http.get(EVENTS).json()
    core = http.get(CORE_EVENTS).json()

    assert new["kind"] == "EventList"
    assert new["apiVersion"] == "events.k8s.io/v1"
    assert [e["metadata"]["name"] for e in new["items"]] == ["lab.1", "lab.2"]
    assert [e["metadata"]["name"] for e in core["items"]] == ["lab.1", "lab.2"]
    assert {e["apiVersion"] for e in new["items"]} == {"events.k8s.io/v1"}


def test_deleting_events_through_events_k8s_io_answers_its_form(http: httpx.Client) -> None:
    http.post(CORE_EVENTS, json=CORE_EVENT)

    deleted = http.delete(EVENTS).json()

    assert deleted["kind"] == "EventList"
    assert [e["note"] for e in deleted["items"]] == ["Started container notebook"]
    assert http.get(CORE_EVENTS).json()["items"] == []


def test_events_k8s_io_field_selectors_use_its_own_names(http: httpx.Client) -> None:
    http.post(CORE_EVENTS, json=CORE_EVENT)
    other = {"kind": "Pod", "name": "other", "namespace": NS}
    assert http.post(EVENTS, json={**NEW_EVENT, "regarding": other}).status_code == 201

    found = http.get(EVENTS, params={"fieldSelector": "regarding.name=other"}).json()

    assert [e["metadata"]["name"] for e in found["items"]] == ["lab.2"]


def test_patching_an_events_k8s_io_event_changes_the_core_fields(http: httpx.Client) -> None:
    http.post(CORE_EVENTS, json=CORE_EVENT)

    patched = http.patch(
        f"{EVENTS}/lab.1",
        json={"note": "changed", "deprecatedCount": 3},
        headers={"content-type": "application/merge-patch+json"},
    )

    assert patched.status_code == 200
    assert patched.json()["note"] == "changed"
    core = http.get(f"{CORE_EVENTS}/lab.1").json()
    assert (core["message"], core["count"]) == ("changed", 3)


def test_a_watch_on_one_version_sees_writes_through_the_other(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        with http.stream("GET", EVENTS, params={"watch": "1", "timeoutSeconds": "2"}) as stream:
            for line in stream.iter_lines():
                seen.append(json.loads(line))
                return

    thread = threading.Thread(target=watch)
    thread.start()
    sandbox.wait_for(lambda: sandbox.watch_count() == 1)
    http.post(CORE_EVENTS, json=CORE_EVENT)
    thread.join(5)

    assert seen[0]["type"] == "ADDED"
    assert seen[0]["object"]["apiVersion"] == "events.k8s.io/v1"
    assert seen[0]["object"]["note"] == "Started container notebook"


# -- health ------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["healthz", "readyz", "livez"])
def test_health_endpoints_answer_ok(http: httpx.Client, endpoint: str) -> None:
    response = http.get(f"/{endpoint}")

    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("endpoint", ["healthz", "readyz", "livez"])
def test_verbose_health_lists_the_checks(http: httpx.Client, endpoint: str) -> None:
    lines = http.get(f"/{endpoint}", params={"verbose": ""}).text.splitlines()

    assert lines[0] == "[+]ping ok"
    assert "[+]etcd ok" in lines
    assert lines[-1] == f"{endpoint} check passed"
    assert all(line.startswith("[+]") and line.endswith(" ok") for line in lines[:-1])


def test_one_health_check_alone(http: httpx.Client) -> None:
    assert http.get("/readyz/ping").text == "ok"
    assert http.get("/healthz/etcd").text == "ok"
    assert http.get("/livez/nope").status_code == 404


# -- logs --------------------------------------------------------------------


def _pod(name: str, *containers: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": c, "image": "example/lab:1"} for c in containers]},
    }


def test_pod_logs_say_the_sandbox_runs_no_containers(http: httpx.Client) -> None:
    http.post(f"/api/v1/namespaces/{NS}/pods", json=_pod("lab", "notebook"))

    response = http.get(f"/api/v1/namespaces/{NS}/pods/lab/log")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == (
        "nublado sandbox: no logs for container notebook of pod k/lab: "
        "the sandbox runs no containers\n"
    )


def test_pod_logs_of_a_missing_pod_are_a_404(http: httpx.Client) -> None:
    response = http.get(f"/api/v1/namespaces/{NS}/pods/nope/log")

    assert response.status_code == 404
    assert response.json()["message"] == 'pods "nope" not found'


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ("other", "container other is not valid for pod two"),
        (None, "a container name must be specified for pod two, choose one of: [a b]"),
    ],
)
def test_pod_logs_need_one_of_the_pods_containers(
    http: httpx.Client, container: str | None, message: str
) -> None:
    http.post(f"/api/v1/namespaces/{NS}/pods", json=_pod("two", "a", "b"))
    params = {"container": container} if container else {}

    response = http.get(f"/api/v1/namespaces/{NS}/pods/two/log", params=params)

    assert response.status_code == 400
    assert response.json()["message"] == message


def test_previous_logs_are_never_there(http: httpx.Client) -> None:
    http.post(f"/api/v1/namespaces/{NS}/pods", json=_pod("lab", "notebook"))

    response = http.get(f"/api/v1/namespaces/{NS}/pods/lab/log", params={"previous": "true"})

    assert response.status_code == 400
    assert response.json()["message"] == (
        'previous terminated container "notebook" in pod "lab" not found'
    )


def test_logs_are_a_pod_subresource_only(http: httpx.Client) -> None:
    response = http.get(f"/api/v1/namespaces/{NS}/configmaps/x/log")

    assert response.status_code == 404


# -- protobuf bodies -----------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(key: str, value: bytes) -> bytes:
    return _bytes_field(1, key.encode()) + _bytes_field(2, value)


def _envelope(kind: str, raw: bytes) -> bytes:
    type_meta = _bytes_field(1, b"v1") + _bytes_field(2, kind.encode())
    return b"k8s\x00" + _bytes_field(1, type_meta) + _bytes_field(2, raw)


PROTOBUF = {"content-type": "application/vnd.kubernetes.protobuf"}


def _object_meta(name: str, **extra: bytes) -> bytes:
    # name = 1, generateName = 2 (empty, as Go writes it), labels = 11
    meta = _bytes_field(1, name.encode()) + _bytes_field(2, b"")
    for key, value in extra.items():
        meta += _bytes_field(11, _entry(key, value))
    return meta


def test_a_protobuf_configmap_is_created(http: httpx.Client) -> None:
    raw = (
        _bytes_field(1, _object_meta("cm", app=b"lab"))
        + _bytes_field(2, _entry("a", b"b"))  # data
        + _bytes_field(3, _entry("bin", b"\x00\x01"))  # binaryData
    )

    response = http.post(
        f"/api/v1/namespaces/{NS}/configmaps",
        content=_envelope("ConfigMap", raw),
        headers=PROTOBUF,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["data"] == {"a": "b"}
    assert body["binaryData"] == {"bin": "AAE="}
    assert body["metadata"]["labels"] == {"app": "lab"}
    assert "generateName" not in body["metadata"]


def test_a_protobuf_secret_keeps_its_bytes(http: httpx.Client) -> None:
    raw = _bytes_field(1, _object_meta("s")) + _bytes_field(2, _entry("k", b"v"))

    response = http.post(
        f"/api/v1/namespaces/{NS}/secrets", content=_envelope("Secret", raw), headers=PROTOBUF
    )

    assert response.status_code == 201
    assert response.json()["data"] == {"k": "dg=="}
    assert response.json()["type"] == "Opaque"


def test_a_protobuf_namespace_is_created(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/namespaces",
        content=_envelope("Namespace", _bytes_field(1, _object_meta("from-proto"))),
        headers=PROTOBUF,
    )

    assert response.status_code == 201
    assert response.json()["metadata"]["name"] == "from-proto"


def test_a_protobuf_body_of_an_undecoded_kind_is_a_415(http: httpx.Client) -> None:
    response = http.post(
        f"/api/v1/namespaces/{NS}/services",
        content=_envelope("Service", _bytes_field(1, _object_meta("svc"))),
        headers=PROTOBUF,
    )

    assert response.status_code == 415
    assert response.json()["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml"
    )


def test_a_protobuf_body_without_the_magic_is_a_400(http: httpx.Client) -> None:
    response = http.post(
        f"/api/v1/namespaces/{NS}/configmaps", content=b"\x0a\x00", headers=PROTOBUF
    )

    assert response.status_code == 400
    assert response.json()["message"] == (
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )


def test_a_protobuf_resource_quota_keeps_its_quantities(http: httpx.Client) -> None:
    quantity = _bytes_field(1, b"500m")  # Quantity.string = 1
    spec = _bytes_field(1, _bytes_field(1, b"limits.cpu") + _bytes_field(2, quantity))
    spec += _bytes_field(2, b"BestEffort")  # scopes
    raw = _bytes_field(1, _object_meta("q")) + _bytes_field(2, spec)

    response = http.post(
        f"/api/v1/namespaces/{NS}/resourcequotas",
        content=_envelope("ResourceQuota", raw),
        headers=PROTOBUF,
    )

    assert response.status_code == 201
    assert response.json()["spec"] == {"hard": {"limits.cpu": "500m"}, "scopes": ["BestEffort"]}
