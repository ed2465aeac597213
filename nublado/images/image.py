"""Images (a tag with its digest) and collections that resolve alias tags by digest.

A registry tag such as ``recommended`` says nothing about what it is until its
digest is known: then it is an alias of the weekly or release that has the
same digest, and menus show it as ``Recommended (Weekly 2077_43)``. Images
also record which nodes hold them, which drives the prepuller and the
"prepulled" flags of the spawner API (images-tools.md section 1.11).

Ordering, subsets and filter policies are those of tag collections
(`nublado.images.collection`): an image collection keeps a tag collection of
its images' current tags and maps the results back to images by tag name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from ..models.image import ResolvedImage
from .collection import RSPImageTagCollection
from .tag import RSPImageTag, RSPImageType, SemanticVersion

if TYPE_CHECKING:
    from ..config.images import ImageFilterPolicy

__all__ = ["RSPImage", "RSPImageCollection"]

_POSSIBLE_ALIAS_TYPES = frozenset({RSPImageType.ALIAS, RSPImageType.UNKNOWN})


def _title(base: str) -> str:
    """Title-case an alias base (section 1.5): ``latest_weekly`` becomes ``Latest Weekly``."""
    return base.replace("_", " ").title()


class RSPImage:
    """One tag of a repository with its digest, its aliases and the nodes that hold it.

    Mutable on purpose: a collection resolves an unknown tag into an alias of
    the image with the same digest, and the prepuller marks images present on
    nodes. Collections built from one another (a subset, the prepull list)
    share the same image objects, so node marks are seen by all of them; the
    alias data (type, target, aliases, name, inherited cycle and arch) is
    written once, by the first collection that resolves the alias, and never
    re-pointed by a later one built over it (`RSPImageCollection`).
    """

    __slots__ = (
        "alias_target",
        "aliases",
        "digest",
        "nodes",
        "registry",
        "repository",
        "rsp_tag",
        "size",
    )

    def __init__(
        self,
        rsp_tag: RSPImageTag,
        *,
        registry: str,
        repository: str,
        digest: str,
        size: int | None = None,
    ) -> None:
        self.rsp_tag = rsp_tag
        """The parsed tag; after alias resolution, its type, name, cycle and arch are updated."""
        self.registry = registry
        self.repository = repository
        self.digest = digest
        """Digest including the algorithm (``sha256:...``)."""
        self.size = size
        """Size in bytes, when the registry or a node reported one."""
        self.aliases: set[str] = set()
        """Other tags that name the same digest (an alias's own target excluded)."""
        self.alias_target: str | None = None
        """For a resolved alias: the tag of the image it points at."""
        self.nodes: set[str] = set()
        """Names of the nodes known to hold this image."""

    def resolved(self) -> ResolvedImage:
        """The image as a lab or prepull pod runs it: where it lives, its tag and digest."""
        return ResolvedImage(
            registry=self.registry,
            repository=self.repository,
            tag=self.tag,
            digest=self.digest,
            display_name=self.display_name,
        )

    @classmethod
    def from_tag(
        cls,
        tag: RSPImageTag,
        *,
        registry: str,
        repository: str,
        digest: str,
        size: int | None = None,
    ) -> RSPImage:
        """Build an image from a parsed tag and where it lives."""
        return cls(tag, registry=registry, repository=repository, digest=digest, size=size)

    # The tag's fields, read through: images are sorted and filtered as their tags.

    @property
    def tag(self) -> str:
        """The tag string."""
        return self.rsp_tag.tag

    @property
    def image_type(self) -> RSPImageType:
        return self.rsp_tag.image_type

    @property
    def display_name(self) -> str:
        return self.rsp_tag.display_name

    @property
    def version(self) -> SemanticVersion | None:
        return self.rsp_tag.version

    @property
    def semantic(self) -> bool:
        return self.rsp_tag.semantic

    @property
    def base(self) -> str | None:
        return self.rsp_tag.base

    @property
    def cycle(self) -> int | None:
        return self.rsp_tag.cycle

    @property
    def cycle_build(self) -> int | None:
        return self.rsp_tag.cycle_build

    @property
    def build(self) -> int | None:
        return self.rsp_tag.build

    @property
    def architecture(self) -> str | None:
        return self.rsp_tag.architecture

    @property
    def extra(self) -> str | None:
        return self.rsp_tag.extra

    @property
    def date(self) -> datetime | None:
        return self.rsp_tag.date

    @property
    def reference(self) -> str:
        """``registry/repository:tag``, as people read it."""
        return f"{self.registry}/{self.repository}:{self.rsp_tag.tag}"

    @property
    def reference_with_digest(self) -> str:
        """``registry/repository:tag@digest``, what a pod pulls (the tag alone may move)."""
        return f"{self.registry}/{self.repository}:{self.rsp_tag.tag}@{self.digest}"

    @property
    def is_possible_alias(self) -> bool:
        """Whether the tag may name another image: an alias, or a tag of no known form."""
        return self.rsp_tag.image_type in _POSSIBLE_ALIAS_TYPES

    def resolve_alias(self, target: RSPImage) -> None:
        """Make this image an alias of ``target`` (same digest), renaming it after the target.

        ``latest_c0040`` aliasing ``w_2077_45-amd64`` becomes ALIAS
        ``Latest (Weekly 2077_45) [amd64]``: it takes the target's cycle (even
        none), and its architecture and date when it has none of its own.
        """
        if not self.is_possible_alias:
            raise ValueError(f"Can only resolve alias and unknown images, not {self.tag!r}")
        current = self.rsp_tag
        self.alias_target = target.tag
        self.aliases.update(target.aliases)
        self.aliases.discard(self.tag)
        self.aliases.discard(target.tag)
        target.aliases.add(self.tag)
        arch = current.architecture or target.architecture
        described = target.display_name
        if " (" in described:
            described = described.replace(" (", ", ").replace(")", "")
        if arch:
            described = described.replace(f" [{arch}]", "")
        display_name = f"{_title(current.base or current.tag)} ({described})"
        if arch:
            display_name += f" [{arch}]"
        self.rsp_tag = current._replace(
            image_type=RSPImageType.ALIAS,
            display_name=display_name,
            cycle=target.cycle,
            architecture=arch,
            date=current.date or target.date,
            order=None,  # the sort key changes with the type, cycle and arch
        )

    def __repr__(self) -> str:
        target = f" -> {self.alias_target}" if self.alias_target else ""
        return f"<RSPImage {self.reference_with_digest} {self.image_type.value}{target}>"


class RSPImageCollection:
    """Images of one repository indexed by tag and by digest, aliases resolved by digest.

    For each digest the first non-alias image seen is its *primary*: the image
    returned by digest and the target of every alias tag with that digest.
    Alias and unknown tags whose digest no non-alias has yet stay unresolved
    (unknown tags stay unknown) until one is added.

    An alias already resolved by another collection (this one is a subset of
    it, or built from its images) keeps its target and name: re-resolving it
    against this collection's primary would rename it in the other collection
    too, whose menus and lookups by digest would then disagree. Only `add`
    re-points aliases (to a non-alias added to a digest that has one), on
    purpose.
    """

    def __init__(self, images: Iterable[RSPImage] = (), cycle: int | None = None) -> None:
        self._by_tag: dict[str, RSPImage] = {}
        for image in images:
            if cycle is not None and image.cycle != cycle:
                continue  # before alias resolution, which may change the cycle
            self._by_tag[image.tag] = image  # a later duplicate replaces an earlier one
        self._primary: dict[str, RSPImage] = {}
        self._unresolved: dict[str, list[RSPImage]] = {}
        self._members: dict[str, list[RSPImage]] = {}
        candidates: list[RSPImage] = []
        for image in self._by_tag.values():
            self._members.setdefault(image.digest, []).append(image)
            if image.is_possible_alias:
                candidates.append(image)
            else:
                self._link_non_alias(image, make_primary=False)
        for image in candidates:
            self._link_possible_alias(image)
        self._reindex()

    # Linking: every change to aliases only adds names, and an alias resolved
    # by an earlier collection over the same images is not resolved again, so
    # building a collection from another's images leaves their links as they are.

    def _link_non_alias(self, image: RSPImage, *, make_primary: bool) -> None:
        """Link a non-alias with the other images of its digest; it may become the primary."""
        digest = image.digest
        primary = self._primary.get(digest)
        if primary is None:
            self._primary[digest] = image
            return
        for other in self._members[digest]:
            if other is image or other.is_possible_alias:
                continue
            other.aliases.add(image.tag)
            image.aliases.add(other.tag)
        if make_primary:
            self._primary[digest] = image
            for other in self._members[digest]:
                if other.alias_target is not None and other.is_possible_alias:
                    other.resolve_alias(image)  # re-point an existing alias at the new primary

    def _link_possible_alias(self, image: RSPImage) -> None:
        """Resolve an alias or unknown tag against its digest's primary, or leave it unresolved.

        An alias another collection resolved is only indexed; with no non-alias
        of its digest here, it stands for the digest (`image_for_digest`).
        """
        digest = image.digest
        primary = self._primary.get(digest)
        if image.alias_target is not None:
            if primary is None:
                self._unresolved.setdefault(digest, []).append(image)
            return
        if primary is None:
            unresolved = self._unresolved.setdefault(digest, [])
            for waiting in unresolved:
                waiting.aliases.add(image.tag)
                image.aliases.add(waiting.tag)
            unresolved.append(image)
            return
        image.resolve_alias(primary)
        for name in primary.aliases:
            other = self._by_tag.get(name)
            if other is not None and other is not image:
                other.aliases.add(image.tag)

    def _reindex(self) -> None:
        self._tags = RSPImageTagCollection(image.rsp_tag for image in self._by_tag.values())

    def add(self, image: RSPImage) -> None:
        """Add one image, linking it to the images with its digest.

        A non-alias added to a digest that already has one becomes the
        primary: existing aliases are re-pointed at it. A non-alias added to a
        digest with unresolved aliases resolves them (no image is dropped,
        arch-specific ones included, unlike upstream's rebuild).
        """
        digest = image.digest
        replaced = self._by_tag.get(image.tag)
        if replaced is not None:
            self._forget(replaced)
        self._by_tag[image.tag] = image
        self._members.setdefault(digest, []).append(image)
        if image.is_possible_alias:
            self._link_possible_alias(image)
        else:
            waiting = self._unresolved.pop(digest, None)
            self._link_non_alias(image, make_primary=True)
            for alias in waiting or ():
                self._link_possible_alias(alias)
        self._reindex()

    def _forget(self, image: RSPImage) -> None:
        """Drop an image about to be replaced by another of the same tag from the indexes."""
        digest = image.digest
        members = self._members.get(digest, [])
        if image in members:
            members.remove(image)
        unresolved = self._unresolved.get(digest)
        if unresolved and image in unresolved:
            unresolved.remove(image)
        if self._primary.get(digest) is image:
            del self._primary[digest]
            for other in members:
                if not other.is_possible_alias:
                    self._primary[digest] = other
                    break

    def __len__(self) -> int:
        return len(self._by_tag)

    def __contains__(self, tag: object) -> bool:
        return tag in self._by_tag

    def image_for_digest(self, digest: str) -> RSPImage | None:
        """The digest's primary non-alias image, else the first alias seen, else None."""
        primary = self._primary.get(digest)
        if primary is not None:
            return primary
        unresolved = self._unresolved.get(digest)
        return unresolved[0] if unresolved else None

    def image_for_tag_name(self, tag: str) -> RSPImage | None:
        """The image with this tag, or None."""
        return self._by_tag.get(tag)

    def latest(self, image_type: RSPImageType) -> RSPImage | None:
        """The newest image of a type (which may be arch-specific), or None."""
        tag = self._tags.latest(image_type)
        return self._by_tag[tag.tag] if tag is not None else None

    def all_images(
        self,
        *,
        hide_aliased: bool = False,
        hide_arch_specific: bool = True,
        hide_resolved_aliases: bool = False,
    ) -> Iterator[RSPImage]:
        """Images in priority order, newest first.

        ``hide_aliased`` hides an image that an alias in this collection points
        at (the menu then shows ``Recommended (Weekly 2077_43)`` once, not
        also ``Weekly 2077_43``); ``hide_resolved_aliases`` hides aliases whose
        target is in this collection (the prepuller pulls the target).
        """
        by_tag = self._by_tag
        for tag in self._tags.all_tags(hide_arch_specific=hide_arch_specific):
            image = by_tag[tag.tag]
            if (
                hide_resolved_aliases
                and image.alias_target is not None
                and image.alias_target in by_tag
            ):
                continue
            if (
                hide_aliased
                and image.image_type is not RSPImageType.ALIAS
                and self._is_aliased(image)
            ):
                continue
            yield image

    def _is_aliased(self, image: RSPImage) -> bool:
        """Whether an alias image of this collection points at ``image``."""
        for name in image.aliases:
            other = self._by_tag.get(name)
            if (
                other is not None
                and other.image_type is RSPImageType.ALIAS
                and other.alias_target == image.tag
            ):
                return True
        return False

    def filter(
        self,
        policy: ImageFilterPolicy,
        age_basis: datetime | None = None,
        *,
        invert: bool = False,
        remove_arch_specific: bool = True,
    ) -> list[RSPImage]:
        """Images a filter policy keeps (or, inverted, drops), as `RSPImageTagCollection.filter`."""
        tags = self._tags.filter(
            policy, age_basis, invert=invert, remove_arch_specific=remove_arch_specific
        )
        return [self._by_tag[tag.tag] for tag in tags]

    def subset(
        self,
        *,
        releases: int = 0,
        weeklies: int = 0,
        dailies: int = 0,
        include: Iterable[str] = (),
        remove_arch_specific: bool = True,
    ) -> RSPImageCollection:
        """A collection over the same image objects: the newest N of some types plus named tags.

        Each tag appears once even when both among the newest and named. The
        subset's primary of a digest is this collection's when the subset has
        it, else its first non-alias in priority order, else its first alias;
        aliases keep the targets and names they have here.
        """
        tags = self._tags.subset(
            releases=releases,
            weeklies=weeklies,
            dailies=dailies,
            include=include,
            remove_arch_specific=remove_arch_specific,
        )
        by_tag = self._by_tag
        chosen = [by_tag[tag.tag] for tag in tags.all_tags(hide_arch_specific=False)]
        # The first non-alias of a digest becomes the primary: list ours first.
        primaries = self._primary
        ours = [image for image in chosen if primaries.get(image.digest) is image]
        others = [image for image in chosen if primaries.get(image.digest) is not image]
        return RSPImageCollection([*ours, *others])

    def subtract(self, other: RSPImageCollection) -> RSPImageCollection:
        """One image per digest of this collection whose digest ``other`` does not list.

        "Lists" means appears in ``other.all_images()`` (arch-specific images
        hidden), as upstream: this is what a node is missing.
        """
        present = {image.digest for image in other.all_images()}
        chosen: list[RSPImage] = []
        for digest in self._members:
            if digest in present:
                continue
            image = self.image_for_digest(digest)
            if image is not None:
                chosen.append(image)
        return RSPImageCollection(chosen)

    def mark_image_seen_on_node(self, digest: str, node: str, size: int | None = None) -> None:
        """Record that a node holds a digest, on its image and every alias of it here.

        A digest this collection does not know is ignored (nodes cache images
        of other repositories too). A size, when given and non-zero, replaces
        the known one.
        """
        image = self.image_for_digest(digest)
        if image is None:
            return
        marked = [image]
        for name in image.aliases:
            other = self._by_tag.get(name)
            if other is not None:
                marked.append(other)
        for each in marked:
            each.nodes.add(node)
            if size:
                each.size = size

    def __repr__(self) -> str:
        return f"<RSPImageCollection of {len(self._by_tag)} images>"
