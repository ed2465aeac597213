"""The real kubectl's strategic merge patches against the sandbox.

``kubectl set image``, ``kubectl patch``, ``kubectl edit`` and client-side
``kubectl apply`` all send strategic merge patches (the last with
``$setElementOrder`` and ``$patch`` directives computed from the
last-applied configuration); each must work as on a real cluster and leave
no directive in the stored object.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from nublado.sandbox.server import Sandbox

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

NS = "p"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(sandbox: Sandbox, tmp_path: Path) -> Kubectl:
    """Run the real kubectl on the sandbox, with namespace ``p`` created."""
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    base = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]

    def run(
        *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})},
            check=check,
        )

    assert sandbox.url is not None
    created = httpx.post(f"{sandbox.url}/api/v1/namespaces", json={"metadata": {"name": NS}})
    assert created.status_code == 201
    return run


def _write(path: Path, obj: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(obj))
    return path


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": NS},
        "spec": {
            "containers": [
                {"name": "lab", "image": "lab:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "sidecar:1"},
            ]
        },
    }


def _service(ports: list[int]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": NS, "labels": {"team": "red"}},
        "spec": {
            "selector": {"app": "a"},
            "ports": [
                {"name": f"p{port}", "port": port, "targetPort": port + 8000, "protocol": "TCP"}
                for port in ports
            ],
        },
    }


def _get(kubectl: Kubectl, *what: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kubectl("get", *what, "-n", NS, "-o", "json").stdout)
    assert "$" not in json.dumps(obj)
    return obj


def test_kubectl_set_image_on_a_pod(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(_write(tmp_path / "pod.yaml", _pod())))

    result = kubectl("set", "image", "pod/x", "lab=lab:2", "-n", NS)

    assert result.stdout.strip() == "pod/x image updated"
    pod = _get(kubectl, "pod", "x")
    assert [(c["name"], c["image"]) for c in pod["spec"]["containers"]] == [
        ("lab", "lab:2"),
        ("sidecar", "sidecar:1"),
    ]
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_kubectl_patch_type_strategic_merges_service_ports(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl("create", "-f", str(_write(tmp_path / "svc.yaml", _service([80, 443]))))

    result = kubectl(
        "patch",
        "service",
        "s",
        "-n",
        NS,
        "--type",
        "strategic",
        "-p",
        '{"spec":{"ports":[{"port":443,"targetPort":9443},{"port":80,"$patch":"delete"}]}}',
    )

    assert result.stdout.strip() == "service/s patched"
    ports = _get(kubectl, "service", "s")["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [("p443", 443, 9443)]


def test_kubectl_patch_reports_a_missing_merge_key(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("create", "-f", str(_write(tmp_path / "svc.yaml", _service([80]))))

    result = kubectl(
        "patch",
        "service",
        "s",
        "-n",
        NS,
        "-p",
        '{"spec":{"ports":[{"targetPort":81}]}}',
        check=False,
    )

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "Error from server: map: map[targetPort:81] does not contain declared merge key: port"
    )


def test_kubectl_client_side_apply_of_a_changed_port_list(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    first = kubectl("apply", "-f", str(_write(manifest, _service([80, 443]))))
    second = kubectl("apply", "-f", str(_write(manifest, _service([8080, 80]))))

    assert first.stdout.strip() == "service/s created"
    assert second.stdout.strip() == "service/s configured"
    service = _get(kubectl, "service", "s")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("p8080", 8080, 16080),
        ("p80", 80, 8080),
    ]
    last = service["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert [p["port"] for p in json.loads(last)["spec"]["ports"]] == [8080, 80]
    third = kubectl("apply", "-f", str(manifest))
    assert third.stdout.strip() == "service/s unchanged"


def _edit(kubectl: Kubectl, tmp_path: Path, what: str, sed: str) -> str:
    """``kubectl edit`` with an editor that runs ``sed`` on the file it is given."""
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\nsed -i -e "{sed}" "$1"\n')
    editor.chmod(0o755)
    result = kubectl("edit", what, "-n", NS, env={"KUBE_EDITOR": str(editor)})
    return result.stdout.strip()


def test_kubectl_edit_changes_a_pod_image(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(_write(tmp_path / "pod.yaml", _pod())))

    output = _edit(kubectl, tmp_path, "pod/x", "s/image: lab:1/image: lab:3/")

    assert output == "pod/x edited"
    images = [c["image"] for c in _get(kubectl, "pod", "x")["spec"]["containers"]]
    assert images == ["lab:3", "sidecar:1"]


def test_kubectl_edit_changes_a_service_label(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("create", "-f", str(_write(tmp_path / "svc.yaml", _service([80]))))

    output = _edit(kubectl, tmp_path, "service/s", "s/team: red/team: blue/")

    assert output == "service/s edited"
    service = _get(kubectl, "service", "s")
    assert service["metadata"]["labels"] == {"team": "blue"}
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
