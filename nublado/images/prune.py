"""Pruning a registry: which images a keep policy drops, and deleting them.

Shared by ``nublado images prune`` (a person at a terminal: progress bars,
the report on stdout) and the daemon's ``image-prune`` job (the controller's
image source, logs and metrics). Deleting is by digest, which removes every
tag of an image, so an image a kept tag points at is never deleted even when
another of its tags is dropped (upstream deleted it: a ``recommended`` on an
old weekly vanished).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.images import DockerSourceConfig, GARSourceConfig, ImageFilterPolicy
    from .docker import DockerRegistryClient
    from .gar import GARClient

__all__ = [
    "DIGEST_CONCURRENCY",
    "Deletion",
    "Progress",
    "Spared",
    "docker_digests",
    "no_progress",
    "prunable",
    "prune_registry",
]

DIGEST_CONCURRENCY = 8
"""At most this many manifest HEAD requests at once while resolving digests."""

Progress = Callable[[int, str], AbstractContextManager[Callable[[], None]]]
"""Given a total and a description, a context yielding a callback that advances by one."""


@contextmanager
def no_progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A `Progress` that shows nothing (the daemon)."""
    yield lambda: None


@dataclass(frozen=True)
class Spared:
    """A dropped tag kept because a kept tag shares its image."""

    tag: str
    digest: str
    keeper: str

    def __str__(self) -> str:
        return f"Sparing {self.tag}: its image {self.digest} is also tagged {self.keeper} (kept)"


@dataclass
class Deletion:
    """The tags a prune or delete removes, and which of their images are gone so far.

    When a delete fails part-way, the caller must learn what is already gone.
    """

    digests: dict[str, str] = field(default_factory=dict)
    """Tag to be deleted -> its digest, in report order."""
    started: bool = False
    deleted: set[str] = field(default_factory=set)
    """Digests deleted so far."""

    def plan(self, tags: Iterable[str], digests: dict[str, str]) -> None:
        self.digests = {tag: digests[tag] for tag in tags}

    def done(self, digests: Iterable[str]) -> None:
        self.deleted.update(digests)

    def deleted_tags(self) -> list[str]:
        return [tag for tag, digest in self.digests.items() if digest in self.deleted]


def prunable(policy: ImageFilterPolicy, digests: dict[str, str]) -> tuple[list[str], list[Spared]]:
    """Tags the policy drops, less those whose image a kept tag also points at (`Spared`)."""
    from .collection import RSPImageTagCollection

    collection = RSPImageTagCollection.from_names(digests)
    dropped = [
        tag.tag for tag in collection.filter(policy, invert=True, remove_arch_specific=False)
    ]
    dropped_set = set(dropped)
    keepers: dict[str, str] = {}
    for tag, digest in digests.items():
        if tag not in dropped_set:
            keepers.setdefault(digest, tag)
    doomed: list[str] = []
    spared: list[Spared] = []
    for tag in dropped:
        keeper = keepers.get(digests[tag])
        if keeper is None:
            doomed.append(tag)
        else:
            spared.append(Spared(tag, digests[tag], keeper))
    return doomed, spared


async def docker_digests(
    client: DockerRegistryClient,
    source: DockerSourceConfig,
    tags: list[str],
    progress: Progress = no_progress,
) -> dict[str, str]:
    """The digest of each tag, at most `DIGEST_CONCURRENCY` HEAD requests at a time."""
    limit = asyncio.Semaphore(DIGEST_CONCURRENCY)
    with progress(len(tags), "Resolving digests") as advance:

        async def one(tag: str) -> str:
            async with limit:
                digest = await client.get_digest(source, tag)
            advance()
            return digest

        digests = await asyncio.gather(*(one(tag) for tag in tags))
    return dict(zip(tags, digests, strict=True))


async def docker_delete(
    client: DockerRegistryClient,
    source: DockerSourceConfig,
    deletion: Deletion,
    progress: Progress = no_progress,
) -> None:
    """Delete each planned image once, in order (a shared digest goes with its first tag)."""
    unique = list(dict.fromkeys(deletion.digests.values()))
    deletion.started = True
    with progress(len(unique), "Deleting") as advance:
        for digest in unique:
            await client.delete_image(source, digest)
            deletion.done([digest])
            advance()


async def gar_delete(client: GARClient, source: GARSourceConfig, deletion: Deletion) -> None:
    """Delete the planned versions, noting each batch as it goes."""
    deletion.started = True
    await client.delete_versions(source, deletion.digests.values(), on_deleted=deletion.done)


async def gar_digests(client: GARClient, source: GARSourceConfig) -> dict[str, str]:
    """Each tag of the configured image and its version's digest."""
    return {tag: v.digest for v in await client.list_versions(source) for tag in v.tags}


async def prune_registry(
    source: DockerSourceConfig | GARSourceConfig,
    policy: ImageFilterPolicy,
    *,
    execute: bool,
    docker: DockerRegistryClient | None = None,
    gar: GARClient | None = None,
    deletion: Deletion | None = None,
    progress: Progress = no_progress,
    on_spared: Callable[[Spared], None] | None = None,
) -> list[str]:
    """The tags ``policy`` does not keep, deleted when ``execute`` (else only listed).

    ``docker`` or ``gar`` is the client for ``source``'s type. ``deletion``
    records progress, so a caller can report what went before a failure.
    """
    deletion = deletion if deletion is not None else Deletion()
    if source.type == "google":
        assert gar is not None, "a Google source needs a GAR client"
        digests = await gar_digests(gar, source)
    else:
        assert docker is not None, "a Docker source needs a registry client"
        names = await docker.list_tags(source)
        digests = await docker_digests(docker, source, names, progress)
    doomed, spared = prunable(policy, digests)
    for one in spared:
        if on_spared is not None:
            on_spared(one)
    deletion.plan(doomed, digests)
    if execute:
        if source.type == "google":
            assert gar is not None
            await gar_delete(gar, source, deletion)
        else:
            assert docker is not None
            await docker_delete(docker, source, deletion, progress)
    return doomed
