"""What the sandbox's controllers see of their cluster and of each other.

The kubelet, scheduler, volume controller, admission plugins and garbage
collector each hold the `Cluster` they run in, and some call one another. They
are typed against these protocols rather than the classes themselves, so no
controller imports the cluster (nor the cluster's other controllers), and the
package's imports form no cycle. `Cluster` satisfies `ClusterHost` as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .kinds import ResourceKind
    from .settings import SandboxSettings
    from .store import Store

__all__ = ["ClusterHost", "EventRecorder", "KubeletView", "SchedulerView", "StorageView"]

Object = dict[str, Any]


class EventRecorder(Protocol):
    """The kubelet's recorder of a pod's Events, which other components use too."""

    def _event(
        self,
        pod: Object,
        reason: str,
        message: str,
        *,
        event_type: str = "Normal",
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> None: ...


class SchedulerView(Protocol):
    """The scheduler as the volume controller sees it: retried when a claim binds."""

    def retry(self, namespace: str | None = None) -> None: ...


class KubeletView(EventRecorder, Protocol):
    """The kubelet as the cluster's other controllers see it."""

    @property
    def scheduler(self) -> SchedulerView: ...

    def _current(self, namespace: str, name: str, uid: str) -> Object | None: ...

    def now(self) -> str: ...

    def pod_bound(self, pod: Object) -> None: ...


class StorageView(Protocol):
    """The volume controller as admission and the scheduler see it."""

    def default_class(self, claim: Object) -> None: ...

    def bind_for_pod(self, pod: Object, node: str) -> None: ...

    def unbound_claim_delays(self, claim: Object) -> bool: ...


class ClusterHost(Protocol):
    """The cluster as its controllers see it: store, settings, timers and internal writes."""

    @property
    def settings(self) -> SandboxSettings: ...

    @property
    def store(self) -> Store: ...

    @property
    def storage(self) -> StorageView: ...

    @property
    def kubelet(self) -> KubeletView: ...

    def later(self, delay: float, fn: Callable[..., None], *args: Any) -> None: ...

    def create_internal(self, kind_name: str, obj: Object, manager: str) -> Object | None: ...

    def create_event_internal(
        self, event: Object, manager: str, *, given: bool = False
    ) -> Object | None: ...

    def update_internal(
        self,
        kind_name: str,
        namespace: str,
        name: str,
        mutate: Callable[[Object], None],
        manager: str | None,
        *,
        subresource: str = "status",
        uid: str | None = None,
    ) -> Object | None: ...

    def job_pod_finished(self, pod: Object, phase: str) -> None: ...

    def _after_write(self, kind: ResourceKind, old: Object | None, new: Object) -> None: ...

    def _after_remove(self, kind: ResourceKind, obj: Object) -> None: ...
