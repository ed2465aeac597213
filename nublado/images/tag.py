"""RSP image tags: the grammar that gives a tag its type, version and display name.

Menus, prepull lists and prune policies all reason about tags (`w_2077_43`,
`r28_0_1_rsp7-amd64`, `recommended`), so one parser turns a tag string into an
immutable `RSPImageTag` whose fields, display name and ordering reproduce the
upstream Nublado controller exactly (images-tools.md sections 1.1 to 1.8).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

__all__ = [
    "DOCKER_DEFAULT_TAG",
    "RSPImageTag",
    "RSPImageType",
    "SemanticVersion",
]

DOCKER_DEFAULT_TAG = "latest"
"""Tag Docker assumes when none is given; an empty tag string parses as this."""


class RSPImageType(StrEnum):
    """Kinds of RSP image tag, declared in priority (menu and listing) order."""

    ALIAS = "Alias"
    RELEASE = "Release"
    WEEKLY = "Weekly"
    DAILY = "Daily"
    CANDIDATE = "Release Candidate"
    EXPERIMENTAL = "Experimental"
    UNKNOWN = "Unknown"

    @property
    def priority(self) -> int:
        """Position in priority order (0 first), the outer sort key of every listing."""
        return _TYPE_PRIORITY[self]


_TYPE_PRIORITY = {image_type: index for index, image_type in enumerate(RSPImageType)}


def _compare_prerelease(left: str | None, right: str | None) -> int:
    """Compare semver prerelease strings: a release sorts above any of its prereleases."""
    if left == right:
        return 0
    if left is None:
        return 1
    if right is None:
        return -1
    left_parts = left.split(".")
    right_parts = right.split(".")
    for left_part, right_part in zip(left_parts, right_parts, strict=False):
        if left_part == right_part:
            continue
        left_numeric = left_part.isdigit()
        right_numeric = right_part.isdigit()
        if left_numeric and right_numeric:
            return -1 if int(left_part) < int(right_part) else 1
        if left_numeric != right_numeric:
            # Numeric identifiers have lower precedence than alphanumeric ones.
            return -1 if left_numeric else 1
        return -1 if left_part < right_part else 1
    return _sign(len(left_parts) - len(right_parts))


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


@dataclass(frozen=True, slots=True)
class SemanticVersion:
    """Version of a versioned tag, compared by semver rules (`rc10` sorts between `rc1` and `rc2`).

    Weekly tags map to (year, week, 0) and daily tags to (year, month, day), so
    one comparison orders every versioned type.
    """

    major: int
    minor: int
    patch: int
    prerelease: str | None = None

    def compare(self, other: SemanticVersion) -> int:
        """Return -1, 0 or 1 as this version sorts below, equal to or above ``other``."""
        left = (self.major, self.minor, self.patch)
        right = (other.major, other.minor, other.patch)
        if left != right:
            return -1 if left < right else 1
        return _compare_prerelease(self.prerelease, other.prerelease)

    def to_dict(self) -> dict[str, Any]:
        """Serialize as upstream does; the semver build part is never used by RSP tags."""
        return {
            "major": self.major,
            "minor": self.minor,
            "patch": self.patch,
            "prerelease": self.prerelease,
            "build": None,
        }

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core


# Optional suffixes of versioned tags, in the only order they may appear. The
# extra part is lazy, so a trailing "-<lowercase alnum>" always becomes the
# architecture when it can.
_SUFFIX = (
    r"(?:_c(?P<cycle>\d+)\.(?P<cycle_build>\d+))?"
    r"(?:_rsp(?P<build>\d+))?"
    r"(?:_(?P<extra>.+?))?"
    r"(?:-(?P<arch>[a-z0-9]+))?"
)
# Digits are ASCII only; "." never matches a newline, so a tag with one is UNKNOWN.
_CANDIDATE = re.compile(
    r"r(?P<major>\d+)_(?P<minor>\d+)_(?P<patch>\d+)_(?P<pre>rc\d+)" + _SUFFIX, re.ASCII
)
_RELEASE = re.compile(r"r(?P<major>\d+)_(?P<minor>\d+)_(?P<patch>\d+)" + _SUFFIX, re.ASCII)
_LEGACY_RELEASE = re.compile(r"r(?P<major>\d\d)(?P<minor>\d)", re.ASCII)
_WEEKLY = re.compile(r"w_(?P<year>\d+)_(?P<week>\d+)" + _SUFFIX, re.ASCII)
_DAILY = re.compile(r"d_(?P<year>\d+)_(?P<month>\d+)_(?P<day>\d+)" + _SUFFIX, re.ASCII)
_EXPERIMENTAL = re.compile(r"exp_(?P<rest>.+)", re.ASCII)
_UNKNOWN_WITH_CYCLE = re.compile(
    r"(?P<base>.*?)_c(?P<cycle>\d+)(?:-(?P<arch>[a-z0-9]+))?", re.ASCII
)
_UNKNOWN = re.compile(r"(?P<base>.*?)(?:-(?P<arch>[a-z0-9]+))?", re.ASCII)


def _optional_int(value: str | None) -> int | None:
    return int(value) if value else None


def _compare_optional(left: Any, right: Any, *, none_highest: bool = False) -> int:
    """Compare two optional values; None sorts lowest unless ``none_highest``."""
    if left == right:
        return 0
    if left is None:
        return 1 if none_highest else -1
    if right is None:
        return -1 if none_highest else 1
    return -1 if left < right else 1


@dataclass(frozen=True, slots=True, eq=False)
class RSPImageTag:
    """A parsed RSP image tag: its type, version, cycle, build, architecture and display name.

    Tags are comparable only with tags of the same type (ordering across types
    raises TypeError, equality is false). Build instances with `from_str` or
    `alias`; the constructor takes already-derived fields.
    """

    tag: str
    image_type: RSPImageType
    display_name: str
    version: SemanticVersion | None = None
    semantic: bool = False
    base: str | None = None
    cycle: int | None = None
    cycle_build: int | None = None
    build: int | None = None
    architecture: str | None = None
    extra: str | None = None
    date: datetime | None = None

    @classmethod
    def from_str(cls, tag: str) -> RSPImageTag:
        """Parse a tag by the RSP grammar; an unrecognized tag is UNKNOWN, never an error."""
        return _parse(tag or DOCKER_DEFAULT_TAG)

    @classmethod
    def alias(cls, tag: str) -> RSPImageTag:
        """Parse a tag declared to be an alias (the recommended tag or a configured alias tag)."""
        return _parse_alias(tag or DOCKER_DEFAULT_TAG)

    @property
    def is_versioned(self) -> bool:
        """Whether the tag carries a version (so it sorts by version rather than by base)."""
        return self.version is not None

    def compare(self, other: RSPImageTag) -> int:
        """Return -1, 0 or 1 as this tag sorts below, equal to or above ``other`` (same type only).

        The key is upstream's (version or base, cycle, cycle build, RSP build,
        extra, architecture with no architecture highest), then the tag string,
        so that equal tags always have equal hashes.
        """
        if self.image_type is not other.image_type:
            raise TypeError(
                f"Cannot compare {self.image_type.value} tag {self.tag!r}"
                f" with {other.image_type.value} tag {other.tag!r}"
            )
        if self.version is None or other.version is None:
            result = _compare_optional(self.base, other.base)
        else:
            result = self.version.compare(other.version)
        return (
            result
            or _compare_optional(self.cycle, other.cycle)
            or _compare_optional(self.cycle_build, other.cycle_build)
            or _compare_optional(self.build, other.build)
            or _compare_optional(self.extra, other.extra)
            or _compare_optional(self.architecture, other.architecture, none_highest=True)
            or _compare_optional(self.tag, other.tag)
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize in the upstream test-fixture form (dates without zone, as local time)."""
        return {
            "tag": self.tag,
            "image_type": self.image_type.value,
            "display_name": self.display_name,
            "version": self.version.to_dict() if self.version else None,
            "semantic": self.semantic,
            "base": self.base,
            "cycle": self.cycle,
            "cycle_build": self.cycle_build,
            "build": self.build,
            "architecture": self.architecture,
            "extra": self.extra,
            "date": _format_date(self.date) if self.date else None,
        }

    def __str__(self) -> str:
        return self.tag

    def __hash__(self) -> int:
        return hash(self.tag)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RSPImageTag):
            return NotImplemented
        return self.image_type is other.image_type and self.compare(other) == 0

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, RSPImageTag):
            return NotImplemented
        return self.compare(other) < 0

    def __le__(self, other: object) -> bool:
        if not isinstance(other, RSPImageTag):
            return NotImplemented
        return self.compare(other) <= 0

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, RSPImageTag):
            return NotImplemented
        return self.compare(other) > 0

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, RSPImageTag):
            return NotImplemented
        return self.compare(other) >= 0


def _format_date(value: datetime) -> str:
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text


def _suffix_display(match: re.Match[str]) -> str:
    """Display text of the optional cycle, RSP build, extra and architecture suffixes."""
    text = ""
    if match["cycle"]:
        text += f" (SAL Cycle {match['cycle']}, Build {match['cycle_build']})"
    if match["build"]:
        text += f" (RSP Build {match['build']})"
    if match["extra"]:
        text += f" [{match['extra']}]"
    if match["arch"]:
        text += f" [{match['arch']}]"
    return text


def _versioned(
    tag: str,
    image_type: RSPImageType,
    match: re.Match[str],
    version: SemanticVersion,
    label: str,
    when: datetime | None,
) -> RSPImageTag:
    """Build a versioned tag from a match of one of the versioned productions."""
    return RSPImageTag(
        tag=tag,
        image_type=image_type,
        display_name=f"{image_type.value} {label}{_suffix_display(match)}",
        version=version,
        semantic=image_type in (RSPImageType.RELEASE, RSPImageType.CANDIDATE),
        cycle=_optional_int(match["cycle"]),
        cycle_build=_optional_int(match["cycle_build"]),
        build=_optional_int(match["build"]),
        architecture=match["arch"],
        extra=match["extra"],
        date=when,
    )


def _parse_release(
    tag: str, match: re.Match[str], image_type: RSPImageType = RSPImageType.RELEASE
) -> RSPImageTag:
    groups = match.groupdict()
    version = SemanticVersion(
        int(match["major"]), int(match["minor"]), int(match["patch"]), groups.get("pre")
    )
    return _versioned(tag, image_type, match, version, f"r{version}", None)


def _parse_candidate(tag: str, match: re.Match[str]) -> RSPImageTag:
    return _parse_release(tag, match, RSPImageType.CANDIDATE)


def _parse_weekly(tag: str, match: re.Match[str]) -> RSPImageTag:
    year, week = int(match["year"]), int(match["week"])
    thursday = date.fromisocalendar(year, week, 4)  # ValueError for an invalid week
    when = datetime(thursday.year, thursday.month, thursday.day, tzinfo=UTC)
    version = SemanticVersion(year, week, 0)
    label = f"{match['year']}_{match['week']}"
    return _versioned(tag, RSPImageType.WEEKLY, match, version, label, when)


def _parse_daily(tag: str, match: re.Match[str]) -> RSPImageTag:
    year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
    when = datetime(year, month, day, tzinfo=UTC)  # ValueError for an invalid date
    version = SemanticVersion(year, month, day)
    label = f"{match['year']}_{match['month']}_{match['day']}"
    return _versioned(tag, RSPImageType.DAILY, match, version, label, when)


@lru_cache(maxsize=8192)
def _parse(tag: str) -> RSPImageTag:
    """Try each production in order; the first that matches and yields valid fields wins."""
    for pattern, build in _PRODUCTIONS:
        match = pattern.fullmatch(tag)
        if match:
            try:
                return build(tag, match)
            except ValueError:
                continue  # An impossible date: fall through to the next production.
    return _parse_unknown(tag)


def _parse_legacy_release(tag: str, match: re.Match[str]) -> RSPImageTag:
    version = SemanticVersion(int(match["major"]), int(match["minor"]), 0)
    return RSPImageTag(
        tag=tag,
        image_type=RSPImageType.RELEASE,
        display_name=f"Release r{version}",
        version=version,
        semantic=True,
    )


def _parse_experimental(tag: str, match: re.Match[str]) -> RSPImageTag:
    inner = _parse(match["rest"])
    return replace(
        inner,
        tag=tag,
        image_type=RSPImageType.EXPERIMENTAL,
        display_name=f"Experimental {inner.display_name}",
    )


def _parse_unknown(tag: str) -> RSPImageTag:
    return _parse_named(tag, RSPImageType.UNKNOWN, lambda base: base)


_PRODUCTIONS: tuple[tuple[re.Pattern[str], Callable[[str, re.Match[str]], RSPImageTag]], ...] = (
    (_CANDIDATE, _parse_candidate),
    (_RELEASE, _parse_release),
    (_LEGACY_RELEASE, _parse_legacy_release),
    (_WEEKLY, _parse_weekly),
    (_DAILY, _parse_daily),
    (_EXPERIMENTAL, _parse_experimental),
)
"""The tag grammar's productions in the order they are tried (the candidate rule first)."""


@lru_cache(maxsize=1024)
def _parse_alias(tag: str) -> RSPImageTag:
    return _parse_named(tag, RSPImageType.ALIAS, lambda base: base.replace("_", " ").title())


def _parse_named(tag: str, image_type: RSPImageType, display: Callable[[str], str]) -> RSPImageTag:
    """A tag outside the versioned grammar: a name, an optional cycle and architecture."""
    match = _UNKNOWN_WITH_CYCLE.fullmatch(tag) or _UNKNOWN.fullmatch(tag)
    if not match:
        return RSPImageTag(tag=tag, image_type=image_type, display_name=tag)
    cycle = match.groupdict().get("cycle")
    display_name = display(match["base"])
    if cycle:
        display_name += f" (SAL Cycle {cycle})"
    if match["arch"]:
        display_name += f" [{match['arch']}]"
    return RSPImageTag(
        tag=tag,
        image_type=image_type,
        display_name=display_name,
        base=match["base"],
        cycle=_optional_int(cycle),
        architecture=match["arch"],
    )
