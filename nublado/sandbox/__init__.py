"""The sandbox: an in-process Kubernetes API server that speaks the real REST protocol.

It stands in for a cluster when trying nublado on one machine and in the test
suite, and imports nothing of the controller. Importing this package is cheap:
the web stack and Kubernetes' schema load when `Sandbox` is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import SandboxSettings
    from .kubelet import PodFailure
    from .server import NodesFileError, Sandbox

__all__ = ["NodesFileError", "PodFailure", "Sandbox", "SandboxSettings"]

_LAZY = {
    "NodesFileError": "server",
    "PodFailure": "kubelet",
    "Sandbox": "server",
    "SandboxSettings": "cluster",
}


def __getattr__(name: str) -> Any:
    """Import the server on first use of one of its names."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
