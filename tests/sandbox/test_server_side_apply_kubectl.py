"""``kubectl apply --server-side`` with two field managers against the sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nublado.sandbox.server import Sandbox

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(sandbox: Sandbox, tmp_path: Path) -> Kubectl:
    """Run the real kubectl against the served sandbox, with a private cache."""
    sandbox.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
    config = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    base = ["kubectl", "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache")]

    def run(*args: str, manifest: Any = None) -> subprocess.CompletedProcess[str]:
        if manifest is not None:
            path = tmp_path / "manifest.yaml"
            path.write_text(yaml.safe_dump(manifest))
            args = (*args, "-f", str(path))
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=120, check=False
        )

    return run


def _service(ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "web"},
        "spec": {"ports": ports},
    }


def test_kubectl_field_managers_merge_ports_and_report_conflicts(kubectl: Kubectl) -> None:
    first = kubectl(
        "apply",
        "--server-side",
        "--field-manager=a",
        manifest=_service([{"name": "http", "port": 80, "targetPort": 8080}]),
    )
    second = kubectl(
        "apply",
        "--server-side",
        "--field-manager=b",
        manifest=_service([{"name": "https", "port": 443, "targetPort": 8443}]),
    )

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "service/web serverside-applied"
    service = json.loads(kubectl("get", "service", "web", "-n", "web", "-o", "json").stdout)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (80, 8080),
        (443, 8443),
    ]
    assert "managedFields" not in service["metadata"]
    shown = kubectl("get", "service", "web", "-n", "web", "-o", "json", "--show-managed-fields")
    managers = {e["manager"] for e in json.loads(shown.stdout)["metadata"]["managedFields"]}
    assert managers == {"a", "b"}

    conflict = kubectl(
        "apply",
        "--server-side",
        "--field-manager=b",
        manifest=_service([{"name": "http", "port": 80, "targetPort": 9090}]),
    )

    assert conflict.returncode == 1
    assert conflict.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "a": '
        '.spec.ports[port=80,protocol="TCP"].targetPort\n'
    )
    assert "--force-conflicts" in conflict.stderr

    forced = kubectl(
        "apply",
        "--server-side",
        "--field-manager=b",
        "--force-conflicts",
        manifest=_service([{"name": "http", "port": 80, "targetPort": 9090}]),
    )

    assert forced.returncode == 0, forced.stderr
    service = json.loads(kubectl("get", "service", "web", "-n", "web", "-o", "json").stdout)
    # b stopped applying 443, which only b owned; a's port 80 stays with b's targetPort.
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, 9090)]
