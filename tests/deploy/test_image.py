"""The production image, without a container engine: the wheel, run as its Deployments run it.

No engine exists on these machines, so this test does what the Dockerfile and
the kubelet do, step by step, from the project's own files:

1. Build the wheel (``pip wheel --no-deps``, hatchling, no network): the
   Dockerfile's build stage.
2. Install it into a fresh virtual environment (no system site-packages)
   with exactly its runtime dependencies: the closure of the wheel's own
   ``Requires-Dist`` (no extras), linked from the files this environment has
   installed, so nothing is downloaded. A module or data file missing from the
   wheel, or a dependency it forgot to declare, fails here; the sandbox and
   dev extras are absent.
3. Run the image in two layouts, each as PID 1 of its own PID namespace (stopped
   by SIGTERM) in a private mount namespace with a read-only root filesystem,
   non-root, no capabilities and no new privileges, from ``/``, with the
   image's, the Deployment's and the kubelet's environment and nothing of this
   process's: Phalanx's Deployment (the Dockerfile's ``ENTRYPOINT`` + ``CMD``,
   ``/etc/nublado`` a read-only, root-owned configuration folder,
   ``/etc/podinfo`` the downward-API files, no ``/tmp``), and the Deployment
   ``nublado render controller`` prints, read from its output (the
   ``ENTRYPOINT`` with its args, its env, volume mounts, securityContext and
   probes).

The cluster is the sandbox in RBAC mode with the rendered RBAC granted, reached
as a pod reaches its API server: in-cluster configuration, from
``KUBERNETES_SERVICE_HOST``/``PORT`` and the service account files (the token
the sandbox issued for ``nublado-controller``) under
``/var/run/secrets/kubernetes.io/serviceaccount``, over HTTPS (a TLS terminator
of the test's own, with its own CA, in front of the sandbox).
Repertoire and Gafaelfawr are a small local HTTP server, found as Phalanx finds
them: ``REPERTOIRE_BASE_URL``.

It needs root (for the mount namespace) and ``unshare``/``setpriv``; elsewhere it is
skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.parser import Parser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from least_privilege import grant_controller
from packaging.requirements import Requirement

from nublado.cli import _COMMANDS as COMMANDS
from nublado.cli import main as cli_main
from nublado.config.controller import DEFAULT_CONTROLLER_REPOSITORY, DEFAULT_CONTROLLER_TAG
from nublado.kube.client import KubernetesClient
from nublado.render.cli import read_secrets
from nublado.sandbox.server import Sandbox
from nublado.sandbox.settings import SandboxSettings
from nublado.sandbox.tls import serving_certificate

pytestmark: list[pytest.MarkDecorator] = [pytest.mark.image]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_VENV = "/opt/nublado"  # where the Dockerfile installs; here the fresh venv stands in
UID = GID = 1000  # Phalanx: securityContext runAsUser/runAsGroup
PORT = 8080  # Phalanx: containerPort "http"; the probes and the Service's targetPort
START_TIMEOUT = 60.0
SPAWN_TIMEOUT = 30.0
PHALANX_MEMORY_REQUEST = 200 * 2**20  # values.yaml controller.resources.requests.memory
EXTERNAL_URL = "https://rsp.example.com"
CONTROLLER = {"name": "nublado-controller-5d4f8b7c9-x2x7q", "namespace": "nublado"}

# The sandbox's and the dev tools' own packages: none may be in the image's environment.
NOT_IN_IMAGE = ("kubernetes_validate", "google.protobuf", "pytest", "hypothesis", "respx")


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (a mount namespace stands in for the pod)"
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--uts", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace: {probe.stderr.decode().strip()}"
    return None


_SKIP = _skip_reason()
if _SKIP:
    pytestmark.append(pytest.mark.skip(reason=_SKIP))


# -- the Dockerfile ------------------------------------------------------------------------


@dataclass
class Image:
    """What the Dockerfile's final stage says about how the container runs."""

    argv: list[str]  # ENTRYPOINT + CMD
    env: dict[str, str]
    user: str
    workdir: str
    exposed: list[str]
    entrypoint: list[str] = field(default_factory=list)  # what a Deployment's args follow


def read_dockerfile(path: Path = DOCKERFILE) -> Image:
    """The final stage's ENTRYPOINT, CMD, ENV, USER, WORKDIR and EXPOSE, ARG defaults applied."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    args: dict[str, str] = {}
    stage: list[tuple[str, str]] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stage = []
        stage.append((instruction, rest.strip()))
        if instruction == "ARG" and "=" in rest:
            name, value = rest.strip().split("=", 1)
            args[name] = value
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    image = Image(argv=[], env=env, user="root", workdir="/", exposed=[])
    entrypoint: list[str] = []
    cmd: list[str] = []
    for instruction, rest in stage:
        if instruction == "ENV":
            for pair in shlex.split(rest):
                name, value = pair.split("=", 1)
                env[name] = re.sub(
                    r"\$\{(\w+)\}", lambda m: env.get(m[1], args.get(m[1], "")), value
                )
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "CMD":
            cmd = json.loads(rest)
        elif instruction == "USER":
            image.user = rest
        elif instruction == "WORKDIR":
            image.workdir = rest
        elif instruction == "EXPOSE":
            image.exposed.extend(rest.split())
    image.argv = entrypoint + cmd
    image.entrypoint = entrypoint
    return image


def test_the_dockerfile_runs_the_controller_as_phalanx_expects() -> None:
    """No command or args in Phalanx's Deployment: the image's own must serve its configuration."""
    image = read_dockerfile()

    assert image.argv == ["nublado", "serve", "--config", "/etc/nublado/config.yaml"]
    assert image.user == f"{UID}:{GID}"
    assert image.workdir == "/"
    assert image.exposed == [str(PORT)]
    assert image.env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
    assert image.env["PYTHONDONTWRITEBYTECODE"] == "1"
    # The image names itself for the labs' init containers, by default as the configuration does.
    assert image.env["NUBLADO_CONTROLLER_REPOSITORY"] == DEFAULT_CONTROLLER_REPOSITORY
    assert image.env["NUBLADO_CONTROLLER_TAG"] == DEFAULT_CONTROLLER_TAG
    base = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base[0])


# -- the wheel and its environment ---------------------------------------------------------


def _run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, **kwargs
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def _wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    return [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]


def runtime_closure(requirements: list[Requirement]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``requirements`` need on this platform, extras followed.

    Each installed version must satisfy every specifier that asks for it: the
    environment built from them is one pip could have installed.
    """
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [(r, "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        distribution = found.get(name) or importlib.metadata.distribution(requirement.name)
        version = distribution.version
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
        if name in found and not requirement.extras:
            continue
        found[name] = distribution
        for child in distribution.requires or []:
            child_requirement = Requirement(child)
            for wanted in {"", *requirement.extras}:
                pending.append((child_requirement, wanted))
    return list(found.values())


def link_distribution(distribution: importlib.metadata.Distribution, site: Path) -> None:
    """Put the distribution's installed files (RECORD) into ``site``: hard links, else copies."""
    for file in distribution.files or []:
        if file.parts[0] == "..":
            continue  # console scripts of dependencies
        source = Path(str(distribution.locate_file(file)))
        target = site / file
        if not source.is_file() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


@dataclass
class Installed:
    root: Path  # world-readable scratch folder of the module
    venv: Path
    wheel: Path
    requirements: list[Requirement]


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    """The wheel, built from the checkout and installed in a fresh venv with its runtime deps."""
    # Not under /tmp: the rendered Deployment's emptyDir on /tmp would hide the venv.
    root = Path(tempfile.mkdtemp(prefix="nublado-image-", dir="/var/tmp"))
    root.chmod(0o755)  # uid 1000 reads the venv and the kubeconfig from here
    try:
        wheels = root / "wheels"
        _run(
            sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-index", "--wheel-dir", wheels, ROOT,
        )  # fmt: skip
        (wheel,) = wheels.glob("nublado-*.whl")
        venv = root / "venv"
        _run(sys.executable, "-m", "venv", "--without-pip", venv)
        _run(
            sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
            "--quiet", "--no-deps", "--no-index", "--no-warn-script-location", wheel,
        )  # fmt: skip
        purelib = _run(
            venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
        ).stdout.strip()
        requirements = _wheel_requirements(wheel)
        for distribution in runtime_closure(requirements):
            link_distribution(distribution, Path(purelib))
        for path in [root, *root.rglob("*")]:  # as an image layer: readable by every uid
            mode = path.stat().st_mode
            wanted = mode | 0o444 | (0o111 if path.is_dir() else 0)
            if wanted != mode:
                path.chmod(wanted)
        yield Installed(root, venv, wheel, requirements)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_wheel_holds_the_package_data_the_controller_reads(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.*")}
    assert len(templates) > 20
    assert {f"nublado/{t}" for t in templates} <= names
    assert "nublado/examples/config.yaml" in names
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)


def test_the_environment_has_the_runtime_dependencies_and_no_extras(installed: Installed) -> None:
    python = installed.venv / "bin" / "python"
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    probe = (
        "import importlib.util, sys; "
        f"print([m for m in {NOT_IN_IMAGE!r} if importlib.util.find_spec(m.split('.')[0])"
        " and importlib.util.find_spec(m)]); print(sys.flags.no_site, sys.path)"
    )
    result = _run(python, "-c", probe, cwd="/", env={"PATH": "/usr/bin:/bin"})
    missing, _ = result.stdout.splitlines()
    assert missing == "[]"
    assert str(ROOT) not in result.stdout


# -- Phalanx's pod -------------------------------------------------------------------------


_NAMESPACE_SCRIPT = r"""
set -eu
state=$1 name=$2 overlays=$3 mounts=$4 user=$5
shift 5
hostname "$name"  # a pod's hostname is its name
for dir in $overlays; do  # copy-on-write views: the changes go to $state, never to the host
    changes="$state/overlay$(echo "$dir" | tr / _)"
    mkdir -p "$changes/upper" "$changes/work"
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$changes/upper,workdir=$changes/work" "$dir"
done
for spec in $mounts; do  # the pod's volumes, parents first: source=target=ro|rw
    source=${spec%%=*} rest=${spec#*=}
    target=${rest%=*} mode=${rest##*=}
    if [ -d "$source" ]; then  # a volume
        mkdir -p "$target"
    else  # a subPath file: the kubelet makes the file it mounts over
        mkdir -p "$(dirname "$target")"
        [ -e "$target" ] || touch "$target"
    fi
    mount --bind "$source" "$target"
    if [ "$mode" = ro ]; then
        mount -o remount,bind,ro "$target"
    fi
done
for dir in $overlays; do
    chmod o+x "$dir"  # /root (0700) holds the interpreter here: let uid 1000 pass
    mount -o remount,bind,ro "$dir"
done
mount -o remount,bind,ro /
exec setpriv --reuid="${user%:*}" --regid="${user#*:}" --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- "$@"
"""
"""The pod, as far as the process can see: a read-only root filesystem, the pod's
volumes mounted (read-only unless writable, as an emptyDir), the pod's uid/gid,
capabilities dropped, no privilege escalation, the pod's hostname. Only the process's
own namespaces change: the host keeps its mounts and its name."""

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where the kubelet mounts the pod's service account token (in-cluster configuration)."""


def _traverse(paths: list[Path]) -> list[str]:
    """Folders on the way to ``paths`` that other users may not pass (``/root``, 0700)."""
    blocked: set[str] = set()
    for path in paths:
        for folder in [*reversed(path.parents), path]:
            if folder.is_dir() and not folder.stat().st_mode & 0o001:
                blocked.add(str(folder))
    return sorted(blocked)


@dataclass
class Pod:
    """The container's process: PID 1 of its own PID namespace, as in a pod.

    ``process`` is ``unshare``, which exits with its status; ``pid`` is the
    container's PID 1 as this host numbers it (``unshare``'s child, which execs
    the namespace script, setpriv and then the image's command).
    """

    process: subprocess.Popen[str]
    pid: int
    log: Path

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()  # --kill-child: PID 1 goes with it
                self.process.wait()

    async def stop(self) -> int:
        """SIGTERM to PID 1, as the kubelet stops a container; the exit status.

        PID 1 of a namespace gets only the signals it handles: a controller that
        did not handle SIGTERM would ignore it here as in a pod, and be killed.
        Waited for in a thread: the API server's TLS front runs on this event
        loop, and the controller still talks to it while it stops (its Leases).
        """
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        return await asyncio.to_thread(self.wait, 30)


def run_in_pod(
    installed: Installed,
    argv: list[str],
    env: dict[str, str],
    *,
    mounts: dict[str, Path],
    log: Path,
    writable: dict[str, Path] | None = None,
    user: tuple[int, int] = (UID, GID),
) -> Pod:
    """Start ``argv`` as the image's process in the pod, as ``user`` (uid, gid): ``mounts``
    maps a path in the pod to the folder (or, a subPath, the file) mounted read-only there;
    ``writable``, to a folder mounted writable (an emptyDir)."""
    state = Path(tempfile.mkdtemp(dir=installed.root))
    interpreter = Path(os.path.realpath(installed.venv / "bin" / "python"))
    modes = {t: (s, "ro") for t, s in mounts.items()}
    modes.update({t: (s, "rw") for t, s in (writable or {}).items()})
    targets = {os.path.realpath(target): mode for target, mode in modes.items()}
    # A volume mounted on a top-level folder (an emptyDir on /tmp) replaces it: no overlay.
    overlays = {"/" + Path(t).parts[1] for t in targets} - set(targets)
    overlays.update(_traverse([interpreter, installed.venv]))
    ordered = sorted(targets.items(), key=lambda item: len(Path(item[0]).parts))
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                "unshare", "--mount", "--uts", "--pid", "--mount-proc", "--kill-child",
                "--propagation", "private",
                "sh", "-c", _NAMESPACE_SCRIPT, "sh",
                str(state), CONTROLLER["name"], " ".join(sorted(overlays)),
                " ".join(f"{source}={target}={mode}" for target, (source, mode) in ordered),
                f"{user[0]}:{user[1]}",
                *argv,
            ],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
    return Pod(process, _first_child(process), log)


def _first_child(process: subprocess.Popen[str]) -> int:
    """The host's number of the process ``unshare`` forked (it appears within milliseconds)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 10
    while not (found := children.read_text().split()):
        assert process.poll() is None and time.monotonic() < deadline, "unshare did not fork"
        time.sleep(0.001)
    return int(found[0])


def image_environment(installed: Installed, image: Image) -> dict[str, str]:
    """The image's ENV with its venv where the image has /opt/nublado, as the runtime sets it."""
    env = dict(image.env)
    env["PATH"] = env["PATH"].replace(IMAGE_VENV, str(installed.venv))
    env["HOME"] = "/nonexistent"  # the image's user's home: the runtime sets HOME from passwd
    env["HOSTNAME"] = CONTROLLER["name"]
    return env


def kubelet_environment(api_port: int) -> dict[str, str]:
    """What the kubelet adds to every container: where the API server is (in-cluster config)."""
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
    }


def phalanx_environment(repertoire: str) -> dict[str, str]:
    """The Deployment's env (slackAlerts, Sentry and metrics off, as in values.yaml)."""
    return {
        "EXTERNAL_INSTANCE_URL": EXTERNAL_URL,
        "REPERTOIRE_BASE_URL": repertoire,
        "UVICORN_TIMEOUT_KEEP_ALIVE": "61",
    }


def phalanx_config() -> dict[str, Any]:
    """examples/config.yaml as Phalanx writes it: no metadataPath (default /etc/podinfo), JSON
    logs, and the chart's ``metrics`` block (Kafka events; ignored here)."""
    config: dict[str, Any] = yaml.safe_load((EXAMPLES / "config.yaml").read_text())
    del config["metadataPath"]
    config.update(
        logProfile="production",
        logLevel="INFO",
        pathPrefix="/nublado",
        metrics={
            "enabled": False,
            "application": "nublado",
            "events": {"topicPrefix": "lsst.square.metrics.events"},
        },
    )
    return config


class _Services(BaseHTTPRequestHandler):
    """Repertoire's discovery and Gafaelfawr's user-info, as Phalanx's cluster answers them."""

    users: dict[str, dict[str, Any]]
    base: str

    def do_GET(self) -> None:
        if self.path == "/repertoire/discovery":
            discovery = json.loads((EXAMPLES / "discovery.json").read_text())
            gafaelfawr = {
                "url": f"{self.base}/auth",
                "versions": {"v1": {"url": f"{self.base}/auth/api/v1"}},
            }
            discovery.setdefault("services", {}).setdefault("internal", {})["gafaelfawr"] = (
                gafaelfawr
            )
            self._answer(200, discovery)
        elif self.path == "/auth/api/v1/user-info":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            user = self.users.get(token)
            self._answer(200, user) if user else self._answer(401, {"detail": "invalid token"})
        else:
            self._answer(404, {"detail": "Not Found"})

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the controller's log, not this one's."""


TOKEN = "gt-rachel.secret"


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    """RBAC mode: the controller's requests need its token and the rendered RBAC's grants."""
    return SandboxSettings(rbac=True)


@pytest.fixture(scope="module")
def services() -> Iterator[str]:
    """Repertoire and Gafaelfawr on 127.0.0.1; their base URL."""
    users = {u["username"]: u for u in json.loads((EXAMPLES / "users.json").read_text())}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Services)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Services.users = {TOKEN: users["rachel"]}
    _Services.base = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()


async def seed_cluster(client: KubernetesClient) -> str:
    """What the cluster holds before the controller starts, besides its namespace and RBAC
    (`grant_controller`): its own pod (the owner of prepull pods), the source Secrets labs
    copy. The pod's uid."""
    namespace = CONTROLLER["namespace"]
    image = "ghcr.io/lsst-sqre/nublado:11.0.0"
    pod = await client.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": CONTROLLER["name"], "namespace": namespace},
            "spec": {"containers": [{"name": "nublado-controller", "image": image}]},
        }
    )
    for name, secret in read_secrets(EXAMPLES / "secrets.json").items():
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": secret.data,
        }
        if secret.type is not None:
            manifest["type"] = secret.type
        await client.create(manifest)
    uid: str = pod["metadata"]["uid"]
    return uid


def _peak_memory(pid: int) -> int:
    """The process's peak resident memory in bytes (``VmHWM``); unshare and setpriv exec it."""
    status = Path(f"/proc/{pid}/status").read_text()
    assert "nublado serve" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    return int(re.findall(r"^VmHWM:\s+(\d+) kB", status, flags=re.MULTILINE)[0]) * 1024


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until_ready(pod: Pod, http: httpx.AsyncClient, path: str = "/") -> None:
    """The startup probe: ``GET path`` on the http port until it answers 200 (or the process
    dies).

    Polled, as the kubelet polls; asynchronously, so the TLS front keeps serving meanwhile.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if pod.process.poll() is not None:
            raise AssertionError(f"exited with {pod.process.returncode}:\n{pod.log.read_text()}")
        try:
            if (await http.get(path, timeout=5)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"not ready after {START_TIMEOUT} s:\n{pod.log.read_text()}")


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (its own CA), and its key.

    The sandbox's own (`nublado.sandbox.tls.serving_certificate`), written as files.
    """
    made = serving_certificate()
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(made.certificate)
    key_path.write_bytes(made.key)
    return cert_path, key_path


_STATUS_LINE = re.compile(rb"\r\nHTTP/1\.1 (\d{3}) ")
_STATUS_LINE_LENGTH = len(b"\r\nHTTP/1.1 200 ")


@contextlib.asynccontextmanager
async def api_server_tls(
    upstream: str, cert: Path, key: Path, statuses: list[int] | None = None
) -> AsyncIterator[int]:
    """The API server as a pod reaches it, over HTTPS: a TLS terminator on 127.0.0.1 in front
    of the sandbox's plain HTTP ``upstream`` (host:port). Yields its port.

    ``statuses`` gets the status code of every response it relays, read off the wire:
    what the API server answered the pod, 401s and 403s included."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    host, port = upstream.rsplit(":", 1)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool = False
    ) -> None:
        tail = b"\r\n"  # a status line may straddle two reads; the first starts the stream
        try:
            while data := await reader.read(65536):
                if answers and statuses is not None:
                    seen = tail + data
                    statuses.extend(int(code) for code in _STATUS_LINE.findall(seen))
                    tail = seen[-(_STATUS_LINE_LENGTH - 1) :]  # too short to match again
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        both = [
            asyncio.create_task(pipe(reader, upstream_writer)),
            asyncio.create_task(pipe(upstream_reader, writer, answers=True)),
        ]
        tasks.update(both)
        await asyncio.gather(*both)

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def service_account(folder: Path, ca: Path, token: str) -> Path:
    """The files the kubelet mounts at `SERVICE_ACCOUNT`: the token the API server issued,
    ca.crt, namespace."""
    folder.mkdir()
    shutil.copy(ca, folder / "ca.crt")
    _write_readonly(folder, {"token": token, "namespace": CONTROLLER["namespace"]})
    return folder


@pytest.fixture
def pod_files(installed: Installed) -> tuple[Path, Path]:
    """A configuration folder and a podinfo folder to mount: root-owned, read-only, world-
    readable, as the kubelet makes a ConfigMap volume (mode 0644 files)."""
    folder = Path(tempfile.mkdtemp(dir=installed.root))
    folder.chmod(0o755)
    config_dir, podinfo_dir = folder / "config", folder / "podinfo"
    for path in (config_dir, podinfo_dir):
        path.mkdir()
    return config_dir, podinfo_dir


def pod_mounts(config_dir: Path, podinfo_dir: Path, **more: Path) -> dict[str, Path]:
    """The Deployment's volumes: the configuration ConfigMap and the downward-API files."""
    return {"/etc/nublado": config_dir, "/etc/podinfo": podinfo_dir, **more}


def _write_readonly(folder: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (folder / name).write_text(content)
        (folder / name).chmod(0o444)
    folder.chmod(0o555)


@dataclass
class Layout:
    """How a Deployment runs the image: the command, environment, volumes, user and probes."""

    argv: list[str]
    env: dict[str, str]  # the Deployment's (and the site's) env, before the image's and kubelet's
    mounts: dict[str, Path]  # read-only volumes: a folder, or a file (subPath)
    writable: dict[str, Path]  # emptyDirs
    user: tuple[int, int]
    port: int
    probes: dict[str, str]  # startupProbe, readinessProbe, livenessProbe: their httpGet path

    def on_port(self, port: int) -> Layout:
        """The same, serving on ``port``: its ``--port`` replaced, or one added."""
        argv = list(self.argv)
        if "--port" in argv:
            argv[argv.index("--port") + 1] = str(port)
        else:
            argv += ["--port", str(port)]
        return dataclasses.replace(self, argv=argv, port=port)


def phalanx_layout(image: Image, folder: Path, services: str, uid: str) -> Layout:
    """Phalanx's Deployment: no command or args, the config ConfigMap as the /etc/nublado
    folder, the downward-API files in /etc/podinfo (the default metadataPath), no /tmp, the
    chart's probes (``GET /`` on http)."""
    config_dir, podinfo_dir = folder / "config", folder / "podinfo"
    for path in (config_dir, podinfo_dir):
        path.mkdir()
    _write_readonly(config_dir, {"config.yaml": yaml.safe_dump(phalanx_config())})
    _write_readonly(podinfo_dir, {**CONTROLLER, "uid": uid})
    return Layout(
        argv=image.argv,
        env=phalanx_environment(f"{services}/repertoire"),
        mounts=pod_mounts(config_dir, podinfo_dir),
        writable={},
        user=(UID, GID),
        port=PORT,
        probes=dict.fromkeys(("startupProbe", "readinessProbe", "livenessProbe"), "/"),
    )


def render_controller(config: Path) -> list[dict[str, Any]]:
    """``nublado render controller --config CONFIG --base-url ... -o json``: its objects."""
    args = ["render", "controller", "--config", str(config), "--base-url", EXTERNAL_URL]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main([*args, "-o", "json"])
    assert code == 0, f"nublado {' '.join(args)} exited {code}"
    items: list[dict[str, Any]] = json.loads(out.getvalue())["items"]
    return items


def rendered_layout(image: Image, folder: Path, services: str, uid: str) -> Layout:
    """The Deployment ``nublado render controller`` prints for examples/config.yaml, read as
    the kubelet reads it: the image's ENTRYPOINT with the container's args, its env, each
    volumeMount (a ConfigMap's key as a subPath file, downward-API files, emptyDirs), its
    and the pod's securityContext, its probes on its named port.

    The site's configuration is examples/config.yaml with ``repertoireBaseUrl`` set (a site's
    Repertoire; here the test's stand-in) and production's JSON logs (what the test reads).
    """
    site = yaml.safe_load((EXAMPLES / "config.yaml").read_text())
    site.update(repertoireBaseUrl=f"{services}/repertoire", logProfile="production")
    (folder / "site.yaml").write_text(yaml.safe_dump(site))
    items = render_controller(folder / "site.yaml")
    (deployment,) = [i for i in items if i["kind"] == "Deployment"]
    config_maps = {i["metadata"]["name"]: i for i in items if i["kind"] == "ConfigMap"}
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    pod_security, security = pod_spec.get("securityContext", {}), container["securityContext"]
    # What the namespace script enforces, whatever the Deployment says: it must say the same.
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod_security.get("runAsNonRoot") is True
    user = (
        security.get("runAsUser", pod_security["runAsUser"]),
        security.get("runAsGroup", pod_security["runAsGroup"]),
    )
    fields = {
        "metadata.name": CONTROLLER["name"],
        "metadata.namespace": deployment["metadata"]["namespace"],
        "metadata.uid": uid,
    }
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts: dict[str, Path] = {}
    writable: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        volume, source = volumes[mount["name"]], folder / "volumes" / mount["name"]
        source.mkdir(parents=True)
        if "configMap" in volume:  # root-owned 0444 files, as the kubelet writes them
            _write_readonly(source, config_maps[volume["configMap"]["name"]]["data"])
        elif "downwardAPI" in volume:
            items_ = volume["downwardAPI"]["items"]
            _write_readonly(source, {i["path"]: fields[i["fieldRef"]["fieldPath"]] for i in items_})
        elif "emptyDir" in volume:
            source.chmod(0o777)  # the kubelet's emptyDir: world-writable
        else:
            raise AssertionError(f"volume {volume} of a kind the test cannot mount")
        if "subPath" in mount:
            source = source / mount["subPath"]
        if mount.get("readOnly") or "emptyDir" not in volume:
            mounts[mount["mountPath"]] = source
        else:
            writable[mount["mountPath"]] = source
    env: dict[str, str] = {}
    for variable in container.get("env", []):
        assert "value" in variable, f"env {variable} needs the kubelet"
        env[variable["name"]] = variable["value"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes: dict[str, str] = {}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[kind]["httpGet"]
        assert ports.get(get["port"], get["port"]) == ports["http"], get
        probes[kind] = get["path"]
    return Layout(
        argv=container.get("command", image.entrypoint) + container.get("args", []),
        env=env,
        mounts=mounts,
        writable=writable,
        user=user,
        port=ports["http"],
        probes=probes,
    )


LAYOUTS = {"phalanx": phalanx_layout, "rendered": rendered_layout}


@pytest.mark.parametrize("layout_name", sorted(LAYOUTS))
async def test_the_image_serves_probes_and_labs_under_the_rendered_rbac(
    layout_name: str,
    installed: Installed,
    services: str,
    sandbox: Sandbox,
    admin: KubernetesClient,
) -> None:
    """The image run as each Deployment runs it, with the token the API server issued for
    the controller's ServiceAccount, which only the rendered RBAC authorizes: every request
    it makes (startup, the probes, a spawn, its stop) must be allowed."""
    image = read_dockerfile()
    token = grant_controller(sandbox, CONTROLLER["namespace"])
    uid = await seed_cluster(admin)
    folder = Path(tempfile.mkdtemp(dir=installed.root))
    folder.chmod(0o755)
    layout = LAYOUTS[layout_name](image, folder, services, uid)
    cert, key = _certificate(Path(tempfile.mkdtemp(dir=installed.root)))
    tokens = service_account(folder / "serviceaccount", cert, token)
    log = installed.root / f"controller-{uid}.log"
    if not port_is_free(layout.port):  # someone's `nublado serve` runs here: then, and only
        layout = layout.on_port(free_port())  # then, the command serves on another port
    statuses: list[int] = []
    assert sandbox.url is not None
    async with (
        api_server_tls(sandbox.url.removeprefix("http://"), cert, key, statuses) as api_port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{layout.port}", timeout=30) as http,
    ):
        env = {
            **image_environment(installed, image),
            **layout.env,
            **kubelet_environment(api_port),
        }
        mounts = {**layout.mounts, SERVICE_ACCOUNT: tokens}
        start = len(sandbox.requests)
        pod = run_in_pod(
            installed,
            layout.argv,
            env,
            mounts=mounts,
            writable=layout.writable,
            user=layout.user,
            log=log,
        )
        try:
            await wait_until_ready(pod, http, layout.probes["startupProbe"])
            probes = {k: (await http.get(path)).status_code for k, path in layout.probes.items()}
            index = await http.get("/")
            images = await http.get("/nublado/spawner/v1/images")
            user = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": TOKEN}
            form = await http.get("/nublado/spawner/v1/lab-form/rachel", headers=user)
            spec = json.loads((EXAMPLES / "lab-specification.json").read_text())
            labs = "/nublado/spawner/v1/labs"
            try:  # a refused request (403) leaves the spawn pending: fail, do not hang
                async with asyncio.timeout(SPAWN_TIMEOUT):
                    create = await http.post(f"{labs}/rachel/create", json=spec, headers=user)
                    events = await http.get(f"{labs}/rachel/events", headers=user)
            except TimeoutError:
                tail = log.read_text()[-3000:]
                raise AssertionError(f"no spawn in {SPAWN_TIMEOUT} s:\n{tail}") from None
            status = await http.get(f"{labs}/rachel")
            listed = await http.get(labs)
            metrics = await http.get("/metrics")
            peak = _peak_memory(pod.pid)
        finally:
            exit_status = await pod.stop()
    # Everything the API server heard after the pod started came from the pod, as the
    # controller's ServiceAccount (in-cluster configuration), and it was all allowed.
    # The package's loader sends "bearer <token>"; kube takes the scheme in either case.
    credentials = {r.authorization.split(" ", 1)[1] for r in sandbox.requests[start:]}
    text = log.read_text()

    assert exit_status == 0, text
    assert credentials == {token}
    assert statuses and not {401, 403} & set(statuses), sorted(set(statuses))
    assert "Forbidden" not in text, text
    assert probes == dict.fromkeys(layout.probes, 200)
    assert index.status_code == 200 and index.json()["name"] == "Nublado"
    assert images.json()["recommended"]["digest"] == "sha256:5678"
    assert form.status_code == 200 and "Small (1.0 CPU, 3Gi RAM)" in form.text, form.text
    assert create.status_code == 201, create.text
    assert re.findall(r"^event: (\w+)", events.text, flags=re.MULTILINE)[-1] == "complete", (
        events.text
    )
    assert status.json()["status"] == "running"
    assert listed.json() == ["rachel"]
    assert "nublado_spawns_total" in metrics.text
    assert peak < PHALANX_MEMORY_REQUEST, f"peak RSS {peak / 2**20:.0f} MiB"
    lines = [json.loads(line) for line in text.splitlines()]  # production: JSON lines only
    events_logged = {line["event"] for line in lines}
    assert "Application startup complete." in events_logged
    errors = [line for line in lines if line["level"] in ("error", "critical")]
    assert errors == [], text


def test_the_pod_is_read_only_unprivileged_and_runs_from_the_wheel(
    installed: Installed, pod_files: tuple[Path, Path]
) -> None:
    """The namespace really is Phalanx's pod: otherwise the test above would prove nothing."""
    config_dir, podinfo_dir = pod_files
    _write_readonly(config_dir, {"config.yaml": "{}\n"})
    _write_readonly(podinfo_dir, {**CONTROLLER, "uid": "u"})
    probe = r"""
import os, pathlib, tempfile, nublado
def writable(path):
    try:
        pathlib.Path(path, ".probe").write_text("x")
    except OSError as exc:
        return exc.strerror
    return "written"
print(os.getpid(), os.getuid(), os.getgid(), os.getgroups(), os.getcwd())
print(writable("/tmp"), writable("/etc/nublado"), writable("/etc/podinfo"), writable("/"))
print(pathlib.Path("/etc/nublado/config.yaml").read_text().strip())
print(pathlib.Path(nublado.__file__).parent)
print(open("/proc/self/status").read().split("CapEff:")[1].split()[0])
import socket; print(socket.gethostname())
"""
    env = image_environment(installed, read_dockerfile())
    log = installed.root / "probe.log"
    pod = run_in_pod(
        installed, ["python", "-c", probe], env, mounts=pod_mounts(config_dir, podinfo_dir), log=log
    )
    assert pod.wait(timeout=60) == 0, log.read_text()
    ids, writes, config, package, capabilities, hostname = log.read_text().splitlines()

    assert ids == f"1 {UID} {GID} [] /"
    assert writes == " ".join(["Read-only file system"] * 4)
    assert config == "{}"
    assert package.startswith(str(installed.venv))
    assert int(capabilities, 16) == 0
    assert hostname == CONTROLLER["name"]


def test_every_command_runs_from_the_image_and_the_sandbox_asks_for_its_extra(
    installed: Installed, pod_files: tuple[Path, Path]
) -> None:
    """The lab-side tools (inithome, landingpage, startup, purger) are this image's command too:
    each loads without the extras; the sandbox, which needs them, says so in one line."""
    config_dir, podinfo_dir = pod_files
    _write_readonly(config_dir, {"config.yaml": "{}\n"})
    _write_readonly(podinfo_dir, {**CONTROLLER, "uid": "u"})
    commands = " ".join(sorted(set(COMMANDS) - {"sandbox"}))
    script = f"""
for command in {commands}; do
    nublado "$command" --help >/dev/null 2>&1 || echo "failed: nublado $command --help"
done
nublado sandbox --kubeconfig /nonexistent/kubeconfig; echo "exit $?"
nublado serve --sandbox; echo "exit $?"
"""
    env = image_environment(installed, read_dockerfile())
    log = installed.root / "commands.log"
    pod = run_in_pod(
        installed, ["sh", "-c", script], env, mounts=pod_mounts(config_dir, podinfo_dir), log=log
    )
    assert pod.wait(timeout=60) == 0, log.read_text()

    extra = "needs the sandbox extra (google is missing): pip install 'nublado[sandbox]'"
    assert log.read_text().splitlines() == [
        f"nublado: error: nublado sandbox {extra}",
        "exit 2",
        f"nublado: error: --sandbox {extra}",
        "exit 2",
    ]
    assert {"inithome", "landingpage", "startup", "purger", "serve"} <= set(COMMANDS)
