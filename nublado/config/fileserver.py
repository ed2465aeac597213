"""The ``fileserver`` and ``fsadmin`` sections (spec/objects.md sections 2.5 and 2.6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Self

from pydantic import ConfigDict, field_validator, model_validator

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

    enabled: bool = False
    path_prefix: str = "/files"
    affinity: Affinity | None = None
    application: str | None = None
    creation_timeout: Duration = timedelta(minutes=2)
    delete_timeout: Duration = timedelta(minutes=1)
    extra_annotations: dict[str, str] = {}
    idle_timeout: Duration = timedelta(hours=1)
    namespace: str = ""
    node_selector: dict[str, str] = {}
    reconcile_interval: Duration = timedelta(hours=1)
    resources: LabResources | None = None
    tolerations: list[Toleration] = []
    volume_mounts: list[VolumeMountConfig] = []

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

    affinity: Affinity | None = None
    extra_annotations: dict[str, str] = {}
    extra_volumes: list[VolumeConfig] = []
    extra_volume_mounts: list[VolumeMountConfig] = []
    mount_prefix: str | None = None
    node_selector: dict[str, str] = {}
    pod_name: KubernetesName = "fsadmin"
    resources: LabResources | None = None
    timeout: Duration = timedelta(minutes=2)
    tolerations: list[Toleration] = []
