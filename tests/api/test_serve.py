"""``nublado serve`` as a real process: the sandbox a newcomer runs, and production on a cluster.

The server is started the way the README says (``nublado serve --sandbox``)
and talked to only over HTTP and with kubectl, as a newcomer would.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from nublado.models.metadata import ControllerMetadata
from nublado.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STARTUP_TIMEOUT = 60.0
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
LOOP_LINE = "Event loop: uvloop.Loop" if HAS_UVLOOP else "Event loop: asyncio."
"""The start of the line `nublado serve` logs naming its loop: uvloop's wherever installed."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "NUBLADO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    banner: list[str]
    cwd: Path

    def value(self, label: str) -> str:
        """The value printed after ``label:`` in the banner."""
        for line in self.banner:
            if line.startswith(f"{label}:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no {label!r} in {self.banner}")

    @property
    def base(self) -> str:
        return self.value("nublado controller")

    @property
    def root(self) -> str:
        return self.base.removesuffix("/nublado")


def start(args: list[str], cwd: Path, *, until: str) -> Served:
    """Run ``nublado serve ARGS`` and read stdout up to the banner line starting with ``until``."""
    with (cwd / "stderr.log").open("w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "nublado", "serve", *args],
            cwd=cwd,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    banner: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip("\n"))
        if line.lstrip().startswith(until):
            return Served(process, banner, cwd)
    process.kill()
    process.wait()
    process.stdout.close()
    log = (cwd / "stderr.log").read_text()
    raise AssertionError(f"nublado serve did not start: {banner}\n{log}")


def stop(served: Served) -> int:
    served.process.send_signal(signal.SIGINT)
    try:
        return served.process.wait(timeout=30)
    finally:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()
        assert served.process.stdout is not None
        served.process.stdout.close()


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --sandbox


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``nublado serve --sandbox`` for the module, in its own folder."""
    cwd = tmp_path_factory.mktemp("serve-sandbox")
    port = free_port()
    served = start(
        ["--sandbox", "--port", str(port), "--kubeconfig", "kube.yaml", "--pod-start-delay", "0"],
        cwd,
        until="kubectl",
    )
    yield served
    status = stop(served)
    log = (cwd / "stderr.log").read_text()
    assert status == 0, log
    assert "Application shutdown complete." in log


def kubectl(served: Served, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(served.cwd / "kube.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sandbox_prints_the_urls_to_use(sandboxed: Served) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/nublado", sandboxed.base)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandboxed.value("sandbox API server"))
    assert sandboxed.value("kubeconfig") == str((sandboxed.cwd / "kube.yaml").resolve())
    assert sandboxed.value("metrics") == f"{sandboxed.root}/metrics"
    assert sandboxed.value("users").startswith("ada, bartleby, hypatia, rachel")
    commands = "\n".join(sandboxed.banner)
    assert f"curl -s {sandboxed.base}/spawner/v1/images" in commands
    assert "kubectl --kubeconfig kube.yaml get pods -A -w" in commands


def test_sandbox_writes_a_kubeconfig_kubectl_uses(sandboxed: Served) -> None:
    kubeconfig = yaml.safe_load((sandboxed.cwd / "kube.yaml").read_text())
    nodes = kubectl(sandboxed, "get", "nodes", "-o", "name")

    assert kubeconfig["clusters"][0]["cluster"]["server"] == sandboxed.value("sandbox API server")
    assert nodes.split() == ["node/node1", "node/node2"]


def test_sandbox_holds_the_controller_namespace_pod_and_source_secrets(sandboxed: Served) -> None:
    secrets = kubectl(sandboxed, "get", "secrets", "-n", "nublado", "-o", "json")
    pods = kubectl(sandboxed, "get", "pods", "-n", "nublado", "-o", "name")

    by_name = {s["metadata"]["name"]: s for s in json.loads(secrets)["items"]}
    assert set(by_name) == {"extra-secret", "nublado-secret", "pull-secret"}
    assert by_name["pull-secret"]["type"] == "kubernetes.io/dockerconfigjson"
    assert "pod/nublado-controller" in pods.split()


def test_sandbox_answers_the_index_images_and_metrics(sandboxed: Served) -> None:
    with httpx.Client(timeout=30) as http:
        index = http.get(sandboxed.base)
        internal = http.get(f"{sandboxed.root}/")
        images = http.get(f"{sandboxed.base}/spawner/v1/images")
        prepulls = http.get(f"{sandboxed.base}/spawner/v1/prepulls")
        metrics = http.get(f"{sandboxed.root}/metrics")

    assert index.status_code == 200
    assert index.json()["metadata"]["name"] == "Nublado"
    assert internal.json()["name"] == "Nublado"
    assert images.status_code == 200
    assert images.json()["recommended"]["reference"] == (
        "lighthouse.ceres/library/sketchbook:recommended"
    )
    assert prepulls.status_code == 200
    assert [n["name"] for n in prepulls.json()["nodes"]] == ["node1", "node2"]
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE nublado_spawns_total counter" in metrics.text
    assert "nublado_active_labs " in metrics.text


def test_sandbox_trusts_the_user_header_for_users_of_the_file(sandboxed: Served) -> None:
    with httpx.Client(timeout=30) as http:
        rachel = http.get(
            f"{sandboxed.base}/spawner/v1/lab-form/rachel",
            headers={"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "anything"},
        )
        stranger = http.get(
            f"{sandboxed.base}/spawner/v1/lab-form/mallory",
            headers={"X-Auth-Request-User": "mallory", "X-Auth-Request-Token": "anything"},
        )

    assert rachel.status_code == 200
    assert "<form" in rachel.text or "image_list" in rachel.text
    assert stranger.status_code == 401


def test_sandbox_logs_for_people_with_uvicorn_lines_and_no_sandbox_access_lines(
    sandboxed: Served,
) -> None:
    httpx.get(sandboxed.base, timeout=30)
    time.sleep(0.2)
    log = (sandboxed.cwd / "stderr.log").read_text()

    assert "Application startup complete." in log
    assert LOOP_LINE in log
    assert '"GET /nublado HTTP/1.1" 200' in log  # the controller's access line
    assert "GET /api/v1/nodes" not in log  # the sandbox's own requests are not logged
    assert not log.lstrip().startswith("{")  # examples/config.yaml: logProfile development


def test_the_readme_curl_flow_spawns_follows_reads_and_deletes_a_lab(sandboxed: Served) -> None:
    """README "Run the controller": create, events, status, kubectl, delete, with curl."""
    labs = f"{sandboxed.base}/spawner/v1/labs"
    headers = ["-H", "X-Auth-Request-User: rachel", "-H", "X-Auth-Request-Token: sandbox-token"]

    def curl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
        )

    create = curl(
        "-i", "-X", "POST", *headers, "-H", "Content-Type: application/json",
        "--data", "@examples/lab-specification.json", f"{labs}/rachel/create",
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    status_line = create.stdout.splitlines()[0]
    assert " 201" in status_line, create.stdout
    assert f"location: {labs}/rachel" in create.stdout.lower()

    events = curl("-N", *headers, f"{labs}/rachel/events")
    assert events.returncode == 0, events.stderr
    names = re.findall(r"^event: (\w+)", events.stdout, flags=re.MULTILINE)
    assert names[0] == "info"
    assert names[-1] == "complete", events.stdout

    status = curl(*headers, f"{labs}/rachel")
    state = json.loads(status.stdout)
    assert state["status"] == "running"
    assert state["internal_url"] == "http://lab.userlabs-rachel:8888/nb/user/rachel/"
    assert "rachel-nb" in kubectl(sandboxed, "get", "pods", "-n", "userlabs-rachel", "-o", "name")

    delete = curl("-i", "-X", "DELETE", *headers, f"{labs}/rachel")
    assert " 204" in delete.stdout.splitlines()[0], delete.stdout
    gone = curl("-o", "/dev/null", "-w", "%{http_code}", *headers, f"{labs}/rachel")
    assert gone.stdout == "404"


# --config (production, against a cluster)


@pytest.fixture
def production_config(tmp_path: Path, controller_metadata: ControllerMetadata) -> Path:
    """The example configuration with JSON logs and the controller pod the sandbox holds."""
    metadata = tmp_path / "podinfo"
    metadata.mkdir()
    for field in ("name", "namespace", "uid"):
        (metadata / field).write_text(getattr(controller_metadata, field) + "\n")
    config = yaml.safe_load((EXAMPLES / "config.yaml").read_text())
    config.update(logProfile="production", logLevel="INFO", metadataPath=str(metadata))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_serve_config_runs_against_the_kubeconfigs_cluster_with_json_logs(
    sandbox: Sandbox, controller_token: str, production_config: Path, tmp_path: Path
) -> None:
    # The controller's ServiceAccount, as Phalanx deploys it (its token in the kubeconfig).
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "cluster.yaml", token=controller_token)
    port = free_port()
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "nublado", "serve", "--config", str(production_config),
             "--kubeconfig", str(kubeconfig), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            index = await http.get("/nublado")
            images = await http.get("/nublado/spawner/v1/images")
            metrics = await http.get("/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)

    log = (tmp_path / "stderr.log").read_text()
    assert status == 0, log
    assert index.status_code == 200
    assert images.json()["recommended"]["digest"] == "sha256:5678"
    assert "nublado_spawns_total" in metrics.text
    lines = [json.loads(line) for line in log.splitlines()]
    events = {line["event"] for line in lines}
    assert "Application startup complete." in events
    # It asked first whether its RBAC is granted (nublado.permissions), and it is.
    assert "Permissions checked: all 70 grants of the controller's RBAC are held" in events
    assert any(e.startswith("Refreshed image information") for e in events)
    assert any(e.startswith(LOOP_LINE) for e in events)
    assert {line["logger"] for line in lines} >= {"uvicorn.error", "nublado.services.images"}
    assert all(line["timestamp"].endswith("Z") and "level" in line for line in lines)


# bad input


def run_serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nublado", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=environment(),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nublado: error: give exactly one of --config FILE and --sandbox"),
        (
            ("--sandbox", "--config", "c.yaml"),
            "nublado: error: give exactly one of --config FILE and --sandbox",
        ),
        (
            ("--config", "missing.yaml"),
            "nublado: error: missing.yaml: configuration file not found",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = run_serve(*args, cwd=tmp_path)

    assert (result.returncode, result.stderr, result.stdout) == (2, message + "\n", "")


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = run_serve("--sandbox", "--port", str(port), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"nublado: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert result.stdout == ""


def test_a_kubeconfig_that_cannot_be_read_is_one_line_and_exit_2(
    production_config: Path, tmp_path: Path
) -> None:
    result = run_serve(
        "--config", str(production_config), "--kubeconfig", "nope.yaml", "--port", "0",
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("nublado: error: cannot load kubeconfig")


def test_a_kubeconfig_that_is_not_yaml_is_one_line_and_exit_2(
    production_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("garbage: [\n")
    result = run_serve(
        "--config", str(production_config), "--kubeconfig", "bad.yaml", "--port", "0",
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "nublado: error: cannot load kubeconfig bad.yaml: not valid YAML (line 2)"
    )
    assert "Traceback" not in result.stderr


def loop_factories() -> list[Any]:
    """asyncio's loop, and uvloop's where installed: `nublado serve` runs on either."""
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    if HAS_UVLOOP:
        import uvloop

        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


@pytest.mark.parametrize("loop_factory", loop_factories())
def test_accepted_connections_send_small_writes_at_once(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The served socket has TCP_NODELAY, so an event-stream frame is not held by Nagle.

    asyncio sets the option on an accepted connection only when the listener was
    made with protocol IPPROTO_TCP; a listener made with the default protocol 0
    left every frame after the response headers waiting ~40 ms for the client's
    delayed ACK. uvloop sets it on every TCP connection.
    """
    from nublado.serve import _bind

    async def nodelay() -> int:
        listener = _bind("127.0.0.1", 0)
        listener.listen()
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=listener)
        try:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(accepted, 5)
            finally:
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(nodelay()) != 0
