"""Discovery and ``/openapi/v3`` as kubectl reads them: served from Kubernetes' own schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.openapi import GROUPS, openapi_document
from nublado.sandbox.server import Sandbox

SCHEMAS = "#/components/schemas/"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        yield client


def _document(http: httpx.Client, key: str) -> dict[str, Any]:
    root = http.get("/openapi/v3").json()["paths"]
    response = http.get(root[key]["serverRelativeURL"])
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


# -- discovery ---------------------------------------------------------------


def test_discovery_lists_categories_short_names_and_the_log_subresource(
    http: httpx.Client,
) -> None:
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    batch = {r["name"]: r for r in http.get("/apis/batch/v1").json()["resources"]}

    assert core["pods"]["categories"] == ["all"]
    assert core["services"]["categories"] == ["all"]
    assert batch["jobs"]["categories"] == ["all"]
    assert "categories" not in core["configmaps"]
    assert core["pods"]["shortNames"] == ["po"]
    assert core["persistentvolumeclaims"]["shortNames"] == ["pvc"]
    assert core["pods/log"] == {
        "name": "pods/log",
        "singularName": "",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get"],
    }
    assert core["namespaces/finalize"]["verbs"] == ["update"]


def test_discovery_serves_events_k8s_io(http: httpx.Client) -> None:
    group = http.get("/apis/events.k8s.io").json()
    resources = http.get("/apis/events.k8s.io/v1").json()["resources"]

    assert group["preferredVersion"] == {"groupVersion": "events.k8s.io/v1", "version": "v1"}
    assert [(r["name"], r["kind"], r["namespaced"]) for r in resources] == [
        ("events", "Event", True)
    ]


# -- OpenAPI v3 ----------------------------------------------------------------


def test_openapi_root_lists_every_group_version_with_a_content_hash(http: httpx.Client) -> None:
    paths = http.get("/openapi/v3").json()["paths"]

    assert set(paths) == {f"apis/{v}" if "/" in v else f"api/{v}" for v in GROUPS}
    url = paths["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    assert len(url.rpartition("=")[2]) == 128  # a SHA-512, upper-case hex


def test_core_document_holds_the_definitions_kubectl_explain_reads(http: httpx.Client) -> None:
    schemas = _document(http, "api/v1")["components"]["schemas"]

    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": SCHEMAS + "io.k8s.api.core.v1.PodSpec"}]
    assert pod["properties"]["kind"] == {
        "description": pod["properties"]["kind"]["description"],
        "type": "string",
    }
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": SCHEMAS + "io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-list-type"] == "map"
    assert "io.k8s.api.core.v1.ResourceRequirements" in schemas
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    assert "io.k8s.api.batch.v1.Job" not in schemas  # only what this group reaches


def test_documents_are_openapi_3_0_without_json_schema_leftovers(http: httpx.Client) -> None:
    for key in ("api/v1", "apis/batch/v1", "apis/gafaelfawr.lsst.io/v1alpha1"):
        document = _document(http, key)
        assert document["openapi"] == "3.0.0"
        for node in _walk(document):
            assert not isinstance(node.get("type"), list), node
            ref = node.get("$ref")
            assert ref is None or ref.startswith(SCHEMAS), ref
            if isinstance(ref, str):
                assert ref.removeprefix(SCHEMAS) in document["components"]["schemas"], ref
            assert None not in node.get("enum", [])


def test_custom_resource_document_carries_the_crd_schema(http: httpx.Client) -> None:
    schemas = _document(http, "apis/gafaelfawr.lsst.io/v1alpha1")["components"]["schemas"]

    gafaelfawr = schemas["io.lsst.gafaelfawr.v1alpha1.GafaelfawrIngress"]
    assert gafaelfawr["x-kubernetes-group-version-kind"] == [
        {"group": "gafaelfawr.lsst.io", "version": "v1alpha1", "kind": "GafaelfawrIngress"}
    ]
    assert "config" in gafaelfawr["properties"]
    assert gafaelfawr["properties"]["metadata"] == {
        "$ref": SCHEMAS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }


def test_patch_operation_advertises_field_validation(http: httpx.Client) -> None:
    paths = _document(http, "apis/coordination.k8s.io/v1")["paths"]

    patch = paths["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["patch"]

    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "coordination.k8s.io",
        "version": "v1",
        "kind": "Lease",
    }
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in patch[
        "parameters"
    ]


def test_events_document_holds_the_events_k8s_io_schema(http: httpx.Client) -> None:
    schemas = _document(http, "apis/events.k8s.io/v1")["components"]["schemas"]

    assert "note" in schemas["io.k8s.api.events.v1.Event"]["properties"]


def test_unknown_group_document_is_a_404(http: httpx.Client) -> None:
    assert http.get("/openapi/v3/apis/policy/v1").status_code == 404


def test_documents_are_rendered_once() -> None:
    assert openapi_document("batch/v1") is openapi_document("batch/v1")
