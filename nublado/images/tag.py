"""RSP image tags: the grammar that gives a tag its type, version and display name.

Menus, prepull lists and prune policies all reason about tags (`w_2077_43`,
`r28_0_1_rsp7-amd64`, `recommended`), so one parser turns a tag string into an
immutable `RSPImageTag` whose fields, display name and ordering reproduce the
upstream Nublado controller exactly (images-tools.md sections 1.1 to 1.8).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "DOCKER_DEFAULT_TAG",
    "RSPImageTag",
    "RSPImageType",
    "SemanticVersion",
    "clear_parse_caches",
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


@lru_cache(maxsize=256)
def _prerelease_key(prerelease: str | None) -> tuple[Any, ...]:
    """Sort key of a semver prerelease: none sorts highest; numeric identifiers below others.

    Cached because a registry holds only a handful of distinct prereleases (``rc1``..``rcN``).
    """
    if prerelease is None:
        return (1,)
    parts = [(0, int(part)) if part.isdigit() else (1, part) for part in prerelease.split(".")]
    return (0, *parts)


class SemanticVersion(NamedTuple):
    """Version of a versioned tag, compared by semver rules (`rc10` sorts between `rc1` and `rc2`).

    Weekly tags map to (year, week, 0) and daily tags to (year, month, day), so
    one comparison orders every versioned type. A named tuple rather than a
    frozen dataclass because thousands are built per registry refresh and a
    tuple is built five times faster; ordering operators follow semver, not
    tuple order.
    """

    major: int
    minor: int
    patch: int
    prerelease: str | None = None

    @property
    def sort_key(self) -> tuple[Any, ...]:
        """A key whose natural order is semver precedence."""
        return (self.major, self.minor, self.patch, _prerelease_key(self.prerelease))

    def compare(self, other: SemanticVersion) -> int:
        """Return -1, 0 or 1 as this version sorts below, equal to or above ``other``."""
        left, right = self.sort_key, other.sort_key
        return (left > right) - (left < right)

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

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self.sort_key < other.sort_key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self.sort_key <= other.sort_key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self.sort_key > other.sort_key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self.sort_key >= other.sort_key


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

_NO_VERSION: tuple[Any, ...] = ()
_ABSENT_LOWEST = (0,)
_ABSENT_HIGHEST = (1,)


class RSPImageTag(NamedTuple):
    """A parsed RSP image tag: its type, version, cycle, build, architecture and display name.

    Tags are comparable only with tags of the same type (ordering across types
    raises TypeError, equality is false). Build instances with `from_str` or
    `alias`; the constructor takes already-derived fields. A named tuple
    rather than a frozen dataclass for the speed of building tens of thousands
    per refresh; equality, hashing and ordering are the tag's own, not the
    tuple's.
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
    order: tuple[Any, ...] | None = None
    """The sort key, precomputed by the parser (sorting a registry then costs no Python call
    per comparison). Derived from the other fields: leave it None when building or
    replacing fields by hand, and `sort_key` computes it."""

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

    @property
    def sort_key(self) -> tuple[Any, ...]:
        """Key of the order among tags of one type, ascending; sorting by it is `compare`'s order.

        Upstream's key is (version or base, cycle, cycle build, RSP build,
        extra, architecture with none highest); the tag string breaks ties so
        that equal tags always have equal hashes. Upstream compares bases when
        either tag has no version: versioned tags have no base, so they sort
        below unversioned ones of their type (only experimental tags mix
        both), and two versioned tags go on to compare versions.
        """
        if self.order is not None:
            return self.order
        version = self.version
        base = self.base
        cycle, cycle_build, build = self.cycle, self.cycle_build, self.build
        arch = self.architecture
        return (
            _ABSENT_LOWEST if base is None else (1, base),
            _NO_VERSION if version is None else version.sort_key,
            -1 if cycle is None else cycle,
            -1 if cycle_build is None else cycle_build,
            -1 if build is None else build,
            _ABSENT_LOWEST if self.extra is None else (1, self.extra),
            _ABSENT_HIGHEST if arch is None else (0, arch),
            self.tag,
        )

    def compare(self, other: RSPImageTag) -> int:
        """Return -1, 0 or 1 as this tag sorts below, equal to or above ``other``, of its type."""
        if self.image_type is not other.image_type:
            raise TypeError(
                f"Cannot compare {self.image_type.value} tag {self.tag!r}"
                f" with {other.image_type.value} tag {other.tag!r}"
            )
        left, right = self.sort_key, other.sort_key
        return (left > right) - (left < right)

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

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, RSPImageTag):
            return NotImplemented
        return not self == other

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


# Parsing is on the hot path of every registry refresh (tens of thousands of
# tags), so the builders below take the match's groups as a tuple and build the
# display name from plain strings: named-group lookups, enum ``.value`` and
# ``dataclasses.replace`` cost more than the regular expressions themselves.

# Enum members bound once: class attribute lookup on an enum is slow on the hot path.
_ALIAS = RSPImageType.ALIAS
_RELEASE_TYPE = RSPImageType.RELEASE
_WEEKLY_TYPE = RSPImageType.WEEKLY
_DAILY_TYPE = RSPImageType.DAILY
_CANDIDATE_TYPE = RSPImageType.CANDIDATE
_EXPERIMENTAL_TYPE = RSPImageType.EXPERIMENTAL
_UNKNOWN_TYPE = RSPImageType.UNKNOWN

_Suffix = tuple[str | None, str | None, str | None, str | None, str | None]
"""Groups of the optional suffixes, in order: cycle, cycle build, RSP build, extra, architecture."""


def _versioned(
    tag: str, image_type: RSPImageType, semantic: bool, head: _Head, suffix: _Suffix
) -> RSPImageTag:
    """Build a versioned tag from its head (see `_Head`) and the groups of its suffixes."""
    label, version, when, version_key = head
    cycle_text, cycle_build_text, build_text, extra, arch = suffix
    cycle = cycle_build = build = None
    if cycle_text:
        cycle, cycle_build = int(cycle_text), int(cycle_build_text or 0)
        label += f" (SAL Cycle {cycle_text}, Build {cycle_build_text})"
    if build_text:
        build = int(build_text)
        label += f" (RSP Build {build_text})"
    if extra:
        label += f" [{extra}]"
    if arch:
        label += f" [{arch}]"
    order = (
        _ABSENT_LOWEST,
        version_key,
        -1 if cycle is None else cycle,
        -1 if cycle_build is None else cycle_build,
        -1 if build is None else build,
        _ABSENT_LOWEST if extra is None else (1, extra),
        _ABSENT_HIGHEST if arch is None else (0, arch),
        tag,
    )
    return _new_tag(
        (
            tag,
            image_type,
            label,
            version,
            semantic,
            None,
            cycle,
            cycle_build,
            build,
            arch,
            extra,
            when,
            order,
        )
    )


def _new_tag(fields: tuple[Any, ...]) -> RSPImageTag:
    """Build a tag from all its fields in order, skipping the named tuple's Python ``__new__``."""
    return tuple.__new__(RSPImageTag, fields)


_Head = tuple[str, SemanticVersion, datetime | None, tuple[Any, ...]]
"""What a versioned tag's leading numbers give: display label, version, date, version sort key.

Cached per distinct head: a registry has each release, weekly and daily in
several variants (architectures, cycles, RSP builds), and building a version
and a date costs more than matching the tag.
"""


@lru_cache(maxsize=4096)
def _release_head(major: str, minor: str, patch: str, prerelease: str | None) -> _Head:
    version = SemanticVersion(int(major), int(minor), int(patch), prerelease)
    kind = "Release Candidate" if prerelease else "Release"
    return f"{kind} r{version}", version, None, version.sort_key


@lru_cache(maxsize=4096)
def _weekly_head(year: str, week: str) -> _Head:
    thursday = date.fromisocalendar(int(year), int(week), 4)  # ValueError for an invalid week
    when = datetime(thursday.year, thursday.month, thursday.day, 0, 0, 0, 0, UTC)
    version = SemanticVersion(int(year), int(week), 0)
    return f"Weekly {year}_{week}", version, when, version.sort_key


@lru_cache(maxsize=4096)
def _daily_head(year: str, month: str, day: str) -> _Head:
    version = SemanticVersion(int(year), int(month), int(day))
    when = datetime(version.major, version.minor, version.patch, 0, 0, 0, 0, UTC)  # ValueError
    return f"Daily {year}_{month}_{day}", version, when, version.sort_key


def _parse_candidate(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    head = _release_head(groups[0], groups[1], groups[2], groups[3])
    return _versioned(tag, _CANDIDATE_TYPE, True, head, groups[4:])


def _parse_release(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    head = _release_head(groups[0], groups[1], groups[2], None)
    return _versioned(tag, _RELEASE_TYPE, True, head, groups[3:])


def _parse_legacy_release(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    version = SemanticVersion(int(groups[0]), int(groups[1]), 0)
    return RSPImageTag(tag, _RELEASE_TYPE, f"Release r{version}", version, True)


def _parse_weekly(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    return _versioned(tag, _WEEKLY_TYPE, False, _weekly_head(groups[0], groups[1]), groups[2:])


def _parse_daily(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    head = _daily_head(groups[0], groups[1], groups[2])
    return _versioned(tag, _DAILY_TYPE, False, head, groups[3:])


def _parse_experimental(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    """Every field of the inner tag, under the experimental type and display prefix."""
    inner = _parse(groups[0])
    return RSPImageTag(
        tag,
        _EXPERIMENTAL_TYPE,
        "Experimental " + inner.display_name,
        inner.version,
        inner.semantic,
        inner.base,
        inner.cycle,
        inner.cycle_build,
        inner.build,
        inner.architecture,
        inner.extra,
        inner.date,
        (*inner.sort_key[:-1], tag),
    )


_Production = tuple[re.Pattern[str], Callable[[str, tuple[Any, ...]], RSPImageTag]]

_PRODUCTIONS: tuple[_Production, ...] = (
    (_CANDIDATE, _parse_candidate),
    (_RELEASE, _parse_release),
    (_LEGACY_RELEASE, _parse_legacy_release),
    (_WEEKLY, _parse_weekly),
    (_DAILY, _parse_daily),
    (_EXPERIMENTAL, _parse_experimental),
)
"""The tag grammar's productions in the order they are tried (the candidate rule first)."""

_BY_FIRST_CHARACTER: dict[str, tuple[_Production, ...]] = {}
for _production in _PRODUCTIONS:
    _first = _production[0].pattern[0]
    _BY_FIRST_CHARACTER[_first] = (*_BY_FIRST_CHARACTER.get(_first, ()), _production)
"""Each production starts with a literal letter, so only those sharing a tag's first one can match.

Most tags of a registry are then tried against one or two expressions, and a
name like ``recommended`` goes straight to the Unknown rules.
"""


@lru_cache(maxsize=8192)
def _parse(tag: str) -> RSPImageTag:
    """Try each production in order; the first that matches and yields valid fields wins."""
    for pattern, build in _BY_FIRST_CHARACTER.get(tag[:1], ()):
        match = pattern.fullmatch(tag)
        if match:
            try:
                return build(tag, match.groups())
            except ValueError:
                continue  # An impossible date: fall through to the next production.
    return _parse_named(tag, _UNKNOWN_TYPE, None)


@lru_cache(maxsize=1024)
def _parse_alias(tag: str) -> RSPImageTag:
    return _parse_named(tag, _ALIAS, _title)


def _title(base: str) -> str:
    """Title-case an alias base as upstream does: ``latest_weekly`` becomes ``Latest Weekly``."""
    return base.replace("_", " ").title()


def _parse_named(
    tag: str, image_type: RSPImageType, display: Callable[[str], str] | None
) -> RSPImageTag:
    """A tag outside the versioned grammar: a name, an optional cycle and architecture.

    ``display`` turns the base into the start of the display name (as written when None).
    """
    if "_c" not in tag and "-" not in tag and "\n" not in tag:
        # Neither rule can find a cycle or an architecture: the base is the whole tag.
        order: tuple[Any, ...] = (
            (1, tag),
            _NO_VERSION,
            -1,
            -1,
            -1,
            _ABSENT_LOWEST,
            _ABSENT_HIGHEST,
            tag,
        )
        display_name = display(tag) if display else tag
        return RSPImageTag(tag, image_type, display_name, None, False, tag, order=order)
    match = _UNKNOWN_WITH_CYCLE.fullmatch(tag) or _UNKNOWN.fullmatch(tag)
    if not match:
        return RSPImageTag(tag=tag, image_type=image_type, display_name=tag)
    base = match["base"]
    cycle = match.groupdict().get("cycle")
    arch = match["arch"]
    display_name = display(base) if display else base
    if cycle:
        display_name += f" (SAL Cycle {cycle})"
    if arch:
        display_name += f" [{arch}]"
    cycle_number = int(cycle) if cycle else None
    order = (
        (1, base),
        _NO_VERSION,
        -1 if cycle_number is None else cycle_number,
        -1,
        -1,
        _ABSENT_LOWEST,
        _ABSENT_HIGHEST if arch is None else (0, arch),
        tag,
    )
    return RSPImageTag(
        tag=tag,
        image_type=image_type,
        display_name=display_name,
        base=base,
        cycle=cycle_number,
        architecture=arch,
        order=order,
    )


def clear_parse_caches() -> None:
    """Forget every parsed tag, so that a benchmark or a test measures parsing from cold."""
    for cached in (_parse, _parse_alias, _release_head, _weekly_head, _daily_head):
        cached.cache_clear()
