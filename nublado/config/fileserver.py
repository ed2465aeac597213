"""The ``fileserver`` and ``fsadmin`` sections (spec/objects.md sections 2.5 and 2.6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from ._base import (
    ConfigModel,
    Duration,
    KubernetesName,
    LenientConfigModel,
    check_application_label,
    raise_problems,
)
from .lab import LabResources
from .scheduling import Affinity, Toleration
from .volumes import VolumeConfig, VolumeMountConfig

__all__ = ["FSAdminConfig", "FileserverConfig"]

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_DISABLED_KEYS = frozenset({"enabled", "pathPrefix", "path_prefix"})


def _is_enabled(data: dict[str, Any]) -> bool:
    """Read ``enabled`` the way pydantic's bool does, before validation."""
    value = data.get("enabled", False)
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return value is True or (type(value) is int and value == 1)


def _allow_other_keys(schema: dict[str, Any]) -> None:
    """Unknown keys are errors only when enabled, which a plain schema cannot say."""
    schema.pop("additionalProperties", None)


class FileserverConfig(ConfigModel):
    """Per-user WebDAV file servers; everything but ``pathPrefix`` is ignored when disabled.

    One class for both states (upstream had two): when ``enabled`` is false the
    other fields keep their defaults, and the keys given for them are ignored
    (the loader warns about each). When enabled, unknown keys are errors and
    ``namespace`` is required.
    """

    model_config = ConfigDict(json_schema_extra=_allow_other_keys)

    enabled: Annotated[bool, Field(description="Serve per-user WebDAV file servers")] = False
    path_prefix: Annotated[
        str,
        Field(
            description="URL path of the file servers: a GET on it makes the caller's, served"
            " at <base URL><pathPrefix>/<user>"
        ),
    ] = "/files"
    affinity: Annotated[Affinity | None, Field(description="Affinity of file-server pods")] = None
    application: Annotated[
        str | None,
        Field(
            description="Argo CD application: label argocd.argoproj.io/instance on file-server"
            " objects"
        ),
    ] = None
    creation_timeout: Duration = timedelta(minutes=2)
    delete_timeout: Duration = timedelta(minutes=1)
    extra_annotations: Annotated[
        dict[str, str], Field(description="Annotations added to the file-server Job and its pod")
    ] = {}
    idle_timeout: Duration = timedelta(hours=1)
    namespace: Annotated[
        str, Field(description="Namespace of the file servers; required when enabled")
    ] = ""
    node_selector: Annotated[
        dict[str, str], Field(description="Node labels file-server pods need")
    ] = {}
    reconcile_interval: Duration = timedelta(hours=1)
    resources: Annotated[
        LabResources | None, Field(description="Resources of the file-server container")
    ] = None
    tolerations: Annotated[
        list[Toleration], Field(description="Tolerations of file-server pods")
    ] = []
    volume_mounts: Annotated[
        list[VolumeMountConfig],
        Field(description="Which lab volumes file servers serve, and where they mount them"),
    ] = []

    @classmethod
    def accepted_keys(cls, raw: dict[str, Any]) -> set[str] | None:
        """A disabled file server reads only ``enabled`` and ``pathPrefix``."""
        return None if _is_enabled(raw) else {"enabled", "path_prefix"}

    @model_validator(mode="before")
    @classmethod
    def _ignore_keys_when_disabled(cls, data: Any) -> Any:
        if isinstance(data, dict) and not _is_enabled(data):
            return {key: value for key, value in data.items() if key in _DISABLED_KEYS}
        return data

    @field_validator("application")
    @classmethod
    def _check_application(cls, application: str | None) -> str | None:
        return check_application_label(application)

    @field_validator("path_prefix")
    @classmethod
    def _normalise_path_prefix(cls, prefix: str) -> str:
        # Fixed (spec/DECISIONS.md): "/files/" used to give "/files//<user>";
        # "/" is the root, so the user's path is "/<user>".
        if not prefix.startswith("/"):
            raise ValueError(f"must start with /: {prefix!r}")
        return prefix.rstrip("/")

    @model_validator(mode="after")
    def _check_namespace(self) -> Self:
        if self.enabled and not self.namespace:
            raise_problems([(("namespace",), "required when the file server is enabled")])
        return self


class FSAdminConfig(LenientConfigModel):
    """The filesystem-administration pod that mounts every lab volume (unknown keys ignored)."""

    affinity: Annotated[Affinity | None, Field(description="Affinity of the fsadmin pod")] = None
    extra_annotations: Annotated[
        dict[str, str], Field(description="Annotations added to the fsadmin pod")
    ] = {}
    extra_volumes: Annotated[
        list[VolumeConfig], Field(description="Volumes of extraVolumeMounts besides lab.volumes")
    ] = []
    extra_volume_mounts: Annotated[
        list[VolumeMountConfig],
        Field(description="Mounts after lab.volumeMounts; fsadmin mounts all read-write"),
    ] = []
    mount_prefix: Annotated[str | None, Field(description="Prefix of every fsadmin mount path")] = (
        None
    )
    node_selector: Annotated[
        dict[str, str], Field(description="Node labels the fsadmin pod needs")
    ] = {}
    pod_name: Annotated[
        KubernetesName, Field(description="Name of the fsadmin pod, in the controller's namespace")
    ] = "fsadmin"
    resources: Annotated[
        LabResources | None, Field(description="Resources of the fsadmin container")
    ] = None
    timeout: Duration = timedelta(minutes=2)
    tolerations: Annotated[
        list[Toleration], Field(description="Tolerations of the fsadmin pod")
    ] = []
