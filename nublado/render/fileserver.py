"""Context builder of the file-server set (templates/fileserver/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import Config
from ..errors import InputError
from ..models.user import UserInfo
from .common import (
    CATEGORY_LABEL,
    USER_LABEL,
    ClaimContext,
    VolumeContext,
    argo_annotations,
    argo_labels,
    claims_for,
    mount,
    tolerations,
    volumes_for,
)

__all__ = ["FILESERVER_PORT", "FileserverContext", "build_fileserver_context"]

FILESERVER_PORT = 8000
MOUNT_ROOT = "/mnt"


@dataclass(frozen=True, slots=True)
class FileserverContext:
    """Everything templates/fileserver/ needs, under the name ``fileserver``."""

    name: str
    namespace: str
    username: str
    uid: int
    gid: int
    labels: dict[str, str]
    selector: dict[str, str]
    annotations: dict[str, str]
    job_annotations: dict[str, str]
    template_annotations: dict[str, str]
    base_url: str
    host: str
    path: str
    port: int
    timeout: str
    image: str
    pull_policy: str
    resources: dict[str, dict[str, str]] | None
    affinity: dict[str, Any] | None
    node_selector: dict[str, str]
    supplemental_groups: list[int]
    tolerations: list[dict[str, Any]]
    volumes: list[VolumeContext]
    volume_mounts: list[dict[str, Any]]
    claims: list[ClaimContext]


def build_fileserver_context(config: Config, user: UserInfo) -> dict[str, Any]:
    """The template context ``{"fileserver": FileserverContext}`` for one user."""
    fileserver = config.fileserver
    if not fileserver.enabled:
        raise InputError("fileserver: file servers are not enabled in this configuration")
    username = user.username
    if not user.uid or not user.gid or user.uid < 0 or user.gid < 0:
        raise InputError(
            f"user {username} has no uid or gid: file servers need both, positive (not 0 or"
            " negative)"
        )
    name = f"{username}-fs"
    selector = {CATEGORY_LABEL: "fileserver", USER_LABEL: username}
    used = {m.volume_name for m in fileserver.volume_mounts}
    host = (urlsplit(config.base_url).hostname or "").lower()
    context = FileserverContext(
        name=name,
        namespace=fileserver.namespace,
        username=username,
        uid=user.uid,
        gid=user.gid,
        labels=argo_labels(selector, fileserver.application),
        selector=selector,
        annotations=argo_annotations(),
        job_annotations={**argo_annotations(), **fileserver.extra_annotations},
        template_annotations=dict(fileserver.extra_annotations),
        base_url=config.base_url,
        host=host,
        path=f"{fileserver.path_prefix}/{username}",
        port=FILESERVER_PORT,
        timeout=str(int(fileserver.idle_timeout.total_seconds())),
        image=config.controller_image.reference,
        pull_policy=str(config.controller_image.pull_policy),
        resources=fileserver.resources.to_kubernetes() if fileserver.resources else None,
        affinity=fileserver.affinity.to_kubernetes() if fileserver.affinity else None,
        node_selector=dict(fileserver.node_selector),
        supplemental_groups=user.supplemental_groups,
        tolerations=tolerations(fileserver.tolerations),
        volumes=volumes_for(config.lab.volumes, used, name),
        volume_mounts=[mount(m, prefix=MOUNT_ROOT) for m in fileserver.volume_mounts],
        claims=claims_for(config.lab.volumes, used, name),
    )
    return {"fileserver": context}
