"""Server-side apply as structured-merge-diff does it: merges, ownership and conflicts.

The table cases follow the behaviours of structured-merge-diff's own merge
tests (multiple appliers on an associative list, ownership transfer, removing
one item while another manager keeps its own, atomic against granular maps
and lists, sets such as finalizers, an Update manager then an applier), each
over real HTTP, checking the object, ``managedFields`` (``fieldsV1``) and the
conflicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from nublado.sandbox.fields import (
    FieldConflict,
    FieldSet,
    ManagedEntry,
    apply_config,
    conflict_message,
    decode_managed_fields,
    encode_managed_fields,
    record_update,
)
from nublado.sandbox.request import writing
from nublado.sandbox.store import ApiError

APPLY = {"content-type": "application/apply-patch+yaml"}
NS = "ssa"
CM_URL = f"/api/v1/namespaces/{NS}/configmaps"
SVC_URL = f"/api/v1/namespaces/{NS}/services"

Object = dict[str, Any]


def _cm(name: str = "cm", **extra: Any) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, **extra.pop("metadata", {})},
        **extra,
    }


def _svc(ports: list[Object] | None = None, **spec: Any) -> Object:
    if ports is not None:
        spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc", "namespace": NS},
        "spec": spec,
    }


def _key(**fields: Any) -> str:
    return "k:" + json.dumps(fields, separators=(",", ":"))


def _port(port: int, target: int) -> Object:
    # A Service with several ports must name each one.
    return {"name": f"p{port}", "port": port, "targetPort": target}


def _port_fields(*ports: int) -> Object:
    return {
        "f:spec": {
            "f:ports": {
                _key(port=p, protocol="TCP"): {
                    ".": {},
                    "f:name": {},
                    "f:port": {},
                    "f:targetPort": {},
                }
                for p in ports
            }
        }
    }


@dataclass
class Step:
    """One write: ``apply`` (or ``force``) as a field manager, or ``create`` / ``put``."""

    verb: str
    manager: str
    body: Object
    status: int = 200
    message: str = ""
    fields: list[str] = field(default_factory=list)


@dataclass
class Case:
    name: str
    url: str
    steps: list[Step]
    expect: dict[str, Any]
    managed: dict[tuple[str, str], Object]


def _write(http: httpx.Client, url: str, step: Step) -> httpx.Response:
    name = step.body["metadata"]["name"]
    query = {"fieldManager": step.manager}
    if step.verb in ("apply", "force"):
        query["force"] = "true" if step.verb == "force" else "false"
        return http.patch(
            f"{url}/{name}", params=query, content=json.dumps(step.body), headers=APPLY
        )
    if step.verb == "create":
        return http.post(url, params=query, json=step.body)
    live = http.get(f"{url}/{name}").json()
    body = {**step.body, "metadata": {**step.body["metadata"], **live["metadata"]}}
    return http.put(f"{url}/{name}", params=query, json=body)


CASES = [
    Case(
        "multiple appliers on a list-map merge their elements",
        SVC_URL,
        [
            Step("apply", "a", _svc([_port(80, 8080)]), 201),
            Step("apply", "b", _svc([_port(81, 8081)])),
        ],
        {
            "spec.ports": [
                {**_port(80, 8080), "protocol": "TCP"},
                {**_port(81, 8081), "protocol": "TCP"},
            ]
        },
        {("a", "Apply"): _port_fields(80), ("b", "Apply"): _port_fields(81)},
    ),
    Case(
        "a manager that stops applying one item removes only that item",
        SVC_URL,
        [
            Step("apply", "a", _svc([_port(80, 8080), _port(82, 8082)]), 201),
            Step("apply", "b", _svc([_port(81, 8081)])),
            Step("apply", "a", _svc([_port(80, 8080)])),
        ],
        {
            "spec.ports": [
                {**_port(80, 8080), "protocol": "TCP"},
                {**_port(81, 8081), "protocol": "TCP"},
            ]
        },
        {("a", "Apply"): _port_fields(80), ("b", "Apply"): _port_fields(81)},
    ),
    Case(
        "a conflict on a list-map names the element's field",
        SVC_URL,
        [
            Step("apply", "a", _svc([_port(80, 8080)]), 201),
            Step(
                "apply",
                "b",
                _svc([_port(80, 9090)]),
                409,
                'Apply failed with 1 conflict: conflict with "a": '
                '.spec.ports[port=80,protocol="TCP"].targetPort',
                ['.spec.ports[port=80,protocol="TCP"].targetPort'],
            ),
        ],
        {"spec.ports": [{**_port(80, 8080), "protocol": "TCP"}]},
        {("a", "Apply"): _port_fields(80)},
    ),
    Case(
        "a forced apply takes the field and keeps the other manager's items",
        SVC_URL,
        [
            Step("apply", "a", _svc([_port(80, 8080), _port(82, 8082)]), 201),
            Step("force", "b", _svc([_port(80, 9090)])),
        ],
        {
            "spec.ports": [
                {**_port(80, 9090), "protocol": "TCP"},
                {**_port(82, 8082), "protocol": "TCP"},
            ]
        },
        {
            ("a", "Apply"): {
                "f:spec": {
                    "f:ports": {
                        _key(port=80, protocol="TCP"): {"f:name": {}, "f:port": {}, ".": {}},
                        _key(port=82, protocol="TCP"): {
                            "f:name": {},
                            "f:port": {},
                            "f:targetPort": {},
                            ".": {},
                        },
                    }
                }
            },
            ("b", "Apply"): _port_fields(80),
        },
    ),
    Case(
        "ownership moves to the manager that still applies a shared field",
        CM_URL,
        [
            Step("apply", "a", _cm(data={"A": "1"}), 201),
            Step("apply", "b", _cm(data={"A": "1"})),
            Step("apply", "a", _cm(data={"B": "2"})),
        ],
        {"data": {"A": "1", "B": "2"}},
        {("a", "Apply"): {"f:data": {"f:B": {}}}, ("b", "Apply"): {"f:data": {"f:A": {}}}},
    ),
    Case(
        "a field no one else owns is removed when its applier drops it",
        CM_URL,
        [
            Step("apply", "a", _cm(data={"A": "1", "B": "2"}), 201),
            Step("apply", "a", _cm(data={"B": "2"})),
        ],
        {"data": {"B": "2"}},
        {("a", "Apply"): {"f:data": {"f:B": {}}}},
    ),
    Case(
        "granular maps merge per key",
        CM_URL,
        [
            Step("apply", "a", _cm(metadata={"labels": {"x": "1"}}), 201),
            Step("apply", "b", _cm(metadata={"labels": {"y": "2"}})),
        ],
        {"metadata.labels": {"x": "1", "y": "2"}},
        {
            ("a", "Apply"): {"f:metadata": {"f:labels": {"f:x": {}}}},
            ("b", "Apply"): {"f:metadata": {"f:labels": {"f:y": {}}}},
        },
    ),
    Case(
        "an atomic map is one field",
        SVC_URL,
        [
            Step("apply", "a", _svc([_port(80, 8080)], selector={"x": "1"}), 201),
            Step(
                "apply",
                "b",
                _svc(selector={"y": "2"}),
                409,
                'Apply failed with 1 conflict: conflict with "a": .spec.selector',
                [".spec.selector"],
            ),
        ],
        {"spec.selector": {"x": "1"}},
        {
            ("a", "Apply"): {
                **_port_fields(80),
                "f:spec": {**_port_fields(80)["f:spec"], "f:selector": {}},
            }
        },
    ),
    Case(
        "an atomic list is one field",
        SVC_URL,
        [
            Step("apply", "a", _svc([_port(80, 8080)], externalIPs=["10.0.0.1"]), 201),
            Step(
                "apply",
                "b",
                _svc(externalIPs=["10.0.0.2"]),
                409,
                'Apply failed with 1 conflict: conflict with "a": .spec.externalIPs',
                [".spec.externalIPs"],
            ),
        ],
        {"spec.externalIPs": ["10.0.0.1"]},
        {("a", "Apply"): {"f:spec": {**_port_fields(80)["f:spec"], "f:externalIPs": {}}}},
    ),
    Case(
        "set lists such as finalizers merge by value",
        CM_URL,
        [
            Step("apply", "a", _cm(metadata={"finalizers": ["example.com/a"]}), 201),
            Step("apply", "b", _cm(metadata={"finalizers": ["example.com/b"]})),
            Step("apply", "a", _cm()),
        ],
        {"metadata.finalizers": ["example.com/b"]},
        {("b", "Apply"): {"f:metadata": {"f:finalizers": {'v:"example.com/b"': {}}}}},
    ),
    Case(
        "an Update manager's fields conflict with an applier",
        CM_URL,
        [
            Step("create", "creator", _cm(data={"A": "1", "B": "2"}), 201),
            Step(
                "apply",
                "a",
                _cm(data={"A": "9"}),
                409,
                'Apply failed with 1 conflict: conflict with "creator" using v1 at {time}: .data.A',
                [".data.A"],
            ),
            Step("force", "a", _cm(data={"A": "9"})),
        ],
        {"data": {"A": "9", "B": "2"}},
        {
            ("a", "Apply"): {"f:data": {"f:A": {}}},
            ("creator", "Update"): {"f:data": {"f:B": {}, ".": {}}},
        },
    ),
    Case(
        "an Update takes fields from an applier without conflict",
        CM_URL,
        [
            Step("apply", "a", _cm(data={"A": "1", "B": "2"}), 201),
            Step("put", "editor", _cm(data={"A": "5", "B": "2"})),
        ],
        {"data": {"A": "5", "B": "2"}},
        {("a", "Apply"): {"f:data": {"f:B": {}}}, ("editor", "Update"): {"f:data": {"f:A": {}}}},
    ),
    Case(
        "a field an Update removes leaves every manager's set",
        CM_URL,
        [
            Step("apply", "a", _cm(data={"A": "1", "B": "2"}), 201),
            Step("put", "editor", _cm(data={"B": "2"})),
        ],
        {"data": {"B": "2"}},
        {("a", "Apply"): {"f:data": {"f:B": {}}}},
    ),
    Case(
        "several conflicts are listed by manager",
        CM_URL,
        [
            Step("apply", "a", _cm(data={"A": "1", "B": "2"}), 201),
            Step(
                "apply",
                "b",
                _cm(data={"A": "3", "B": "4"}),
                409,
                'Apply failed with 2 conflicts: conflicts with "a":\n- .data.A\n- .data.B',
                [".data.A", ".data.B"],
            ),
        ],
        {"data": {"A": "1", "B": "2"}},
        {("a", "Apply"): {"f:data": {"f:A": {}, "f:B": {}}}},
    ),
    Case(
        "a manager whose every field is taken loses its entry",
        CM_URL,
        [
            Step("apply", "a", _cm(data={"A": "1"}), 201),
            Step("force", "b", _cm(data={"A": "2"})),
        ],
        {"data": {"A": "2"}},
        {("b", "Apply"): {"f:data": {"f:A": {}}}},
    ),
]


def _at(obj: Object, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_apply_merges_as_structured_merge_diff(http: httpx.Client, case: Case) -> None:
    for step in case.steps:
        response = _write(http, case.url, step)
        assert response.status_code == step.status, response.text
        if step.status == 409:
            body = response.json()
            live = http.get(f"{case.url}/{step.body['metadata']['name']}").json()
            times = {e["manager"]: e["time"] for e in live["metadata"]["managedFields"]}
            assert body["reason"] == "Conflict"
            assert body["message"] == step.message.format(time=times.get("creator"))
            assert [c["field"] for c in body["details"]["causes"]] == step.fields
            assert {c["reason"] for c in body["details"]["causes"]} == {"FieldManagerConflict"}
    name = case.steps[0].body["metadata"]["name"]
    obj = http.get(f"{case.url}/{name}").json()
    for dotted, expected in case.expect.items():
        assert _at(obj, dotted) == expected
    managed = {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}
    assert {k: e["fieldsV1"] for k, e in managed.items()} == case.managed
    for entry in managed.values():
        assert entry["fieldsType"] == "FieldsV1"
        assert entry["apiVersion"] == "v1"
        assert entry["time"].endswith("Z")


def test_fields_v1_is_written_as_the_api_server_writes_it(http: httpx.Client) -> None:
    """``.`` comes first in an element that has children, keys in sorted order, compact JSON."""
    port = {"port": 80, "targetPort": 8080}  # one port: no name needed
    response = _write(http, SVC_URL, Step("apply", "a", _svc([port])))
    assert response.status_code == 201
    entry = response.json()["metadata"]["managedFields"][0]
    assert json.dumps(entry["fieldsV1"], separators=(",", ":")) == (
        '{"f:spec":{"f:ports":{"k:{\\"port\\":80,\\"protocol\\":\\"TCP\\"}":'
        '{".":{},"f:port":{},"f:targetPort":{}}}}}'
    )


def test_created_object_is_owned_by_an_update_manager_as_upstream_records_it(
    http: httpx.Client,
) -> None:
    created = http.post(
        CM_URL,
        params={"fieldManager": "kubectl-create"},
        json=_cm(metadata={"labels": {"app": "x"}}, data={"A": "1"}),
    )

    assert created.status_code == 201
    [entry] = created.json()["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl-create"
    assert entry["operation"] == "Update"
    assert entry["fieldsV1"] == {
        "f:data": {"f:A": {}, ".": {}},
        "f:metadata": {"f:labels": {"f:app": {}, ".": {}}},
    }


def test_untracked_fields_are_not_owned(http: httpx.Client) -> None:
    """Identity, system metadata and status on the main resource belong to no manager."""
    body = _svc([_port(80, 8080)])
    body["metadata"]["uid"] = None
    body["status"] = {"loadBalancer": {}}
    del body["metadata"]["uid"]

    response = _write(http, SVC_URL, Step("apply", "a", body))

    assert response.status_code == 201
    fields = response.json()["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields == _port_fields(80)


def test_status_writes_are_recorded_with_their_subresource(http: httpx.Client) -> None:
    created = http.post(
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        json={
            "metadata": {"name": "pvc"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    assert created.status_code == 201
    live = created.json()
    live["status"] = {**live.get("status", {}), "phase": "Lost"}
    del live["metadata"]["resourceVersion"]  # unconditional: the binder may have written since

    response = http.put(
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims/pvc/status",
        params={"fieldManager": "operator"},
        json=live,
    )

    assert response.status_code == 200
    [entry] = [
        e for e in response.json()["metadata"]["managedFields"] if e["manager"] == "operator"
    ]
    assert entry["operation"] == "Update"
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:phase": {}}}


def test_undeclared_field_in_an_apply_body_answers_500(http: httpx.Client) -> None:
    body = _cm(data={"A": "1"})
    body["spec"] = {"replicas": 1}

    response = _write(http, CM_URL, Step("apply", "a", body))

    assert response.status_code == 500
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            "failed to create typed patch object (ssa/cm; /v1, Kind=ConfigMap): "
            ".spec: field not declared in schema"
        ),
        "code": 500,
    }
    assert http.get(f"{CM_URL}/cm").status_code == 404


def test_undeclared_field_deep_in_a_list_element_is_named_by_its_key(
    http: httpx.Client,
) -> None:
    body = _svc([{**_port(80, 8080), "colour": "blue"}])

    response = _write(http, SVC_URL, Step("apply", "a", body))

    assert response.status_code == 500
    assert response.json()["message"] == (
        "failed to create typed patch object (ssa/svc; /v1, Kind=Service): "
        '.spec.ports[port=80,protocol="TCP"].colour: field not declared in schema'
    )


def test_unchanged_apply_keeps_the_entry_time() -> None:
    live = _cm(data={"A": "1"})
    entries = [
        ManagedEntry("a", "Apply", "v1", "2020-01-01T00:00:00Z", _fields({"f:data": {"f:A": {}}}))
    ]

    _, same, _ = apply_config(
        live, _cm(data={"A": "1"}), entries, manager="a", api_version="v1", now="NOW", force=False
    )
    _, changed, _ = apply_config(
        live, _cm(data={"A": "2"}), entries, manager="a", api_version="v1", now="NOW", force=False
    )

    assert [e.time for e in same] == ["2020-01-01T00:00:00Z"]
    assert [e.time for e in changed] == ["NOW"]


def test_update_without_changes_keeps_the_entry_time() -> None:
    live = _cm(data={"A": "1"})
    entries = [
        ManagedEntry("u", "Update", "v1", "2020-01-01T00:00:00Z", _fields({"f:data": {"f:A": {}}}))
    ]

    same = record_update(
        live, _cm(data={"A": "1"}), entries, manager="u", api_version="v1", now="NOW"
    )
    changed = record_update(
        live, _cm(data={"A": "2"}), entries, manager="u", api_version="v1", now="NOW"
    )

    assert [e.time for e in same] == ["2020-01-01T00:00:00Z"]
    assert [e.time for e in changed] == ["NOW"]


def _fields(tree: Object) -> FieldSet:
    return FieldSet.from_json(tree)


def _pod(containers: list[Object]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"containers": containers},
    }


def test_two_managers_merge_containers_and_env_entries() -> None:
    """Containers merge by name and env entries by name (pods refuse spec updates, so the
    merge is shown on the merge itself)."""
    first = _pod([{"name": "lab", "image": "a", "env": [{"name": "X", "value": "1"}]}])
    live, entries, _ = apply_config(
        None, first, [], manager="a", api_version="v1", now="T", force=False
    )
    second = _pod(
        [
            {"name": "lab", "env": [{"name": "Y", "value": "2"}]},
            {"name": "sidecar", "image": "b"},
        ]
    )

    merged, entries, conflicts = apply_config(
        live, second, entries, manager="b", api_version="v1", now="T", force=False
    )

    assert conflicts == []
    assert merged["spec"]["containers"] == [
        {
            "name": "lab",
            "image": "a",
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
        },
        {"name": "sidecar", "image": "b"},
    ]
    owned = {e.manager: e.fields.to_json() for e in entries}
    lab = _key(name="lab")
    assert owned["b"] == {
        "f:spec": {
            "f:containers": {
                lab: {
                    "f:env": {_key(name="Y"): {"f:name": {}, "f:value": {}, ".": {}}},
                    "f:name": {},
                    ".": {},
                },
                _key(name="sidecar"): {"f:image": {}, "f:name": {}, ".": {}},
            }
        }
    }

    _, _, conflicts = apply_config(
        merged,
        _pod([{"name": "lab", "image": "c"}]),
        entries,
        manager="b",
        api_version="v1",
        now="T",
        force=False,
    )
    assert [("".join(c.entry.manager), c.path) for c in conflicts] == [
        ("a", ("f:spec", "f:containers", lab, "f:image"))
    ]


def test_managed_fields_round_trip() -> None:
    tree = {
        "f:metadata": {"f:finalizers": {".": {}, 'v:"x"': {}}, "f:labels": {"f:app": {}}},
        "f:spec": {
            "f:ports": {
                _key(port=80, protocol="TCP"): {".": {}, "f:port": {}},
                _key(port=443, protocol="TCP"): {".": {}, "f:port": {}},
            }
        },
    }
    obj = {
        "metadata": {
            "managedFields": [
                {
                    "manager": "m",
                    "operation": "Apply",
                    "apiVersion": "v1",
                    "time": "T",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": tree,
                }
            ]
        }
    }

    encoded = encode_managed_fields(decode_managed_fields(obj))

    assert json.dumps(encoded[0]["fieldsV1"]) == json.dumps(tree)


def _ingress(**extra: Any) -> Object:
    return {
        "apiVersion": "gafaelfawr.lsst.io/v1alpha1",
        "kind": "GafaelfawrIngress",
        "metadata": {"name": "gi", "namespace": NS},
        "config": {"baseUrl": "https://example.com", "scopes": {"all": ["read:all"]}},
        "template": {"metadata": {"name": "gi"}, "spec": {"rules": []}},
        **extra,
    }


def test_custom_resource_keeps_unknown_fields_where_its_schema_preserves_them() -> None:
    live = _ingress()
    config = _ingress(status={"create": {"status": "True"}, "extra": {"any": ["thing"]}})

    merged, entries, _ = apply_config(
        live,
        config,
        [],
        manager="op",
        api_version="v1alpha1",
        now="T",
        force=False,
        with_status=True,
    )

    assert merged["status"]["extra"] == {"any": ["thing"]}
    [entry] = entries
    assert entry.fields.to_json()["f:status"] == {
        "f:create": {"f:status": {}},
        "f:extra": {"f:any": {}, ".": {}},
    }


def test_custom_resource_undeclared_field_is_dropped_with_a_warning() -> None:
    config = _ingress()
    config["config"]["colour"] = "blue"

    with writing("Warn") as write:
        merged, _, _ = apply_config(
            None, config, [], manager="a", api_version="v1alpha1", now="T", force=False
        )

    assert "colour" not in merged["config"]
    assert write.warnings == ['unknown field "config.colour"']


def test_custom_resource_undeclared_field_is_refused_under_strict_validation() -> None:
    config = _ingress()
    config["config"]["colour"] = "blue"

    with writing("Strict"), pytest.raises(ApiError) as raised:
        apply_config(None, config, [], manager="a", api_version="v1alpha1", now="T", force=False)

    assert raised.value.code == 500
    assert ".config.colour: field not declared in schema" in raised.value.message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (ManagedEntry("a", "Apply", "v1", "T"), '"a"'),
        (
            ManagedEntry("u", "Update", "v1", "2026-01-02T03:04:05Z"),
            '"u" using v1 at 2026-01-02T03:04:05Z',
        ),
        (ManagedEntry("u", "Update", "v1", ""), '"u" using v1'),
        (
            ManagedEntry("k", "Update", "v1", "2026-01-02T03:04:05Z", subresource="status"),
            '"k" with subresource "status" using v1 at 2026-01-02T03:04:05Z',
        ),
    ],
)
def test_conflict_names_the_manager_as_the_api_server_does(
    entry: ManagedEntry, expected: str
) -> None:
    path = ("f:metadata", "f:finalizers", 'v:"example.com/x"')

    message, causes = conflict_message([FieldConflict(path, entry)])

    assert message == (
        f"Apply failed with 1 conflict: conflict with {expected}: "
        '.metadata.finalizers[="example.com/x"]'
    )
    assert causes == [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {expected}",
            "field": '.metadata.finalizers[="example.com/x"]',
        }
    ]


def test_created_service_entry_matches_a_real_api_server_entry(http: httpx.Client) -> None:
    """The Update entry of a client-side ``kubectl apply`` create, as a 1.3x cluster writes it
    (the fields kube-apiserver allocates after recording ownership are left out here)."""
    real = (
        '{"f:metadata":{"f:annotations":{".":{},'
        '"f:kubectl.kubernetes.io/last-applied-configuration":{}}},'
        '"f:spec":{"f:internalTrafficPolicy":{},"f:ports":{".":{},'
        '"k:{\\"port\\":80,\\"protocol\\":\\"TCP\\"}":{".":{},"f:port":{},"f:protocol":{},'
        '"f:targetPort":{}}},"f:selector":{},"f:sessionAffinity":{},"f:type":{}}}'
    )
    body = _svc([{"port": 80, "targetPort": 80, "protocol": "TCP"}], selector={"app": "x"})
    body["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}

    created = http.post(SVC_URL, params={"fieldManager": "kubectl-client-side-apply"}, json=body)

    assert created.status_code == 201
    fields = created.json()["metadata"]["managedFields"][0]["fieldsV1"]
    for allocated in ("f:clusterIP", "f:clusterIPs", "f:ipFamilies", "f:ipFamilyPolicy"):
        fields["f:spec"].pop(allocated, None)
    assert json.dumps(fields, separators=(",", ":")) == real
