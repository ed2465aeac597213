"""Container images, volumes and volume mounts, as the configuration declares them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ._base import (
    AbsolutePath,
    ConfigModel,
    ImageRepository,
    ImageTag,
    KubernetesName,
    KubernetesQuantity,
    quantity_sign,
    raise_problems,
)

__all__ = [
    "RESERVED_PATHS",
    "ContainerImage",
    "HostPathVolumeSource",
    "NFSVolumeSource",
    "PVCResources",
    "PVCVolumeSource",
    "PullPolicy",
    "VolumeAccessMode",
    "VolumeConfig",
    "VolumeMountConfig",
    "VolumeSource",
    "reject_reserved_path",
]

RESERVED_PATHS = frozenset({"/etc/group", "/etc/passwd", "/tmp"})
"""Paths Nublado itself mounts in every lab; configuration may not mount over them exactly."""


def reject_reserved_path(path: str) -> str:
    """Refuse a mount or file exactly at a path Nublado mounts itself."""
    if path in RESERVED_PATHS:
        raise ValueError(f"Cannot mount volume over {path}")
    return path


class PullPolicy(StrEnum):
    """When Kubernetes pulls a container image."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ContainerImage(ConfigModel):
    """An image to run as a container, in the Helm-chart shape Renovate recognises."""

    repository: ImageRepository
    tag: ImageTag
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT

    @property
    def reference(self) -> str:
        """The Docker reference ``repository:tag``."""
        return f"{self.repository}:{self.tag}"


class HostPathVolumeSource(ConfigModel):
    """A directory of the node the pod runs on."""

    type: Literal["hostPath"]
    path: AbsolutePath


class NFSVolumeSource(ConfigModel):
    """An NFS export; ``readOnly`` makes every mount of it read-only."""

    type: Literal["nfs"]
    server: str
    server_path: AbsolutePath
    read_only: bool = False


class VolumeAccessMode(StrEnum):
    """Access modes a lab PVC may ask for: shared ones only, since many pods mount it."""

    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"


class PVCResources(ConfigModel):
    """Resources a persistent volume claim requests (``storage: 1Gi``)."""

    requests: dict[str, KubernetesQuantity]

    @model_validator(mode="after")
    def _positive_storage(self) -> PVCResources:
        """Kubernetes refuses a claim for no storage or less, so refuse it while loading."""
        raise_problems(
            [
                (("requests", key), f"must be greater than zero, got {value!r}")
                for key, value in self.requests.items()
                if quantity_sign(value) != 1
            ]
        )
        return self


class PVCVolumeSource(ConfigModel):
    """A persistent volume claim created for the pod that mounts it."""

    type: Literal["persistentVolumeClaim"]
    access_modes: list[VolumeAccessMode]
    storage_class_name: str
    resources: PVCResources
    read_only: bool = False


VolumeSource = Annotated[
    HostPathVolumeSource | NFSVolumeSource | PVCVolumeSource, Field(discriminator="type")
]
"""Where a volume's data comes from, chosen by its ``type``."""


class VolumeConfig(ConfigModel):
    """A volume that labs (or init containers, file servers, fsadmin) may mount."""

    name: KubernetesName
    source: VolumeSource


class VolumeMountConfig(ConfigModel):
    """Where a container mounts a volume."""

    container_path: Annotated[AbsolutePath, AfterValidator(reject_reserved_path)]
    sub_path: str | None = None
    read_only: bool = False
    volume_name: str
