"""``nublado sandbox`` from the command line, and the real kubectl against it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sandbox_fixtures import NODES, STORAGE_CLASSES, reference_manifests

from nublado.cli import main


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[Path]:
    """``nublado sandbox`` running in a subprocess; yields the kubeconfig it wrote."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nublado",
            "sandbox",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--nodes",
            str(NODES),
            "--storage-classes",
            str(STORAGE_CLASSES),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("sandbox listening on http://127.0.0.1:"), line
        assert kubeconfig.exists()
        yield kubeconfig
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_cli_writes_a_kubeconfig_pointing_at_the_sandbox(sandbox_process: Path) -> None:
    config = yaml.safe_load(sandbox_process.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    assert server.startswith("http://127.0.0.1:")
    assert config["current-context"] == "sandbox"


def test_cli_refuses_a_bad_nodes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = tmp_path / "nodes.json"
    nodes.write_text("[1, 2]")

    with pytest.raises(SystemExit) as caught:
        main(["sandbox", "--kubeconfig", str(tmp_path / "kc"), "--nodes", str(nodes)])

    assert caught.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"nublado: error: nodes file {nodes} must map node names to objects"
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_applies_lists_and_deletes_against_the_sandbox(
    sandbox_process: Path, tmp_path: Path
) -> None:
    manifests = reference_manifests("lab")
    objects = tmp_path / "lab.yaml"
    objects.write_text(yaml.safe_dump_all(manifests))
    base = ["kubectl", "--kubeconfig", str(sandbox_process), "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "KUBECONFIG": str(sandbox_process)}

    def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=120, env=env, check=check
        )

    applied = kubectl("apply", "--server-side", "--field-manager=nublado", "-f", str(objects))
    again = kubectl("apply", "--server-side", "--field-manager=nublado", "-f", str(objects))

    assert applied.stdout.count("serverside-applied") == len(manifests)
    assert "configmap/rachel-nb-env serverside-applied" in applied.stdout
    assert again.stdout.count("serverside-applied") == len(manifests)

    listed = kubectl(
        "get",
        "configmaps",
        "-n",
        "userlabs-rachel",
        "-l",
        "nublado.lsst.io/user=rachel",
        "-o",
        "name",
    )
    assert listed.stdout.split() == [
        "configmap/rachel-nb-env",
        "configmap/rachel-nb-files",
        "configmap/rachel-nb-nss",
    ]
    nodes = kubectl("get", "nodes", "-o", "json")
    assert [n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]] == ["node1", "node2"]
    for _ in range(100):
        pod = json.loads(
            kubectl("get", "pod", "rachel-nb", "-n", "userlabs-rachel", "-o", "json").stdout
        )
        if pod["status"]["phase"] == "Running":
            break
        time.sleep(0.1)
    assert pod["status"]["phase"] == "Running"

    deleted = kubectl("delete", "configmap", "rachel-nb-env", "-n", "userlabs-rachel")
    missing = kubectl("get", "configmap", "rachel-nb-env", "-n", "userlabs-rachel", check=False)

    assert 'configmap "rachel-nb-env" deleted' in deleted.stdout
    assert missing.returncode != 0
    assert 'Error from server (NotFound): configmaps "rachel-nb-env" not found' in missing.stderr

    gone = kubectl("delete", "namespace", "userlabs-rachel")
    assert 'namespace "userlabs-rachel" deleted' in gone.stdout
    remaining = kubectl("get", "namespaces", "-o", "name")
    assert "namespace/userlabs-rachel" not in remaining.stdout.split()


def test_cli_reports_a_port_in_use_on_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "nublado",
                "sandbox",
                "--port",
                str(port),
                "--kubeconfig",
                str(tmp_path / "kc"),
                "--log-level",
                "critical",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 2
    assert result.stderr == (
        f"nublado: error: cannot serve the sandbox on 127.0.0.1:{port}: the sandbox could not "
        f"listen on 127.0.0.1:{port}\n"
    )
    assert not (tmp_path / "kc").exists()


def test_cli_exits_when_the_server_thread_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nublado.sandbox.server import Sandbox

    checks: list[bool] = []
    original = Sandbox.serving

    def serving(self: Sandbox) -> bool:
        alive = bool(original.fget(self)) if original.fget else False  # type: ignore[misc]
        checks.append(alive)
        return alive and len(checks) < 2  # the thread "dies" after the first check

    monkeypatch.setattr(Sandbox, "serving", property(serving))
    with pytest.raises(SystemExit) as caught:
        main(["sandbox", "--port", "0", "--kubeconfig", str(tmp_path / "kc")])

    assert caught.value.code == 1
    assert "the sandbox server stopped unexpectedly" in capsys.readouterr().err
    assert checks[0] is True


def test_serving_follows_the_server_thread() -> None:
    from nublado.sandbox.server import Sandbox

    box = Sandbox()
    assert not box.serving
    with box.serve():
        assert box.serving
    assert not box.serving
