"""Strategic merge patch over HTTP, as kube-apiserver applies it.

Lists merge only where Kubernetes' schema gives them the ``merge`` patch
strategy (by the merge key, or as a union of scalars); other lists are
replaced whole. The directives (``$patch``, ``$setElementOrder``,
``$deleteFromPrimitiveList``, ``$retainKeys``) act and are never stored, and
malformed ones answer upstream's status and message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.patch import strategic_merge_patch
from nublado.sandbox.schema import node_for
from nublado.sandbox.server import Sandbox

SMP = {"content-type": "application/strategic-merge-patch+json"}
NS = "p"

Object = dict[str, Any]


def _pod() -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": NS},
        "spec": {
            "containers": [
                {
                    "name": "lab",
                    "image": "lab:1",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [
                        {"containerPort": 8888, "name": "http", "protocol": "TCP"},
                        {"containerPort": 9000, "name": "metrics", "protocol": "TCP"},
                    ],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                },
                {"name": "sidecar", "image": "sidecar:1"},
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
            ],
            "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def _service() -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": NS, "labels": {"app": "a", "tier": "web"}},
        "spec": {
            "selector": {"app": "a", "tier": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
            ],
        },
    }


def _configmap() -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cm",
            "namespace": NS,
            "labels": {"app": "a"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "data": {"A": "1", "B": "2"},
        "binaryData": {"bin": "AAEC"},
    }


def _network_policy() -> Object:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": NS},
        "spec": {
            "podSelector": {},
            "ingress": [
                {"ports": [{"port": 80, "protocol": "TCP"}]},
                {"ports": [{"port": 443, "protocol": "TCP"}]},
            ],
        },
    }


_OBJECTS: dict[str, tuple[str, Callable[[], Object]]] = {
    "pod": (f"/api/v1/namespaces/{NS}/pods", _pod),
    "service": (f"/api/v1/namespaces/{NS}/services", _service),
    "configmap": (f"/api/v1/namespaces/{NS}/configmaps", _configmap),
    "networkpolicy": (
        f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
        _network_policy,
    ),
}


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client on the sandbox, with namespace ``p`` and one object of each kind."""
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).status_code == 201
        for collection, build in _OBJECTS.values():
            created = client.post(collection, json=build())
            assert created.status_code == 201, created.text
        yield client


def _url(kind: str) -> str:
    collection, build = _OBJECTS[kind]
    return f"{collection}/{build()['metadata']['name']}"


def _patch(http: httpx.Client, kind: str, patch: Any) -> httpx.Response:
    return http.patch(_url(kind), content=json.dumps(patch), headers=SMP)


def _containers(obj: Object) -> list[tuple[str, str]]:
    return [(c["name"], c["image"]) for c in obj["spec"]["containers"]]


def _lab(obj: Object) -> Object:
    lab: Object = obj["spec"]["containers"][0]
    assert lab["name"] == "lab"
    return lab


def _ports(obj: Object) -> list[tuple[int, Any]]:
    return [(p["port"], p.get("targetPort")) for p in obj["spec"]["ports"]]


def _finalizers(obj: Object) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


# Each case: the object patched, the patch, what to read of the result, its expected value.
_MERGES: list[tuple[str, str, Object, Callable[[Object], Any], Any]] = [
    (
        "containers merged by name",
        "pod",
        {"spec": {"containers": [{"name": "sidecar", "image": "sidecar:2"}]}},
        _containers,
        [("lab", "lab:1"), ("sidecar", "sidecar:2")],
    ),
    (
        "env merged by name",
        "pod",
        {"spec": {"containers": [{"name": "lab", "image": "lab:2", "env": [{"name": "B"}]}]}},
        lambda o: (_lab(o)["image"], _lab(o)["env"]),
        ("lab:2", [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    ),
    (
        "ports merged by containerPort",
        "pod",
        {"spec": {"containers": [{"name": "lab", "ports": [{"containerPort": 9000}]}]}},
        lambda o: [(p["containerPort"], p["name"]) for p in _lab(o)["ports"]],
        [(8888, "http"), (9000, "metrics")],
    ),
    (
        "volumeMounts merged by mountPath",
        "pod",
        {"spec": {"containers": [{"name": "lab", "volumeMounts": [{"mountPath": "/scratch"}]}]}},
        lambda o: _lab(o)["volumeMounts"],
        [{"name": "scratch", "mountPath": "/scratch"}],
    ),
    (
        "volumes merged by name",
        "pod",
        {"spec": {"volumes": [{"name": "tmp"}]}},
        lambda o: [v["name"] for v in o["spec"]["volumes"]],
        ["scratch", "tmp"],
    ),
    (
        "service ports merged by port, a new one first",
        "service",
        {"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 8080, "name": "alt"}]}},
        _ports,
        [(80, 8080), (443, 9443), (8080, 8080)],
    ),
    (
        "a list without merge strategy is replaced whole",
        "networkpolicy",
        {"spec": {"ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}]}},
        lambda o: o["spec"]["ingress"],
        [{"ports": [{"port": 8080, "protocol": "TCP"}]}],
    ),
    (
        "tolerations replaced whole (an addition keeps the pod valid)",
        "pod",
        {
            "spec": {
                "tolerations": [
                    {"key": "a", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "b", "operator": "Exists"},
                ]
            }
        },
        lambda o: [t["key"] for t in o["spec"]["tolerations"]],
        ["a", "b"],
    ),
    (
        "finalizers, a merge list of scalars, take the union",
        "configmap",
        {"metadata": {"finalizers": ["example.com/c", "example.com/a"]}},
        _finalizers,
        ["example.com/c", "example.com/a", "example.com/b"],
    ),
    (
        "$patch delete on a list element removes it",
        "service",
        {"spec": {"ports": [{"port": 443, "$patch": "delete"}]}},
        _ports,
        [(80, 8080)],
    ),
    (
        "$patch replace on a list replaces it",
        "service",
        {"spec": {"ports": [{"port": 8080, "name": "alt"}, {"$patch": "replace"}]}},
        _ports,
        [(8080, 8080)],
    ),
    (
        "$patch replace on a map replaces it",
        "service",
        {"spec": {"selector": {"$patch": "replace", "app": "b"}}},
        lambda o: o["spec"]["selector"],
        {"app": "b"},
    ),
    (
        "$patch delete on a map empties it",
        "configmap",
        {"data": {"$patch": "delete"}},
        lambda o: o.get("data") or {},
        {},
    ),
    (
        "$setElementOrder reorders a merge list",
        "service",
        {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}},
        _ports,
        [(443, 8443), (80, 8080)],
    ),
    (
        "$setElementOrder orders the patched and the live elements",
        "service",
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 8080}, {"port": 443}, {"port": 80}],
                "ports": [{"port": 8080, "name": "alt"}],
            }
        },
        _ports,
        [(8080, 8080), (443, 8443), (80, 8080)],
    ),
    (
        "$deleteFromPrimitiveList removes scalars from a merge list",
        "configmap",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}},
        _finalizers,
        ["example.com/b"],
    ),
    (
        "$retainKeys clears the fields it does not name",
        "configmap",
        {"$retainKeys": ["apiVersion", "kind", "metadata", "data"], "data": {"C": "3"}},
        lambda o: (o["data"], "binaryData" in o),
        ({"A": "1", "B": "2", "C": "3"}, False),
    ),
    (
        "null deletes a key",
        "configmap",
        {"data": {"A": None}, "metadata": {"labels": {"app": None}}},
        lambda o: (o["data"], o["metadata"].get("labels") or {}),
        ({"B": "2"}, {}),
    ),
    (
        "a map merges key by key",
        "service",
        {"metadata": {"labels": {"tier": "db", "zone": "b"}}},
        lambda o: o["metadata"]["labels"],
        {"app": "a", "tier": "db", "zone": "b"},
    ),
]


@pytest.mark.parametrize(
    ("kind", "patch", "read", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in _MERGES],
)
def test_strategic_merge_patch_merges_by_the_schema(
    http: httpx.Client, kind: str, patch: Object, read: Callable[[Object], Any], expected: Any
) -> None:
    response = _patch(http, kind, patch)

    assert response.status_code == 200, response.text
    assert read(response.json()) == expected
    stored = http.get(_url(kind)).json()
    assert read(stored) == expected
    assert "$" not in json.dumps(stored)


def test_retain_keys_switches_a_volume_source() -> None:
    """kubectl's patch for a volume switched from emptyDir to a ConfigMap.

    A pod refuses any change to its volumes, so this one runs the patch on
    the Pod schema without the API around it.
    """
    patch = {
        "spec": {
            "$setElementOrder/volumes": [{"name": "scratch"}, {"name": "tmp"}],
            "volumes": [
                {"name": "tmp", "configMap": {"name": "cm"}, "$retainKeys": ["configMap", "name"]}
            ],
        }
    }

    patched = strategic_merge_patch(_pod(), patch, node_for("v1", "Pod"))

    assert patched["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "tmp", "configMap": {"name": "cm"}},
    ]


def test_a_replaced_toleration_list_is_a_forbidden_pod_update(http: httpx.Client) -> None:
    response = _patch(http, "pod", {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}})

    assert response.status_code == 422
    assert response.json()["message"].startswith(
        'Pod "x" is invalid: spec: Forbidden: pod updates may not change fields other than'
    )


# Each case: the object, the patch, the status, the reason (None: no reason), the message.
_REFUSALS: list[tuple[str, str, Any, int, str | None, str]] = [
    (
        "unknown $patch on a list element",
        "service",
        {"spec": {"ports": [{"port": 80, "$patch": "bogus"}]}},
        500,
        None,
        "unknown patch type: bogus in map: map[$patch:bogus port:80]",
    ),
    (
        "unknown $patch on a map",
        "service",
        {"spec": {"selector": {"$patch": "bogus"}}},
        500,
        None,
        "unknown patch type: bogus in map: map[$patch:bogus]",
    ),
    (
        "$patch merge on a map",
        "service",
        {"metadata": {"labels": {"$patch": "merge", "x": "y"}}},
        500,
        None,
        "unknown patch type: merge in map: map[$patch:merge x:y]",
    ),
    (
        "$patch merge on a list element",
        "service",
        {"spec": {"ports": [{"port": 80, "$patch": "merge"}]}},
        500,
        None,
        "merging lists cannot yet be specified in the patch",
    ),
    (
        "merge key missing",
        "service",
        {"spec": {"ports": [{"targetPort": 81}]}},
        500,
        None,
        "map: map[targetPort:81] does not contain declared merge key: port",
    ),
    (
        "merge key missing from a $patch delete element",
        "pod",
        {"spec": {"containers": [{"$patch": "delete", "image": "x"}]}},
        500,
        None,
        "map: map[$patch:delete image:x] does not contain declared merge key: name",
    ),
    (
        "$retainKeys not naming a patched field",
        "configmap",
        {"$retainKeys": ["metadata"], "data": {"C": "3"}},
        400,
        "BadRequest",
        "invalid patch format of retainKeys",
    ),
    (
        "$retainKeys not a list",
        "configmap",
        {"$retainKeys": "data"},
        400,
        "BadRequest",
        "invalid patch format of retainKeys",
    ),
    (
        "$setElementOrder without a list name",
        "service",
        {"spec": {"$setElementOrderports": [{"port": 80}]}},
        400,
        "BadRequest",
        "invalid patch format of setElementOrder list",
    ),
    (
        "$deleteFromPrimitiveList without a list name",
        "configmap",
        {"metadata": {"$deleteFromPrimitiveList": ["example.com/a"]}},
        400,
        "BadRequest",
        "invalid patch format of primitive list",
    ),
    (
        "$setElementOrder contradicting the patch's order",
        "service",
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                "ports": [{"port": 443, "name": "https"}, {"port": 80, "name": "http"}],
            }
        },
        500,
        None,
        "The order in patch list:\n[map[name:https port:443] map[name:http port:80]]\n doesn't "
        "match $setElementOrder list:\n[map[port:80] map[port:443]]\n",
    ),
    (
        "$setElementOrder naming a field the kind does not have",
        "service",
        {"spec": {"$setElementOrder/bogus": [{"port": 80}]}},
        500,
        None,
        'unable to find api field in struct ServiceSpec for the json field "bogus"',
    ),
    (
        "list element types differing",
        "configmap",
        {"metadata": {"finalizers": [1]}},
        500,
        None,
        "list element types are not identical: [[example.com/a example.com/b] [1]]",
    ),
    (
        "a body that is not an object",
        "configmap",
        [{"op": "add"}],
        400,
        "BadRequest",
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    ),
]


@pytest.mark.parametrize(
    ("kind", "patch", "status", "reason", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in _REFUSALS],
)
def test_malformed_strategic_merge_patches_answer_upstreams_error(
    http: httpx.Client, kind: str, patch: Any, status: int, reason: str | None, message: str
) -> None:
    before = http.get(_url(kind)).json()

    response = _patch(http, kind, patch)

    assert response.status_code == status
    body = response.json()
    assert body["code"] == status
    assert body.get("reason") == reason
    assert body["message"] == message
    assert http.get(_url(kind)).json() == before


def test_custom_resources_refuse_strategic_merge_patch_with_415(http: httpx.Client) -> None:
    url = f"/apis/gafaelfawr.lsst.io/v1alpha1/namespaces/{NS}/gafaelfawringresses/gi"

    response = http.patch(url, content="{}", headers=SMP)

    assert response.status_code == 415
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the body of the request was in an unknown format - accepted media types "
        "include: application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml",
        "reason": "UnsupportedMediaType",
        "code": 415,
    }


def test_built_in_kinds_list_strategic_merge_among_accepted_types(http: httpx.Client) -> None:
    response = http.patch(_url("configmap"), content="{}", headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert response.json()["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml"
    )
