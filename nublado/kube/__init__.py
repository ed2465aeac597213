"""The only code that talks to Kubernetes, and the sandbox API server.

Importing this package is cheap: the ``kubernetes`` client and the web stack
are imported only when `KubernetesClient` or `Sandbox` is first used, so the
render path never pays for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExistsError,
    ConflictError,
    ExpiredError,
    ForbiddenError,
    InvalidError,
    KubernetesConnectionError,
    KubernetesError,
    KubernetesTimeoutError,
    MissingNamespaceError,
    NotFoundError,
    UnknownKindError,
)
from .kinds import KINDS, ResourceKind, kind_for_manifest, kind_named

if TYPE_CHECKING:
    from .client import ApplyResult, KubernetesClient, WatchEvent
    from .sandbox import PodFailure, Sandbox, SandboxSettings

__all__ = [
    "KINDS",
    "AlreadyExistsError",
    "ApplyResult",
    "ConflictError",
    "ExpiredError",
    "ForbiddenError",
    "InvalidError",
    "KubernetesClient",
    "KubernetesConnectionError",
    "KubernetesError",
    "KubernetesTimeoutError",
    "MissingNamespaceError",
    "NotFoundError",
    "PodFailure",
    "ResourceKind",
    "Sandbox",
    "SandboxSettings",
    "UnknownKindError",
    "WatchEvent",
    "kind_for_manifest",
    "kind_named",
]

_LAZY = {
    "ApplyResult": "client",
    "KubernetesClient": "client",
    "WatchEvent": "client",
    "PodFailure": "sandbox",
    "Sandbox": "sandbox",
    "SandboxSettings": "sandbox",
}


def __getattr__(name: str) -> Any:
    """Import the client or the sandbox on first use of one of their names."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
