"""``nublado serve``: run the controller under uvicorn, against a cluster or the sandbox.

Two ways to run:

* ``nublado serve --config FILE``: production. Kubernetes from
  ``--kubeconfig`` (or ``$KUBECONFIG`` / ``~/.kube/config``), else the pod's
  service account; users from Gafaelfawr; the controller's pod from the
  downward-API files of ``metadataPath``.
* ``nublado serve --sandbox``: everything on one machine. The sandbox API
  server runs in this process (its own thread) loaded with examples/: the
  nodes and storage classes the example configuration schedules on, the
  controller's namespace and pod (examples/metadata), the source Secrets of
  ``lab.secrets`` (examples/secrets.json); users come from
  examples/users.json and ``X-Auth-Request-User`` is trusted instead of
  asking Gafaelfawr. It writes a kubeconfig for kubectl and prints the URLs.

Either way logging is configured once from the configuration
(`nublado.logging`), uvicorn's own lines included, and the app's lifespan
runs (image refresh, lab service start and orderly stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import uvicorn

from .errors import InputError
from .heap import glibc
from .permissions import skip_permission_check_option

if TYPE_CHECKING:
    from .config import Config
    from .gafaelfawr import UserInfoSource
    from .kube.client import KubernetesClient
    from .models.metadata import ControllerMetadata
    from .sandbox.server import Sandbox

__all__ = [
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_PORT",
    "GC_THRESHOLDS",
    "SANDBOX_KUBECONFIG",
    "SANDBOX_THREAD",
    "examples_dir",
    "run_event_loop",
    "serve",
    "tune_gc",
]

DEFAULT_PORT = 8080
"""The controller's port (upstream's, which the Phalanx Service targets)."""

DEFAULT_KEEP_ALIVE = 5
"""Seconds uvicorn keeps an idle connection open unless ``UVICORN_TIMEOUT_KEEP_ALIVE`` says.

Upstream runs under uvicorn's command line, which reads ``UVICORN_*`` variables;
Phalanx sets ``UVICORN_TIMEOUT_KEEP_ALIVE=61`` so the controller outlasts
ingress-nginx's 60 s keep-alive (a proxy reusing a connection the server just
closed gets a 502). ``--timeout-keep-alive`` reads the same variable.
"""

SANDBOX_KUBECONFIG = Path("sandbox.kubeconfig")
"""Where ``--sandbox`` writes its kubeconfig without ``--kubeconfig``: the current folder."""

SANDBOX_BASE_URL = "https://rsp.example.com"
"""``--sandbox``'s external URL when the configuration's is not https: the GafaelfawrIngress
CRD (as Gafaelfawr's own) refuses a file server's ingress with an http base URL."""

SANDBOX_THREAD = "nublado-sandbox"
"""The name of the thread `nublado.sandbox.server.Sandbox.serve` runs its server in."""

_log = logging.getLogger(__name__)

_SANDBOX_TOKEN = "sandbox-token"  # any token does: the sandbox does not check it
"""The token the printed sample commands send."""


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic collector's thresholds while serving (Python's defaults: 700, 10, 10).

A spawn decodes hundreds of short-lived containers per Kubernetes object it
reads (a pod is 20 KB of JSON); with the defaults they are scanned before they
die, and the caches of every lab make each full collection longer.
benchmarks/spawn.py: the collector took 11-12 ms of the controller's 34 ms CPU
per spawn with the defaults, 2.4 ms of 25 ms with these.
"""


MMAP_THRESHOLD = 128 * 1024
"""Allocations from this size up get their own mapping from glibc's malloc (its default)."""


def tune_gc() -> None:
    """Set `GC_THRESHOLDS`, move what start-up built out of the collector's sight, and
    `pin_mmap_threshold`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    pin_mmap_threshold()


def pin_mmap_threshold() -> bool:
    """Keep glibc malloc's mmap threshold at `MMAP_THRESHOLD`; False where that is not glibc.

    glibc raises the threshold to the size of each mapped block freed (up to
    32 MiB), so after the first large answer, later ones (the packets of a
    reconcile pass's LISTs, 130 MB of JSON for 5,000 labs) are carved from the
    heap, which keeps their pages once freed: the controller's RSS rose 20-100
    MiB after each pass with nothing still in use (it fell back with
    ``malloc_trim``). A threshold set explicitly stays put: large blocks are
    mapped and returned whole when freed (benchmarks/reconcile.py: RSS 262-264
    MiB through six passes, against 264-305 MiB).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False  # the operator chose a threshold of their own
    libc = glibc()  # not glibc: musl has mallopt as a no-op
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


_M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""


_T = TypeVar("_T")


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``, on uvloop's event loop when it is installed.

    The controller's CPU goes mostly to the event loop and its HTTP traffic (the
    Kubernetes requests and a streamed answer per spawn); uvloop's loop,
    transports and timers are C, and the controller's CPU per spawn in
    benchmarks/spawn.py dropped by a fifth there (README, Benchmarks). uvloop is
    a dependency wherever it exists (not on Windows); without it, asyncio's own
    loop runs the controller as before.

    uvloop sets TCP_NODELAY on every TCP connection it makes or accepts, so the
    event stream's frames leave at once there too (see `_bind` for asyncio's loop).
    """
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def examples_dir() -> Path:
    """The examples/ folder: installed in the package, or at the top of a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "examples", package.parent / "examples"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise InputError("--sandbox: the examples folder is not installed with this nublado")


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Controller configuration file (production).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run against an in-process sandbox cluster loaded with examples/.",
)
@click.option(
    "--host",
    default=None,
    help="Address to listen on (default 0.0.0.0; 127.0.0.1 with --sandbox).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        "Kubeconfig to use (default $KUBECONFIG, ~/.kube/config, else in-cluster);"
        f" with --sandbox, the one to write (default ./{SANDBOX_KUBECONFIG})."
    ),
)
@click.option(
    "--pod-start-delay",
    type=click.FloatRange(0),
    default=0.5,
    show_default=True,
    help="--sandbox: seconds a new pod spends in each of scheduling, pulling and starting.",
)
@click.option(
    "--timeout-keep-alive",
    type=click.IntRange(1),
    default=DEFAULT_KEEP_ALIVE,
    envvar="UVICORN_TIMEOUT_KEEP_ALIVE",
    show_default=True,
    show_envvar=True,
    help="Seconds an idle HTTP connection is kept open: longer than the proxy's in front.",
)
@skip_permission_check_option
def serve(
    config_path: Path | None,
    sandbox: bool,
    host: str | None,
    port: int,
    kubeconfig: Path | None,
    pod_start_delay: float,
    timeout_keep_alive: int,
    skip_permission_check: bool,
) -> None:
    """Run the lab controller (the REST API JupyterHub's spawner talks to).

    With --config it first asks the API server whether it holds every grant
    of its RBAC (`nublado.permissions`), and stops with exit status 2 if not.
    """
    if sandbox == (config_path is not None):
        raise InputError("give exactly one of --config FILE and --sandbox")
    if sandbox:
        _serve_sandbox(
            host or "127.0.0.1",
            port,
            kubeconfig or SANDBOX_KUBECONFIG,
            pod_start_delay,
            timeout_keep_alive,
        )
    else:
        assert config_path is not None
        _serve_config(
            config_path,
            host or "0.0.0.0",
            port,
            kubeconfig,
            timeout_keep_alive,
            check_permissions=not skip_permission_check,
        )


def _load(config_path: Path) -> Config:
    """The configuration, with logging configured from it before anything else logs."""
    from .config.loader import load_config
    from .logging import configure_logging

    config = load_config(config_path)
    configure_logging(config.log_profile, config.log_level)
    return config


def _serve_config(
    config_path: Path,
    host: str,
    port: int,
    kubeconfig: Path | None,
    timeout_keep_alive: int,
    *,
    check_permissions: bool = True,
) -> None:
    """Production: a real cluster, Gafaelfawr, the pod's own metadata."""
    from .kube.client import KubernetesClient
    from .kube.errors import KubernetesError
    from .models.metadata import ControllerMetadata

    config = _load(config_path)
    metadata = ControllerMetadata.from_directory(config.metadata_path)
    listener = _bind(host, port)

    async def main() -> int:
        try:
            kube = await KubernetesClient.load(kubeconfig)
        except KubernetesError as exc:
            raise InputError(str(exc)) from None
        return await _run(
            config,
            kube,
            listener,
            metadata=metadata,
            timeout_keep_alive=timeout_keep_alive,
            check_permissions=check_permissions,
        )

    _exit(run_event_loop(main()))


def _serve_sandbox(
    host: str, port: int, kubeconfig: Path, pod_start_delay: float, timeout_keep_alive: int
) -> None:
    """The sandbox, seeded from examples/, and the controller against it."""
    from .gafaelfawr import TrustedUsers
    from .kube.client import KubernetesClient
    from .logging import configure_logging

    try:
        from .sandbox.server import NodesFileError, Sandbox, SandboxSettings, load_nodes_file
        from .sandbox.storage import StorageClassesFileError, load_storage_classes_file
    except ModuleNotFoundError as exc:
        raise InputError(
            f"--sandbox needs the sandbox extra ({exc.name} is missing):"
            " pip install 'nublado[sandbox]'"
        ) from None

    examples = examples_dir()
    config = _load(examples / "config.yaml")
    if config.fileserver.enabled and not config.base_url.startswith("https://"):
        config = config.model_copy(update={"base_url": SANDBOX_BASE_URL})
    users = TrustedUsers.from_file(examples / "users.json")
    listener = _bind(host, port)
    try:
        nodes = load_nodes_file(examples / "nodes.json")
        classes = load_storage_classes_file(examples / "storage-classes.json")
    except (NodesFileError, StorageClassesFileError) as exc:
        raise InputError(str(exc)) from None
    settings = SandboxSettings(
        schedule_delay=pod_start_delay, pull_delay=pod_start_delay, start_delay=pod_start_delay
    )
    cluster = Sandbox(settings, nodes=nodes, storage_classes=classes)
    with contextlib.ExitStack() as stack:
        try:
            sandbox_url = stack.enter_context(cluster.serve(host, 0))
        except (RuntimeError, OSError) as exc:
            raise InputError(f"cannot serve the sandbox on {host}: {exc}") from None
        # The sandbox's uvicorn quietened the (process-wide) uvicorn loggers; ours
        # speak again, but the sandbox's own request lines would drown them.
        configure_logging(config.log_profile, config.log_level)
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).addFilter(_quiet_sandbox_server)
        try:
            cluster.write_kubeconfig(kubeconfig)
        except OSError as exc:
            raise InputError(f"cannot write kubeconfig {kubeconfig}: {exc.strerror}") from None
        metadata = _seed_sandbox(cluster, config, examples)

        def banner(url: str) -> None:
            _print_sandbox_banner(url, sandbox_url, kubeconfig, users.usernames, config)

        async def main() -> int:
            kube = KubernetesClient.from_url(sandbox_url)
            return await _run(
                config,
                kube,
                listener,
                metadata=metadata,
                users=users,
                discovery_file=examples / "discovery.json",
                on_started=banner,
                timeout_keep_alive=timeout_keep_alive,
            )

        status = run_event_loop(main())
    _exit(status)


def _quiet_sandbox_server(record: logging.LogRecord) -> bool:
    """Drop the sandbox server's uvicorn lines (its thread), but for its warnings and errors."""
    return record.threadName != SANDBOX_THREAD or (
        record.name == "uvicorn.error" and record.levelno >= logging.WARNING
    )


def _seed_sandbox(cluster: Sandbox, config: Config, examples: Path) -> ControllerMetadata:
    """Create what a real cluster would already hold for the controller.

    The controller's namespace and pod (the pod owns prepull pods: the
    sandbox's garbage collector removes pods whose owner does not exist, so
    its uid must be real) and the source Secrets ``lab.secrets`` and
    ``lab.pullSecret`` name, from examples/secrets.json.
    """
    from .models.metadata import ControllerMetadata
    from .render.cli import read_secrets

    given = ControllerMetadata.from_directory(config.metadata_path)
    namespace = given.namespace
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    image = config.controller_image
    pod = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": given.name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/name": "nublado"},
            },
            "spec": {
                "containers": [{"name": "controller", "image": f"{image.repository}:{image.tag}"}]
            },
        }
    )
    for name, secret in read_secrets(examples / "secrets.json").items():
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": secret.data,
        }
        if secret.type is not None:
            manifest["type"] = secret.type
        cluster.create(manifest)
    return ControllerMetadata(given.name, namespace, pod["metadata"]["uid"])


def _print_sandbox_banner(
    url: str, sandbox_url: str, kubeconfig: Path, usernames: list[str], config: Config
) -> None:
    """What a newcomer needs: where things are and one command to try."""
    base = url + config.path_prefix
    user = "rachel" if "rachel" in usernames else usernames[0]
    lines = [
        f"nublado controller: {base}",
        f"sandbox API server: {sandbox_url}",
        f"kubeconfig:         {kubeconfig.resolve()}",
        f"users:              {', '.join(usernames)} (X-Auth-Request-User is trusted)",
        f"metrics:            {url}/metrics",
        "try:",
        f"  curl -s {base}/spawner/v1/images",
        f"  curl -s -H 'X-Auth-Request-User: {user}' -H 'X-Auth-Request-Token: {_SANDBOX_TOKEN}'"
        f" {base}/spawner/v1/labs/{user}",
        f"  kubectl --kubeconfig {kubeconfig} get pods -A -w",
    ]
    if config.fileserver.enabled:
        lines.insert(
            -1,
            f"  curl -s -H 'X-Auth-Request-User: {user}'"
            f" -H 'X-Auth-Request-Token: {_SANDBOX_TOKEN}' {url}{config.fileserver.path_prefix}",
        )
    click.echo("\n".join(lines))
    sys.stdout.flush()


async def _run(
    config: Config,
    kube: KubernetesClient,
    listener: socket.socket,
    *,
    metadata: ControllerMetadata,
    users: UserInfoSource | None = None,
    discovery_file: Path | None = None,
    on_started: Callable[[str], None] | None = None,
    timeout_keep_alive: int = DEFAULT_KEEP_ALIVE,
    check_permissions: bool = False,
) -> int:
    """Serve the controller until a signal; 0 after a clean stop, 1 if start-up failed.

    ``check_permissions``: first make sure the controller's identity holds
    its RBAC (`nublado.permissions.check_permissions`; the sandbox of
    ``--sandbox`` allows everything, so it is not asked).
    """
    import httpx

    from .api.controller import build_controller, file_discovery
    from .httpwire import CoalescingHTTPProtocol
    from .permissions import check_permissions as check

    async with kube, httpx.AsyncClient() as http:
        if check_permissions:
            await check(kube, config.template_dirs, metadata.namespace)
        app = build_controller(
            config,
            kube=kube,
            http=http,
            users=users,
            metadata=metadata,
            discovery=file_discovery(discovery_file) if discovery_file else None,
        )
        tune_gc()
        loop = type(asyncio.get_running_loop())
        # Which loop serves (uvloop's, as a rule; see run_event_loop): it sets the CPU cost.
        _log.info("Event loop: %s.%s", loop.__module__, loop.__qualname__)
        server = _Server(
            uvicorn.Config(
                app,
                lifespan="on",
                log_config=None,  # logging is ours (nublado.logging), uvicorn's lines included
                http=CoalescingHTTPProtocol,  # one write per event-loop pass, not per message
                proxy_headers=False,  # XForwardedMiddleware decides what to trust
                server_header=False,
                timeout_graceful_shutdown=10,
                timeout_keep_alive=timeout_keep_alive,
            )
        )
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_started is not None:
            host, port = listener.getsockname()[:2]
            on_started(f"http://{_url_host(host)}:{port}")
        await task
        return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT or SIGTERM without re-raising the signal.

    uvicorn re-raises a captured signal once it has stopped, which kills the
    process before the clients close and the sandbox stops (SIGTERM: status
    -15; SIGINT: a KeyboardInterrupt). A stop asked for by a signal is a
    clean stop here: exit status 0. A second SIGINT still forces the exit.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a busy port is bad input.

    Made with ``IPPROTO_TCP`` (not the default protocol 0) because asyncio sets
    TCP_NODELAY on an accepted connection only when its socket says TCP: without
    it, each event-stream frame waits behind Nagle's algorithm for the client's
    delayed ACK (about 40 ms on Linux), so spawn progress arrives in one late lump.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    listener.set_inheritable(True)
    return listener


def _url_host(host: str) -> str:
    """The host part of a URL to this server: 0.0.0.0 is reached as 127.0.0.1."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _exit(status: int) -> None:
    if status:
        raise click.ClickException("the controller could not start (see the log above)")
