"""The ``images`` and ``dropdownMenu`` sections: where lab images come from, which to show.

spec/objects.md sections 2.7 and 2.8, spec/images-tools.md sections 1.9 and 2.1.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from ._base import ConfigModel, Duration

__all__ = [
    "DockerSourceConfig",
    "GARSourceConfig",
    "ImageFilter",
    "ImageFilterPolicy",
    "ImageSourceConfig",
    "ImagesConfig",
    "StaticSourceConfig",
]


class DockerSourceConfig(ConfigModel):
    """Images listed from a Docker Registry v2 API (``https://{registry}/v2/{repository}/``)."""

    type: Literal["docker"]
    registry: str = "docker.io"
    repository: str


class GARSourceConfig(ConfigModel):
    """Images listed from a Google Artifact Registry repository."""

    type: Literal["google"]
    location: str
    project_id: str
    repository: str
    image: str

    @property
    def registry(self) -> str:
        """The Docker registry host of the repository."""
        return f"{self.location}-docker.pkg.dev"

    @property
    def parent(self) -> str:
        """The Artifact Registry resource name of the repository."""
        return (
            f"projects/{self.project_id}/locations/{self.location}/repositories/{self.repository}"
        )

    @property
    def path(self) -> str:
        """The Docker repository path of the image within the registry."""
        return f"{self.project_id}/{self.repository}/{self.image}"


DIGEST_PATTERN = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"
"""An OCI content digest: ``algorithm:encoded``, such as ``sha256:5678``."""

_DIGEST = re.compile(DIGEST_PATTERN)


def _check_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not an image digest (like sha256:0123abcd): {digest!r}")
    return digest


TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
"""A Docker tag, as the registry API accepts it."""

_TAG = re.compile(TAG_PATTERN)


def _check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise ValueError(
            f"not a Docker tag (up to 128 letters, digits, '_', '.' and '-',"
            f" not starting with '.' or '-'): {tag!r}"
        )
    return tag


Tag = Annotated[
    str, AfterValidator(_check_tag), WithJsonSchema({"type": "string", "pattern": TAG_PATTERN})
]
"""A Docker tag name."""

Digest = Annotated[
    str,
    AfterValidator(_check_digest),
    WithJsonSchema({"type": "string", "pattern": DIGEST_PATTERN}),
]
"""An image digest, algorithm included (``sha256:...``)."""


class StaticSourceConfig(ConfigModel):
    """Images listed in the configuration itself, tag by tag with their digests.

    Our extension (upstream has only ``docker`` and ``google``): for sites
    without a reachable registry API, the sandbox and tests. Like a Google
    source it knows every digest up front, so aliases resolve without any
    network call.
    """

    type: Literal["static"]
    registry: str = "docker.io"
    repository: str
    tags: dict[Tag, Digest]
    """Tag name to digest; tags sharing a digest are aliases of one another."""


ImageSourceConfig = Annotated[
    DockerSourceConfig | GARSourceConfig | StaticSourceConfig, Field(discriminator="type")
]
"""Where lab images are listed from, chosen by ``type``."""


class ImagesConfig(ConfigModel):
    """Which images to list, prepull and recommend (the prepuller configuration).

    Dumped with field names, durations as float seconds and without the
    credentials path, this is the ``config`` of the prepuller status API.
    """

    source: ImageSourceConfig
    refresh_interval: Duration = timedelta(minutes=5)
    prepull_timeout: Duration = timedelta(minutes=10)
    recommended_tag: str = "recommended"
    num_releases: Annotated[int, Field(ge=0)] = 1
    num_weeklies: Annotated[int, Field(ge=0)] = 2
    num_dailies: Annotated[int, Field(ge=0)] = 3
    cycle: int | None = None
    pin: list[str] = []
    alias_tags: list[str] = []
    docker_credentials_path: Annotated[Path, Field(exclude=True)] = Path(
        "/etc/secrets/.dockerconfigjson"
    )


_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


def _check_semver(version: str) -> str:
    if not _SEMVER.fullmatch(version):
        raise ValueError(f"not a semantic version (like 27.0.0): {version!r}")
    return version


def _date_to_datetime(value: Any) -> Any:
    """YAML reads an unquoted 2024-01-31 as a date: make it midnight UTC."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _assume_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ImageFilter(ConfigModel):
    """Which images of one type the spawner menu shows; all absent means all shown."""

    number: Annotated[int, Field(ge=0)] | None = None
    age: Duration | None = None
    cutoff_build: int | None = None
    cutoff_date: (
        Annotated[datetime, BeforeValidator(_date_to_datetime), AfterValidator(_assume_utc)] | None
    ) = None
    cutoff_version: Annotated[str, AfterValidator(_check_semver)] | None = None


class ImageFilterPolicy(ConfigModel):
    """Menu filters per image type (aliases and unknown tags are always shown)."""

    release: ImageFilter = Field(default_factory=ImageFilter)
    weekly: ImageFilter = Field(default_factory=ImageFilter)
    daily: ImageFilter = Field(default_factory=ImageFilter)
    release_candidate: ImageFilter = Field(default_factory=ImageFilter)
    experimental: ImageFilter = Field(default_factory=ImageFilter)
