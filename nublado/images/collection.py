"""Collections of RSP image tags: priority ordering, subsets and filter policies.

Menus, prepull lists and prune plans all start from "the tags a registry has,
in priority order, newest first", cut down by counts, a SAL cycle or a filter
policy (images-tools.md sections 1.9 and 1.10). Kept free of pydantic and
the Kubernetes client: the filter policy is only named for type checking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING

from .tag import RSPImageTag, RSPImageType, SemanticVersion

if TYPE_CHECKING:
    from ..config.images import ImageFilter, ImageFilterPolicy

__all__ = [
    "RSPImageTagCollection",
    "filter_for_type",
    "parse_semantic_version",
    "sort_tags",
]

_SORT_KEY = attrgetter("sort_key")
_ORDER = attrgetter("order")

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?", re.ASCII)


def parse_semantic_version(text: str) -> SemanticVersion:
    """Parse ``27.0.0`` or ``28.0.2-rc1`` (a semver build part is ignored, as semver says)."""
    match = _SEMVER.fullmatch(text)
    if not match:
        raise ValueError(f"not a semantic version (like 27.0.0): {text!r}")
    major, minor, patch, prerelease = match.groups()
    return SemanticVersion(int(major), int(minor), int(patch), prerelease)


def sort_tags(tags: Iterable[RSPImageTag]) -> list[RSPImageTag]:
    """Tags in priority order of their types, newest (highest) first within each type.

    This is the order of every listing. Parsed tags carry their key as a
    string (`RSPImageTag.order`) that starts with their type's rank, so one
    string sort orders a whole registry; tags built by hand have none, and a
    list with any of them sorts type by type on `RSPImageTag.sort_key`.
    """
    ordered = list(tags)
    if None not in map(_ORDER, ordered):
        ordered.sort(key=_ORDER, reverse=True)
        return ordered
    by_type: dict[RSPImageType, list[RSPImageTag]] = {}
    for tag in ordered:
        by_type.setdefault(tag.image_type, []).append(tag)
    result: list[RSPImageTag] = []
    for image_type in RSPImageType:
        group = by_type.get(image_type)
        if group:
            group.sort(key=_SORT_KEY, reverse=True)
            result += group
    return result


def filter_for_type(policy: ImageFilterPolicy, image_type: RSPImageType) -> ImageFilter | None:
    """The policy's filter for a type; aliases and unknown tags have none (always kept)."""
    match image_type:
        case RSPImageType.RELEASE:
            return policy.release
        case RSPImageType.WEEKLY:
            return policy.weekly
        case RSPImageType.DAILY:
            return policy.daily
        case RSPImageType.CANDIDATE:
            return policy.release_candidate
        case RSPImageType.EXPERIMENTAL:
            return policy.experimental
        case _:
            return None


def _apply_filter(
    tags: list[RSPImageTag], image_filter: ImageFilter, age_basis: datetime
) -> list[RSPImageTag]:
    """The tags (descending) that one type's filter keeps: cutoffs first, then the count."""
    threshold: datetime | None = None
    if image_filter.age is not None:
        threshold = age_basis - image_filter.age
    cutoff_date = image_filter.cutoff_date
    if cutoff_date is not None and (threshold is None or cutoff_date > threshold):
        threshold = cutoff_date
    cutoff_version = (
        parse_semantic_version(image_filter.cutoff_version)
        if image_filter.cutoff_version is not None
        else None
    )
    cutoff_build = image_filter.cutoff_build
    limit = image_filter.number or None  # 0 means no limit
    kept: list[RSPImageTag] = []
    for tag in tags:
        if cutoff_build is not None and tag.build and tag.build < cutoff_build:
            continue
        if threshold is not None and tag.date is not None and tag.date < threshold:
            continue
        if (
            cutoff_version is not None
            and tag.semantic
            and tag.version is not None
            and tag.version < cutoff_version
        ):
            continue
        if limit is not None and len(kept) >= limit:
            break
        kept.append(tag)
    return kept


class RSPImageTagCollection:
    """The tags of one registry, indexed by name and by type (each type newest first)."""

    def __init__(self, tags: Iterable[RSPImageTag] = ()) -> None:
        self._by_tag: dict[str, RSPImageTag] = {}
        for tag in tags:
            self._by_tag[tag.tag] = tag  # a later duplicate overwrites an earlier one
        self._reindex()

    @classmethod
    def from_names(
        cls, names: Iterable[str], aliases: Iterable[str] = (), cycle: int | None = None
    ) -> RSPImageTagCollection:
        """Parse tag names; names in ``aliases`` become alias tags.

        With ``cycle``, only tags of that SAL cycle are kept, aliases included:
        a plain ``recommended`` has no cycle and is dropped.
        """
        alias_names = frozenset(aliases)
        parsed = (
            RSPImageTag.alias(name) if name in alias_names else RSPImageTag.from_str(name)
            for name in names
        )
        if cycle is not None:
            parsed = (tag for tag in parsed if tag.cycle == cycle)
        return cls(parsed)

    def _reindex(self) -> None:
        self._by_type: dict[RSPImageType, list[RSPImageTag]] = {}
        for tag in sort_tags(self._by_tag.values()):
            self._by_type.setdefault(tag.image_type, []).append(tag)

    def add(self, tag: RSPImageTag) -> None:
        """Add (or replace, by name) one tag and keep the type lists sorted."""
        self._by_tag[tag.tag] = tag
        self._reindex()

    def __len__(self) -> int:
        return len(self._by_tag)

    def __contains__(self, name: object) -> bool:
        return name in self._by_tag

    def all_tags(self, *, hide_arch_specific: bool = True) -> Iterator[RSPImageTag]:
        """Every tag in priority order, newest first, by default without arch-specific ones."""
        for image_type in RSPImageType:
            for tag in self._by_type.get(image_type, ()):
                if hide_arch_specific and tag.architecture is not None:
                    continue
                yield tag

    def latest(self, image_type: RSPImageType) -> RSPImageTag | None:
        """The newest tag of a type (which may be arch-specific), or None."""
        tags = self._by_type.get(image_type)
        return tags[0] if tags else None

    def tag_for_tag_name(self, name: str) -> RSPImageTag | None:
        """The tag of that name, or None."""
        return self._by_tag.get(name)

    def subset(
        self,
        *,
        releases: int = 0,
        weeklies: int = 0,
        dailies: int = 0,
        include: Iterable[str] = (),
        remove_arch_specific: bool = True,
    ) -> RSPImageTagCollection:
        """The newest N releases, weeklies and dailies plus every named tag that exists.

        Named tags are included even when arch-specific. Unlike upstream, a tag
        both among the newest and named appears once (DECISIONS.md: no
        duplicate menu entries).
        """
        chosen: dict[str, RSPImageTag] = {}
        for image_type, count in (
            (RSPImageType.RELEASE, releases),
            (RSPImageType.WEEKLY, weeklies),
            (RSPImageType.DAILY, dailies),
        ):
            taken = 0
            for tag in self._by_type.get(image_type, ()):
                if taken >= count:
                    break
                if remove_arch_specific and tag.architecture is not None:
                    continue
                chosen[tag.tag] = tag
                taken += 1
        for name in include:
            named = self._by_tag.get(name)
            if named is not None:
                chosen[name] = named
        return RSPImageTagCollection(chosen.values())

    def filter(
        self,
        policy: ImageFilterPolicy,
        age_basis: datetime | None = None,
        *,
        invert: bool = False,
        remove_arch_specific: bool = True,
    ) -> list[RSPImageTag]:
        """Tags a filter policy keeps (or, inverted, drops), in priority order, newest first.

        Types without a policy (aliases, unknown tags) are always kept, and so
        never returned when inverted; arch-specific tags are out of both
        results unless ``remove_arch_specific`` is false.
        """
        basis = age_basis if age_basis is not None else datetime.now(tz=UTC)
        result: list[RSPImageTag] = []
        for image_type in RSPImageType:
            candidates = [
                tag
                for tag in self._by_type.get(image_type, ())
                if not (remove_arch_specific and tag.architecture is not None)
            ]
            image_filter = filter_for_type(policy, image_type)
            if image_filter is None:
                if not invert:
                    result += candidates
                continue
            kept = _apply_filter(candidates, image_filter, basis)
            if invert:
                kept_names = {tag.tag for tag in kept}
                result += [tag for tag in candidates if tag.tag not in kept_names]
            else:
                result += kept
        return result
