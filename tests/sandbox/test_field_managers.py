"""Field managers as kube-apiserver checks and records them.

The ``fieldManager`` query value of every write (too long, non-printable
characters), the type of an applied configuration, duplicate keys in one,
and which fields belong to no manager: those admission fills in after the
field manager ran, and a pod's binding, which writes to storage directly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from nublado.sandbox.cluster import Cluster
from nublado.sandbox.fields import decode_managed_fields, encode_managed_fields
from nublado.sandbox.server import Sandbox
from nublado.sandbox.store import clone

APPLY = {"content-type": "application/apply-patch+yaml"}
MERGE = {"content-type": "application/merge-patch+json"}
NS = "fm"
CMS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"

Object = dict[str, Any]


def _cm(name: str = "cm", **extra: Any) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


def _pod(name: str = "p", **spec: Any) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "lab:1"}], **spec},
    }


def _spec_fields(obj: Object, manager: str) -> dict[str, Any]:
    entries = [e for e in obj["metadata"]["managedFields"] if e["manager"] == manager]
    assert len(entries) == 1, obj["metadata"]["managedFields"]
    fields: dict[str, Any] = entries[0]["fieldsV1"]["f:spec"]
    return fields


# -- fieldManager validation, every write verb ----------------------------------------

_LONG = "m" * 129


def _write(http: httpx.Client, verb: str, manager: str) -> httpx.Response:
    params = {"fieldManager": manager}
    if verb == "create":
        return http.post(CMS, json=_cm("new", data={"a": "0"}), params=params)
    if verb == "update":
        return http.put(f"{CMS}/cm", json=_cm(data={"a": "2"}), params=params)
    if verb == "patch":
        return http.patch(f"{CMS}/cm", content=b'{"data":{"a":"3"}}', headers=MERGE, params=params)
    params["force"] = "true"
    return http.patch(f"{CMS}/cm", json=_cm(data={"a": "4"}), headers=APPLY, params=params)


_OPTIONS = {
    "create": "CreateOptions",
    "update": "UpdateOptions",
    "patch": "PatchOptions",
    "apply": "PatchOptions",
}


@pytest.mark.parametrize("verb", list(_OPTIONS))
@pytest.mark.parametrize(
    ("manager", "causes"),
    [
        (_LONG, [("FieldValueTooLong", "Too long: must have at most 128 bytes")]),
        (
            "a\x01b",
            [
                (
                    "FieldValueInvalid",
                    'Invalid value: "a\\x01b": invalid character U+0001 (at position 1)',
                )
            ],
        ),
        (
            # Positions count bytes, as Go's range over a string does.
            "é\u00a0",
            [
                (
                    "FieldValueInvalid",
                    'Invalid value: "é\\u00a0": invalid character U+00A0 (at position 2)',
                )
            ],
        ),
        (
            "x" * 128 + "\t",
            [
                ("FieldValueTooLong", "Too long: must have at most 128 bytes"),
                (
                    "FieldValueInvalid",
                    f'Invalid value: "{"x" * 128}\\t": invalid character U+0009 (at position 128)',
                ),
            ],
        ),
    ],
    ids=["too-long", "control", "non-ascii", "both"],
)
def test_field_manager_is_validated_for_every_write(
    http: httpx.Client, verb: str, manager: str, causes: list[tuple[str, str]]
) -> None:
    assert http.post(CMS, json=_cm(data={"a": "1"})).status_code == 201
    response = _write(http, verb, manager)
    assert response.status_code == 422, response.text
    texts = [f"fieldManager: {message}" for _, message in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    options = _OPTIONS[verb]
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{options}.meta.k8s.io "" is invalid: {summary}',
        "reason": "Invalid",
        "details": {
            "group": "meta.k8s.io",
            "kind": options,
            "causes": [
                {"reason": reason, "message": message, "field": "fieldManager"}
                for reason, message in causes
            ],
        },
        "code": 422,
    }
    # Nothing was written.
    assert http.get(f"{CMS}/cm").json()["data"] == {"a": "1"}
    assert http.get(f"{CMS}/new").status_code == 404


@pytest.mark.parametrize("verb", list(_OPTIONS))
def test_field_manager_of_128_printable_bytes_is_accepted(http: httpx.Client, verb: str) -> None:
    assert http.post(CMS, json=_cm(data={"a": "1"})).status_code == 201
    manager = "é" * 62 + "a bc"  # 66 characters, 128 bytes
    response = _write(http, verb, manager)
    assert response.status_code in (200, 201), response.text
    managers = [e["manager"] for e in response.json()["metadata"]["managedFields"]]
    assert manager in managers


def test_apply_still_requires_a_field_manager(http: httpx.Client) -> None:
    response = http.patch(f"{CMS}/cm", json=_cm(), headers=APPLY)
    assert response.status_code == 422
    assert response.json()["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
        "for apply patch"
    )


# -- the type of an applied configuration -----------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
@pytest.mark.parametrize(
    ("type_meta", "message"),
    [
        ({}, "invalid object type: /, Kind="),
        ({"kind": "ConfigMap"}, "invalid object type: /, Kind=ConfigMap"),
        ({"apiVersion": "v1"}, "invalid object type: /v1, Kind="),
        (
            {"apiVersion": "apps/v1", "kind": "ConfigMap"},
            "invalid object type: apps/v1, Kind=ConfigMap",
        ),
        ({"apiVersion": "v1", "kind": "Secret"}, "invalid object type: /v1, Kind=Secret"),
        ({"apiVersion": "a/b/c", "kind": "ConfigMap"}, "invalid object type: /, Kind="),
    ],
    ids=["none", "no-version", "no-kind", "other-group", "other-kind", "unparseable"],
)
def test_apply_refuses_a_configuration_of_another_type(
    http: httpx.Client, existing: bool, type_meta: Object, message: str
) -> None:
    if existing:
        assert http.post(CMS, json=_cm(data={"a": "1"})).status_code == 201
    # Checked before anything else of the apply: managedFields, a name that differs.
    body = {**type_meta, "metadata": {"name": "other", "managedFields": []}, "data": {"a": "2"}}
    response = http.patch(f"{CMS}/cm", json=body, headers=APPLY, params={"fieldManager": "test"})
    assert response.status_code == 400, response.text
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }
    found = http.get(f"{CMS}/cm")
    assert found.status_code == (200 if existing else 404)
    if existing:
        assert found.json()["data"] == {"a": "1"}


# -- duplicate keys in an applied configuration ---------------------------------------------


def _service(ports: list[Object]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "x"}, "ports": ports},
    }


_DUPLICATES = [
    (
        "service-ports",
        f"/api/v1/namespaces/{NS}/services/svc",
        _service([{"name": "http", "port": 80}]),
        _service([{"name": "http", "port": 80}, {"name": "http2", "port": 80}]),
        f"({NS}/svc; /v1, Kind=Service): .spec.ports: duplicate entries for key "
        '[port=80,protocol="TCP"]',
    ),
    (
        "pod-env",
        f"{PODS}/p",
        None,
        {
            **_pod(),
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "lab:1",
                        "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
                    }
                ]
            },
        },
        f'({NS}/p; /v1, Kind=Pod): .spec.containers[name="c"].env: duplicate entries for key '
        '[name="A"]',
    ),
    (
        "finalizers-set",
        f"{CMS}/cm",
        _cm(),
        {**_cm(), "metadata": {"name": "cm", "finalizers": ["x.io/a", "x.io/b", "x.io/a"]}},
        f"({NS}/cm; /v1, Kind=ConfigMap): .metadata.finalizers: duplicate entries for key "
        '[="x.io/a"]',
    ),
]


@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
@pytest.mark.parametrize(
    ("url", "first", "config", "where"),
    [case[1:] for case in _DUPLICATES],
    ids=[case[0] for case in _DUPLICATES],
)
def test_apply_refuses_duplicate_keys(
    http: httpx.Client,
    existing: bool,
    url: str,
    first: Object | None,
    config: Object,
    where: str,
) -> None:
    params = {"fieldManager": "test"}
    if existing:
        created = http.patch(url, json=first or _pod(), headers=APPLY, params=params)
        assert created.status_code == 201, created.text
    before = _applied(http.get(url).json()) if existing else None
    response = http.patch(url, json=config, headers=APPLY, params=params)
    assert response.status_code == 500, response.text
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"failed to create typed patch object {where}",
        "code": 500,
    }
    found = http.get(url)
    if existing:
        assert _applied(found.json()) == before
    else:
        assert found.status_code == 404


def _applied(obj: Object) -> list[Object]:
    return [e for e in obj["metadata"].get("managedFields", []) if e["manager"] == "test"]


# -- fields no manager owns --------------------------------------------------------------------


def test_admission_defaults_of_a_created_pod_belong_to_no_manager(http: httpx.Client) -> None:
    response = http.post(PODS, json=_pod(), params={"fieldManager": "writer"})
    assert response.status_code == 201, response.text
    pod = response.json()
    spec = pod["spec"]
    # Filled in by ServiceAccount and Priority admission ...
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    # ... after the field manager ran; the scheme defaults are the writer's.
    owned = _spec_fields(pod, "writer")
    for name in ("serviceAccount", "serviceAccountName", "priority", "preemptionPolicy"):
        assert f"f:{name}" not in owned
    for name in (
        "dnsPolicy",
        "enableServiceLinks",
        "restartPolicy",
        "schedulerName",
        "securityContext",
        "terminationGracePeriodSeconds",
    ):
        assert f"f:{name}" in owned


def test_a_named_service_account_is_the_writers_in_both_fields(http: httpx.Client) -> None:
    account = {"metadata": {"name": "robot"}}
    assert http.post(f"/api/v1/namespaces/{NS}/serviceaccounts", json=account).status_code == 201
    # The deprecated field alone names the account too (the v1 conversion mirrors them).
    for name, spec in (("a", {"serviceAccountName": "robot"}), ("b", {"serviceAccount": "robot"})):
        response = http.post(PODS, json=_pod(name, **spec), params={"fieldManager": "writer"})
        assert response.status_code == 201, response.text
        pod = response.json()
        assert pod["spec"]["serviceAccountName"] == "robot"
        assert pod["spec"]["serviceAccount"] == "robot"
        owned = _spec_fields(pod, "writer")
        assert "f:serviceAccount" in owned
        assert "f:serviceAccountName" in owned
        assert "f:priority" not in owned


def test_an_applied_pod_gets_admission_defaults(http: httpx.Client) -> None:
    response = http.patch(
        f"{PODS}/p", json=_pod(), headers=APPLY, params={"fieldManager": "applier"}
    )
    assert response.status_code == 201, response.text
    pod = response.json()
    assert pod["spec"]["serviceAccountName"] == "default"
    assert pod["spec"]["priority"] == 0
    assert [e["manager"] for e in pod["metadata"]["managedFields"]] == ["applier"]
    assert "f:serviceAccountName" not in _spec_fields(pod, "applier")


def test_a_job_template_is_not_admitted(http: httpx.Client) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]}
            }
        },
    }
    response = http.post(f"/apis/batch/v1/namespaces/{NS}/jobs", json=job)
    assert response.status_code == 201, response.text
    template = response.json()["spec"]["template"]["spec"]
    assert template["dnsPolicy"] == "ClusterFirst"  # scheme defaults reach templates
    for name in ("serviceAccountName", "serviceAccount", "priority", "preemptionPolicy"):
        assert name not in template


def test_replacing_a_pod_keeps_its_admitted_priority(http: httpx.Client) -> None:
    assert http.post(PODS, json=_pod()).status_code == 201
    for _ in range(50):  # the scheduler and kubelet write the pod meanwhile
        pod = http.get(f"{PODS}/p").json()
        del pod["spec"]["priority"]
        del pod["spec"]["preemptionPolicy"]
        pod["metadata"]["labels"] = {"x": "y"}
        response = http.put(f"{PODS}/p", json=pod)
        if response.status_code != 409:
            break
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["priority"] == 0
    assert response.json()["spec"]["preemptionPolicy"] == "PreemptLowerPriority"


def test_binding_a_pod_records_no_manager(sandbox: Sandbox, http: httpx.Client) -> None:
    response = http.post(PODS, json=_pod(), params={"fieldManager": "writer"})
    assert response.status_code == 201, response.text
    pod = sandbox.wait_for(
        lambda: (p := sandbox.get("Pod", "p", NS)) and p["spec"].get("nodeName") and p
    )
    managers = {e["manager"] for e in pod["metadata"]["managedFields"]}
    assert "default-scheduler" not in managers
    assert "f:nodeName" not in _spec_fields(pod, "writer")


def _fresh_encoding(obj: Object) -> bytes:
    """The managedFields of a stored object as encoding its entries anew writes them."""
    entries = [replace(e, source=None) for e in decode_managed_fields(obj)]
    return orjson.dumps(encode_managed_fields(entries))


def test_an_entry_a_write_leaves_alone_keeps_the_stored_item() -> None:
    cluster = Cluster()
    cluster.create_internal("Namespace", {"metadata": {"name": NS}}, "test")
    config = _cm(data={"a": "1"}, metadata={"name": "cm", "namespace": NS, "labels": {"x": "y"}})
    applied, _ = cluster.apply(
        "ConfigMap", NS, "cm", orjson.dumps(config), field_manager="ap", force=False
    )

    def label(o: Object) -> None:
        o["metadata"]["labels"]["z"] = "w"

    updated = cluster.update_internal("ConfigMap", NS, "cm", label, "ctl", subresource="")
    assert updated is not None
    before, after = applied["metadata"]["managedFields"], updated["metadata"]["managedFields"]
    assert [e["manager"] for e in after] == ["ap", "ctl"]
    assert after[0] is before[0]  # the applier's entry, unchanged, is the same item
    assert orjson.dumps(after) == _fresh_encoding(updated)

    def relabel(o: Object) -> None:
        o["metadata"]["labels"]["x"] = "v"

    again = cluster.update_internal("ConfigMap", NS, "cm", relabel, "ctl", subresource="")
    assert again is not None
    items = again["metadata"]["managedFields"]
    assert items[0] is not after[0]  # the applier lost f:x: its entry is written anew
    assert orjson.dumps(items) == _fresh_encoding(again)
    assert "f:metadata" not in items[0]["fieldsV1"]  # f:x was its only label


@pytest.mark.parametrize(
    "item",
    [
        # Keys in another order; a tree in another order; an empty subresource written out;
        # a time that is no string.
        {
            "operation": "Update",
            "manager": "m",
            "apiVersion": "v1",
            "time": "2020-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}},
        },
        {
            "manager": "m",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2020-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:b": {}, "f:a": {}}},
        },
        {
            "manager": "m",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2020-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}},
            "subresource": "",
        },
        {
            "manager": "m",
            "operation": "Update",
            "apiVersion": "v1",
            "time": 20200101,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}},
        },
    ],
)
def test_an_item_not_written_as_encoding_writes_it_is_not_kept(item: Object) -> None:
    cluster = Cluster()
    cluster.create_internal("Namespace", {"metadata": {"name": NS}}, "test")
    obj = _cm(data={"a": "1", "b": "2"})
    obj["metadata"]["namespace"] = NS
    cluster.create_internal("ConfigMap", obj, "maker")

    stored = cluster.store.get("ConfigMap", NS, "cm")
    assert stored is not None
    with_item = clone(stored)
    with_item["metadata"]["managedFields"] = [item]
    entries = decode_managed_fields(with_item)
    assert entries[0].source is None
    (encoded,) = encode_managed_fields(entries)
    assert encoded is not item
    assert list(encoded) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
