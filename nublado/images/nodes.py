"""Node inventory: which images each node holds, and whether prepull pods may go there.

The prepuller must know, per node, the images its kubelet reports in
``status.images`` (spec images-tools.md 3.2) and whether the node's taints are
all tolerated by the lab's tolerations (3.3): a lab could not run on a node
whose taints it does not tolerate, so prepulling there only wastes disk, and
DECISIONS (objects 4) says no prepull pod goes to such a node. Everything
here is a pure function of Node objects (plain dicts, as
the Kubernetes client returns them), so the image service (which lists the nodes) can test its
plans without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.scheduling import TaintEffect, Toleration, TolerationOperator
from .reference import DockerReference, InvalidDockerReferenceError

__all__ = [
    "CachedImage",
    "NodeData",
    "cached_images",
    "node_data",
    "node_taints",
    "toleration_verdict",
]

Object = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CachedImage:
    """One entry of a node's ``status.images``: the names it is known by and its size."""

    references: tuple[str, ...]
    size: int | None
    digest: str | None
    """From the first reference that parses and carries ``@digest``; None if none does."""

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> CachedImage:
        """Build from a ``status.images`` entry (``names``, ``sizeBytes``)."""
        references = tuple(str(name) for name in entry.get("names") or [])
        size = entry.get("sizeBytes")
        return cls(
            references=references,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            digest=_first_digest(references),
        )


def _first_digest(references: Sequence[str]) -> str | None:
    for reference in references:
        try:
            parsed = DockerReference.from_str(reference)
        except InvalidDockerReferenceError:
            continue
        if parsed.digest:
            return parsed.digest
    return None


@dataclass(frozen=True, slots=True)
class NodeData:
    """What the prepuller knows of one node: its cached images and its eligibility."""

    name: str
    cached: tuple[CachedImage, ...]
    eligible: bool
    comment: str | None
    """Why the node is not eligible (the first untolerated taint); None when it is."""

    def digest_sizes(self) -> dict[str, int | None]:
        """``{digest: size}`` of the cached images that have a digest (first entry wins).

        Entries without a digest cannot be matched to a registry image, so
        they are left out, as upstream ignores them everywhere.
        """
        sizes: dict[str, int | None] = {}
        for image in self.cached:
            if image.digest is not None and image.digest not in sizes:
                sizes[image.digest] = image.size
        return sizes


def cached_images(node: Mapping[str, Any]) -> tuple[CachedImage, ...]:
    """The node's ``status.images`` entries that have at least one name, in order.

    A node without status, or without images in it, has none.
    """
    status = node.get("status")
    images = status.get("images") if isinstance(status, Mapping) else None
    if not isinstance(images, list):
        return ()
    return tuple(
        CachedImage.from_status(entry)
        for entry in images
        if isinstance(entry, Mapping) and entry.get("names")
    )


def _tolerates(toleration: Toleration, taint: Mapping[str, Any]) -> bool:
    """Whether one toleration matches one taint (spec 3.3, rules 1 to 3)."""
    effect = taint.get("effect")
    if toleration.effect is not None and toleration.effect.value != effect:
        return False
    if toleration.toleration_seconds is not None and effect == TaintEffect.NO_EXECUTE.value:
        # A pod that tolerates a NoExecute taint only for a while would be
        # evicted, so that toleration does not make the node usable.
        return False
    if toleration.operator == TolerationOperator.EXISTS:
        return not toleration.key or toleration.key == taint.get("key")
    return toleration.key == taint.get("key") and toleration.value == taint.get("value")


def _describe(taint: Mapping[str, Any]) -> str:
    effect, key, value = taint.get("effect"), taint.get("key"), taint.get("value")
    if value:
        return f"Node is tainted ({effect}, {key} = {value})"
    return f"Node is tainted ({effect}, {key})"


def toleration_verdict(
    taints: Sequence[Mapping[str, Any]] | None, tolerations: Sequence[Toleration]
) -> tuple[bool, str | None]:
    """Whether pods with ``tolerations`` may run on a node with ``taints``, and why not.

    PreferNoSchedule taints never exclude a node. The first taint that no
    toleration matches makes the node ineligible and names itself in the
    comment (``Node is tainted (NoSchedule, key = value)``).
    """
    for taint in taints or ():
        if taint.get("effect") == TaintEffect.PREFER_NO_SCHEDULE.value:
            continue
        if not any(_tolerates(toleration, taint) for toleration in tolerations):
            return False, _describe(taint)
    return True, None


def node_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The taints in a node's spec (none when it has no spec or no taints)."""
    spec = node.get("spec")
    taints = spec.get("taints") if isinstance(spec, Mapping) else None
    if not isinstance(taints, list):
        return []
    return [taint for taint in taints if isinstance(taint, Mapping)]


def node_data(node: Mapping[str, Any], tolerations: Sequence[Toleration]) -> NodeData:
    """The inventory entry of one Node object, eligibility judged with ``tolerations``."""
    metadata = node.get("metadata")
    name = str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""
    eligible, comment = toleration_verdict(node_taints(node), tolerations)
    return NodeData(name=name, cached=cached_images(node), eligible=eligible, comment=comment)
