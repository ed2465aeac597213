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
from functools import lru_cache, partial
from typing import Any, NamedTuple, cast

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
    order: str | None = None
    """The parser's order key: a string whose order is `sort_key`'s, after the type's rank.

    Sorting a registry by these strings is a plain string sort, several times
    faster than comparing nested tuples (the encoding is described above
    `_order_text`). Derived from the other fields: leave it None when building
    or replacing fields by hand, and comparisons and `sort_tags` fall back to
    `sort_key`."""

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
        left, right = self.order, other.order
        if left is None or right is None:
            key, other_key = self.sort_key, other.sort_key
            return (key > other_key) - (key < other_key)
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


# Order keys as text.
#
# Comparing two `sort_key` tuples takes several Python-level comparisons of
# nested tuples: sorting 10,000 tags by them cost 14 ms of the 50 ms that issue
# 8 allows for parsing and sorting them. The parser therefore also writes each
# tag's key as a string whose plain string order is the tuple's order (the
# `order` field), and a registry sorts as strings do, about seven times faster.
#
# The string is the type's letter, then each component of `sort_key` in turn,
# each written so that no component's text is a prefix of another's text in
# the same place; comparing two strings then compares component by component,
# as a tuple does:
#
# - the type: a letter, later for earlier types, so that one descending sort
#   lists the types in priority order;
# - an absent value: _ABSENT or _PRESENT, whichever side upstream sorts it on;
# - a number (never negative in a tag): its digit count as one character, then
#   its digits, so more digits sort higher and equal counts compare digits;
# - a string: with each NUL written as NUL + \x01 and ended by two NULs, which
#   sort below any character that can follow in a longer string;
# - the tag itself last, as written: the final tie-breaker needs no end.

_ABSENT = "\x01"
_PRESENT = "\x02"
_TYPE_TEXT = {
    image_type: chr(ord("A") + len(RSPImageType) - 1 - image_type.priority)
    for image_type in RSPImageType
}
"""The first character of each type's order keys: G for aliases down to A for unknown tags."""


@lru_cache(maxsize=4096)
def _number_text(number: int) -> str:
    """A non-negative number as order-key text: digit count, then digits.

    Cached: a registry's tags share a few hundred numbers (years, weeks, builds).
    """
    digits = str(number)
    return chr(0x30 + len(digits)) + digits


def _string_text(text: str) -> str:
    """A string as order-key text: NULs escaped, ended by two NULs."""
    if "\x00" in text:
        text = text.replace("\x00", "\x00\x01")
    return text + "\x00\x00"


@lru_cache(maxsize=256)
def _prerelease_text(prerelease: str | None) -> str:
    """`_prerelease_key` as text: none sorts highest; numeric identifiers below others."""
    if prerelease is None:
        return _PRESENT
    text = _ABSENT
    for kind, value in _prerelease_key(prerelease)[1:]:
        text += ("\x02" + _number_text(value)) if kind == 0 else ("\x03" + _string_text(value))
    return text + _ABSENT  # ends the list: a version with fewer identifiers sorts lower


def _version_text(version: SemanticVersion | None) -> str:
    if version is None:
        return _ABSENT
    return (
        _PRESENT
        + _number_text(version.major)
        + _number_text(version.minor)
        + _number_text(version.patch)
        + _prerelease_text(version.prerelease)
    )


def _order_text(
    image_type: RSPImageType,
    base: str | None,
    version: SemanticVersion | None,
    cycle: int | None,
    cycle_build: int | None,
    build: int | None,
    extra: str | None,
    architecture: str | None,
    tag: str,
) -> str:
    """The order key of a tag's fields as the parser derives them (no negative number).

    The versioned and plain-name parsers build the same text piece by piece
    (the tests check they agree); this spells it out once for the other cases.
    """
    return "".join(
        (
            _TYPE_TEXT[image_type],
            _ABSENT if base is None else _PRESENT + _string_text(base),
            _version_text(version),
            _ABSENT if cycle is None else _number_text(cycle),
            _ABSENT if cycle_build is None else _number_text(cycle_build),
            _ABSENT if build is None else _number_text(build),
            _ABSENT if extra is None else _PRESENT + _string_text(extra),
            _PRESENT if architecture is None else _ABSENT + _string_text(architecture),
            tag,
        )
    )


# Parsing is on the hot path of every registry refresh (tens of thousands of
# tags), so the builders below unpack the match's groups, build the display
# name and order key from plain strings and make the named tuple with
# `tuple.__new__`: named-group lookups, keyword construction and enum ``.value``
# cost more than the regular expressions themselves.

# Enum members bound once: class attribute lookup on an enum is slow on the hot path.
_ALIAS = RSPImageType.ALIAS
_RELEASE_TYPE = RSPImageType.RELEASE
_WEEKLY_TYPE = RSPImageType.WEEKLY
_DAILY_TYPE = RSPImageType.DAILY
_CANDIDATE_TYPE = RSPImageType.CANDIDATE
_EXPERIMENTAL_TYPE = RSPImageType.EXPERIMENTAL
_UNKNOWN_TYPE = RSPImageType.UNKNOWN

_new_tag: Callable[[tuple[Any, ...]], RSPImageTag] = partial(tuple.__new__, RSPImageTag)
"""Build a tag from all its fields in order, without the named tuple's Python ``__new__``."""

_Head = tuple[RSPImageType, bool, str, SemanticVersion, datetime | None, str]
"""What a versioned tag's leading numbers give: its type, whether it is semantic, its
display label, version and date, and the start of its order key.

Cached per distinct head: a registry has each release, weekly and daily in
several variants (architectures, cycles, RSP builds), and building a version,
a date and a key costs more than matching the tag.
"""


@lru_cache(maxsize=4096)
def _release_head(major: str, minor: str, patch: str, prerelease: str | None) -> _Head:
    version = tuple.__new__(SemanticVersion, (int(major), int(minor), int(patch), prerelease))
    # Labels from the numbers, not from the enum's value and str(version): both are slow calls.
    label = f"r{version.major}.{version.minor}.{version.patch}"
    if prerelease:
        label = f"Release Candidate {label}-{prerelease}"
        image_type = _CANDIDATE_TYPE
    else:
        label = f"Release {label}"
        image_type = _RELEASE_TYPE
    order = _TYPE_TEXT[image_type] + _ABSENT + _version_text(version)  # versioned: no base
    return image_type, True, label, version, None, order


@lru_cache(maxsize=4096)
def _weekly_head(year: str, week: str) -> _Head:
    number, week_number = int(year), int(week)
    thursday = date.fromisocalendar(number, week_number, 4)  # ValueError for an invalid week
    # Positional: a keyword argument costs datetime's constructor more than the rest of a head.
    when = datetime(thursday.year, thursday.month, thursday.day, 0, 0, 0, 0, UTC)
    version = tuple.__new__(SemanticVersion, (number, week_number, 0, None))
    order = (
        f"{_WEEKLY_TEXT}{_ABSENT}{_PRESENT}{_number_text(number)}"
        f"{_number_text(week_number)}{_number_text(0)}{_NO_PRERELEASE}"
    )
    return _WEEKLY_TYPE, False, f"Weekly {year}_{week}", version, when, order


@lru_cache(maxsize=4096)
def _daily_head(year: str, month: str, day: str) -> _Head:
    year_number, month_number, day_number = int(year), int(month), int(day)
    when = datetime(year_number, month_number, day_number, 0, 0, 0, 0, UTC)  # ValueError
    version = tuple.__new__(SemanticVersion, (year_number, month_number, day_number, None))
    order = (
        f"{_DAILY_TEXT}{_ABSENT}{_PRESENT}{_number_text(year_number)}"
        f"{_number_text(month_number)}{_number_text(day_number)}{_NO_PRERELEASE}"
    )
    return _DAILY_TYPE, False, f"Daily {year}_{month}_{day}", version, when, order


_WEEKLY_TEXT = _TYPE_TEXT[_WEEKLY_TYPE]
_DAILY_TEXT = _TYPE_TEXT[_DAILY_TYPE]
_EXPERIMENTAL_TEXT = _TYPE_TEXT[_EXPERIMENTAL_TYPE]
_NO_PRERELEASE = _PRESENT
"""`_prerelease_text(None)`: a version without prerelease sorts above its prereleases."""
_NO_SUFFIX = _ABSENT * 4 + _PRESENT
"""The order key of no cycle, cycle build, RSP build, extra or architecture."""
_NO_SUFFIX_BUT_ARCH = _ABSENT * 5
"""The order key of no cycle, cycle build, RSP build or extra, before the architecture's."""


def _versioned(
    tag: str,
    head: _Head,
    cycle_text: str | None,
    cycle_build_text: str | None,
    build_text: str | None,
    extra: str | None,
    arch: str | None,
) -> RSPImageTag:
    """Build a versioned tag from its head and the groups of its optional suffixes.

    Every suffix group matches at least one character, so None is the only
    false value each can have; an architecture is ``[a-z0-9]+``, with no NUL
    to escape in the order key.
    """
    image_type, semantic, label, version, when, order = head
    cycle = cycle_build = build = None
    if cycle_text is None and build_text is None and extra is None:
        # Most tags of a registry: the head, maybe an architecture.
        if arch is None:
            order += _NO_SUFFIX
        else:
            label = f"{label} [{arch}]"
            order = f"{order}{_NO_SUFFIX_BUT_ARCH}{arch}\x00\x00"
    else:
        if cycle_text is None:
            order += _ABSENT + _ABSENT
        else:
            cycle, cycle_build = int(cycle_text), int(cycle_build_text or 0)
            label += f" (SAL Cycle {cycle_text}, Build {cycle_build_text})"
            order += _number_text(cycle) + _number_text(cycle_build)
        if build_text is None:
            order += _ABSENT
        else:
            build = int(build_text)
            label += f" (RSP Build {build_text})"
            order += _number_text(build)
        if extra is None:
            order += _ABSENT
        else:
            label += f" [{extra}]"
            order += _PRESENT + _string_text(extra)
        if arch is None:
            order += _PRESENT
        else:
            label += f" [{arch}]"
            order += f"{_ABSENT}{arch}\x00\x00"
    return _new_tag(
        (tag, image_type, label, version, semantic, None, cycle, cycle_build, build, arch, extra,
         when, order + tag)
    )  # fmt: skip


# Each builder takes the tag and its match's groups, in the pattern's order.


def _parse_candidate(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    major, minor, patch, prerelease, cycle, cycle_build, build, extra, arch = groups
    head = _release_head(major, minor, patch, prerelease)
    return _versioned(tag, head, cycle, cycle_build, build, extra, arch)


def _parse_release(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    major, minor, patch, cycle, cycle_build, build, extra, arch = groups
    head = _release_head(major, minor, patch, None)
    return _versioned(tag, head, cycle, cycle_build, build, extra, arch)


def _parse_legacy_release(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    version = SemanticVersion(int(groups[0]), int(groups[1]), 0)
    order = _order_text(_RELEASE_TYPE, None, version, None, None, None, None, None, tag)
    return RSPImageTag(tag, _RELEASE_TYPE, f"Release r{version}", version, True, order=order)


def _parse_weekly(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    year, week, cycle, cycle_build, build, extra, arch = groups
    return _versioned(tag, _weekly_head(year, week), cycle, cycle_build, build, extra, arch)


def _parse_daily(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    year, month, day, cycle, cycle_build, build, extra, arch = groups
    head = _daily_head(year, month, day)
    return _versioned(tag, head, cycle, cycle_build, build, extra, arch)


def _parse_experimental(tag: str, groups: tuple[Any, ...]) -> RSPImageTag:
    """Every field of the inner tag, under the experimental type and display prefix."""
    inner = _parse_uncached(groups[0])
    _, _, name, version, semantic, base, cycle, cycle_build, build, arch, extra, when, key = inner
    # The parser gives every tag an order key, which its type starts and its tag ends.
    inner_order = cast(str, key)[1 : -len(inner.tag)]
    order = f"{_EXPERIMENTAL_TEXT}{inner_order}{tag}"
    name = "Experimental " + name
    fields = (version, semantic, base, cycle, cycle_build, build, arch, extra, when)
    return _new_tag((tag, _EXPERIMENTAL_TYPE, name, *fields, order))


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


def _parse_uncached(tag: str) -> RSPImageTag:
    """Try each production in order; the first that matches and yields valid fields wins."""
    for pattern, build in _BY_FIRST_CHARACTER.get(tag[:1], ()):
        match = pattern.fullmatch(tag)
        if match:
            try:
                return build(tag, match.groups())
            except ValueError:
                continue  # An impossible date: fall through to the next production.
    return _parse_named(tag, _UNKNOWN_TYPE, None)


_PARSED: dict[str, RSPImageTag] = {}
"""Parsed tags by name: each refresh of a registry sees the same names again.

A plain dictionary emptied when full rather than an LRU cache: a miss costs
less (the cold parse of a registry is the benchmarked path), and an LRU cache
smaller than a registry would miss on every name of every refresh, since each
refresh lists the names in the same order. Experimentals' inner tags are
parsed uncached and take no room.
"""
_PARSED_LIMIT = 65_536

_MAX_DIGITS = 4300
"""Python's default limit on the digits int() converts (sys.get_int_max_str_digits)."""


def _parse(tag: str) -> RSPImageTag:
    parsed = _PARSED.get(tag)
    if parsed is None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        parsed = _PARSED[tag] = _parse_uncached(tag)
    return parsed


@lru_cache(maxsize=1024)
def _parse_alias(tag: str) -> RSPImageTag:
    return _parse_named(tag, _ALIAS, _title)


def _title(base: str) -> str:
    """Title-case an alias base as upstream does: ``latest_weekly`` becomes ``Latest Weekly``."""
    return base.replace("_", " ").title()


# A plain name's order key after its base: no version, cycle, builds, extra or architecture.
_PLAIN_NAME_REST = _ABSENT * 5 + _PRESENT


def _parse_named(
    tag: str, image_type: RSPImageType, display: Callable[[str], str] | None
) -> RSPImageTag:
    """A tag outside the versioned grammar: a name, an optional cycle and architecture.

    ``display`` turns the base into the start of the display name (as written when None).
    """
    type_text = _TYPE_TEXT[image_type]
    if "_c" not in tag and "-" not in tag and "\n" not in tag:
        # Neither rule can find a cycle or an architecture: the base is the whole tag.
        name = display(tag) if display else tag
        order = f"{type_text}{_PRESENT}{_string_text(tag)}{_PLAIN_NAME_REST}{tag}"
        return _new_tag(
            (tag, image_type, name, None, False, tag, None, None, None, None, None, None, order)
        )
    # Without "_c" the cycle rule cannot match: skip it.
    match = _UNKNOWN_WITH_CYCLE.fullmatch(tag) if "_c" in tag else None
    if match and len(match["cycle"]) > _MAX_DIGITS:
        match = None  # more digits than int() reads: not a cycle, part of the name
    if match:
        base, cycle_text, arch = match.groups()
    else:
        match = _UNKNOWN.fullmatch(tag)
        if not match:  # a newline in the tag
            order = _order_text(image_type, None, None, None, None, None, None, None, tag)
            return RSPImageTag(tag=tag, image_type=image_type, display_name=tag, order=order)
        base, arch = match.groups()
        cycle_text = None
    name = display(base) if display else base
    cycle = None
    cycle_order = _ABSENT
    if cycle_text:
        cycle = int(cycle_text)
        name += f" (SAL Cycle {cycle_text})"
        cycle_order = _number_text(cycle)
    arch_order = _PRESENT
    if arch:
        name += f" [{arch}]"
        arch_order = f"{_ABSENT}{arch}\x00\x00"  # [a-z0-9]+: no NUL to escape
    order = (
        f"{type_text}{_PRESENT}{_string_text(base)}{_ABSENT}{cycle_order}"
        f"{_ABSENT}{_ABSENT}{_ABSENT}{arch_order}{tag}"
    )
    fields = (None, False, base, cycle, None, None, arch, None, None)
    return _new_tag((tag, image_type, name, *fields, order))


def clear_parse_caches() -> None:
    """Forget every parsed tag, so that a benchmark or a test measures parsing from cold."""
    _PARSED.clear()
    for cached in (_parse_alias, _release_head, _weekly_head, _daily_head, _number_text):
        cached.cache_clear()
