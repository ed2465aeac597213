"""Context builder of the fsadmin set (templates/fsadmin/): a root pod over every filesystem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..models.metadata import ControllerMetadata
from .common import (
    CATEGORY_LABEL,
    ClaimContext,
    VolumeContext,
    argo_annotations,
    claims_for,
    mount,
    tolerations,
    volumes_for,
)

__all__ = ["FSAdminContext", "build_fsadmin_context"]


@dataclass(frozen=True, slots=True)
class FSAdminContext:
    """Everything templates/fsadmin/ needs, under the name ``fsadmin``."""

    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    pod_annotations: dict[str, str]
    image: str
    pull_policy: str
    resources: dict[str, dict[str, str]] | None
    affinity: dict[str, Any] | None
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    volumes: list[VolumeContext]
    volume_mounts: list[dict[str, Any]]
    claims: list[ClaimContext]


def build_fsadmin_context(config: Config, metadata: ControllerMetadata) -> dict[str, Any]:
    """The template context ``{"fsadmin": FSAdminContext}``.

    Every mount is read-write (the point of fsadmin), computed on copies: the
    lab's own mounts keep their configured mode (upstream changed them in place,
    DECISIONS 3). Mounted extra volumes of PVC type get their claim too.
    """
    fsadmin = config.fsadmin
    prefix = fsadmin.mount_prefix or ""
    configured = [*config.lab.volume_mounts, *fsadmin.extra_volume_mounts]
    used = {m.volume_name for m in configured}
    volumes = [*config.lab.volumes, *fsadmin.extra_volumes]
    context = FSAdminContext(
        name=fsadmin.pod_name,
        namespace=metadata.namespace,
        labels={CATEGORY_LABEL: "fsadmin"},
        annotations=argo_annotations(),
        pod_annotations={**argo_annotations(), **fsadmin.extra_annotations},
        image=config.controller_image.reference,
        pull_policy=str(config.controller_image.pull_policy),
        resources=fsadmin.resources.to_kubernetes() if fsadmin.resources else None,
        affinity=fsadmin.affinity.to_kubernetes() if fsadmin.affinity else None,
        node_selector=dict(fsadmin.node_selector),
        tolerations=tolerations(fsadmin.tolerations),
        volumes=volumes_for(volumes, used, fsadmin.pod_name),
        volume_mounts=[mount(m, prefix=prefix, read_only=False) for m in configured],
        claims=claims_for(volumes, used, fsadmin.pod_name),
    )
    return {"fsadmin": context}
