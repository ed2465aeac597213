"""``UVICORN_TIMEOUT_KEEP_ALIVE``: Phalanx sets it (61) for the controller, as upstream's
uvicorn command line reads it; ``nublado serve`` reads it too (``--timeout-keep-alive``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from nublado.models.metadata import ControllerMetadata
from nublado.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "UVICORN_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def config(tmp_path: Path, controller_metadata: ControllerMetadata) -> Path:
    metadata = tmp_path / "podinfo"
    metadata.mkdir()
    for field in ("name", "namespace", "uid"):
        (metadata / field).write_text(getattr(controller_metadata, field))
    data = yaml.safe_load((EXAMPLES / "config.yaml").read_text())
    data.update(logProfile="production", metadataPath=str(metadata))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _seconds_until_closed(port: int, limit: float) -> float:
    """Send one keep-alive request, read the answer, and time how long the idle connection lives."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: nublado\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += connection.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )  # fmt: skip
        while len(body) < length:
            body += connection.recv(65536)
        start = time.monotonic()
        try:
            while connection.recv(65536):
                pass
        except TimeoutError:
            return float("inf")
        return time.monotonic() - start


async def test_the_server_closes_idle_connections_after_the_variables_seconds(
    sandbox: Sandbox, config: Path, tmp_path: Path
) -> None:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    port = _free_port()
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "nublado", "serve", "--config", str(config),
             "--kubeconfig", str(kubeconfig), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=_environment(UVICORN_TIMEOUT_KEEP_ALIVE="1"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "stderr.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "stderr.log").read_text()
                time.sleep(0.1)
        # uvicorn's default is 5 s: closed within 3.5 s only if the variable was read.
        lived = _seconds_until_closed(port, limit=3.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    assert 0.5 < lived < 3.5


def test_a_bad_value_is_a_usage_error_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nublado", "serve", "--config", str(tmp_path / "config.yaml")],
        capture_output=True,
        text=True,
        env=_environment(UVICORN_TIMEOUT_KEEP_ALIVE="soon"),
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--timeout-keep-alive' (env var: 'UVICORN_TIMEOUT_KEEP_ALIVE'):"
        " 'soon' is not a valid integer range."
    )
