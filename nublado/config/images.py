"""The ``images`` and ``dropdownMenu`` sections: where lab images come from, which to show.

spec/objects.md sections 2.7 and 2.8, spec/images-tools.md sections 1.9 and 2.1.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from ._base import ConfigModel, Duration

__all__ = [
    "GOOGLE_NAME_PATTERN",
    "GOOGLE_PROJECT_PATTERN",
    "REGISTRY_PATTERN",
    "REPOSITORY_PATTERN",
    "DockerSourceConfig",
    "GARSourceConfig",
    "ImageFilter",
    "ImageFilterPolicy",
    "ImageSourceConfig",
    "ImagesConfig",
    "StaticSourceConfig",
]


# Docker's reference grammar (distribution/reference): a registry is a host
# name or IPv4 address (dot-separated components) or a bracketed IPv6 address,
# with an optional port; a repository is lower-case path components joined by "/".
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_NAME = rf"{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*"
_IPV6 = r"[a-fA-F0-9:.]+"
REGISTRY_PATTERN = rf"^(?:{_HOST_NAME}|\[{_IPV6}\])(?::[0-9]+)?$"
"""A registry host: a host name or IP address, optionally ``:port`` (``localhost:5000``)."""

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
REPOSITORY_PATTERN = rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
"""A repository path within a registry, such as ``library/sketchbook``."""

GOOGLE_NAME_PATTERN = r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"
"""A Google location or Artifact Registry repository ID: lower case, digits and '-'."""

GOOGLE_PROJECT_PATTERN = r"^[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?$"
"""A Google Cloud project ID: up to 30 lower-case letters, digits and '-' (Google wants 6+)."""

_REGISTRY = re.compile(rf"(?:{_HOST_NAME}|\[(?P<ipv6>{_IPV6})\])(?::(?P<port>[0-9]+))?")


def _full_match(pattern: str, problem: str) -> Callable[[str], str]:
    """A validator refusing a string ``pattern`` does not match whole, saying ``problem``."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{problem}: {value!r}")
        return value

    return check


def _check_registry(registry: str) -> str:
    """Refuse what is not a registry host: URLs are built from it and it names credentials.

    Without this, ``user:pw@host`` would put a password into every URL, error
    line and log, and a space or a path would make URLs that go elsewhere.
    """
    match = _REGISTRY.fullmatch(registry)
    if match and match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            match = None
    if match and match["port"] is not None and not 0 < int(match["port"]) <= 65535:
        match = None
    if match:
        return registry
    if "@" in registry:  # user:password@host: say so without repeating the password
        shown = "***@" + registry.rpartition("@")[2]
        raise ValueError(
            f"not a registry host: {shown!r} (credentials go in the Docker credentials file,"
            " not in the registry name)"
        )
    raise ValueError(
        "not a registry host (a host name or IP address, optionally with :port from 1 to"
        f" 65535, such as localhost:5000): {registry!r}"
    )


RegistryHost = Annotated[
    str,
    AfterValidator(_check_registry),
    WithJsonSchema({"type": "string", "pattern": REGISTRY_PATTERN}),
]
"""A Docker registry host, with an optional port."""

RepositoryPath = Annotated[
    str,
    AfterValidator(
        _full_match(
            REPOSITORY_PATTERN,
            "not a Docker repository (lower-case letters and digits, separated by '.', '_',"
            " '__' or dashes, in components joined by '/')",
        )
    ),
    WithJsonSchema({"type": "string", "pattern": REPOSITORY_PATTERN}),
]
"""A Docker repository path (for a Google source, the image name)."""

GoogleName = Annotated[
    str,
    AfterValidator(
        _full_match(
            GOOGLE_NAME_PATTERN,
            "not a Google location or repository name (at most 63 lower-case letters, digits"
            " and '-', starting with a letter, not ending with '-')",
        )
    ),
    WithJsonSchema({"type": "string", "pattern": GOOGLE_NAME_PATTERN}),
]
"""A Google location or Artifact Registry repository ID."""

GoogleProject = Annotated[
    str,
    AfterValidator(
        _full_match(
            GOOGLE_PROJECT_PATTERN,
            "not a Google Cloud project ID (at most 30 lower-case letters, digits and '-',"
            " starting with a letter, not ending with '-')",
        )
    ),
    WithJsonSchema({"type": "string", "pattern": GOOGLE_PROJECT_PATTERN}),
]
"""A Google Cloud project ID."""


class DockerSourceConfig(ConfigModel):
    """Images listed from a Docker Registry v2 API (``https://{registry}/v2/{repository}/``)."""

    type: Literal["docker"]
    registry: Annotated[RegistryHost, Field(description="Registry host")] = "docker.io"
    repository: Annotated[RepositoryPath, Field(description="Image repository in it")]


class GARSourceConfig(ConfigModel):
    """Images listed from a Google Artifact Registry repository."""

    type: Literal["google"]
    location: Annotated[
        GoogleName, Field(description="Region of the registry, as in <location>-docker.pkg.dev")
    ]
    project_id: Annotated[GoogleProject, Field(description="Google Cloud project")]
    repository: Annotated[GoogleName, Field(description="Artifact Registry repository")]
    image: Annotated[RepositoryPath, Field(description="Image name in the repository")]

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


TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
"""A Docker tag, as the registry API accepts it."""


Tag = Annotated[
    str,
    AfterValidator(
        _full_match(
            TAG_PATTERN,
            "not a Docker tag (up to 128 letters, digits, '_', '.' and '-',"
            " not starting with '.' or '-')",
        )
    ),
    WithJsonSchema({"type": "string", "pattern": TAG_PATTERN}),
]
"""A Docker tag name."""

Digest = Annotated[
    str,
    AfterValidator(_full_match(DIGEST_PATTERN, "not an image digest (like sha256:0123abcd)")),
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
    registry: Annotated[RegistryHost, Field(description="Registry host")] = "docker.io"
    repository: Annotated[RepositoryPath, Field(description="Image repository in it")]
    tags: Annotated[
        dict[Tag, Digest],
        Field(description="Tag to digest; tags sharing a digest are aliases of one another"),
    ]


ImageSourceConfig = Annotated[
    DockerSourceConfig | GARSourceConfig | StaticSourceConfig, Field(discriminator="type")
]
"""Where lab images are listed from, chosen by ``type``."""


class ImagesConfig(ConfigModel):
    """Which images to list, prepull and recommend (the prepuller configuration).

    Dumped with field names, durations as float seconds and without the
    credentials path, this is the ``config`` of the prepuller status API.
    """

    source: Annotated[
        ImageSourceConfig, Field(description="Where the images are listed from, by type")
    ]
    refresh_interval: Duration = timedelta(minutes=5)
    prepull_timeout: Duration = timedelta(minutes=10)
    recommended_tag: Annotated[
        str, Field(description="Tag of the recommended image (an alias); prepulled")
    ] = "recommended"
    num_releases: Annotated[int, Field(ge=0, description="Newest releases to prepull")] = 1
    num_weeklies: Annotated[int, Field(ge=0, description="Newest weeklies to prepull")] = 2
    num_dailies: Annotated[int, Field(ge=0, description="Newest dailies to prepull")] = 3
    cycle: Annotated[
        int | None, Field(description="SAL cycle: only images of this cycle are listed")
    ] = None
    pin: Annotated[list[str], Field(description="Tags always prepulled")] = []
    alias_tags: Annotated[
        list[str], Field(description="Tags that name another image (like recommended)")
    ] = []
    docker_credentials_path: Annotated[
        Path,
        Field(exclude=True, description="Registry credentials (.dockerconfigjson) to read"),
    ] = Path("/etc/secrets/.dockerconfigjson")


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

    number: Annotated[
        Annotated[int, Field(ge=0)] | None,
        Field(description="At most this many, newest first; 0: no limit"),
    ] = None
    age: Annotated[
        Duration | None,
        Field(description="Only images dated at most this long ago (undated ones stay)"),
    ] = None
    cutoff_build: Annotated[
        int | None,
        Field(description="Only images of at least this RSP build (images without one stay)"),
    ] = None
    cutoff_date: Annotated[
        Annotated[datetime, BeforeValidator(_date_to_datetime), AfterValidator(_assume_utc)] | None,
        Field(
            description="Only images dated on or after this (YYYY-MM-DD or a time, UTC;"
            " undated ones stay)"
        ),
    ] = None
    cutoff_version: Annotated[
        Annotated[str, AfterValidator(_check_semver)] | None,
        Field(
            description="Only images of at least this version, like 27.0.0 (images without"
            " one stay)"
        ),
    ] = None


class ImageFilterPolicy(ConfigModel):
    """Menu filters per image type (aliases and unknown tags are always shown)."""

    release: ImageFilter = Field(default_factory=ImageFilter, description="Which releases")
    weekly: ImageFilter = Field(default_factory=ImageFilter, description="Which weeklies")
    daily: ImageFilter = Field(default_factory=ImageFilter, description="Which dailies")
    release_candidate: ImageFilter = Field(
        default_factory=ImageFilter, description="Which release candidates"
    )
    experimental: ImageFilter = Field(
        default_factory=ImageFilter, description="Which experimental images"
    )
