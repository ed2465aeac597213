"""Command-line options that several ``nublado`` commands share, worded once.

``nublado daemon`` and ``nublado diff`` both read the controller's
configuration and reach Kubernetes as ``nublado serve`` does; declaring the
two options here keeps their names, types and help identical.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["config_option", "kubeconfig_option"]

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Controller configuration file.",
)
"""``--config FILE`` (required), passed as ``config_path``."""

kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig to use (default $KUBECONFIG, ~/.kube/config, else in-cluster).",
)
"""``--kubeconfig FILE``; None: ``$KUBECONFIG``, ``~/.kube/config``, else the pod's account."""
