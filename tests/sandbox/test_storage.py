"""Storage classes loaded like nodes, and PersistentVolumeClaims bound as a real cluster binds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nublado.cli import main
from nublado.sandbox.server import Sandbox

CLAIMS = "/api/v1/namespaces/p/persistentvolumeclaims"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """HTTP on a sandbox with the default classes (``standard``) and namespace ``p``."""
    sandbox.reset(sandbox.settings, nodes={"a": {}})
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": "p"}}).is_success
        yield client


def _claim(name: str = "c", storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def _bound(sandbox: Sandbox, name: str = "c") -> dict[str, Any]:
    claim = sandbox.wait_for(
        lambda: (
            (c := sandbox.get("PersistentVolumeClaim", name, "p"))
            and c["status"]["phase"] == "Bound"
            and c
        )
    )
    assert isinstance(claim, dict)
    return claim


def _events(sandbox: Sandbox, name: str = "c") -> list[dict[str, Any]]:
    return [e for e in sandbox.objects("p", "Event") if e["involvedObject"]["name"] == name]


def test_default_sandbox_has_one_default_standard_class(http: httpx.Client) -> None:
    classes = http.get(CLASSES).json()["items"]

    assert [(c["metadata"]["name"], c["provisioner"]) for c in classes] == [
        ("standard", "sandbox.local/hostpath")
    ]
    annotations = classes[0]["metadata"]["annotations"]
    assert annotations == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert classes[0]["volumeBindingMode"] == "Immediate"


def test_claim_without_a_class_gets_the_default_and_binds(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    created = http.post(CLAIMS, json=_claim())

    assert created.status_code == 201
    assert created.json()["spec"]["storageClassName"] == "standard"
    assert created.json()["status"] == {"phase": "Pending"}
    claim = _bound(sandbox)
    uid = claim["metadata"]["uid"]
    assert claim["spec"]["volumeName"] == f"pvc-{uid}"
    assert claim["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
    }
    assert claim["metadata"]["annotations"] == {
        "pv.kubernetes.io/bind-completed": "yes",
        "pv.kubernetes.io/bound-by-controller": "yes",
        "volume.beta.kubernetes.io/storage-provisioner": "sandbox.local/hostpath",
        "volume.kubernetes.io/storage-provisioner": "sandbox.local/hostpath",
    }


def test_claim_naming_a_missing_class_stays_pending_until_it_exists(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    http.post(CLAIMS, json=_claim(storage_class="fast"))

    event = sandbox.wait_for(lambda: _events(sandbox))[0]

    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "ProvisioningFailed",
        'storageclass.storage.k8s.io "fast" not found',
    )
    assert event["source"] == {"component": "persistentvolume-controller"}
    assert event["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert http.get(f"{CLAIMS}/c").json()["status"]["phase"] == "Pending"

    http.post(CLASSES, json={"metadata": {"name": "fast"}, "provisioner": "example.com/fast"})

    claim = _bound(sandbox)
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == (
        "example.com/fast"
    )


def test_claim_with_an_empty_class_is_not_defaulted(http: httpx.Client, sandbox: Sandbox) -> None:
    created = http.post(CLAIMS, json=_claim(storage_class=""))

    assert created.json()["spec"]["storageClassName"] == ""
    event = sandbox.wait_for(lambda: _events(sandbox))[0]
    assert (event["reason"], event["message"]) == (
        "FailedBinding",
        "no persistent volumes available for this claim and no storage class is set",
    )


def test_wait_for_first_consumer_binds_when_a_pod_is_scheduled(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    late = {
        "metadata": {"name": "late"},
        "provisioner": "sandbox.local/hostpath",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    http.post(CLASSES, json=late)
    http.post(CLAIMS, json=_claim(storage_class="late"))

    event = sandbox.wait_for(lambda: _events(sandbox))[0]
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
    )
    assert http.get(f"{CLAIMS}/c").json()["status"]["phase"] == "Pending"

    pod = {
        "metadata": {"name": "x"},
        "spec": {
            "containers": [{"name": "c", "image": "lab:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}],
        },
    }
    http.post("/api/v1/namespaces/p/pods", json=pod)

    claim = _bound(sandbox)
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "a"
    sandbox.wait_for(lambda: (sandbox.get("Pod", "x", "p") or {})["status"]["phase"] == "Running")


def test_of_default_classes_made_together_the_first_name_wins(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.reset(
        sandbox.settings,
        storage_classes={"z-second": {"default": True}, "a-old": {"default": True}},
    )
    http.post("/api/v1/namespaces", json={"metadata": {"name": "p"}})

    created = http.post(CLAIMS, json=_claim())

    # The plugin takes the newest; of classes created in the same second, the first name.
    assert created.json()["spec"]["storageClassName"] == "a-old"


@pytest.mark.parametrize(
    "content",
    [
        [
            {
                "metadata": {"name": "nfs"},
                "provisioner": "example.com/nfs",
                "volumeBindingMode": "WaitForFirstConsumer",
            }
        ],
        {"nfs": {"provisioner": "example.com/nfs", "volumeBindingMode": "WaitForFirstConsumer"}},
    ],
    ids=["list", "mapping"],
)
def test_storage_classes_load_from_a_file_as_a_list_or_a_mapping(
    tmp_path: Path, content: Any
) -> None:
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(content))

    box = Sandbox(storage_classes=path)

    [loaded] = box.objects(kind="StorageClass")
    assert loaded["metadata"]["name"] == "nfs"
    assert loaded["provisioner"] == "example.com/nfs"
    assert loaded["volumeBindingMode"] == "WaitForFirstConsumer"
    assert loaded["reclaimPolicy"] == "Delete"


def test_cli_refuses_a_bad_storage_classes_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "classes.json"
    path.write_text('"fast"')

    with pytest.raises(SystemExit) as caught:
        main(["sandbox", "--kubeconfig", str(tmp_path / "kc"), "--storage-classes", str(path)])

    assert caught.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"nublado: error: storage classes file {path} must be a list of StorageClasses or map "
        "class names to objects"
    )
