"""Errors of the registry clients (Docker Registry v2 and Google Artifact Registry).

Every failure talking to a registry is a `RegistryError`, so that the
``nublado images`` commands and the image service can report it in one line
instead of a traceback. An HTTP failure names the request (method and URL),
because a registry's own message rarely says which of several calls failed.
"""

from __future__ import annotations

from ..errors import NubladoError

__all__ = [
    "InvalidLinkURLError",
    "NoCredentialsError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryHTTPError",
    "RegistryResponseError",
    "RepeatedPageURLError",
    "TooManyPagesError",
]


class RegistryError(NubladoError):
    """A registry could not be asked, refused, or answered something unusable.

    ``method`` and ``url`` name the request when there was one.
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class RegistryHTTPError(RegistryError):
    """A request failed: an error status, a timeout or a broken connection.

    The message is ``{METHOD} {URL}: {what}``, e.g. ``GET https://host/v2/r/tags/list: status 500``.
    """

    def __init__(self, method: str, url: str, what: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(f"{method} {url}: {what}", method=method, url=url)


class RegistryAuthError(RegistryError):
    """Authentication failed: credentials rejected, no challenge, or an unknown scheme."""


class NoCredentialsError(RegistryAuthError):
    """The registry asked for credentials and we have none for its host."""


class RegistryResponseError(RegistryError):
    """A successful status with an unusable answer: not JSON, HTML, a missing header."""


class InvalidLinkURLError(RegistryError):
    """A tag-list ``Link`` pointed off the registry (which would leak our credentials)."""


class RepeatedPageURLError(RegistryError):
    """A tag-list ``Link`` pointed at a page already fetched (the listing would never end)."""


class TooManyPagesError(RegistryError):
    """A tag listing named a new next page more times than the page cap allows.

    A registry that names a fresh URL on every page (a cursor that never
    ends, or a hostile server) would otherwise keep the listing going forever.
    """
