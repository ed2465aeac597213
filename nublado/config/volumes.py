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

    repository: Annotated[
        ImageRepository, Field(description="Image repository, registry host included")
    ]
    tag: Annotated[ImageTag, Field(description="Image tag")]
    pull_policy: Annotated[PullPolicy, Field(description="Kubernetes imagePullPolicy")] = (
        PullPolicy.IF_NOT_PRESENT
    )

    @property
    def reference(self) -> str:
        """The Docker reference ``repository:tag``."""
        return f"{self.repository}:{self.tag}"


class HostPathVolumeSource(ConfigModel):
    """A directory of the node the pod runs on."""

    type: Literal["hostPath"]
    path: Annotated[AbsolutePath, Field(description="Folder of the node")]


class NFSVolumeSource(ConfigModel):
    """An NFS export; ``readOnly`` makes every mount of it read-only."""

    type: Literal["nfs"]
    server: Annotated[str, Field(description="NFS server host")]
    server_path: Annotated[AbsolutePath, Field(description="Exported path on the server")]
    read_only: Annotated[bool, Field(description="Make every mount of the volume read-only")] = (
        False
    )


class VolumeAccessMode(StrEnum):
    """Access modes a lab PVC may ask for: shared ones only, since many pods mount it."""

    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"


class PVCResources(ConfigModel):
    """Resources a persistent volume claim requests (``storage: 1Gi``)."""

    requests: Annotated[
        dict[str, KubernetesQuantity],
        Field(description="Requested resources, such as storage: 1Gi"),
    ]

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
    access_modes: Annotated[
        list[VolumeAccessMode], Field(description="Access modes of the claim (shared modes only)")
    ]
    storage_class_name: Annotated[str, Field(description="Storage class of the claim")]
    resources: Annotated[PVCResources, Field(description="Resources the claim requests")]
    read_only: Annotated[bool, Field(description="Mount the claim read-only")] = False


VolumeSource = Annotated[
    HostPathVolumeSource | NFSVolumeSource | PVCVolumeSource, Field(discriminator="type")
]
"""Where a volume's data comes from, chosen by its ``type``."""


class VolumeConfig(ConfigModel):
    """A volume that labs (or init containers, file servers, fsadmin) may mount."""

    name: Annotated[
        KubernetesName, Field(description="Volume name, as mounts name it in volumeName")
    ]
    source: Annotated[
        VolumeSource,
        Field(description="Where the data is, by type: hostPath, nfs or persistentVolumeClaim"),
    ]


class VolumeMountConfig(ConfigModel):
    """Where a container mounts a volume."""

    container_path: Annotated[
        AbsolutePath,
        AfterValidator(reject_reserved_path),
        Field(description="Absolute path in the container"),
    ]
    sub_path: Annotated[
        str | None, Field(description="Path inside the volume to mount instead of its root")
    ] = None
    read_only: Annotated[bool, Field(description="Mount read-only")] = False
    volume_name: Annotated[str, Field(description="The volume to mount (its name)")]
