"""fsadmin: the single privileged pod administrators ``kubectl exec`` into (api.md 4.14).

The pod (``fsadmin.podName``, default ``fsadmin``) lives in the controller's
namespace and mounts every configured filesystem read-write as root. There
is only one, so the three operations (status, start, delete) run one at a
time under one lock held by this process: a DELETE sent while a start waits
for its pod runs once the start has finished, and a second start sees the
pod the first one made. The cluster holds the only state (the pod and its
PVCs), so a restarted controller simply finds the running pod again.

Kubernetes behaviour follows objects.md 7.5: a start that finds the pod
Running changes nothing; otherwise it creates each PVC and then the pod,
replacing any object of the same name (delete, wait until it is gone,
create again), waits until the pod leaves Pending and Unknown, and reads it
once more. One deliberate difference: a stale pod (any phase but Running)
is deleted before the PVCs are replaced, because a pod still using a PVC
would keep that PVC's ``kubernetes.io/pvc-protection`` finalizer from
clearing and the replacement would wait for ever.

Failures of Kubernetes and the time limit are not client errors: they
escape as exceptions, which the app answers with its plain 500 (api.md 2.5).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from ..api.errors import InvalidPhaseError, NotFoundError
from ..config import Config
from ..kube.client import KubernetesClient
from ..kube.errors import AlreadyExistsError
from ..models.metadata import ControllerMetadata
from ..render.engine import Manifest, Renderer
from ..render.fsadmin import build_fsadmin_context

__all__ = ["WAITING_PHASES", "FSAdminService", "FSAdminTimeoutError"]

_log = logging.getLogger(__name__)

WAITING_PHASES = frozenset({"Pending", "Unknown"})
"""Phases a new pod leaves on its own; a start waits until the pod is in another one."""


class FSAdminTimeoutError(TimeoutError):
    """Starting fsadmin took longer than ``fsadmin.timeout`` (an uncaught 500)."""


def _phase(pod: Manifest) -> str:
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def _healthy(pod: Manifest) -> bool:
    """Running and not on its way out (someone else deleting it is no pod to hand over)."""
    return _phase(pod) == "Running" and not pod["metadata"].get("deletionTimestamp")


def _start_time(pod: Manifest) -> datetime:
    """When the pod started: ``status.startTime``, else its creation (a pod the kubelet
    has not yet stamped), as an aware UTC datetime."""
    stamp = (pod.get("status") or {}).get("startTime") or pod["metadata"]["creationTimestamp"]
    value = datetime.fromisoformat(str(stamp))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class FSAdminService:
    """Status, start and delete of the fsadmin pod in ``namespace``, one at a time."""

    def __init__(
        self,
        config: Config,
        kube: KubernetesClient,
        renderer: Renderer,
        metadata: ControllerMetadata,
        *,
        namespace: str,
    ) -> None:
        self._config = config
        self._kube = kube
        self._renderer = renderer
        # The set is rendered into the namespace the service manages, which
        # may differ from the one the controller pod's metadata names.
        self._metadata = dataclasses.replace(metadata, namespace=namespace)
        self._namespace = namespace
        self._name = config.fsadmin.pod_name
        self._timeout = config.fsadmin.timeout.total_seconds()
        self._lock = asyncio.Lock()

    @property
    def pod_name(self) -> str:
        """The fsadmin pod's name (``fsadmin.podName``)."""
        return self._name

    @property
    def namespace(self) -> str:
        """The namespace the pod and its PVCs live in."""
        return self._namespace

    def manifests(self) -> list[Manifest]:
        """The fsadmin set as rendered from templates/fsadmin: the PVCs, then the pod."""
        return self._renderer.render("fsadmin", build_fsadmin_context(self._config, self._metadata))

    async def status(self) -> datetime:
        """The start time of the Running pod.

        Raises `NotFoundError` (``<namespace>/<pod>``) when there is no pod and
        `InvalidPhaseError` (the phase) when it is not Running.
        """
        async with self._lock:
            return self._running(await self._read())

    async def start(self) -> datetime:
        """Make sure the pod runs and return its start time.

        A Running pod is left alone. Otherwise the PVCs and the pod are
        (re)created and the pod is given ``fsadmin.timeout`` to leave
        Pending; a pod that then is not Running (e.g. ``Failed``) raises
        `InvalidPhaseError`. Raises `FSAdminTimeoutError` after the time limit
        and `~nublado.kube.errors.KubernetesError` on a Kubernetes failure.
        """
        async with self._lock:
            pod = await self._kube.find("Pod", self._name, self._namespace)
            if pod is not None and _healthy(pod):
                return _start_time(pod)
            _log.info("Starting fsadmin pod %s/%s", self._namespace, self._name)
            try:
                async with asyncio.timeout(self._timeout):
                    if pod is not None:
                        await self._delete("Pod", self._name)
                    await self._create()
            except TimeoutError:
                raise FSAdminTimeoutError(
                    f"fsadmin pod {self._namespace}/{self._name} not started after"
                    f" {self._timeout:g}s"
                ) from None
            return self._running(await self._read())

    async def delete(self) -> None:
        """Delete the pod, wait until it is gone, then each PVC of the set, waiting for each.

        A missing pod or PVC is no error: deleting an absent instance succeeds.
        """
        async with self._lock:
            _log.info("Deleting fsadmin pod %s/%s", self._namespace, self._name)
            await self._delete("Pod", self._name)
            for manifest in self.manifests():
                if manifest["kind"] == "PersistentVolumeClaim":
                    await self._delete("PersistentVolumeClaim", manifest["metadata"]["name"])

    # Internals (the lock is held)

    async def _read(self) -> Manifest:
        pod = await self._kube.find("Pod", self._name, self._namespace)
        if pod is None:
            raise NotFoundError(f"{self._namespace}/{self._name}")
        return pod

    @staticmethod
    def _running(pod: Manifest) -> datetime:
        phase = _phase(pod)
        if phase != "Running":
            raise InvalidPhaseError(phase)
        return _start_time(pod)

    async def _create(self) -> None:
        """Create the set in order, replacing same-named objects, and wait out Pending."""
        for manifest in self.manifests():
            await self._create_replacing(manifest)

        def started(pod: Any) -> bool:
            return pod is None or _phase(pod) not in WAITING_PHASES

        await self._kube.wait_for(
            "Pod", self._name, self._namespace, started, timeout=self._timeout
        )

    async def _create_replacing(self, manifest: Manifest) -> None:
        """``create`` with upstream's replace=True: on AlreadyExists delete, wait, create again."""
        try:
            await self._kube.create(manifest)
        except AlreadyExistsError:
            await self._delete(manifest["kind"], manifest["metadata"]["name"])
            await self._kube.create(manifest)

    async def _delete(self, kind: str, name: str) -> None:
        await self._kube.delete(kind, name, self._namespace, wait=True, timeout=self._timeout)
