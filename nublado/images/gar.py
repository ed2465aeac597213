"""A Google Artifact Registry client: list an image's tagged versions, delete versions (spec 2.4).

``google-cloud-artifact-registry`` (the ``google`` extra) takes half a second
to import, so it is imported only when a GAR source is used, and only its
request types when a client object is injected (tests inject a fake one).
Unlike upstream there is no unconditional extra call after the retries: a
500 or 503 is retried under a bounded `RetryPolicy`, then reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config.images import GARSourceConfig
from .errors import RegistryError
from .retry import RetryPolicy

__all__ = ["GAR_DELETE_BATCH_SIZE", "GARClient", "GARVersion", "parse_image_uri"]

logger = logging.getLogger("nublado.images")

GAR_DELETE_BATCH_SIZE = 50
"""Google refuses a batch delete of more versions than this."""

_DEFAULT_RETRY = RetryPolicy(attempts=3, base_delay=2.0, max_delay=10.0)


@dataclass(frozen=True, slots=True)
class GARVersion:
    """One tagged version of the configured image."""

    tags: tuple[str, ...]
    digest: str
    size: int | None


def parse_image_uri(uri: str) -> tuple[str, str]:
    """Image name and digest from a DockerImage ``uri`` (``host/project/repo/image@sha256:...``)."""
    name, _, digest = uri.rsplit("/", 1)[-1].partition("@")
    return name, digest


def _retryable_errors() -> tuple[type[Exception], ...]:
    """Google's 500 and 503 exceptions, if google-api-core is installed."""
    try:
        from google.api_core.exceptions import InternalServerError, ServiceUnavailable
    except ImportError:  # pragma: no cover - only without the google extra
        return ()
    return (InternalServerError, ServiceUnavailable)


def _api_errors() -> tuple[type[Exception], ...]:
    """Google's API errors and google-auth's (a token that cannot be refreshed, no credentials).

    google-auth raises its own exceptions (RefreshError, TransportError,
    DefaultCredentialsError) from inside an API call, outside GoogleAPIError.
    """
    errors: tuple[type[Exception], ...] = ()
    try:
        from google.api_core.exceptions import GoogleAPIError
    except ImportError:  # pragma: no cover - only without the google extra
        pass
    else:
        errors += (GoogleAPIError,)
    try:
        from google.auth.exceptions import GoogleAuthError
    except ImportError:  # pragma: no cover - only without the google extra
        pass
    else:
        errors += (GoogleAuthError,)
    return errors


def _one_line(exc: Exception) -> str:
    """An exception's message on one line (google-auth's can span several), or its type."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _list_request(parent: str) -> Any:
    try:
        from google.cloud.artifactregistry_v1 import ListDockerImagesRequest
    except ImportError:  # pragma: no cover - only without the google extra
        return {"parent": parent}
    return ListDockerImagesRequest(parent=parent)


def _delete_request(parent: str, names: list[str]) -> Any:
    try:
        from google.cloud.artifactregistry_v1 import BatchDeleteVersionsRequest
    except ImportError:  # pragma: no cover - only without the google extra
        return {"parent": parent, "names": names}
    return BatchDeleteVersionsRequest(parent=parent, names=names)


class GARClient:
    """List and delete versions of one image through Artifact Registry's async API.

    ``client`` is an ``ArtifactRegistryAsyncClient`` or an object with the same
    two coroutine methods; without one, a real client with application
    default credentials (workload identity) is created on first use.
    """

    def __init__(self, client: Any | None = None, retry: RetryPolicy | None = None) -> None:
        self._client = client
        self._retry = retry if retry is not None else _DEFAULT_RETRY

    def _get_client(self) -> Any:
        if self._client is None:
            try:
                from google.cloud.artifactregistry_v1 import ArtifactRegistryAsyncClient
            except ImportError:
                raise RegistryError(
                    "Google Artifact Registry needs the google extra: pip install 'nublado[google]'"
                ) from None
            try:
                self._client = ArtifactRegistryAsyncClient()
            except Exception as exc:  # google.auth raises several unrelated types
                raise RegistryError(
                    f"Cannot create a Google Artifact Registry client: {exc}"
                ) from None
        return self._client

    async def list_versions(self, source: GARSourceConfig) -> list[GARVersion]:
        """The tagged versions of the configured image, in the API's order.

        Versions of other images in the repository and untagged versions are skipped.
        """
        client = self._get_client()
        request = _list_request(source.parent)
        retryable = _retryable_errors()
        attempt = 0
        while True:
            attempt += 1
            try:
                pager = await client.list_docker_images(request=request)
                versions: list[GARVersion] = []
                async for image in pager:
                    name, digest = parse_image_uri(image.uri)
                    if name != source.image or not image.tags:
                        continue
                    size = image.image_size_bytes or None
                    versions.append(GARVersion(tuple(image.tags), digest, size))
                return versions
            except retryable as exc:
                if not self._retry.should_retry(attempt):
                    raise RegistryError(
                        f"Listing images in {source.parent} failed after {attempt} tries: {exc}"
                    ) from None
                logger.warning(
                    "Listing images in %s failed (try %d), retrying: %s",
                    source.parent,
                    attempt,
                    exc,
                )
                await self._retry.wait(attempt)
            except _api_errors() as exc:
                raise RegistryError(
                    f"Listing images in {source.parent} failed: {_one_line(exc)}"
                ) from None

    async def delete_versions(
        self,
        source: GARSourceConfig,
        digests: Iterable[str],
        on_deleted: Callable[[list[str]], None] | None = None,
    ) -> None:
        """Delete versions of the configured image by digest, each once, 50 per request.

        ``on_deleted`` is called with the digests of each batch once it is
        deleted, so that a caller can say what was deleted when a later batch fails.
        """
        client = self._get_client()
        package = f"{source.parent}/packages/{source.image}"
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), GAR_DELETE_BATCH_SIZE):
            batch = unique[start : start + GAR_DELETE_BATCH_SIZE]
            names = [f"{package}/versions/{digest}" for digest in batch]
            try:
                operation = await client.batch_delete_versions(
                    request=_delete_request(package, names)
                )
                result = getattr(operation, "result", None)
                if callable(result):  # a long-running operation: wait until it is done
                    await result()
            except _api_errors() as exc:
                raise RegistryError(
                    f"Deleting versions in {package} failed: {_one_line(exc)}"
                ) from None
            if on_deleted is not None:
                on_deleted(batch)
