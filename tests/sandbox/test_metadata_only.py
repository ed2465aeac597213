"""Metadata-only reads (``as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1``) and 406s."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

PATH = "/api/v1/namespaces/p/configmaps"
META = "meta.k8s.io/v1"
LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
ONE_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
BUILT_IN_MEDIA = "application/json, application/yaml, application/vnd.kubernetes.protobuf"


def _cm(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "p", "labels": {"app": "lab"}},
        "data": {"key": "value"},
    }


def _not_acceptable(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NotAcceptable",
        "code": 406,
    }


def test_list_as_partial_object_metadata_list(http: httpx.Client) -> None:
    """The wire form client-go's metadata client decodes: each item's metadata, nothing more."""
    for name in ("a", "b"):
        assert http.post(PATH, json=_cm(name)).status_code == 201
    full = http.get(PATH).json()

    response = http.get(PATH, headers={"accept": LIST_ACCEPT})

    assert response.status_code == 200
    assert response.json() == {
        "kind": "PartialObjectMetadataList",
        "apiVersion": META,
        "metadata": full["metadata"],
        "items": [
            {"kind": "PartialObjectMetadata", "apiVersion": META, "metadata": item["metadata"]}
            for item in full["items"]
        ],
    }
    assert full["items"][0]["metadata"]["managedFields"]  # kept: who wrote what


def test_empty_list_has_empty_items(http: httpx.Client) -> None:
    body = http.get(PATH, headers={"accept": LIST_ACCEPT}).json()
    assert body["items"] == []
    assert body["kind"] == "PartialObjectMetadataList"


def test_metadata_list_pages_carry_continue_and_remaining_count(http: httpx.Client) -> None:
    for name in ("a", "b", "c"):
        http.post(PATH, json=_cm(name))

    first = http.get(PATH, params={"limit": "2"}, headers={"accept": LIST_ACCEPT}).json()
    token = first["metadata"]["continue"]
    second = http.get(
        PATH, params={"limit": "2", "continue": token}, headers={"accept": LIST_ACCEPT}
    ).json()

    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    assert [i["metadata"]["name"] for i in second["items"]] == ["c"]
    assert "continue" not in second["metadata"]


def test_get_as_partial_object_metadata(http: httpx.Client) -> None:
    http.post(PATH, json=_cm("a"))
    full = http.get(f"{PATH}/a").json()

    response = http.get(f"{PATH}/a", headers={"accept": ONE_ACCEPT})

    assert response.json() == {
        "kind": "PartialObjectMetadata",
        "apiVersion": META,
        "metadata": full["metadata"],
    }


def test_watch_events_carry_partial_object_metadata(http: httpx.Client) -> None:
    http.post(PATH, json=_cm("a"))
    version = http.get(PATH).json()["metadata"]["resourceVersion"]
    http.post(PATH, json=_cm("b"))

    with http.stream(
        "GET",
        PATH,
        params={"watch": "true", "resourceVersion": version, "timeoutSeconds": "1"},
        headers={"accept": ONE_ACCEPT},
    ) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]

    assert [e["type"] for e in events] == ["ADDED"]
    assert events[0]["object"]["kind"] == "PartialObjectMetadata"
    assert events[0]["object"]["apiVersion"] == META
    assert set(events[0]["object"]) == {"kind", "apiVersion", "metadata"}
    assert events[0]["object"]["metadata"]["name"] == "b"


@pytest.mark.parametrize(
    ("path", "accept", "message"),
    [
        (
            PATH,
            ONE_ACCEPT,
            "you requested PartialObjectMetadata, but the requested object is a list "
            "(*core.ConfigMapList)",
        ),
        (
            f"{PATH}/a",
            LIST_ACCEPT,
            "you requested PartialObjectMetadataList, but the requested object is not a list "
            "(*core.ConfigMap)",
        ),
        (
            PATH,
            "application/json;as=Unknown;g=meta.k8s.io;v=v1",
            f"only the following media types are accepted: {BUILT_IN_MEDIA}",
        ),
        (
            PATH,
            "application/json;as=PartialObjectMetadataList;g=example.com;v=v1",
            f"only the following media types are accepted: {BUILT_IN_MEDIA}",
        ),
        (PATH, "text/plain", f"only the following media types are accepted: {BUILT_IN_MEDIA}"),
        (
            "/apis/gafaelfawr.lsst.io/v1alpha1/namespaces/p/gafaelfawringresses",
            "application/json;as=Unknown;g=meta.k8s.io;v=v1",
            "only the following media types are accepted: application/json, application/yaml",
        ),
    ],
)
def test_what_the_server_cannot_serve_is_406(
    http: httpx.Client, path: str, accept: str, message: str
) -> None:
    http.post(PATH, json=_cm("a"))

    response = http.get(path, headers={"accept": accept})

    assert response.status_code == 406
    assert response.json() == _not_acceptable(message)


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (
            f"application/json;as=Unknown;g=meta.k8s.io;v=v1, {LIST_ACCEPT}",
            "PartialObjectMetadataList",
        ),
        ("application/json;as=Unknown;g=meta.k8s.io;v=v1, application/json", "ConfigMapList"),
        (f"application/json;q=0.5, {LIST_ACCEPT}", "PartialObjectMetadataList"),
        (f"{LIST_ACCEPT};q=0.5, application/json", "ConfigMapList"),
        ("*/*", "ConfigMapList"),
        ("", "ConfigMapList"),
    ],
)
def test_the_first_offer_the_server_can_serve_wins(
    http: httpx.Client, accept: str, kind: str
) -> None:
    response = http.get(PATH, headers={"accept": accept})

    assert response.status_code == 200
    assert response.json()["kind"] == kind
