"""Client configuration (kubeconfig, in-cluster) and the lazy import of ``kubernetes``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import KubernetesError
from nublado.sandbox.cluster import SYSTEM_NAMESPACES
from nublado.sandbox.server import Sandbox


async def test_client_from_kubeconfig_sends_the_token(sandbox: Sandbox, tmp_path: Path) -> None:
    path = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"] = {"token": "secret-token"}
    path.write_text(yaml.safe_dump(config))

    async with await KubernetesClient.from_kubeconfig(path) as client:
        namespaces = await client.list("Namespace")
        results = await client.apply(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "k"}}]
        )

    assert [ns["metadata"]["name"] for ns in namespaces] == list(SYSTEM_NAMESPACES)
    assert results[0].created
    sent = [r for r in sandbox.requests if r.target.startswith("/api/v1/namespaces")]
    assert {r.authorization for r in sent} == {"Bearer secret-token"}
    patch = next(r for r in sent if r.method == "PATCH")
    assert patch.target == (
        "/api/v1/namespaces/k?fieldManager=nublado&force=true&fieldValidation=Strict"
    )


async def test_load_prefers_an_explicit_kubeconfig(sandbox: Sandbox, tmp_path: Path) -> None:
    path = sandbox.write_kubeconfig(tmp_path / "kubeconfig")

    async with await KubernetesClient.load(path) as client:
        assert [n["metadata"]["name"] for n in await client.list("Node")] == ["node1", "node2"]


async def test_bad_kubeconfig_is_our_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")

    with pytest.raises(KubernetesError, match="cannot load kubeconfig"):
        await KubernetesClient.from_kubeconfig(path)


def test_in_cluster_configuration_outside_a_cluster_is_our_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(KubernetesError, match="in-cluster"):
        KubernetesClient.from_cluster()


def test_importing_the_package_does_not_import_kubernetes() -> None:
    code = (
        "import sys, nublado.kube, nublado.kube.kinds\n"
        "assert 'kubernetes' not in sys.modules, 'kubernetes imported'\n"
        "assert 'starlette' not in sys.modules, 'starlette imported'\n"
        "nublado.kube.KubernetesClient\n"
        "assert 'kubernetes' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
