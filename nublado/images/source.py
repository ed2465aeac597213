"""The controller's image sources: which lab images exist, which to prepull, menus.

A source is refreshed periodically (`ImageSource.update_images`) and answers
the lab form and the spawner API from what it learnt (images-tools.md 2.6-2.9).
Three kinds, chosen by the configured source ``type``:

* `DockerImageSource` lists tags from a Docker Registry v2 API. Learning a
  tag's digest costs one HEAD request, so only the tags to prepull are
  resolved, on every refresh (tags move); other tags are listed by name only.
* `GARImageSource` lists Google Artifact Registry versions, which carry every
  tag's digest and size, so aliases resolve across the whole repository.
* `StaticImageSource` takes tags and digests from the configuration (our
  extension, for sites without a registry API, the sandbox and tests) and
  behaves like the Google source without any network call.

The registry clients are passed in (anything with the methods of
`DockerRegistryAPI` or `GARRegistryAPI`), so tests give fakes and the sources
never build HTTP or Google clients themselves.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import datetime
from typing import Protocol

from ..config.images import (
    DockerSourceConfig,
    GARSourceConfig,
    ImageFilterPolicy,
    ImagesConfig,
    StaticSourceConfig,
)
from ..errors import InputError
from ..models.images import MenuImage, PrepulledImage, SpawnerImages
from ..models.lab import ImageClass
from .collection import RSPImageTagCollection
from .image import RSPImage, RSPImageCollection
from .reference import DockerReference, InvalidDockerReferenceError
from .tag import RSPImageTag, RSPImageType

__all__ = [
    "DockerImageSource",
    "DockerRegistryAPI",
    "GARImageSource",
    "GARRegistryAPI",
    "GARVersionInfo",
    "ImageSource",
    "NodeCache",
    "StaticImageSource",
    "UnknownImageError",
    "image_for_class",
    "image_source",
    "prepulled_menu_images",
]

NodeCache = Mapping[str, Iterable[tuple[str, int | None]]]
"""Node name to the (digest, size in bytes) of each image cached on that node."""

_HEAD_CONCURRENCY = 8
"""Digest lookups in flight at once during a refresh: parallel, yet gentle on the registry."""


class UnknownImageError(InputError):
    """The requested image (reference, tag or class) is not one this source knows.

    The API answers it with 400 ``unknown_image``.
    """

    error = "unknown_image"


class DockerRegistryAPI(Protocol):
    """What a Docker source needs of a registry client (`nublado.images.docker`)."""

    async def list_tags(self, source: DockerSourceConfig) -> list[str]:
        """Every tag of the repository."""

    async def get_digest(self, source: DockerSourceConfig, tag: str) -> str:
        """The digest a tag names now (one HEAD request)."""

    async def delete_image(self, source: DockerSourceConfig, digest: str) -> None:
        """Delete the manifest of a digest (used by pruning, not by the controller)."""


class GARVersionInfo(Protocol):
    """One Artifact Registry version: tags, digest and size (`nublado.images.gar.GARVersion`)."""

    @property
    def tags(self) -> tuple[str, ...]: ...

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int | None: ...


class GARRegistryAPI(Protocol):
    """What a Google source needs of an Artifact Registry client (`nublado.images.gar`)."""

    async def list_versions(self, source: GARSourceConfig) -> Sequence[GARVersionInfo]:
        """Every version of the configured image, untagged ones included."""


def _not_found(reference: DockerReference) -> UnknownImageError:
    return UnknownImageError(f'Docker reference "{reference}" not found')


def _no_tag(reference: DockerReference) -> InvalidDockerReferenceError:
    return InvalidDockerReferenceError(str(reference), f'Docker reference "{reference}" has no tag')


def _tag_not_found(tag: str) -> UnknownImageError:
    return UnknownImageError(f'Docker tag "{tag}" not found')


class ImageSource(ABC):
    """Where lab images come from; refreshed periodically, then asked about images.

    ``update_images`` returns the images to prepull (the configured number of
    newest releases, weeklies and dailies plus the recommended and pinned
    tags); the caller keeps that collection for menus and the prepuller.
    """

    def __init__(self, config: ImagesConfig) -> None:
        self._config = config

    @property
    @abstractmethod
    def registry(self) -> str:
        """Registry host of the source's images."""

    @property
    @abstractmethod
    def repository(self) -> str:
        """Repository path of the source's images within the registry."""

    def _prepull_include(self) -> list[str]:
        """Tags always prepulled: the recommended one and the pinned ones."""
        return [self._config.recommended_tag, *self._config.pin]

    def _prepull_subset(self, collection: RSPImageCollection) -> RSPImageCollection:
        config = self._config
        return collection.subset(
            releases=config.num_releases,
            weeklies=config.num_weeklies,
            dailies=config.num_dailies,
            include=self._prepull_include(),
        )

    @abstractmethod
    async def update_images(self, node_cache: NodeCache) -> RSPImageCollection:
        """Re-read the registry and node caches; return the images to prepull.

        On failure the previous data stays in place.
        """

    @abstractmethod
    async def image_for_reference(self, reference: DockerReference) -> RSPImage:
        """The image a lab-form reference names; raise `UnknownImageError` if none."""

    @abstractmethod
    async def image_for_tag_name(self, tag: str) -> RSPImage:
        """The image of a tag; raise `UnknownImageError` if the source has no such tag."""

    @abstractmethod
    def mark_prepulled(self, image: RSPImage, node: str) -> None:
        """Record that a node now holds an image (optimistic, until the next refresh)."""

    @abstractmethod
    def menu_images(
        self, policy: ImageFilterPolicy, age_basis: datetime | None = None
    ) -> list[MenuImage]:
        """The lab form's dropdown: every image the policy keeps, in priority order."""

    @abstractmethod
    def prepulled_images(self, eligible_nodes: Set[str]) -> list[PrepulledImage]:
        """Every image of the source for the spawner API, prepulled when on every eligible node."""

    def spawner_images(
        self, to_prepull: RSPImageCollection, eligible_nodes: Set[str]
    ) -> SpawnerImages:
        """The spawner's image list (api.md 4.10): featured images of the prepull list and all."""

        def describe(image: RSPImage | None) -> PrepulledImage | None:
            if image is None:
                return None
            return PrepulledImage.from_rsp_image(image, eligible_nodes)

        return SpawnerImages(
            recommended=describe(to_prepull.image_for_tag_name(self._config.recommended_tag)),
            latest_weekly=describe(to_prepull.latest(RSPImageType.WEEKLY)),
            latest_daily=describe(to_prepull.latest(RSPImageType.DAILY)),
            latest_release=describe(to_prepull.latest(RSPImageType.RELEASE)),
            all=self.prepulled_images(eligible_nodes),
        )


class DockerImageSource(ImageSource):
    """Images of a Docker Registry v2 repository; digests looked up for prepull tags only."""

    def __init__(self, config: ImagesConfig, client: DockerRegistryAPI) -> None:
        if not isinstance(config.source, DockerSourceConfig):
            raise TypeError(f"DockerImageSource needs a docker source, not {config.source.type}")
        super().__init__(config)
        self._source = config.source
        self._client = client
        self._tags = RSPImageTagCollection()
        self._images = RSPImageCollection()

    @property
    def registry(self) -> str:
        return self._source.registry

    @property
    def repository(self) -> str:
        return self._source.repository

    def _image(self, tag: RSPImageTag, digest: str) -> RSPImage:
        return RSPImage.from_tag(
            tag, registry=self._source.registry, repository=self._source.repository, digest=digest
        )

    async def update_images(self, node_cache: NodeCache) -> RSPImageCollection:
        config = self._config
        names = await self._client.list_tags(self._source)
        tags = RSPImageTagCollection.from_names(
            names, aliases=[config.recommended_tag, *config.alias_tags], cycle=config.cycle
        )
        candidates = list(
            tags.subset(
                releases=config.num_releases,
                weeklies=config.num_weeklies,
                dailies=config.num_dailies,
                include=self._prepull_include(),
            ).all_tags(hide_arch_specific=False)
        )
        limit = asyncio.Semaphore(_HEAD_CONCURRENCY)

        async def digest_of(tag: RSPImageTag) -> str:
            async with limit:
                return await self._client.get_digest(self._source, tag.tag)

        digests = await asyncio.gather(*(digest_of(tag) for tag in candidates))
        images = RSPImageCollection(
            self._image(tag, digest) for tag, digest in zip(candidates, digests, strict=True)
        )
        for node, cached in node_cache.items():
            for digest, size in cached:
                images.mark_image_seen_on_node(digest, node, size)
        self._tags = tags
        self._images = images
        return images

    async def image_for_reference(self, reference: DockerReference) -> RSPImage:
        if reference.registry != self.registry or reference.repository != self.repository:
            raise _not_found(reference)
        if reference.digest:
            image = self._images.image_for_digest(reference.digest)
            if image is not None:
                return image
        if not reference.tag:
            raise _no_tag(reference)
        image = self._images.image_for_tag_name(reference.tag)
        if image is not None:
            return image
        tag = self._tags.tag_for_tag_name(reference.tag)
        if tag is None:
            raise _not_found(reference)
        digest = reference.digest or await self._client.get_digest(self._source, tag.tag)
        return self._image(tag, digest)

    async def image_for_tag_name(self, tag: str) -> RSPImage:
        image = self._images.image_for_tag_name(tag)
        if image is not None:
            return image
        parsed = self._tags.tag_for_tag_name(tag)
        if parsed is None:
            raise _tag_not_found(tag)
        return self._image(parsed, await self._client.get_digest(self._source, tag))

    def mark_prepulled(self, image: RSPImage, node: str) -> None:
        self._images.mark_image_seen_on_node(image.digest, node)

    def menu_images(
        self, policy: ImageFilterPolicy, age_basis: datetime | None = None
    ) -> list[MenuImage]:
        menu: list[MenuImage] = []
        for tag in self._tags.filter(policy, age_basis):
            image = self._images.image_for_tag_name(tag.tag)
            if image is not None:
                menu.append(
                    MenuImage(reference=image.reference_with_digest, name=image.display_name)
                )
            else:
                menu.append(MenuImage(reference=self._tag_reference(tag), name=tag.display_name))
        return menu

    def prepulled_images(self, eligible_nodes: Set[str]) -> list[PrepulledImage]:
        result: list[PrepulledImage] = []
        for tag in self._tags.all_tags():
            image = self._images.image_for_tag_name(tag.tag)
            if image is not None:
                result.append(PrepulledImage.from_rsp_image(image, eligible_nodes))
            else:
                result.append(
                    PrepulledImage(
                        reference=self._tag_reference(tag),
                        tag=tag.tag,
                        name=tag.display_name,
                        prepulled=False,
                    )
                )
        return result

    def _tag_reference(self, tag: RSPImageTag) -> str:
        return f"{self._source.registry}/{self._source.repository}:{tag.tag}"


class _ListedImageSource(ImageSource):
    """A source whose listing gives every tag's digest: one collection of everything."""

    def __init__(self, config: ImagesConfig) -> None:
        super().__init__(config)
        self._images = RSPImageCollection()

    @abstractmethod
    async def _list_images(self) -> list[RSPImage]:
        """Every tagged image of the source, with digests (and sizes when known)."""

    def _image(self, tag: str, digest: str, size: int | None = None) -> RSPImage:
        return RSPImage.from_tag(
            RSPImageTag.from_str(tag),
            registry=self.registry,
            repository=self.repository,
            digest=digest,
            size=size,
        )

    async def update_images(self, node_cache: NodeCache) -> RSPImageCollection:
        images = RSPImageCollection(await self._list_images(), cycle=self._config.cycle)
        for node, cached in node_cache.items():
            for digest, _ in cached:
                images.mark_image_seen_on_node(digest, node)  # the listing's size stays
        self._images = images
        return self._prepull_subset(images)

    async def image_for_reference(self, reference: DockerReference) -> RSPImage:
        if reference.digest:
            image = self._images.image_for_digest(reference.digest)
        elif not reference.tag:
            raise _no_tag(reference)
        else:
            image = self._images.image_for_tag_name(reference.tag)
        if (
            image is None
            or reference.registry != self.registry
            or reference.repository != self.repository
        ):
            raise _not_found(reference)
        return image

    async def image_for_tag_name(self, tag: str) -> RSPImage:
        image = self._images.image_for_tag_name(tag)
        if image is None:
            raise _tag_not_found(tag)
        return image

    def mark_prepulled(self, image: RSPImage, node: str) -> None:
        self._images.mark_image_seen_on_node(image.digest, node)

    def menu_images(
        self, policy: ImageFilterPolicy, age_basis: datetime | None = None
    ) -> list[MenuImage]:
        return [
            MenuImage(reference=image.reference_with_digest, name=image.display_name)
            for image in self._images.filter(policy, age_basis)
        ]

    def prepulled_images(self, eligible_nodes: Set[str]) -> list[PrepulledImage]:
        return [
            PrepulledImage.from_rsp_image(image, eligible_nodes)
            for image in self._images.all_images()
        ]


class GARImageSource(_ListedImageSource):
    """Images of a Google Artifact Registry image: every tag's digest and size in one listing."""

    def __init__(self, config: ImagesConfig, client: GARRegistryAPI) -> None:
        if not isinstance(config.source, GARSourceConfig):
            raise TypeError(f"GARImageSource needs a google source, not {config.source.type}")
        super().__init__(config)
        self._source = config.source
        self._client = client

    @property
    def registry(self) -> str:
        return self._source.registry

    @property
    def repository(self) -> str:
        return self._source.path

    async def _list_images(self) -> list[RSPImage]:
        versions = await self._client.list_versions(self._source)
        return [
            self._image(tag, version.digest, version.size)
            for version in versions
            for tag in version.tags
        ]


class StaticImageSource(_ListedImageSource):
    """Images named in the configuration with their digests; no registry is contacted."""

    def __init__(self, config: ImagesConfig) -> None:
        if not isinstance(config.source, StaticSourceConfig):
            raise TypeError(f"StaticImageSource needs a static source, not {config.source.type}")
        super().__init__(config)
        self._source = config.source

    @property
    def registry(self) -> str:
        return self._source.registry

    @property
    def repository(self) -> str:
        return self._source.repository

    async def _list_images(self) -> list[RSPImage]:
        return [self._image(tag, digest) for tag, digest in self._source.tags.items()]


def image_source(
    config: ImagesConfig,
    *,
    docker: DockerRegistryAPI | None = None,
    gar: GARRegistryAPI | None = None,
) -> ImageSource:
    """The source for a configuration, given the client its type needs."""
    source = config.source
    if isinstance(source, DockerSourceConfig):
        if docker is None:
            raise TypeError("a docker image source needs a Docker registry client")
        return DockerImageSource(config, docker)
    if isinstance(source, GARSourceConfig):
        if gar is None:
            raise TypeError("a google image source needs an Artifact Registry client")
        return GARImageSource(config, gar)
    return StaticImageSource(config)


_LATEST_TYPE = {
    ImageClass.LATEST_RELEASE: RSPImageType.RELEASE,
    ImageClass.LATEST_WEEKLY: RSPImageType.WEEKLY,
    ImageClass.LATEST_DAILY: RSPImageType.DAILY,
}


def image_for_class(
    to_prepull: RSPImageCollection, image_class: ImageClass, recommended_tag: str
) -> RSPImage:
    """The image a class names, among the images to prepull (spec 3.9).

    Raise `UnknownImageError` (``No recommended image found``, ``No
    latest-weekly image found``...) when the prepull list has none.
    """
    if image_class is ImageClass.RECOMMENDED:
        image = to_prepull.image_for_tag_name(recommended_tag)
    else:
        image = to_prepull.latest(_LATEST_TYPE[image_class])
    if image is None:
        raise UnknownImageError(f"No {image_class.value} image found")
    return image


def prepulled_menu_images(
    to_prepull: RSPImageCollection, recommended_tag: str, eligible_nodes: Set[str]
) -> list[MenuImage]:
    """The lab form's radio buttons (spec 2.7): prepulled images, the recommended one first.

    An image aliased by another in the list appears once, as the alias. The
    recommended image is offered even before it is on every eligible node.
    """
    recommended: MenuImage | None = None
    menu: list[MenuImage] = []
    for image in to_prepull.all_images(hide_aliased=True):
        entry = MenuImage(reference=image.reference_with_digest, name=image.display_name)
        if image.tag == recommended_tag:
            recommended = entry
        elif image.nodes >= eligible_nodes:
            menu.append(entry)
    return [recommended, *menu] if recommended is not None else menu
