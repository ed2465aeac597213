"""The only code that talks to Kubernetes.

Importing this package is cheap: the ``kubernetes`` client is imported only
when `KubernetesClient` is first used, so the render path never pays for it.
The sandbox API server the tests run against is `nublado.sandbox`.
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
    "ResourceKind",
    "UnknownKindError",
    "WatchEvent",
    "kind_for_manifest",
    "kind_named",
]

_LAZY = {
    "ApplyResult": "client",
    "KubernetesClient": "client",
    "WatchEvent": "client",
}


def __getattr__(name: str) -> Any:
    """Import the client on first use of one of its names."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
