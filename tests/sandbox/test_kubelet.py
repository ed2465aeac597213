"""The kubelet waits for the ConfigMaps and Secrets a pod uses, and pulls only missing images."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox

PODS = "/api/v1/namespaces/p/pods"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client on the served sandbox, with namespace ``p`` created."""
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": "p"}}).is_success
        yield client


def _pod(
    volumes: list[dict[str, Any]] | None = None, image: str = "lab:1", **container: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "lab", "image": image, **container}]}
    if volumes is not None:
        spec["volumes"] = volumes
    return {"metadata": {"name": "x"}, "spec": spec}


def _events(sandbox: Sandbox, reason: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.objects("p", "Event") if e["reason"] == reason]


def _running(sandbox: Sandbox) -> None:
    sandbox.wait_for(lambda: (sandbox.get("Pod", "x", "p") or {})["status"]["phase"] == "Running")


def _config_map(http: httpx.Client, name: str, **data: str) -> None:
    body = {"metadata": {"name": name}, "data": data}
    assert http.post("/api/v1/namespaces/p/configmaps", json=body).is_success


def _secret(http: httpx.Client, name: str, **data: str) -> None:
    body = {"metadata": {"name": name}, "stringData": data}
    assert http.post("/api/v1/namespaces/p/secrets", json=body).is_success


@pytest.mark.parametrize(
    ("volume", "message", "fix"),
    [
        (
            {"name": "env", "configMap": {"name": "lab-env"}},
            'MountVolume.SetUp failed for volume "env" : configmap "lab-env" not found',
            lambda http: _config_map(http, "lab-env", A="1"),
        ),
        (
            {"name": "secrets", "secret": {"secretName": "lab"}},
            'MountVolume.SetUp failed for volume "secrets" : secret "lab" not found',
            lambda http: _secret(http, "lab", token="t"),
        ),
        (
            {"name": "files", "configMap": {"name": "files", "items": [{"key": "a", "path": "a"}]}},
            'MountVolume.SetUp failed for volume "files" : configmap references '
            "non-existent config key: a",
            lambda http: http.put(
                "/api/v1/namespaces/p/configmaps/files",
                json={"metadata": {"name": "files"}, "data": {"a": "1"}},
            ),
        ),
        (
            {
                "name": "both",
                "projected": {
                    "sources": [{"secret": {"name": "s", "items": [{"key": "k", "path": "k"}]}}]
                },
            },
            'MountVolume.SetUp failed for volume "both" : references non-existent secret key: k',
            lambda http: http.put(
                "/api/v1/namespaces/p/secrets/s",
                json={"metadata": {"name": "s"}, "stringData": {"k": "v"}},
            ),
        ),
    ],
    ids=["configmap", "secret", "configmap-key", "projected-secret-key"],
)
def test_pod_mounting_a_missing_object_waits_in_container_creating(
    http: httpx.Client, sandbox: Sandbox, volume: dict[str, Any], message: str, fix: Any
) -> None:
    if volume["name"] == "files":
        _config_map(http, "files", b="2")
    if volume["name"] == "both":
        _secret(http, "s", other="v")
    http.post(PODS, json=_pod([volume]))

    event = sandbox.wait_for(lambda: _events(sandbox, "FailedMount"))[0]

    assert (event["type"], event["message"]) == ("Warning", message)
    assert event["source"]["component"] == "kubelet"
    pod = http.get(f"{PODS}/x").json()
    assert pod["status"]["phase"] == "Pending"
    assert pod["spec"]["nodeName"] == "node1"
    [status] = pod["status"]["containerStatuses"]
    assert status["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert not _events(sandbox, "Pulled") and not _events(sandbox, "Pulling")

    fix(http)

    _running(sandbox)


def test_optional_missing_volume_source_does_not_block(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    volume = {"name": "env", "configMap": {"name": "nothing", "optional": True}}

    http.post(PODS, json=_pod([volume]))

    _running(sandbox)
    assert not _events(sandbox, "FailedMount")


@pytest.mark.parametrize(
    ("container", "message", "fix"),
    [
        (
            {"envFrom": [{"configMapRef": {"name": "lab-env"}}]},
            'configmap "lab-env" not found',
            lambda http: _config_map(http, "lab-env", A="1"),
        ),
        (
            {"envFrom": [{"secretRef": {"name": "lab"}}]},
            'secret "lab" not found',
            lambda http: _secret(http, "lab", token="t"),
        ),
        (
            {
                "env": [
                    {"name": "T", "valueFrom": {"secretKeyRef": {"name": "lab", "key": "token"}}}
                ]
            },
            'secret "lab" not found',
            lambda http: _secret(http, "lab", token="t"),
        ),
        (
            {"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}]},
            "couldn't find key token in Secret p/s",
            lambda http: http.put(
                "/api/v1/namespaces/p/secrets/s",
                json={"metadata": {"name": "s"}, "stringData": {"token": "t"}},
            ),
        ),
        (
            {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "s", "key": "a"}}}]},
            'configmap "s" not found',
            lambda http: _config_map(http, "s", a="1"),
        ),
        (
            {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}}]},
            "couldn't find key a in ConfigMap p/cm",
            lambda http: http.put(
                "/api/v1/namespaces/p/configmaps/cm",
                json={"metadata": {"name": "cm"}, "data": {"a": "1"}},
            ),
        ),
    ],
    ids=[
        "envFrom-configmap",
        "envFrom-secret",
        "secretKeyRef-object",
        "secretKeyRef-key",
        "configMapKeyRef-object",
        "configMapKeyRef-key",
    ],
)
def test_container_env_from_a_missing_object_is_a_config_error(
    http: httpx.Client, sandbox: Sandbox, container: dict[str, Any], message: str, fix: Any
) -> None:
    _secret(http, "s", other="v")
    _config_map(http, "cm", b="2")
    http.post(PODS, json=_pod(**container))

    event = sandbox.wait_for(lambda: _events(sandbox, "Failed"))[0]

    assert (event["type"], event["message"]) == ("Warning", f"Error: {message}")
    assert event["involvedObject"]["fieldPath"] == "spec.containers{lab}"
    pod = http.get(f"{PODS}/x").json()
    assert pod["status"]["phase"] == "Pending"
    [status] = pod["status"]["containerStatuses"]
    assert status["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": message}
    }
    assert not _events(sandbox, "Started")

    fix(http)

    _running(sandbox)


def test_optional_env_references_do_not_block(http: httpx.Client, sandbox: Sandbox) -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "none", "optional": True}}],
        "env": [
            {
                "name": "T",
                "valueFrom": {"secretKeyRef": {"name": "no", "key": "k", "optional": True}},
            }
        ],
    }

    http.post(PODS, json=_pod(**container))

    _running(sandbox)


@pytest.mark.parametrize(
    ("image", "pulled"),
    [
        ("lighthouse.ceres/library/sketchbook:w_2077_43", False),
        ("lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:1234", False),
        ("lighthouse.ceres/library/sketchbook@sha256:1234", False),
        ("lighthouse.ceres/library/sketchbook:d_2077_10_24", True),
        ("lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:9999", True),
    ],
    ids=["tag", "tag-and-digest", "digest", "missing-tag", "missing-digest"],
)
def test_image_on_the_node_is_not_pulled_others_are(
    http: httpx.Client, sandbox: Sandbox, image: str, pulled: bool
) -> None:
    pod = _pod(image=image, imagePullPolicy="IfNotPresent")
    pod["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": "antarctica-east1"}

    http.post(PODS, json=pod)

    _running(sandbox)
    messages = [e["message"] for e in _events(sandbox, "Pulled")]
    if pulled:
        assert [e["message"] for e in _events(sandbox, "Pulling")] == [f'Pulling image "{image}"']
        assert messages[0].startswith(f'Successfully pulled image "{image}" in ')
    else:
        assert messages == [f'Container image "{image}" already present on machine']
        assert not _events(sandbox, "Pulling")
