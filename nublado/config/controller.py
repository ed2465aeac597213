"""The whole controller configuration (spec/objects.md section 2.1)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from ._base import ConfigModel, Duration, Problem, raise_problems
from .daemon import DaemonConfig
from .fileserver import FileserverConfig, FSAdminConfig
from .images import ImageFilterPolicy, ImagesConfig
from .lab import LabConfig
from .volumes import ContainerImage

__all__ = [
    "DEFAULT_CONTROLLER_REPOSITORY",
    "DEFAULT_CONTROLLER_TAG",
    "Config",
    "LogLevel",
    "LogProfile",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
"""Python logging level names."""

LogProfile = Literal["production", "development"]
"""``production`` logs JSON, ``development`` logs for people."""

DEFAULT_CONTROLLER_REPOSITORY = "ghcr.io/lsst-sqre/nublado"
"""Repository of the controller image when ``NUBLADO_CONTROLLER_REPOSITORY`` is unset."""

DEFAULT_CONTROLLER_TAG = "11.0.0"
"""Tag of the controller image when ``NUBLADO_CONTROLLER_TAG`` is unset."""


def _default_controller_image() -> ContainerImage:
    return ContainerImage(repository=DEFAULT_CONTROLLER_REPOSITORY, tag=DEFAULT_CONTROLLER_TAG)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _check_path_prefix(prefix: str) -> str:
    """An absolute path other than ``/``, without a trailing slash (routes hang below it)."""
    prefix = prefix.rstrip("/")
    if not prefix.startswith("/"):
        raise ValueError(
            f"must be an absolute URL path below the root, such as /nublado (got {prefix or '/'!r})"
        )
    return prefix


class Config(ConfigModel):
    """Everything the controller, the renderer and the daemon are configured with.

    Load it with `nublado.config.load_config`, which also applies environment
    overrides and reports every problem with its place in the file.
    """

    base_url: Annotated[
        str,
        Field(
            validation_alias="EXTERNAL_INSTANCE_URL",
            description="The site's base URL, absolute http(s) (env EXTERNAL_INSTANCE_URL):"
            " labs' EXTERNAL_INSTANCE_URL, file servers' ingress base URL",
        ),
    ] = "http://127.0.0.1:8080"
    repertoire_base_url: Annotated[
        str | None,
        Field(
            description="Repertoire's base URL (env REPERTOIRE_BASE_URL), for service"
            " discovery; Gafaelfawr is found through it unless gafaelfawrUrl is set"
        ),
    ] = None
    gafaelfawr_url: Annotated[
        str | None,
        Field(description="Gafaelfawr's v1 API base (https://host/auth/api/v1)"),
    ] = None
    """Gafaelfawr's v1 API base (``https://host/auth/api/v1``); unset: found through Repertoire.

    Not an upstream key (upstream always asks Repertoire): DECISIONS.md,
    Platform, lets the URL come from configuration too (env ``GAFAELFAWR_URL``).
    """
    controller_image: ContainerImage = Field(
        default_factory=_default_controller_image,
        description="Image of the standard init containers, file servers and fsadmin; unset:"
        " from env NUBLADO_CONTROLLER_REPOSITORY, NUBLADO_CONTROLLER_TAG and"
        f" NUBLADO_CONTROLLER_PULL_POLICY, else {DEFAULT_CONTROLLER_REPOSITORY}:"
        f"{DEFAULT_CONTROLLER_TAG}",
    )
    log_level: Annotated[
        LogLevel,
        BeforeValidator(_upper),
        Field(description="Level of every logger, libraries' included (any case)"),
    ] = "INFO"
    log_profile: Annotated[
        LogProfile,
        Field(description="production: one JSON object per line; development: for people"),
    ] = "production"
    metadata_path: Annotated[
        Path,
        Field(
            description="Folder of the controller pod's name, namespace and uid files"
            " (downward API); relative to the configuration file's folder"
        ),
    ] = Path("/etc/podinfo")
    metrics: Annotated[
        dict[str, Any],
        Field(description="Upstream's Kafka metrics settings: accepted, not used (see /metrics)"),
    ] = {}
    name: Annotated[str, Field(description="Application name in alerts")] = "Nublado"
    path_prefix: Annotated[
        str,
        AfterValidator(_check_path_prefix),
        Field(description="URL path the REST API is served under"),
    ] = "/nublado"
    slack_webhook: Annotated[
        SecretStr | None,
        Field(
            validation_alias="NUBLADO_SLACK_WEBHOOK",
            description="Slack incoming webhook for alerts (env NUBLADO_SLACK_WEBHOOK);"
            " unset: failures are only logged",
        ),
    ] = None
    template_dirs: Annotated[
        list[Path],
        Field(
            description="Folders of site templates, searched before the built-in ones;"
            " relative to the configuration file's folder"
        ),
    ] = []
    fileserver: FileserverConfig = Field(
        default_factory=FileserverConfig,
        description="Per-user WebDAV file servers (off by default)",
    )
    fsadmin: Annotated[FSAdminConfig, Field(description="The fsadmin pod ({} is fine)")]
    images: Annotated[
        ImagesConfig, Field(description="Which images to list, prepull and recommend")
    ]
    dropdown_menu: ImageFilterPolicy = Field(
        default_factory=ImageFilterPolicy,
        description="Which images the spawner menu shows, by type",
    )
    lab: Annotated[LabConfig, Field(description="How user labs are built")]
    watch_reconnect_timeout: Duration = timedelta(minutes=3)
    daemon: DaemonConfig = Field(
        default_factory=DaemonConfig,
        description="Schedules of the periodic jobs, and which replica runs them",
    )
    """Not an upstream key: the periodic jobs' schedules and leader election (README, Daemon)."""

    @field_validator("base_url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        return url

    @model_validator(mode="after")
    def _check_mounted_volumes(self) -> Self:
        problems: list[Problem] = []
        lab_volumes = {volume.name: index for index, volume in enumerate(self.lab.volumes)}
        if self.fileserver.enabled:
            for index, mount in enumerate(self.fileserver.volume_mounts):
                if mount.volume_name not in lab_volumes:
                    problems.append(
                        (
                            ("fileserver", "volumeMounts", index, "volumeName"),
                            f"Unknown mounted volume {mount.volume_name} in file servers",
                        )
                    )
        fsadmin_volumes = {name: f"lab.volumes[{index}]" for name, index in lab_volumes.items()}
        for index, volume in enumerate(self.fsadmin.extra_volumes):
            if volume.name in fsadmin_volumes:
                problems.append(
                    (
                        ("fsadmin", "extraVolumes", index, "name"),
                        f"volume name {volume.name} is already used by"
                        f" {fsadmin_volumes[volume.name]}",
                    )
                )
            else:
                fsadmin_volumes[volume.name] = f"fsadmin.extraVolumes[{index}]"
        for index, mount in enumerate(self.fsadmin.extra_volume_mounts):
            if mount.volume_name not in fsadmin_volumes:
                problems.append(
                    (
                        ("fsadmin", "extraVolumeMounts", index, "volumeName"),
                        f"Unknown mounted volume {mount.volume_name}"
                        " (not in lab.volumes or fsadmin.extraVolumes)",
                    )
                )
        raise_problems(problems)
        return self
