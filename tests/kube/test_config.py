"""Client configuration (kubeconfig, in-cluster) and the lazy import of ``kubernetes``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nublado.kube import client as client_module
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


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "the file does not exist"),
        (b"garbage: [\n", "not valid YAML (line 2)"),
        (b"- a\n- b\n", "a kubeconfig is a YAML mapping, the file is a list"),
        (b"just a string\n", "a kubeconfig is a YAML mapping, the file is a str"),
        (b"", "a kubeconfig is a YAML mapping, the file is empty"),
        (b"\xbb\x00\xff\xfe binary", "not a UTF-8 text file"),
        (
            b"apiVersion: v1\ncurrent-context: x\n"
            b"contexts: [{name: x, context: {cluster: c, user: u}}]\n"
            b"users: [{name: u, user: {}}]\n",
            "Invalid kube-config file. Expected object with name c in ",
        ),
        (b"current-context: x\ncontexts: 3\n", "TypeError: "),
    ],
)
async def test_malformed_kubeconfig_is_one_line_of_our_error(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    """Whatever the file holds, the loader's own exceptions never escape: our error, one line."""
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(KubernetesError) as caught:
        await KubernetesClient.from_kubeconfig(path)

    assert str(caught.value).startswith(f"cannot load kubeconfig {path}: {reason}")
    assert "\n" not in str(caught.value)


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


async def test_a_kubeconfig_client_finds_its_proxy_in_the_environment_once(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy is looked up when the session is built, not (in a thread) per request."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            seen.append(head.split(b"\r\n")[0])
            body = b'{"kind":"NamespaceList","apiVersion":"v1","metadata":{},"items":[]}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            if reader.at_eof():
                break

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    lookups = []
    real_lookup = client_module.get_env_proxy_for_url

    def counting_lookup(url: Any) -> Any:
        lookups.append(str(url))
        return real_lookup(url)

    monkeypatch.setattr(client_module, "get_env_proxy_for_url", counting_lookup)
    path = sandbox.write_kubeconfig(tmp_path / "kubeconfig", "http://kube.invalid:6443")
    try:
        async with await KubernetesClient.from_kubeconfig(path) as client:
            for _ in range(3):
                assert await client.list("Namespace") == []
    finally:
        server.close()

    assert seen == [b"GET http://kube.invalid:6443/api/v1/namespaces?limit=500 HTTP/1.1"] * 3
    assert lookups == ["http://kube.invalid:6443"]


async def test_the_token_is_asked_of_the_configuration_on_every_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An exec plugin's or in-cluster token refresh (the configuration's hook) still works."""
    path = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"] = {"token": "first"}
    path.write_text(yaml.safe_dump(config))
    tokens = iter(["second", "third"])

    def refresh(configuration: Any) -> None:
        configuration.api_key["BearerToken"] = "Bearer " + next(tokens)

    async with await KubernetesClient.from_kubeconfig(path) as client:
        await client.find("Namespace", "a")
        client._api.configuration.refresh_api_key_hook = refresh
        await client.find("Namespace", "b")
        await client.find("Namespace", "c")

    sent = [r.authorization for r in sandbox.requests if r.target.startswith("/api/v1/namespaces/")]
    assert sent == ["Bearer first", "Bearer second", "Bearer third"]


async def test_names_and_selectors_are_quoted_in_the_url(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    """The lean request path quotes what needs it, as the package's layers did."""
    assert await client.find("ConfigMap", "a b", "default") is None
    assert await client.list("ConfigMap", "default", label_selector="a in (b,c)") == []

    targets = [r.target for r in sandbox.requests if "configmaps" in r.target]
    assert targets == [
        "/api/v1/namespaces/default/configmaps/a b",  # as the server decoded it
        "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20%28b%2Cc%29&limit=500",
    ]
