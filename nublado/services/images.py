"""The image service: which lab images exist, which nodes hold them, which to prepull.

It joins three things the controller learns separately, the registry (an
`ImageSource`), the nodes labs may run on (their cached images and taints)
and the prepuller, and answers the spawner API from the last good snapshot
(images-tools.md 2.7, 3.4-3.9; api.md 4.10-4.11). A refresh that fails keeps
that snapshot, logs and counts the failure: a registry outage must not empty
the lab form.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..config import Config, ImagesConfig
from ..config.images import DockerSourceConfig, GARSourceConfig
from ..images.credentials import DockerCredentials
from ..images.docker import DockerRegistryClient
from ..images.errors import RegistryError
from ..images.gar import GARClient
from ..images.image import RSPImage, RSPImageCollection
from ..images.nodes import NodeData, node_data
from ..images.reference import DockerReference
from ..images.source import ImageSource, image_for_class, image_source, prepulled_menu_images
from ..kube.client import KubernetesClient
from ..kube.errors import KubernetesError
from ..models.image import ResolvedImage
from ..models.images import (
    MenuImage,
    NodeImage,
    PrepullerImages,
    PrepullerNode,
    PrepullerStatus,
    SpawnerImages,
)
from ..models.lab import LabRequestOptions
from .prepuller import Prepuller, PrepullReport

__all__ = [
    "ImageService",
    "ImageSnapshot",
    "NodeListError",
    "build_image_source",
    "label_selector",
    "list_nodes",
    "prepull_plan",
]

_log = logging.getLogger(__name__)

NODE_LIST_TIMEOUT = 30.0
"""Seconds a refresh may spend listing nodes (upstream's Kubernetes request timeout)."""

REGISTRY_TIMEOUT = 300.0
"""Seconds a refresh may spend reading the registry, retries included.

A registry that never finishes answering (an endless tag listing, a hung
connection) must not hold the refresh, and so the lock, forever.
"""


class NodeListError(KubernetesError):
    """The nodes could not be listed (API error, connection failure or timeout).

    The message is upstream's ("Error reading node information"); the cause
    follows it so that a log line says what went wrong.
    """

    kind = "Node"

    def __init__(self, cause: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__("Error reading node information", status=status, reason=reason)
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.message}: {self.cause}"


def label_selector(node_selector: Mapping[str, str]) -> str:
    """``k1=v1,k2=v2`` in the mapping's order, as upstream sends the lab's nodeSelector."""
    return ",".join(f"{key}={value}" for key, value in node_selector.items())


async def list_nodes(
    kube: KubernetesClient, node_selector: Mapping[str, str], timeout: float = NODE_LIST_TIMEOUT
) -> list[dict[str, Any]]:
    """The Node objects matching the lab's ``nodeSelector`` (all nodes when it is empty).

    Affinity is not considered (as upstream): nodes a lab reaches only by
    affinity may still be prepulled to. Raises `NodeListError` on any failure,
    including running out of ``timeout`` seconds.
    """
    selector = label_selector(node_selector) or None
    try:
        async with asyncio.timeout(timeout):
            return await kube.list("Node", label_selector=selector)
    except TimeoutError:
        raise NodeListError(f"timed out after {timeout:g}s") from None
    except KubernetesError as exc:
        raise NodeListError(str(exc), status=exc.status, reason=exc.reason) from exc


def build_image_source(config: ImagesConfig, http: httpx.AsyncClient) -> ImageSource:
    """The image source a configuration names, with the registry client it needs.

    Docker credentials are read from ``dockerCredentialsPath`` when that file
    exists (a public registry needs none); Google uses the pod's default
    credentials, and its library is imported only on first use.
    """
    source = config.source
    if isinstance(source, DockerSourceConfig):
        path = config.docker_credentials_path
        credentials = DockerCredentials.from_path(path) if path.is_file() else None
        return image_source(config, docker=DockerRegistryClient(http, credentials))
    if isinstance(source, GARSourceConfig):
        return image_source(config, gar=GARClient())
    return image_source(config)


@dataclass(frozen=True, slots=True)
class ImageSnapshot:
    """What one successful refresh learnt; replaced whole, never edited but by marks."""

    to_prepull: RSPImageCollection
    """The images to keep on every eligible node (recommended, pinned, newest)."""

    nodes: tuple[NodeData, ...]
    """Nodes selected for labs, in listing order, with eligibility and cached images."""

    node_digests: dict[str, set[str]] = field(default_factory=dict)
    """Node name to the digests it holds (reported, or marked after a prepull)."""

    @property
    def eligible_nodes(self) -> frozenset[str]:
        """Nodes labs may be scheduled on: selected and every taint tolerated."""
        return frozenset(node.name for node in self.nodes if node.eligible)


def prepull_plan(snapshot: ImageSnapshot) -> dict[str, list[RSPImage]]:
    """Per eligible node, the images to prepull it lacks, one per digest, in priority order.

    Upstream also planned pods for nodes whose taints labs do not tolerate;
    such pods could never serve a lab (DECISIONS, objects 4). Arch-specific
    images are left out, as upstream's listing does. Nodes lacking nothing
    are left out.
    """
    to_prepull = snapshot.to_prepull
    images = list(to_prepull.all_images())
    primaries = {id(to_prepull.image_for_digest(image.digest)) for image in images}
    wanted = [image for image in images if id(image) in primaries]
    plan: dict[str, list[RSPImage]] = {}
    for node in snapshot.nodes:
        if not node.eligible:
            continue
        held = snapshot.node_digests.get(node.name, set())
        missing = [image for image in wanted if image.digest not in held]
        if missing:
            plan[node.name] = missing
    return plan


class ImageService:
    """Keeps the image snapshot fresh and answers menus, image lists and lab image requests."""

    def __init__(
        self,
        config: Config,
        source: ImageSource,
        kube: KubernetesClient,
        prepuller: Prepuller | None = None,
        *,
        node_timeout: float = NODE_LIST_TIMEOUT,
        registry_timeout: float = REGISTRY_TIMEOUT,
    ) -> None:
        self._config = config
        self._source = source
        self._kube = kube
        self._prepuller = prepuller
        self._node_timeout = node_timeout
        self._registry_timeout = registry_timeout
        self._lock = asyncio.Lock()
        self._snapshot = ImageSnapshot(to_prepull=RSPImageCollection(), nodes=())
        self.refreshed = asyncio.Event()
        """Set after each successful refresh; the prepuller loop waits for it."""
        self.refresh_count = 0
        """Successful refreshes since start."""
        self.refresh_failures = 0
        """Failed refreshes since start (each kept the previous snapshot)."""
        self.last_error: str | None = None
        """Why the latest refresh failed; None once one succeeds."""

    @property
    def snapshot(self) -> ImageSnapshot:
        """The last good snapshot (empty before the first successful refresh)."""
        return self._snapshot

    # Refresh

    async def refresh(self) -> bool:
        """Re-read nodes and registry; on failure keep the last snapshot and return False.

        Errors are logged and counted rather than raised: the caller is a
        periodic loop, and the API keeps answering from the previous data.
        """
        async with self._lock:
            try:
                snapshot = await self._build_snapshot()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.refresh_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.warning(
                    "Image refresh failed, keeping the previous image data: %s", self.last_error
                )
                return False
            self._snapshot = snapshot
            self.refresh_count += 1
            self.last_error = None
            _log.info(
                "Refreshed image information: %d images to prepull, %d nodes",
                len(snapshot.to_prepull),
                len(snapshot.nodes),
            )
            self.refreshed.set()
            return True

    async def _build_snapshot(self) -> ImageSnapshot:
        lab = self._config.lab
        listed = await list_nodes(self._kube, lab.node_selector, self._node_timeout)
        nodes = tuple(node_data(node, lab.tolerations) for node in listed)
        cache = {node.name: node.digest_sizes().items() for node in nodes}
        try:
            async with asyncio.timeout(self._registry_timeout):
                to_prepull = await self._source.update_images(cache)
        except TimeoutError:
            raise RegistryError(
                f"reading the image registry took more than {self._registry_timeout:g}s"
            ) from None
        digests = {node.name: set(node.digest_sizes()) for node in nodes}
        return ImageSnapshot(to_prepull=to_prepull, nodes=nodes, node_digests=digests)

    # Prepulling

    def missing_images_by_node(self) -> dict[str, list[RSPImage]]:
        """Per eligible node, the images to prepull it lacks (see `prepull_plan`)."""
        return prepull_plan(self._snapshot)

    def mark_prepulled(self, image: RSPImage, node: str) -> None:
        """Record that a node holds an image, until the next refresh reads the node again."""
        self._source.mark_prepulled(image, node)
        held = self._snapshot.node_digests.get(node)
        if held is not None:
            held.add(image.digest)

    async def prepull(self) -> PrepullReport | None:
        """Prepull every missing image onto every eligible node; None without a prepuller.

        Only successful prepulls are marked: a failed pull is retried on the
        next cycle, after the next refresh, and not before.
        """
        if self._prepuller is None:
            return None
        plan = self.missing_images_by_node()
        images: dict[tuple[str, str], RSPImage] = {}
        resolved: dict[str, list[ResolvedImage]] = {}
        for node, node_images in plan.items():
            for image in node_images:
                images[(image.tag, image.digest)] = image
            resolved[node] = [image.resolved() for image in node_images]

        def done(image: ResolvedImage, node: str, succeeded: bool) -> None:
            if succeeded:
                self.mark_prepulled(images[(image.tag, image.digest)], node)

        report = await self._prepuller.run(resolved, done)
        if report.outcomes:
            _log.info(
                "Prepull run: %d succeeded, %d failed in %.1fs",
                len(report.succeeded),
                len(report.failed),
                report.elapsed,
            )
        return report

    async def run_cycle(self) -> PrepullReport | None:
        """One refresh and, if it succeeded, one prepull run."""
        if not await self.refresh():
            return None
        return await self.prepull()

    async def run_periodically(self, *, first_sleep: bool = True) -> None:
        """Refresh and prepull every ``refreshInterval`` until cancelled (spec 3.8).

        The first refresh runs at start-up in the foreground, so the loop
        sleeps first; a cycle longer than the interval starts the next one at
        once, with a warning.
        """
        interval = self._config.images.refresh_interval.total_seconds()
        delay = interval if first_sleep else 0.0
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            start = time.monotonic()
            try:
                await self.run_cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("Image refresh and prepull cycle failed")
            elapsed = time.monotonic() - start
            delay = interval - elapsed
            if delay <= 0:
                _log.warning(
                    "Image refresh is running continuously: a cycle took %.1fs, interval %.1fs",
                    elapsed,
                    interval,
                )

    # Menus and API answers

    def menu(self) -> list[MenuImage]:
        """The lab form's radio buttons: the recommended image, then prepulled ones."""
        snapshot = self._snapshot
        return prepulled_menu_images(
            snapshot.to_prepull, self._config.images.recommended_tag, snapshot.eligible_nodes
        )

    def dropdown(self) -> list[MenuImage]:
        """The lab form's select list: every image the ``dropdownMenu`` policy keeps."""
        return self._source.menu_images(self._config.dropdown_menu)

    def spawner_images(self) -> SpawnerImages:
        """``GET /spawner/v1/images`` (api.md 4.10)."""
        snapshot = self._snapshot
        return self._source.spawner_images(snapshot.to_prepull, snapshot.eligible_nodes)

    def prepuller_status(self) -> PrepullerStatus:
        """``GET /spawner/v1/prepulls`` (api.md 4.11)."""
        snapshot = self._snapshot
        eligible = snapshot.eligible_nodes
        prepulled: list[NodeImage] = []
        pending: list[NodeImage] = []
        for image in snapshot.to_prepull.all_images(hide_resolved_aliases=True):
            described = NodeImage.from_rsp_image(image, eligible)
            (prepulled if image.nodes >= eligible else pending).append(described)
        return PrepullerStatus(
            config=self._config.images,
            images=PrepullerImages(prepulled=prepulled, pending=pending),
            nodes=[self._describe_node(node) for node in snapshot.nodes],
        )

    def _describe_node(self, node: NodeData) -> PrepullerNode:
        snapshot = self._snapshot
        to_prepull = snapshot.to_prepull
        held = snapshot.node_digests.get(node.name, set())
        cached = [
            image.reference
            for image in to_prepull.all_images()
            if image.digest in held and to_prepull.image_for_digest(image.digest) is image
        ]
        return PrepullerNode(
            name=node.name, eligible=node.eligible, comment=node.comment, cached=cached
        )

    async def resolve(self, options: LabRequestOptions) -> RSPImage:
        """The image a lab request names: by reference, by class or by tag (spec 2.7).

        Raises `UnknownImageError` (400 ``unknown_image``) or
        `InvalidDockerReferenceError` (422 ``invalid_docker_reference``).
        """
        reference = options.image_reference
        if reference is not None:
            return await self._source.image_for_reference(DockerReference.from_str(reference))
        if options.image_class is not None:
            return image_for_class(
                self._snapshot.to_prepull,
                options.image_class,
                self._config.images.recommended_tag,
            )
        assert options.image_tag is not None  # LabRequestOptions requires one way
        return await self._source.image_for_tag_name(options.image_tag)
