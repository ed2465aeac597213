"""A stand-in for ``ArtifactRegistryAsyncClient``: the two calls the GAR client makes.

It pages DockerImage-like objects asynchronously, records every request,
applies batch deletes to its own image list (so a later listing no longer
shows them), and raises queued errors (the real google.api_core exceptions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeDockerImage", "FakeGAR", "gar_image"]

GAR_HOST = "us-central1-docker.pkg.dev"
GAR_PATH = "rubin-shared-services-71ec/sciplat"


@dataclass
class FakeDockerImage:
    """The fields of ``google.cloud.artifactregistry_v1.DockerImage`` the client reads."""

    uri: str
    tags: list[str] = field(default_factory=list)
    image_size_bytes: int = 0

    @property
    def digest(self) -> str:
        return self.uri.rsplit("@", 1)[-1]


def gar_image(
    digest: str, *tags: str, image: str = "sciplat-lab", size: int = 0
) -> FakeDockerImage:
    """A DockerImage of ``image`` in the test repository."""
    return FakeDockerImage(f"{GAR_HOST}/{GAR_PATH}/{image}@{digest}", list(tags), size)


class _Pager:
    """Like ``ListDockerImagesAsyncPager``: async iteration over the images."""

    def __init__(self, images: list[FakeDockerImage]) -> None:
        self._images = images

    async def _iterate(self) -> AsyncIterator[FakeDockerImage]:
        for image in self._images:
            yield image

    def __aiter__(self) -> AsyncIterator[FakeDockerImage]:
        return self._iterate()


class FakeGAR:
    """Record requests; fail the next calls with ``list_errors`` / ``delete_errors``, in order."""

    def __init__(self, images: Iterable[FakeDockerImage] = ()) -> None:
        self.images = list(images)
        self.list_errors: list[Exception] = []
        self.delete_errors: list[Exception | None] = []
        """Outcomes of the next delete calls, in order: an exception to raise, or None."""
        self.list_requests: list[Any] = []
        self.delete_requests: list[Any] = []

    async def list_docker_images(self, request: Any) -> _Pager:
        self.list_requests.append(request)
        if self.list_errors:
            raise self.list_errors.pop(0)
        return _Pager(list(self.images))

    async def batch_delete_versions(self, request: Any) -> None:
        self.delete_requests.append(request)
        error = self.delete_errors.pop(0) if self.delete_errors else None
        if error is not None:
            raise error
        gone = {name.rsplit("/", 1)[-1] for name in request.names}
        self.images = [image for image in self.images if image.digest not in gone]

    @property
    def deleted_names(self) -> list[list[str]]:
        return [list(request.names) for request in self.delete_requests]
