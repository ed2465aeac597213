"""The sandbox's settings: how its simulated cluster behaves.

A leaf module, so the controllers can read the settings without importing the
cluster (`nublado.sandbox.cluster` re-exports the class).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxSettings"]


@dataclass
class SandboxSettings:
    """How the simulated cluster behaves; delays are in seconds.

    ``namespace_termination_delay`` of None keeps deleted namespaces
    Terminating until `Cluster.finish_namespace` is called.
    ``pod_grace_scale`` scales pods' termination grace periods: a pod deleted
    with the default 30 s stays Terminating 0.3 s at the default 0.01.
    ``rbac`` makes the API server authenticate requests with bearer tokens
    (`nublado.sandbox.auth`: 401 without one) and authorize them with RBAC
    (`nublado.sandbox.rbac`: 403 unless a role allows them); off, every
    request is served, as before.
    """

    schedule_delay: float = 0.0
    pull_delay: float = 0.0
    start_delay: float = 0.0
    pod_grace_scale: float = 0.01
    namespace_termination_delay: float | None = 0.0
    ingress_address: str = "127.0.0.1"
    # Seconds before the ingress controller gives a new Ingress its address; None: never.
    ingress_address_delay: float | None = 0.0
    history_limit: int = 10_000
    watch_queue_limit: int = 1_000
    # Watches that allow bookmarks get one this often (kube-apiserver: a minute).
    bookmark_interval: float = 60.0
    # How long a list or watch from a resourceVersion not reached yet waits for
    # it before answering "Too large resource version" (kube-apiserver: 3 s).
    resource_version_wait: float = 0.25
    # Authenticate (bearer tokens) and authorize (RBAC) every request.
    rbac: bool = False
