"""Values shared by the context builders of several object sets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import (
    HostPathVolumeSource,
    NFSVolumeSource,
    PVCVolumeSource,
    Toleration,
    VolumeConfig,
    VolumeMountConfig,
)

__all__ = [
    "CATEGORY_LABEL",
    "USER_LABEL",
    "ClaimContext",
    "VolumeContext",
    "argo_annotations",
    "argo_labels",
    "claims_for",
    "mount",
    "tolerations",
    "volumes_for",
]

_ARGO_CD_ANNOTATIONS = (
    ("argocd.argoproj.io/compare-options", "IgnoreExtraneous"),
    ("argocd.argoproj.io/sync-options", "Prune=false"),
)


def argo_annotations() -> dict[str, str]:
    """Annotations that keep Argo CD from pruning or diffing objects the controller owns.

    A new dict each call: contexts may add to it without touching another set's.
    """
    return dict(_ARGO_CD_ANNOTATIONS)


CATEGORY_LABEL = "nublado.lsst.io/category"
USER_LABEL = "nublado.lsst.io/user"
ARGO_INSTANCE_LABEL = "argocd.argoproj.io/instance"


def argo_labels(labels: dict[str, str], application: str | None) -> dict[str, str]:
    """``labels`` plus the Argo CD instance label when an application is configured."""
    if application:
        return {**labels, ARGO_INSTANCE_LABEL: application}
    return labels


@dataclass(frozen=True, slots=True)
class VolumeContext:
    """One configured volume as a pod volume (the ``volumes`` loops of the pod templates)."""

    name: str
    type: str
    path: str = ""
    server: str = ""
    read_only: bool = False
    claim_name: str = ""


@dataclass(frozen=True, slots=True)
class ClaimContext:
    """One PersistentVolumeClaim to create for a PVC-backed volume."""

    claim_name: str
    storage_class_name: str
    access_modes: list[str]
    requests: dict[str, str]


def _volume(volume: VolumeConfig, claim_prefix: str) -> VolumeContext:
    source = volume.source
    if isinstance(source, HostPathVolumeSource):
        return VolumeContext(name=volume.name, type="hostPath", path=source.path)
    if isinstance(source, NFSVolumeSource):
        return VolumeContext(
            name=volume.name,
            type="nfs",
            path=source.server_path,
            server=source.server,
            read_only=source.read_only,
        )
    return VolumeContext(
        name=volume.name,
        type="persistentVolumeClaim",
        claim_name=f"{claim_prefix}-pvc-{volume.name}",
        read_only=source.read_only,
    )


def volumes_for(
    volumes: Iterable[VolumeConfig], used: set[str], claim_prefix: str
) -> list[VolumeContext]:
    """Pod volumes for the configured volumes some container mounts, in config order.

    Upstream added every configured volume, so an unmounted PVC volume pointed
    the pod at a claim nobody created; we keep only mounted ones (DECISIONS).
    """
    return [_volume(v, claim_prefix) for v in volumes if v.name in used]


def claims_for(
    volumes: Iterable[VolumeConfig], used: set[str], claim_prefix: str
) -> list[ClaimContext]:
    """One claim per mounted PVC-backed volume, so every claim a pod names exists."""
    claims = []
    for volume in volumes:
        source = volume.source
        if volume.name in used and isinstance(source, PVCVolumeSource):
            claims.append(
                ClaimContext(
                    claim_name=f"{claim_prefix}-pvc-{volume.name}",
                    storage_class_name=source.storage_class_name,
                    access_modes=[str(mode) for mode in source.access_modes],
                    requests=dict(source.resources.requests),
                )
            )
    return claims


def mount(
    config: VolumeMountConfig, *, prefix: str = "", read_only: bool | None = None
) -> dict[str, Any]:
    """A container volumeMount for a configured mount, under an optional path prefix."""
    result: dict[str, Any] = {
        "name": config.volume_name,
        "mountPath": prefix + config.container_path,
        "readOnly": config.read_only if read_only is None else read_only,
    }
    if config.sub_path is not None:
        result["subPath"] = config.sub_path
    return result


def tolerations(configured: Sequence[Toleration]) -> list[dict[str, Any]]:
    """Pod tolerations, always a list (possibly empty)."""
    return [t.to_kubernetes() for t in configured]
