"""``nublado sandbox``: run the sandbox API server and write a kubeconfig for it."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click

from ..errors import InputError  # the nublado command's one-line error, exit 2

__all__ = ["sandbox"]


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--kubeconfig",
    "kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Kubeconfig file to write, pointing at the sandbox.",
)
@click.option(
    "--nodes",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Nodes file (name -> images, labels) loaded as Node objects.",
)
@click.option(
    "--storage-classes",
    "storage_classes",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="StorageClasses file (JSON list, or name -> fields); default: `standard`.",
)
@click.option(
    "--pod-start-delay",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds a new pod spends in each of scheduling, pulling and starting.",
)
@click.option(
    "--namespace-termination-delay",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds a deleted namespace stays Terminating.",
)
@click.option(
    "--pod-grace-scale",
    type=click.FloatRange(0),
    default=0.01,
    show_default=True,
    help="Factor on a deleted pod's grace period (1: real time; 30 s become 0.3 s at 0.01).",
)
@click.option(
    "--rbac",
    is_flag=True,
    default=False,
    help=(
        "Require bearer tokens (401 without one) and authorize with RBAC (403); serve "
        "HTTPS (kubectl sends tokens only over TLS); the kubeconfig written holds the "
        "admin token (system:masters) and the sandbox's CA."
    ),
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
def sandbox(
    host: str,
    port: int,
    kubeconfig: Path,
    nodes: Path | None,
    storage_classes: Path | None,
    pod_start_delay: float,
    namespace_termination_delay: float,
    pod_grace_scale: float,
    rbac: bool,
    log_level: str,
) -> None:
    """Run the in-process Kubernetes API server until interrupted.

    kubectl --kubeconfig FILE can then apply (--server-side), get, list and
    delete against it.
    """
    try:
        from .server import NodesFileError, Sandbox, SandboxSettings, load_nodes_file, serving_gc
        from .storage import StorageClassesFileError, load_storage_classes_file
    except ModuleNotFoundError as exc:  # the production image installs no sandbox extra
        raise InputError(
            f"nublado sandbox needs the sandbox extra ({exc.name} is missing):"
            " pip install 'nublado[sandbox]'"
        ) from None

    try:
        node_data = load_nodes_file(nodes) if nodes is not None else None
        class_data = (
            load_storage_classes_file(storage_classes) if storage_classes is not None else None
        )
    except (NodesFileError, StorageClassesFileError) as exc:
        raise InputError(str(exc)) from None
    settings = SandboxSettings(
        schedule_delay=pod_start_delay,
        pull_delay=pod_start_delay,
        start_delay=pod_start_delay,
        namespace_termination_delay=namespace_termination_delay,
        pod_grace_scale=pod_grace_scale,
        rbac=rbac,
    )
    serving_gc()  # this process only serves the sandbox
    server = Sandbox(settings, nodes=node_data, storage_classes=class_data)
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(server.serve(host, port, log_level=log_level, tls=rbac))
        except (RuntimeError, OSError) as exc:
            raise InputError(f"cannot serve the sandbox on {host}:{port}: {exc}") from None
        try:
            server.write_kubeconfig(kubeconfig)
        except OSError as exc:
            raise InputError(f"cannot write kubeconfig {kubeconfig}: {exc.strerror}") from None
        click.echo(f"sandbox listening on {url}; kubeconfig written to {kubeconfig}")
        try:
            # Follow the server thread: if it dies, say so rather than idle forever.
            while server.serving:
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("sandbox stopping")
            return
    raise click.ClickException("the sandbox server stopped unexpectedly")
