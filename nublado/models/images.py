"""API models of images: menus, the spawner's image list and the prepuller status.

The JSON shapes are the upstream controller's (api.md sections 4.10, 4.11,
5.5 and 5.6): snake_case keys; the image list leaves out every null, the
prepuller status keeps them. Each top-level model has a `to_json` method giving
exactly the JSON object a route returns, so no caller has to remember which
serialisation options apply.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..config.images import ImagesConfig
from ..images.image import RSPImage

__all__ = [
    "MenuImage",
    "NodeImage",
    "PrepulledImage",
    "PrepullerImages",
    "PrepullerNode",
    "PrepullerStatus",
    "SpawnerImages",
]


class _ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MenuImage(_ApiModel):
    """One choice of the lab form: the reference a lab will run and the name shown."""

    reference: str
    """Reference with digest when it is known (``registry/repository:tag@digest``)."""

    name: str
    """Display name, such as ``Recommended (Weekly 2077_43)``."""


class PrepulledImage(_ApiModel):
    """An image known to the image source, and whether every eligible node holds it."""

    reference: str
    """Reference by tag only (``registry/repository:tag``); the digest is separate."""

    tag: str
    name: str
    digest: str | None = None
    aliases: list[str] = []
    """Sorted other tags of the same image, an alias's target included."""

    prepulled: bool = False

    @classmethod
    def from_rsp_image(cls, image: RSPImage, eligible_nodes: Set[str]) -> PrepulledImage:
        """Describe a resolved image; prepulled when it is on every eligible node.

        With no eligible node at all, every image counts as prepulled, as upstream.
        """
        aliases = set(image.aliases)
        if image.alias_target is not None:
            aliases.add(image.alias_target)
        aliases.discard(image.tag)
        return cls(
            reference=image.reference,
            tag=image.tag,
            name=image.display_name,
            digest=image.digest,
            aliases=sorted(aliases),
            prepulled=image.nodes >= eligible_nodes,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object, nulls omitted as in the spawner image list."""
        return self.model_dump(mode="json", exclude_none=True)


class SpawnerImages(_ApiModel):
    """``GET /spawner/v1/images``: featured images and every image of the source."""

    recommended: PrepulledImage | None = None
    latest_weekly: PrepulledImage | None = None
    latest_daily: PrepulledImage | None = None
    latest_release: PrepulledImage | None = None
    all: list[PrepulledImage] = []

    def to_json(self) -> dict[str, Any]:
        """The response body: every null omitted, at every level (api.md 4.10)."""
        return self.model_dump(mode="json", exclude_none=True)


class NodeImage(_ApiModel):
    """An image to prepull, with the nodes that hold it and the eligible nodes that lack it."""

    reference: str
    """Reference by tag only."""

    tag: str
    name: str
    digest: str | None
    size: int | None
    """Bytes, when the registry or a node reported it."""

    nodes: list[str]
    """Sorted names of the nodes holding the image (ineligible ones included)."""

    missing: list[str] = []
    """Sorted names of the eligible nodes that do not hold it yet."""

    @classmethod
    def from_rsp_image(cls, image: RSPImage, eligible_nodes: Set[str]) -> NodeImage:
        """Describe an image of the prepull list for the prepuller status."""
        return cls(
            reference=image.reference,
            tag=image.tag,
            name=image.display_name,
            digest=image.digest,
            size=image.size,
            nodes=sorted(image.nodes),
            missing=sorted(set(eligible_nodes) - image.nodes),
        )


class PrepullerNode(_ApiModel):
    """A node selected for labs: whether labs may run there and what it holds."""

    name: str
    eligible: bool
    comment: str | None = None
    """Why the node is not eligible (its untolerated taint)."""

    cached: list[str] = []
    """Tag references of the prepull-list images the node holds."""


class PrepullerImages(_ApiModel):
    """Images to prepull, split by whether every eligible node holds them."""

    prepulled: list[NodeImage] = []
    pending: list[NodeImage] = []


class PrepullerStatus(_ApiModel):
    """``GET /spawner/v1/prepulls``: the prepuller's configuration, images and nodes."""

    config: ImagesConfig
    images: PrepullerImages
    nodes: list[PrepullerNode]

    def to_json(self) -> dict[str, Any]:
        """The response body: snake_case, nulls kept, durations as float seconds.

        The configuration's credentials path is excluded by its field definition.
        """
        return self.model_dump(mode="json")
