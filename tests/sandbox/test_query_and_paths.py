"""A repeated query parameter and a path with an empty segment, as kube-apiserver reads them.

kube decodes a single-valued option from its *first* value (apimachinery's
conversion of ``[]string`` to ``string``, ``bool`` and ``int64``), and the
RBAC authorizer's request attributes read the first value too; every
handler must read the same value, or RBAC judges one request and the
handler serves another. ``dryRun`` is a list: every value is judged.

A path with an empty inner segment (``/api/v1//namespaces``) names no
route: 404, whatever a path with the segment dropped would name.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

APPLY = {"content-type": "application/apply-patch+yaml"}
CM = "/api/v1/namespaces/p/configmaps"


@pytest.fixture
def configmaps(http: httpx.Client) -> httpx.Client:
    """``cm1`` (label a=1) and ``cm2`` (a=2) in namespace ``p``."""
    for name, label in (("cm1", "1"), ("cm2", "2")):
        created = http.post(CM, json={"metadata": {"name": name, "labels": {"a": label}}})
        assert created.status_code == 201, created.text
    return http


def _send(http: httpx.Client, method: str, path: str, query: str) -> httpx.Response:
    if method == "POST":
        return http.post(f"{path}?{query}", json={"metadata": {"name": "new"}})
    if method == "PATCH":
        body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1"}}'
        return http.patch(f"{path}?{query}", content=body, headers=APPLY)
    return http.request(method, f"{path}?{query}")


# (method, path, parameter, a good value, a bad value, the status the bad value gets)
SINGLE_VALUED = [
    ("GET", CM, "watch", "false", "bogus", 400),
    ("GET", CM, "limit", "1", "bogus", 400),
    ("GET", CM, "continue", "{continue}", "garbage", 400),
    ("GET", CM, "resourceVersion", "0", "bogus", 500),
    ("GET", CM, "labelSelector", "a=1", "a===", 400),
    ("GET", CM, "fieldSelector", "metadata.name=cm1", "bogus", 400),
    ("POST", CM, "fieldValidation", "Strict", "bogus", 400),
    ("DELETE", f"{CM}/cm1", "gracePeriodSeconds", "0", "x", 400),
    ("DELETE", f"{CM}/cm1", "propagationPolicy", "Background", "bogus", 422),
    ("DELETE", f"{CM}/cm1", "orphanDependents", "false", "bogus", 400),
    ("PATCH", f"{CM}/cm1", "fieldManager", "m", "", 422),
    ("PATCH", f"{CM}/cm1?fieldManager=m", "force", "true", "bogus", 400),
]


@pytest.mark.parametrize(("method", "path", "name", "good", "bad", "status"), SINGLE_VALUED)
def test_a_repeated_parameter_is_read_from_its_first_value(
    configmaps: httpx.Client, method: str, path: str, name: str, good: str, bad: str, status: int
) -> None:
    if good == "{continue}":
        good = configmaps.get(f"{CM}?limit=1").json()["metadata"]["continue"]
    path, _, fixed = path.partition("?")
    prefix = f"{fixed}&" if fixed else ""
    first_bad = _send(configmaps, method, path, f"{prefix}{name}={quote(bad)}&{name}={quote(good)}")
    assert first_bad.status_code == status, first_bad.text
    first_good = _send(
        configmaps, method, path, f"{prefix}{name}={quote(good)}&{name}={quote(bad)}"
    )
    assert first_good.status_code < 300, first_good.text


def test_the_first_selector_chooses_what_a_list_answers(configmaps: httpx.Client) -> None:
    by_field = configmaps.get(
        f"{CM}?fieldSelector=metadata.name%3Dcm1&fieldSelector=metadata.name%3Dcm2"
    )
    assert [i["metadata"]["name"] for i in by_field.json()["items"]] == ["cm1"]
    by_label = configmaps.get(f"{CM}?labelSelector=a%3D2&labelSelector=a%3D1")
    assert [i["metadata"]["name"] for i in by_label.json()["items"]] == ["cm2"]


def test_a_list_with_watch_false_first_is_not_a_watch(configmaps: httpx.Client) -> None:
    answer = configmaps.get(f"{CM}?watch=false&watch=true")
    assert answer.json()["kind"] == "ConfigMapList"


def test_every_dry_run_value_is_judged(configmaps: httpx.Client) -> None:
    for query in ("dryRun=All&dryRun=bogus", "dryRun=bogus&dryRun=All"):
        answer = configmaps.post(f"{CM}?{query}", json={"metadata": {"name": "d"}})
        assert answer.status_code == 422, answer.text
    assert (
        configmaps.post(f"{CM}?dryRun=All&dryRun=All", json={"metadata": {"name": "d"}}).status_code
        == 201
    )
    assert configmaps.get(f"{CM}/d").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1//namespaces"),
        ("GET", "/api//v1/namespaces"),
        ("DELETE", "/api/v1//namespaces/p"),
        ("GET", "/api/v1/namespaces//p/configmaps"),
        ("GET", "/api/v1/namespaces/p//configmaps"),
        ("GET", "/apis/apps//v1/namespaces/p/deployments"),
        ("GET", "/apis//apps/v1"),
        ("GET", "/api/v1/namespaces/p/configmaps//cm1"),
    ],
)
def test_a_path_with_an_empty_segment_is_not_found(
    configmaps: httpx.Client, method: str, path: str
) -> None:
    answer = configmaps.request(method, path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["message"] == "the server could not find the requested resource"
    assert configmaps.get("/api/v1/namespaces/p").status_code == 200
