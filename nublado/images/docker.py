"""A Docker Registry v2 client: list tags, get a tag's digest, delete an image (spec 2.3).

Three deliberate differences from upstream (DECISIONS.md, images):

* the ``WWW-Authenticate`` challenge and the ``Link`` header are parsed with
  real RFC 7235 / RFC 8288 parsers, so a bearer ``scope`` with a comma
  (``repository:x:pull,push``) or an escaped quote survives;
* ``"tags": null`` (an empty repository) is an empty list, not a crash;
* transient failures (429, 5xx, timeouts, broken connections) are retried
  with a bounded `RetryPolicy` that honours ``Retry-After``; other 4xx fail at
  once. Every failure is a `RegistryError` naming the request, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from ..config.images import DockerSourceConfig
from .credentials import DockerCredentials
from .errors import (
    InvalidLinkURLError,
    NoCredentialsError,
    RegistryAuthError,
    RegistryHTTPError,
    RegistryResponseError,
    RepeatedPageURLError,
    TooManyPagesError,
)
from .retry import RetryPolicy, parse_retry_after

__all__ = [
    "MANIFEST_ACCEPT",
    "MAX_TAG_PAGES",
    "AuthChallenge",
    "DockerRegistryClient",
    "LinkValue",
    "parse_challenges",
    "parse_link_header",
]

logger = logging.getLogger("nublado.images")

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/json;q=0.5",
    )
)
"""The ``Accept`` of a manifest HEAD: Docker and OCI manifests and indexes, in this order."""

MAX_TAG_PAGES = 1000
"""The most tag-list pages one listing fetches; far above any real repository's count."""

_JSON_ACCEPT = {"Accept": "application/json"}
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WHITESPACE = " \t"


# ---------------------------------------------------------------- header grammar


def _skip(text: str, i: int, chars: str = _WHITESPACE) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in _TCHAR:
        i += 1
    return text[start:i], i


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; backslash escapes one character."""
    chars: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
        elif char == '"':
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    raise ValueError("unterminated quoted string")


def _param(text: str, i: int) -> tuple[str, str, int] | None:
    """An ``name = (token | quoted-string)`` pair at ``i``, or None if there is none."""
    name, j = _token(text, i)
    j = _skip(text, j)
    if not name or j >= len(text) or text[j] != "=":
        return None
    j = _skip(text, j + 1)
    if j < len(text) and text[j] == '"':
        value, j = _quoted_string(text, j)
    else:
        value, j = _token(text, j)
        if not value:  # token68 padding such as "abc==": not a parameter
            return None
    return name.lower(), value, j


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """One challenge of a ``WWW-Authenticate`` header: a lower-case scheme and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[AuthChallenge]:
    """Parse ``WWW-Authenticate`` (RFC 7235 section 4.1): one or more challenges.

    Parameter names are lower-cased; values are tokens or quoted-strings with
    escapes removed. A token68 (``Basic abc==``) is skipped. Raises ValueError
    on text that is not a challenge.
    """
    challenges: list[AuthChallenge] = []
    i = _skip(header, 0, _WHITESPACE + ",")
    while i < len(header):
        scheme, i = _token(header, i)
        if not scheme:
            raise ValueError(f"expected an authentication scheme at character {i + 1}")
        params: dict[str, str] = {}
        i = _skip(header, i)
        while i < len(header):
            found = _param(header, i)
            if found is None:
                if header[i] == ",":
                    i = _skip(header, i, _WHITESPACE + ",")
                    found = _param(header, i)
                    if found is None:
                        break  # the next challenge starts here
                else:  # a token68: skip it
                    while i < len(header) and header[i] not in _WHITESPACE + ",":
                        i += 1
                    i = _skip(header, i)
                    continue
            name, value, i = found
            params.setdefault(name, value)
            i = _skip(header, i)
            if i < len(header) and header[i] != ",":
                raise ValueError(f"expected ',' at character {i + 1}")
        challenges.append(AuthChallenge(scheme.lower(), params))
        i = _skip(header, i, _WHITESPACE + ",")
    return challenges


@dataclass(frozen=True, slots=True)
class LinkValue:
    """One link of a ``Link`` header: the target as written and its parameters."""

    target: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def rels(self) -> frozenset[str]:
        """The relation types, lower-cased, with ``previous`` read as ``prev``."""
        names = self.params.get("rel", "").lower().split()
        return frozenset("prev" if name == "previous" else name for name in names)


def parse_link_header(header: str) -> list[LinkValue]:
    """Parse a ``Link`` header (RFC 8288 section 3); raises ValueError if it is not one.

    Commas inside ``<...>`` or quoted values do not split links.
    """
    links: list[LinkValue] = []
    i = _skip(header, 0, _WHITESPACE + ",")
    while i < len(header):
        if header[i] != "<":
            raise ValueError(f"expected '<' at character {i + 1}")
        end = header.find(">", i)
        if end < 0:
            raise ValueError("unterminated '<'")
        target = header[i + 1 : end]
        params: dict[str, str] = {}
        i = _skip(header, end + 1)
        while i < len(header) and header[i] == ";":
            i = _skip(header, i + 1)
            found = _param(header, i)
            if found is None:  # a parameter without a value, such as "; crossorigin"
                name, i = _token(header, i)
                if not name:
                    raise ValueError(f"expected a parameter name at character {i + 1}")
                params.setdefault(name.lower(), "")
            else:
                name, value, i = found
                params.setdefault(name, value)
            i = _skip(header, i)
        if i < len(header) and header[i] != ",":
            raise ValueError(f"expected ',' or ';' at character {i + 1}")
        links.append(LinkValue(target, params))
        i = _skip(header, i, _WHITESPACE + ",")
    return links


# ---------------------------------------------------------------- client


class DockerRegistryClient:
    """Talk to Docker Registry v2 APIs over one shared httpx client.

    The ``Authorization`` value found for each registry is cached and sent
    with every later request to it; a 401 despite it means the credentials
    were rejected, unless it is a bearer challenge for a scope the cached
    token was not issued for (a delete after a listing): then one new token,
    once per request, so authentication never loops. A tag listing fetches at
    most ``max_tag_pages`` pages.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: DockerCredentials | None = None,
        retry: RetryPolicy | None = None,
        *,
        max_tag_pages: int = MAX_TAG_PAGES,
    ) -> None:
        self._http = http
        self._max_tag_pages = max_tag_pages
        self._credentials = credentials if credentials is not None else DockerCredentials({})
        self._retry = retry if retry is not None else RetryPolicy()
        self._authorization: dict[str, str] = {}
        self._scopes: dict[str, str | None] = {}

    async def list_tags(self, source: DockerSourceConfig) -> list[str]:
        """Every tag of the repository, following ``Link: rel="next"`` pages, first seen first."""
        registry = source.registry
        url = first = f"https://{registry}/v2/{source.repository}/tags/list"
        fetched = {url}
        tags: dict[str, None] = {}
        while True:
            response = await self._request("GET", registry, url, _JSON_ACCEPT)
            for tag in self._tags_from(response, url):
                tags.setdefault(tag, None)
            following = self._next_page(response, url)
            if following is None:
                return list(tags)
            if not following.startswith(f"https://{registry}/"):
                raise InvalidLinkURLError(
                    f"Docker Link URL not relative to {registry}: {following}",
                    method="GET",
                    url=url,
                )
            if following in fetched:
                raise RepeatedPageURLError(
                    f"Repeated tag page URL: {following}", method="GET", url=url
                )
            if len(fetched) >= self._max_tag_pages:
                raise TooManyPagesError(
                    f"Tag listing of {first} stopped after {len(fetched)} pages (the cap):"
                    f" the registry still names a next page, {following}",
                    method="GET",
                    url=url,
                )
            fetched.add(following)
            url = following

    async def get_digest(self, source: DockerSourceConfig, tag: str) -> str:
        """The digest (``sha256:...``) of a tag's manifest or index, by HEAD."""
        url = f"https://{source.registry}/v2/{source.repository}/manifests/{tag}"
        response = await self._request("HEAD", source.registry, url, {"Accept": MANIFEST_ACCEPT})
        digest: str | None = response.headers.get("Docker-Content-Digest")
        if not digest:
            raise RegistryResponseError(
                f"Cannot get image digest from Docker registry: HEAD {url}:"
                " no Docker-Content-Digest header",
                method="HEAD",
                url=url,
            )
        return digest

    async def delete_image(self, source: DockerSourceConfig, digest: str) -> None:
        """Delete a manifest by digest, which removes every tag on it."""
        url = f"https://{source.registry}/v2/{source.repository}/manifests/{digest}"
        await self._request("DELETE", source.registry, url, _JSON_ACCEPT)

    # ------------------------------------------------------------ internals

    async def _request(
        self, method: str, registry: str, url: str, headers: Mapping[str, str]
    ) -> httpx.Response:
        """Send with the cached authorization; on a 401, authenticate and send again."""
        rescoped = False
        while True:
            sent = dict(headers)
            authorization = self._authorization.get(registry)
            if authorization is not None:
                sent["Authorization"] = authorization
            response = await self._send(method, url, headers=sent)
            status = response.status_code
            if status == 401:
                if authorization is not None and (
                    rescoped or not self._asks_new_scope(registry, response)
                ):
                    raise RegistryAuthError(
                        f"Authentication credentials for {registry} rejected",
                        method=method,
                        url=url,
                    )
                self._authorization[registry] = await self._authenticate(
                    registry, method, url, response
                )
                rescoped = authorization is not None
                continue
            if not response.is_success:
                raise RegistryHTTPError(method, url, f"status {status}", status=status)
            return response

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """One request, retrying 429, 5xx, timeouts and broken connections under the policy.

        Any other answer, success or not, is returned for the caller to judge.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    method, url, headers=headers, params=params, auth=auth
                )
            except httpx.TimeoutException as exc:
                what = f"timed out ({type(exc).__name__})"
                retry_after = None
            except httpx.TransportError as exc:
                what = f"connection failed: {exc or type(exc).__name__}"
                retry_after = None
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                what = f"status {status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if not self._retry.should_retry(attempt):
                    raise RegistryHTTPError(
                        method, url, f"{what} after {attempt} tries", status=status
                    )
            if not self._retry.should_retry(attempt):
                raise RegistryHTTPError(method, url, f"{what} after {attempt} tries")
            logger.warning("%s %s: %s (try %d), retrying", method, url, what, attempt)
            await self._retry.wait(attempt, retry_after)

    async def _authenticate(
        self, registry: str, method: str, url: str, response: httpx.Response
    ) -> str:
        """The ``Authorization`` value answering a 401's challenge."""
        credential = self._credentials.get(registry)
        if credential is None:
            raise NoCredentialsError(
                f"No Docker API credentials available for {registry}", method=method, url=url
            )
        header = response.headers.get("WWW-Authenticate")
        if not header or not header.strip(" \t,"):
            raise RegistryAuthError(
                f"Docker API 401 response from {registry} contains no challenge",
                method=method,
                url=url,
            )
        try:
            challenges = parse_challenges(header)
        except ValueError as exc:
            raise RegistryAuthError(
                f"Docker API 401 response from {registry} has an unreadable challenge: {exc}",
                method=method,
                url=url,
            ) from None
        usable = [c for c in challenges if c.scheme in ("basic", "bearer")]
        if not usable:
            scheme = challenges[0].scheme
            raise RegistryAuthError(
                f'Unknown Docker authentication challenge "{scheme}"', method=method, url=url
            )
        challenge = usable[0]
        self._scopes[registry] = challenge.params.get("scope")
        if challenge.scheme == "basic":
            return credential.authorization
        username, password = credential.username, credential.password
        token = await self._bearer_token(registry, challenge, username, password)
        return f"Bearer {token}"

    def _asks_new_scope(self, registry: str, response: httpx.Response) -> bool:
        """Whether a 401 despite our bearer token asks for a scope the token lacks.

        A token got for listing (``pull``) does not allow a delete; the
        registry then challenges for ``delete`` or ``push``, which deserves one
        new token rather than "credentials rejected".
        """
        try:
            challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        except ValueError:
            return False
        bearer = [c for c in challenges if c.scheme == "bearer"]
        if not bearer or "scope" not in bearer[0].params:
            return False
        return bearer[0].params["scope"] != self._scopes.get(registry)

    async def _bearer_token(
        self, registry: str, challenge: AuthChallenge, username: str, password: str
    ) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryAuthError(f"Docker API bearer challenge from {registry} has no realm")
        # the token request carries the user's password in Basic auth: never in cleartext
        if not realm.lower().startswith("https://"):
            raise RegistryAuthError(
                f"Docker API bearer challenge from {registry} names a realm that is not https,"
                f" refusing to send credentials to it: {realm}"
            )
        response = await self._send(
            "GET", realm, params=challenge.params, auth=(username, password)
        )
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                f"Authentication credentials for {registry} rejected", method="GET", url=realm
            )
        if not response.is_success:
            raise RegistryHTTPError(
                "GET", realm, f"status {response.status_code}", status=response.status_code
            )
        body = _json_body(response, "GET", realm)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise RegistryResponseError(
                f"Cannot parse response from Docker registry: GET {realm}: no token in the reply",
                method="GET",
                url=realm,
            )
        return token

    def _tags_from(self, response: httpx.Response, url: str) -> list[str]:
        body = _json_body(response, "GET", url)
        tags = body.get("tags") if isinstance(body, dict) else body
        if tags is None and isinstance(body, dict):
            return []  # an empty repository (upstream crashed on "tags": null)
        if (
            not isinstance(body, dict)
            or not isinstance(tags, list)
            or not all(isinstance(tag, str) for tag in tags)
        ):
            raise RegistryResponseError(
                f'Cannot parse response from Docker registry: GET {url}: "tags" is not a list'
                " of strings",
                method="GET",
                url=url,
            )
        return tags

    def _next_page(self, response: httpx.Response, url: str) -> str | None:
        headers = response.headers.get_list("Link")
        if not headers:
            return None
        try:
            links = parse_link_header(", ".join(headers))
        except ValueError as exc:
            raise RegistryResponseError(
                f"Cannot parse response from Docker registry: GET {url}: bad Link header: {exc}",
                method="GET",
                url=url,
            ) from None
        for link in links:
            if "next" in link.rels:
                return urljoin(url, link.target)
        return None


def _json_body(response: httpx.Response, method: str, url: str) -> Any:
    """The decoded JSON body, or a `RegistryResponseError` saying what came instead."""
    try:
        return response.json()
    except ValueError:
        content_type = response.headers.get("Content-Type", "no content type")
        start = response.text[:60].replace("\n", " ").strip()
        raise RegistryResponseError(
            f"Cannot parse response from Docker registry: {method} {url}: not JSON"
            f" ({content_type}): {start!r}",
            method=method,
            url=url,
        ) from None
