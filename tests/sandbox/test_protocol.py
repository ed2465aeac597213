"""The sandbox's REST protocol as raw HTTP sees it: discovery, verbs, queries, Status bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox

APPLY = {"content-type": "application/apply-patch+yaml"}


def _cm(name: str = "cm", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "p"},
        "data": data,
    }


def test_discovery_documents(http: httpx.Client) -> None:
    assert http.get("/version").json()["minor"] == "32"
    assert http.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"] for g in http.get("/apis").json()["groups"]}
    assert groups == {
        "apps",
        "networking.k8s.io",
        "batch",
        "gafaelfawr.lsst.io",
        "coordination.k8s.io",
        "storage.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "authorization.k8s.io",  # SelfSubjectAccessReview only
    }
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert core["pods"]["namespaced"] and not core["nodes"]["namespaced"]
    assert "pods/status" in core
    custom = http.get("/apis/gafaelfawr.lsst.io/v1alpha1").json()["resources"]
    assert custom[0]["kind"] == "GafaelfawrIngress"
    assert custom[0]["name"] == "gafaelfawringresses"
    root = http.get("/openapi/v3").json()["paths"]
    document = http.get(root["api/v1"]["serverRelativeURL"]).json()
    patch = document["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in patch[
        "parameters"
    ]


def test_missing_object_is_a_status_404(http: httpx.Client) -> None:
    response = http.get("/apis/batch/v1/namespaces/p/jobs/nope")

    assert response.status_code == 404
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "jobs", "group": "batch"},
        "code": 404,
    }
    assert http.get("/api/v1/widgets").status_code == 404


def test_apply_answers_201_then_200_and_keeps_resource_version_on_no_op(http: httpx.Client) -> None:
    url = "/api/v1/namespaces/p/configmaps/cm"
    query = {"fieldManager": "nublado", "force": "true"}

    first = http.patch(url, params=query, content=json.dumps(_cm(A="1")), headers=APPLY)
    second = http.patch(url, params=query, content=json.dumps(_cm(A="1")), headers=APPLY)
    third = http.patch(url, params=query, content=json.dumps(_cm(A="2")), headers=APPLY)

    assert (first.status_code, second.status_code, third.status_code) == (201, 200, 200)
    assert (
        second.json()["metadata"]["resourceVersion"] == first.json()["metadata"]["resourceVersion"]
    )
    assert int(third.json()["metadata"]["resourceVersion"]) > int(
        second.json()["metadata"]["resourceVersion"]
    )


def test_apply_accepts_a_yaml_body(http: httpx.Client) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y, namespace: p}\ndata: {A: b}\n"
    response = http.patch(
        "/api/v1/namespaces/p/configmaps/y",
        params={"fieldManager": "m"},
        content=body,
        headers=APPLY,
    )
    assert response.status_code == 201
    assert response.json()["data"] == {"A": "b"}


@pytest.mark.parametrize("value", ["True", "1", "t", "TRUE"])
def test_boolean_query_parameters_follow_go_parse_bool(http: httpx.Client, value: str) -> None:
    url = "/api/v1/namespaces/p/configmaps/cm"
    http.patch(url, params={"fieldManager": "a"}, content=json.dumps(_cm(A="1")), headers=APPLY)

    response = http.patch(
        url,
        params={"fieldManager": "b", "force": value},
        content=json.dumps(_cm(A="2")),
        headers=APPLY,
    )

    assert response.status_code == 200


def test_bad_boolean_is_a_bad_request(http: httpx.Client) -> None:
    response = http.patch(
        "/api/v1/namespaces/p/configmaps/cm",
        params={"fieldManager": "a", "force": "yes"},
        content=json.dumps(_cm()),
        headers=APPLY,
    )
    assert response.status_code == 400
    assert "ParseBool" in response.json()["message"]


def test_apply_needs_a_field_manager(http: httpx.Client) -> None:
    response = http.patch(
        "/api/v1/namespaces/p/configmaps/cm", content=json.dumps(_cm()), headers=APPLY
    )
    assert response.status_code == 422
    assert response.json()["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for '
        "apply patch"
    )


def test_apply_body_must_match_the_url(http: httpx.Client) -> None:
    response = http.patch(
        "/api/v1/namespaces/p/configmaps/other",
        params={"fieldManager": "m"},
        content=json.dumps(_cm()),
        headers=APPLY,
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "the name of the object (cm) does not match the name on the URL (other)"
    )


def test_unknown_patch_type_is_415_and_force_needs_apply(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1"))
    url = "/api/v1/namespaces/p/configmaps/cm"

    unknown = http.patch(url, content="{}", headers={"content-type": "text/plain"})
    forced = http.patch(
        url,
        params={"force": "true"},
        content="{}",
        headers={"content-type": "application/merge-patch+json"},
    )

    assert unknown.status_code == 415
    assert unknown.json()["reason"] == "UnsupportedMediaType"
    assert forced.status_code == 422
    assert "may not be specified for non-apply patch" in forced.json()["message"]


def test_merge_strategic_and_json_patches(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1", B="2"))
    url = "/api/v1/namespaces/p/configmaps/cm"

    merged = http.patch(
        url,
        json={"data": {"A": None, "C": "3"}},
        headers={"content-type": "application/merge-patch+json"},
    )
    strategic = http.patch(
        url,
        json={"data": {"D": "4"}},
        headers={"content-type": "application/strategic-merge-patch+json"},
    )
    patched = http.patch(
        url,
        json=[
            {"op": "replace", "path": "/data/B", "value": "9"},
            {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
        ],
        headers={"content-type": "application/json-patch+json"},
    )

    assert merged.json()["data"] == {"B": "2", "C": "3"}
    assert strategic.json()["data"] == {"B": "2", "C": "3", "D": "4"}
    assert patched.json()["data"]["B"] == "9"
    assert patched.json()["metadata"]["labels"] == {"x": "y"}
    managers = {e["manager"] for e in patched.json()["metadata"]["managedFields"]}
    assert managers == {"python-httpx"}


def test_create_twice_is_already_exists_and_put_checks_resource_version(http: httpx.Client) -> None:
    created = http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1")).json()
    again = http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1"))
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"
    assert again.json()["message"] == 'configmaps "cm" already exists'

    stale = _cm(A="2")
    stale["metadata"]["resourceVersion"] = "1"
    conflict = http.put("/api/v1/namespaces/p/configmaps/cm", json=stale)
    fresh = _cm(A="2")
    fresh["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    replaced = http.put("/api/v1/namespaces/p/configmaps/cm", json=fresh)

    assert conflict.status_code == 409
    assert "the object has been modified" in conflict.json()["message"]
    assert replaced.status_code == 200
    assert replaced.json()["data"] == {"A": "2"}


def test_status_subresource_changes_only_status(http: httpx.Client) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "s", "namespace": "p"},
        "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"},
    }
    created = http.post("/api/v1/namespaces/p/pods", json=pod).json()
    assert created["status"]["phase"] == "Pending"  # clients cannot set status on create

    patched = http.patch(
        "/api/v1/namespaces/p/pods/s/status",
        json={"status": {"phase": "Succeeded"}, "spec": {"hostname": "x"}},
        headers={"content-type": "application/merge-patch+json"},
    ).json()

    assert patched["status"]["phase"] == "Succeeded"
    assert "hostname" not in patched["spec"]


def test_delete_options_from_query_or_body(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/p/configmaps", json=_cm("a"))
    http.post("/api/v1/namespaces/p/configmaps", json=_cm("b"))

    by_query = http.delete(
        "/api/v1/namespaces/p/configmaps/a", params={"propagationPolicy": "Background"}
    )
    by_body = http.request(
        "DELETE",
        "/api/v1/namespaces/p/configmaps/b",
        json={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
    )
    bad = http.request(
        "DELETE", "/api/v1/namespaces/p/configmaps/b", json={"propagationPolicy": "Sideways"}
    )
    missing = http.delete("/api/v1/namespaces/p/configmaps/a")

    assert by_query.status_code == 200 and by_query.json()["status"] == "Success"
    assert by_body.status_code == 200
    assert bad.status_code == 422
    assert missing.status_code == 404
    assert missing.json()["message"] == 'configmaps "a" not found'


def test_namespace_terminates_with_409_on_second_delete(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.namespace_termination_delay = None
    http.post("/api/v1/namespaces/p/configmaps", json=_cm())

    first = http.delete("/api/v1/namespaces/p")
    second = http.delete("/api/v1/namespaces/p")
    create = http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}})

    assert first.status_code == 200
    assert first.json()["status"]["phase"] == "Terminating"
    assert first.json()["spec"]["finalizers"] == ["kubernetes"]
    assert "deletionTimestamp" in first.json()["metadata"]
    assert second.status_code == 409
    assert second.json()["message"] == (
        'Operation cannot be fulfilled on namespaces "p": The system is ensuring all content is '
        "removed from this namespace.  Upon completion, this namespace will automatically be "
        "purged by the system."
    )
    assert create.status_code == 409
    assert create.json()["message"] == 'object is being deleted: namespaces "p" already exists'

    assert sandbox.finish_namespace("p")
    assert http.get("/api/v1/namespaces/p").status_code == 404
    assert http.get("/api/v1/namespaces/p/configmaps/cm").status_code == 404


def test_list_selectors_and_limit_continue(http: httpx.Client) -> None:
    for i in range(5):
        body = _cm(f"cm{i}")
        body["metadata"]["labels"] = {"n": str(i), "even": str(i % 2 == 0).lower()}
        http.post("/api/v1/namespaces/p/configmaps", json=body)

    even = http.get("/api/v1/namespaces/p/configmaps", params={"labelSelector": "even=true"})
    named = http.get("/api/v1/configmaps", params={"fieldSelector": "metadata.name=cm3"})
    page = http.get("/api/v1/namespaces/p/configmaps", params={"limit": "2"}).json()
    rest = http.get(
        "/api/v1/namespaces/p/configmaps",
        params={"limit": "10", "continue": page["metadata"]["continue"]},
    ).json()
    bad_label = http.get("/api/v1/configmaps", params={"labelSelector": "a in b"})
    bad_field = http.get("/api/v1/configmaps", params={"fieldSelector": "status.phase=x"})

    assert even.json()["kind"] == "ConfigMapList"
    assert [o["metadata"]["name"] for o in even.json()["items"]] == ["cm0", "cm2", "cm4"]
    assert [o["metadata"]["name"] for o in named.json()["items"]] == ["cm3"]
    assert [o["metadata"]["name"] for o in page["items"]] == ["cm0", "cm1"]
    assert page["metadata"]["remainingItemCount"] == 3
    assert [o["metadata"]["name"] for o in rest["items"]] == ["cm2", "cm3", "cm4"]
    assert "continue" not in rest["metadata"]
    assert bad_label.status_code == 400
    assert bad_field.status_code == 400
    assert bad_field.json()["message"] == "field label not supported: status.phase"


def test_pod_field_selectors(http: httpx.Client, sandbox: Sandbox) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fp", "namespace": "p"},
        "spec": {"containers": [{"name": "c", "image": "i:1"}]},
    }
    http.post("/api/v1/namespaces/p/pods", json=pod)
    sandbox.wait_for(lambda: (sandbox.get("Pod", "fp", "p") or {})["status"]["phase"] == "Running")

    on_node = http.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=node1"}).json()
    running = http.get(
        "/api/v1/pods", params={"fieldSelector": "status.phase=Running,metadata.namespace=p"}
    ).json()
    pending = http.get("/api/v1/pods", params={"fieldSelector": "status.phase=Pending"}).json()

    assert [p["metadata"]["name"] for p in on_node["items"]] == ["fp"]
    assert [p["metadata"]["name"] for p in running["items"]] == ["fp"]
    assert pending["items"] == []


def test_watch_stream_events_timeout_and_expired_version(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    start = http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1")).json()
    rv = start["metadata"]["resourceVersion"]
    http.patch(
        "/api/v1/namespaces/p/configmaps/cm",
        json={"data": {"A": "2"}},
        headers={"content-type": "application/merge-patch+json"},
    )
    http.delete("/api/v1/namespaces/p/configmaps/cm")

    with http.stream(
        "GET",
        "/api/v1/namespaces/p/configmaps",
        params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "1"},
    ) as stream:
        events = [json.loads(line) for line in stream.iter_lines() if line]

    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[1]["object"]["data"] == {"A": "2"}

    sandbox.compact()
    with http.stream(
        "GET", "/api/v1/namespaces/p/configmaps", params={"watch": "true", "resourceVersion": rv}
    ) as stream:
        expired = [json.loads(line) for line in stream.iter_lines() if line]
    assert expired[0]["type"] == "ERROR"
    assert expired[0]["object"]["code"] == 410
    assert expired[0]["object"]["reason"] == "Expired"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("DELETE", "/api/v1/namespaces/p/configmaps/cm", {}),
        ("PUT", "/api/v1/namespaces/p/configmaps/cm", {"json": _cm(A="2")}),
        (
            "PATCH",
            "/api/v1/namespaces/p/configmaps/cm",
            {
                "json": {"data": {"A": "2"}},
                "headers": {"content-type": "application/merge-patch+json"},
            },
        ),
        (
            "PATCH",
            "/api/v1/namespaces/p/configmaps/cm",
            {
                "json": [{"op": "replace", "path": "/data/A", "value": "2"}],
                "headers": {"content-type": "application/json-patch+json"},
            },
        ),
        ("DELETE", "/api/v1/namespaces/p/configmaps", {}),
    ],
)
def test_dry_run_writes_change_nothing(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    assert http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1")).status_code == 201
    before = http.get("/api/v1/namespaces/p/configmaps/cm").json()

    response = http.request(method, path, params={"dryRun": "All"}, **kwargs)

    assert response.status_code == 200, response.text
    after = http.get("/api/v1/namespaces/p/configmaps/cm")
    assert after.status_code == 200
    assert after.json() == before


def test_dry_run_in_delete_options_body_and_bad_values(http: httpx.Client) -> None:
    assert http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1")).status_code == 201
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}
    assert http.request("DELETE", "/api/v1/namespaces/p/configmaps/cm", json=body).is_success
    assert http.get("/api/v1/namespaces/p/configmaps/cm").status_code == 200

    for method in ("DELETE", "PUT", "POST"):
        path = "/api/v1/namespaces/p/configmaps" + ("" if method == "POST" else "/cm")
        json_body = None if method == "DELETE" else _cm(A="2")
        response = http.request(method, path, params={"dryRun": "Some"}, json=json_body)
        assert response.status_code == 422
        assert response.json()["reason"] == "Invalid"
        assert (
            'dryRun: Unsupported value: []string{"Some"}: supported values: "All"'
            in (response.json()["message"])
        )
    assert http.get("/api/v1/namespaces/p/configmaps/cm").json()["data"] == {"A": "1"}


def test_subresources_refuse_verbs_they_do_not_have(http: httpx.Client) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod", "namespace": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert http.post("/api/v1/namespaces/p/pods", json=pod).status_code == 201
    assert http.post("/api/v1/namespaces/p/configmaps", json=_cm(A="1")).status_code == 201

    response = http.delete("/api/v1/namespaces/p/pods/pod/status")
    assert response.status_code == 405
    assert response.json()["reason"] == "MethodNotAllowed"
    assert http.get("/api/v1/namespaces/p/pods/pod").status_code == 200
    assert http.post("/api/v1/namespaces/p/pods/pod/status", json=pod).status_code == 405
    assert http.get("/api/v1/namespaces/p/configmaps/cm/status").status_code == 404
    assert http.put("/api/v1/namespaces/p/configmaps/cm/finalize", json=_cm()).status_code == 404
    assert http.get("/api/v1/namespaces/p/finalize").status_code == 405
    assert http.get("/api/v1/namespaces/p/configmaps/cm").json()["data"] == {"A": "1"}


def test_a_bad_timeout_is_a_400_status(http: httpx.Client) -> None:
    response = http.get("/api/v1/namespaces/p/configmaps?watch=true&timeoutSeconds=soon")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["kind"] == "Status"
    assert "timeoutSeconds" in response.json()["message"]


def test_a_watch_from_a_future_version_is_too_large(http: httpx.Client, sandbox: Sandbox) -> None:
    future = sandbox.revision + 100
    response = http.get(f"/api/v1/namespaces/p/configmaps?watch=true&resourceVersion={future}")

    assert response.status_code == 200
    event = json.loads(response.text.splitlines()[0])
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["code"] == 504
    assert status["reason"] == "Timeout"
    assert status["message"] == (
        f"Timeout: Too large resource version: {future}, current: {sandbox.revision}"
    )
    assert status["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    ]


def test_label_selector_values_follow_the_upstream_grammar(http: httpx.Client) -> None:
    for name, label in (("empty", ""), ("b", "b"), ("other", "x")):
        manifest = _cm(name)
        manifest["metadata"]["labels"] = {"a": label}
        assert http.post("/api/v1/namespaces/p/configmaps", json=manifest).status_code == 201

    def names(selector: str) -> list[str]:
        response = http.get("/api/v1/namespaces/p/configmaps", params={"labelSelector": selector})
        assert response.status_code == 200, response.text
        return [i["metadata"]["name"] for i in response.json()["items"]]

    assert names("a in (b,,c)") == ["b", "empty"]
    assert names("a in (b,)") == ["b", "empty"]
    assert names("a in (b,c)") == ["b"]
    response = http.get("/api/v1/namespaces/p/configmaps", params={"labelSelector": "a in (b c)"})
    assert response.status_code == 400


def test_later_pages_show_the_collection_as_of_the_first_page(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    for name in ("a", "b", "c"):
        assert http.post("/api/v1/namespaces/p/configmaps", json=_cm(name, v="1")).is_success
    first = http.get("/api/v1/namespaces/p/configmaps", params={"limit": 1}).json()
    version = first["metadata"]["resourceVersion"]
    token = first["metadata"]["continue"]

    # Changes after the first page: a new object between a and b, b changed, c deleted.
    assert http.post("/api/v1/namespaces/p/configmaps", json=_cm("aa", v="1")).is_success
    assert http.put("/api/v1/namespaces/p/configmaps/b", json=_cm("b", v="2")).is_success
    assert http.delete("/api/v1/namespaces/p/configmaps/c").is_success

    rest = http.get("/api/v1/namespaces/p/configmaps", params={"continue": token}).json()
    assert [(i["metadata"]["name"], i["data"]["v"]) for i in rest["items"]] == [
        ("b", "1"),
        ("c", "1"),
    ]
    assert rest["metadata"]["resourceVersion"] == version
    assert all(int(i["metadata"]["resourceVersion"]) <= int(version) for i in rest["items"])

    sandbox.compact()  # the history no longer reaches back to the token's version
    expired = http.get("/api/v1/namespaces/p/configmaps", params={"continue": token})
    assert expired.status_code == 410
    assert expired.json()["reason"] == "Expired"
    assert "continue parameter is too old" in expired.json()["message"]


def test_dispatch_edges_answer_as_the_starlette_router_did(http: httpx.Client) -> None:
    # A method the discovery route refuses falls through to the resource API's 404 Status.
    response = http.post("/version", content=b"{}")
    assert response.status_code == 404
    assert response.json()["reason"] == "NotFound"
    # A method no route takes is Starlette's plain 405.
    response = http.request("OPTIONS", "/api/v1/namespaces")
    assert response.status_code == 405
    assert response.text == "Method Not Allowed"
    # HEAD reaches the resource handler, which has no such verb for a collection.
    assert http.head("/api/v1/namespaces").status_code == 405
    assert http.get("/healthz/ping").text == "ok"
    assert http.get("/readyz", params={"verbose": ""}).text.endswith("readyz check passed\n")


def test_repeated_query_parameter_takes_its_first_value(http: httpx.Client) -> None:
    # As kube decodes a single-valued option, and as the RBAC authorizer reads it.
    http.patch(
        "/api/v1/namespaces/p/configmaps/last",
        json=_cm("last"),
        headers=APPLY,
        params=[("fieldManager", "first"), ("fieldManager", "second")],
    ).raise_for_status()
    managed = http.get("/api/v1/namespaces/p/configmaps/last").json()["metadata"]["managedFields"]
    assert [m["manager"] for m in managed] == ["first"]
