"""Who a delegated token belongs to: Gafaelfawr's user-info client (api.md sections 1.4, 8).

The controller never checks tokens itself: the Gafaelfawr ingress already did.
What it needs is the user record behind a delegated token (uid, gid, groups,
quota), which Gafaelfawr answers at ``GET <v1 base>/user-info`` with
``Authorization: Bearer <token>``.

Where Gafaelfawr is (DECISIONS.md, Platform): a base URL from configuration
wins; otherwise it is discovered once through Repertoire
(``REPERTOIRE_BASE_URL``), at ``services.internal.gafaelfawr.versions.v1.url``
of ``<repertoire>/discovery``, and kept for the life of the process.

Failures, as upstream answers them (api.md 1.4 step 3):

* Gafaelfawr says 401 or 403: the token is not good, `InvalidTokenError`,
  which the API answers with 401 ``invalid_token``.
* anything else (a 5xx or 404, a network error or timeout, a reply that is not
  a user record, a failed discovery, no URL at all): `GafaelfawrError`, a
  server-side failure the API answers with its plain 500, as upstream's
  uncaught exception does. The message says which step failed, for the log.

Every request is bounded by a timeout (20 s, as upstream's client), so a
stuck Gafaelfawr costs a request at most that, never a hang.

Answers are cached in the process per token, 5 minutes and 1,000 tokens, as
upstream: a quota or group change takes up to 5 minutes to apply. Failures are
not cached. Concurrent requests for the same token share one call.

The sandbox (``nublado serve --sandbox``) has no Gafaelfawr: `TrustedUsers`
answers from a users file, trusting ``X-Auth-Request-User``. Both implement
`UserInfoSource`, which is all the API layer knows.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from pydantic import TypeAdapter, ValidationError

from .errors import InputError, NubladoError
from .models.user import UserInfo

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "DEFAULT_TIMEOUT",
    "GafaelfawrClient",
    "GafaelfawrError",
    "InvalidTokenError",
    "TrustedUsers",
    "UserInfoSource",
    "gafaelfawr_url_from_discovery",
]

DEFAULT_TIMEOUT = 20.0
"""Seconds for each call to Gafaelfawr or Repertoire (upstream's client uses 20 s)."""


class InvalidTokenError(NubladoError):
    """Gafaelfawr rejected the delegated token (it answered 401 or 403).

    Client-visible: the API answers 401 with
    ``{"detail":[{"msg":"User token is invalid","type":"invalid_token"}]}``.
    ``error`` and ``status_code`` carry the body's ``type`` and the status, so
    the API's error handler can map it without knowing this class.
    """

    error = "invalid_token"
    status_code = 401

    def __init__(self, message: str = "User token is invalid") -> None:
        super().__init__(message)


class GafaelfawrError(NubladoError):
    """Gafaelfawr (or the discovery of it) failed in a way that is not the token's fault.

    Not client-visible: the API answers the plain 500 of an uncaught error,
    as upstream does (api.md 1.4 step 3, 2.5); the message is for the log.
    """


class UserInfoSource(Protocol):
    """Where the API gets the user record behind a request (Gafaelfawr, or the sandbox's file)."""

    async def user_info(self, token: str, *, username: str | None = None) -> UserInfo:
        """The user ``token`` belongs to.

        ``username`` is the ``X-Auth-Request-User`` the ingress vouched for.
        Gafaelfawr ignores it (the caller compares it with the answer); the
        sandbox, which has no tokens, looks the user up by it. Raises
        `InvalidTokenError` or `GafaelfawrError`.
        """
        ...


def _lookup(document: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def gafaelfawr_url_from_discovery(discovery: object) -> str | None:
    """Gafaelfawr's v1 API base in a Repertoire discovery document, or None.

    The document comes from another service, so every level is checked to be
    a mapping before it is looked into (as the lab startup's portal lookup
    does); `nublado.render.discovery.reduce_discovery` is not used because it
    insists on every dataset and InfluxDB entry being complete, and one
    malformed entry there must not take user authentication down.
    """
    url = _lookup(discovery, "services", "internal", "gafaelfawr", "versions", "v1", "url")
    return url if isinstance(url, str) and url else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_user_info_adapter = TypeAdapter(UserInfo)

_SENDABLE_TOKEN = re.compile(r"[\x21-\x7e]+")
"""What can follow ``Bearer `` in a header; Gafaelfawr's tokens (``gt-...``) are a subset."""


class GafaelfawrClient:
    """Gafaelfawr's user-info endpoint, with discovery, a per-token cache and timeouts.

    ``http`` is the app's shared client (its lifetime is the app's); the
    timeout is set per request so the shared client's own default does not
    matter. ``base_url`` is Gafaelfawr's v1 API base (``https://host/auth/api/v1``)
    from configuration; without it, ``repertoire_url`` (``REPERTOIRE_BASE_URL``)
    is asked. With neither, every call fails with `GafaelfawrError`.
    ``clock`` (monotonic seconds) is injectable for tests of expiry.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str | None = None,
        *,
        repertoire_url: str | None = None,
        cache_ttl: float = 300.0,
        cache_size: int = 1000,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._http = http
        self._base_url = base_url.rstrip("/") if base_url else None
        self._repertoire_url = repertoire_url.rstrip("/") if repertoire_url else None
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._timeout = timeout
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, UserInfo]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[UserInfo]] = {}
        self._discovery: asyncio.Task[str] | None = None

    @classmethod
    def from_config(cls, http: httpx.AsyncClient, config: Config) -> GafaelfawrClient:
        """The client the controller uses: ``gafaelfawrUrl`` if set, else Repertoire.

        ``repertoireBaseUrl`` comes from ``REPERTOIRE_BASE_URL`` as upstream
        (the configuration loader reads it).
        """
        return cls(http, config.gafaelfawr_url, repertoire_url=config.repertoire_base_url)

    async def base_url(self) -> str:
        """Gafaelfawr's v1 API base: configured, or discovered once and kept.

        A failed discovery is not kept: the next request tries again.
        """
        if self._base_url is not None:
            return self._base_url
        if self._repertoire_url is None:
            raise GafaelfawrError(
                "Gafaelfawr's URL is not configured and REPERTOIRE_BASE_URL is not set"
            )
        # Concurrent requests share one discovery and its outcome: during a
        # Repertoire outage each waits one timeout, not one per request ahead.
        if self._discovery is None:
            self._discovery = asyncio.get_running_loop().create_task(
                self._discover(self._repertoire_url)
            )
        discovery = self._discovery
        try:
            self._base_url = await asyncio.shield(discovery)
        except GafaelfawrError:
            if self._discovery is discovery:
                self._discovery = None  # failed: the next request tries again
            raise
        return self._base_url

    async def _discover(self, repertoire_url: str) -> str:
        url = f"{repertoire_url}/discovery"
        try:
            async with asyncio.timeout(2 * self._timeout):  # the whole call, not each read
                response = await self._http.get(url, timeout=self._timeout)
            response.raise_for_status()
            discovery = response.json()
        except TimeoutError:
            raise GafaelfawrError(
                f"Service discovery at {url} failed:"
                f" no complete answer within {2 * self._timeout:g}s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # InvalidURL (a malformed REPERTOIRE_BASE_URL) is not an HTTPError;
            # ValueError covers a body that is not JSON.
            raise GafaelfawrError(f"Service discovery at {url} failed: {_describe(exc)}") from exc
        base = gafaelfawr_url_from_discovery(discovery)
        if base is None:
            raise GafaelfawrError(
                f"Service discovery at {url} has no services.internal.gafaelfawr.versions.v1.url"
            )
        return base.rstrip("/")

    async def user_info(self, token: str, *, username: str | None = None) -> UserInfo:
        """The user ``token`` belongs to, from the cache or from Gafaelfawr.

        ``username`` is accepted for `UserInfoSource` and not used: comparing
        it with the answer is the caller's job (a mismatch is a 403, not a
        bad token). Raises `InvalidTokenError` or `GafaelfawrError`.

        A token that cannot even be sent (empty, spaces, control or non-ASCII
        characters) is invalid without asking: Gafaelfawr would answer 401 to
        the empty one, and httpx cannot encode the others.
        """
        if not _SENDABLE_TOKEN.fullmatch(token):
            raise InvalidTokenError
        cached = self._cached(token)
        if cached is not None:
            return cached
        task = self._inflight.get(token)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(token))
            self._inflight[token] = task
            task.add_done_callback(lambda done: self._settle(token, done))
        # Shielded: a caller that goes away (client disconnect) does not
        # cancel the call that other callers with the same token wait on.
        return await asyncio.shield(task)

    def _cached(self, token: str) -> UserInfo | None:
        entry = self._cache.get(token)
        if entry is None:
            return None
        expires, info = entry
        if self._clock() >= expires:
            del self._cache[token]
            return None
        return info

    def _settle(self, token: str, task: asyncio.Task[UserInfo]) -> None:
        if self._inflight.get(token) is task:
            del self._inflight[token]
        if task.cancelled() or task.exception() is not None:
            return
        self._store(token, task.result())

    def _store(self, token: str, info: UserInfo) -> None:
        now = self._clock()
        self._cache.pop(token, None)
        if len(self._cache) >= self._cache_size:
            for key in [key for key, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[key]
        while len(self._cache) >= self._cache_size:
            self._cache.popitem(last=False)  # the oldest entry
        self._cache[token] = (now + self._cache_ttl, info)

    async def _fetch(self, token: str) -> UserInfo:
        url = f"{await self.base_url()}/user-info"
        try:
            async with asyncio.timeout(2 * self._timeout):  # the whole call, not each read
                response = await self._http.get(
                    url, headers={"Authorization": f"Bearer {token}"}, timeout=self._timeout
                )
        except TimeoutError:
            raise GafaelfawrError(
                f"Cannot reach Gafaelfawr at {url}:"
                f" no complete answer within {2 * self._timeout:g}s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise GafaelfawrError(f"Cannot reach Gafaelfawr at {url}: {_describe(exc)}") from exc
        if response.status_code in (401, 403):
            raise InvalidTokenError
        if response.status_code != 200:
            raise GafaelfawrError(f"Gafaelfawr answered {response.status_code} from {url}")
        try:
            return _user_info_adapter.validate_json(response.content)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"])
            detail = f"{where}: {problem['msg']}" if where else problem["msg"]
            message = f"Gafaelfawr's answer from {url} is not a user: {detail}"
            raise GafaelfawrError(message) from exc


class TrustedUsers:
    """The sandbox's user source: a fixed set of users, named by ``X-Auth-Request-User``.

    ``nublado serve --sandbox`` has no Gafaelfawr in front, so the header is
    trusted for the users of the file and the token is not checked (it is
    still required by the API and still stored in the lab, as in production).
    A user not in the file gets the answer of a bad token (401
    ``invalid_token``): in the sandbox that is the only way not to be a user.
    """

    def __init__(self, users: Iterable[UserInfo]) -> None:
        self._users = {user.username: user for user in users}

    @property
    def usernames(self) -> list[str]:
        """The users known, sorted (for the sandbox's start-up banner)."""
        return sorted(self._users)

    @classmethod
    def from_file(cls, path: Path) -> TrustedUsers:
        """Read a users file: a JSON list of user-info records, or a single one.

        A single record is accepted so that a Gafaelfawr answer saved as is
        (examples/user.json, the reference rachel.json) serves directly.
        Raises `InputError` naming the file and the problem.
        """
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{path}: cannot read users file: {exc.strerror}") from None
        except ValueError as exc:
            raise InputError(f"{path}: users file is not JSON: {exc}") from None
        records = [data] if isinstance(data, Mapping) else data
        if not isinstance(records, list):
            raise InputError(f"{path}: users file must hold a user or a list of users")
        users: list[UserInfo] = []
        for index, record in enumerate(records):
            try:
                users.append(UserInfo.model_validate(record))
            except ValidationError as exc:
                problem = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in problem["loc"]) or "record"
                raise InputError(f"{path}: user {index}: {where}: {problem['msg']}") from None
        return cls(users)

    async def user_info(self, token: str, *, username: str | None = None) -> UserInfo:
        """The user named ``username`` if the file has them; the token is not looked at."""
        user = self._users.get(username) if username is not None else None
        if user is None:
            raise InvalidTokenError
        return user
