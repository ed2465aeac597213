"""The Kubernetes client nublado uses: apply, get, list, delete, watch.

Built on the official ``kubernetes`` package's asyncio client
(``kubernetes.aio``) for configuration and authentication (kubeconfig, exec
plugins, in-cluster token refresh, TLS), but every call goes through one raw
request helper rather than the generated typed APIs and their REST layer
(plain requests on the lean keep-alive transport of `nublado.kube.transport`,
watches, and every request of a proxied set-up, on aiohttp): our kinds are a fixed table
(`nublado.kube.kinds`), objects stay plain dicts (what the templates render),
the generated CustomObjectsApi decodes an apply's 201 answer as None, and the
generated serialization layers cost more CPU per request than the request
itself. Errors become `nublado.kube.errors`
exceptions carrying the Kubernetes Status reason and message.

This module imports ``kubernetes`` at import time; import it only on paths
that talk to a cluster (``nublado.kube`` itself does not).
"""

from __future__ import annotations

import asyncio
import builtins
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import quote

import aiohttp
import orjson
import yaml
from aiohttp.helpers import basicauth_from_netrc, get_env_proxy_for_url, netrc_from_env
from kubernetes.aio import client as kclient
from kubernetes.aio import config as kconfig
from yarl import URL

from .errors import (
    ExpiredError,
    KubernetesConnectionError,
    KubernetesError,
    KubernetesTimeoutError,
    NotFoundError,
    error_from_status,
)
from .kinds import ResourceKind, kind_for_manifest, kind_named
from .transport import HTTPTransport, Response, Stream, TransportError, settle, uninterrupted

__all__ = ["ApplyResult", "KubernetesClient", "WatchEvent"]

Object = dict[str, Any]

FIELD_MANAGER = "nublado"
# With a charset parameter the generated REST layer sends our pre-serialized bytes as they
# are (without it, it would walk and re-encode the manifest); the API server strips it.
_APPLY = "application/apply-patch+yaml; charset=utf-8"
_METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
"""What a metadata-only LIST asks for (kube-apiserver 1.15 and later serve it)."""
_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Characters a query value keeps as they are (urllib's quote() leaves these and "/").
_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")
# Characters a path keeps as they are (what yarl would not re-encode).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/:@!$&'()*+,;=-]*")


def _quote(value: str) -> str:
    """``quote(value)``, without its cost for the usual value that needs no quoting."""
    return value if _PLAIN.fullmatch(value) else quote(value)


_QUERIES: dict[tuple[tuple[str, str], ...], str] = {}
"""Encoded query strings by their pairs: a spawn's applies all send the same one."""


def _encode_query(query: builtins.list[tuple[str, str]]) -> str:
    """``k=v&k2=v2`` with the values quoted, remembered for the next request that sends it."""
    key = tuple(query)
    encoded = _QUERIES.get(key)
    if encoded is None:
        encoded = "&".join(f"{name}={_quote(value)}" for name, value in key)
        if len(_QUERIES) >= 64:
            _QUERIES.clear()  # watches' and pages' versions and tokens come and go
        _QUERIES[key] = encoded
    return encoded


def _format_labels(labels: dict[str, str]) -> str:
    """An equality label selector for a set of labels (``k=v,k2=v2``, what matchLabels means)."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


@dataclass(frozen=True)
class ApplyResult:
    """What one server-side apply did."""

    kind: str
    name: str
    namespace: str | None
    created: bool
    object: Object

    @property
    def action(self) -> str:
        """``created`` or ``updated`` (an update may have changed nothing)."""
        return "created" if self.created else "updated"

    @property
    def resource_version(self) -> str:
        """resourceVersion of the object after the apply."""
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by a watch: ADDED, MODIFIED or DELETED, and the object."""

    type: str
    object: Object

    @property
    def name(self) -> str:
        """Name of the object."""
        return str(self.object.get("metadata", {}).get("name", ""))


def _decode(data: bytes | bytearray) -> Any:
    """A JSON body, or None when it is empty or not JSON (a proxy's HTML error page)."""
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None


def _timeout_seconds(timeout: aiohttp.ClientTimeout) -> float | None:
    """The limit that applies to a call: its total, else its connect or read limit."""
    return timeout.total or timeout.sock_connect or timeout.sock_read


def _retry_after(headers: Any, default: float, cap: float) -> float:
    """Seconds a 429/503 answer asks to wait (Retry-After in seconds), capped."""
    # Lower case: the lean transport's headers are, aiohttp's ignore case.
    value = headers.get("retry-after", "") if headers is not None else ""
    try:
        seconds = float(value)
    except ValueError:
        return default
    return min(max(seconds, 0.0), cap)


def _too_large(exc: KubernetesError) -> bool:
    """Whether an error is the 504 "Too large resource version" of a watch or list."""
    causes = exc.details.get("causes") if exc.status == 504 else None
    return isinstance(causes, list) and any(
        isinstance(c, dict) and c.get("reason") == "ResourceVersionTooLarge" for c in causes
    )


def _close_response(response: aiohttp.ClientResponse) -> None:
    """Drop the answer to a request whose caller gave up (`uninterrupted`), and its connection.

    The connection is aborted, not closed: a TLS close waits for the server's
    close_notify, which a loop about to stop (the client closing) may never see.
    """
    connection = response.connection
    if connection is not None and connection.transport is not None:
        connection.transport.abort()
    response.close()


def _meta(obj: Object) -> Object:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _check_kubeconfig(path: Path) -> None:
    """Fail in one line on a kubeconfig that is missing or not a YAML mapping.

    The library's loader logs a warning for a missing file and then complains of a
    missing ``current-context``; a file that is not YAML (or YAML of another shape)
    makes it raise whatever error its first lookup hits.
    """
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        raise KubernetesError(f"cannot load kubeconfig {path}: the file does not exist") from None
    except OSError as exc:
        raise KubernetesError(f"cannot load kubeconfig {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KubernetesError(f"cannot load kubeconfig {path}: not a UTF-8 text file") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubernetesError(f"cannot load kubeconfig {path}: not valid YAML{where}") from None
    if not isinstance(loaded, dict):
        found = "empty" if loaded is None else f"a {type(loaded).__name__}"
        raise KubernetesError(
            f"cannot load kubeconfig {path}: a kubeconfig is a YAML mapping, the file is {found}"
        )


class KubernetesClient:
    """An asyncio Kubernetes client for nublado's fixed set of kinds.

    Build one with `from_kubeconfig`, `from_cluster`, `load` or `from_url`,
    use it as an async context manager (or call `close`). Reads, applies and
    deletes are idempotent and retried on 429/5xx and connection failures, a
    bounded number of times with backoff; creates are not retried.
    """

    def __init__(
        self,
        api_client: kclient.ApiClient,
        *,
        field_manager: str = FIELD_MANAGER,
        request_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_retry_after: float = 5.0,
    ) -> None:
        self._api = api_client
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None  # see _new_session
        self._transport: HTTPTransport | None = None
        # aiohttp requests over TLS whose caller gave up before the answer (`uninterrupted`).
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._lean = True  # False once the lean transport turned out not to fit the set-up
        self._environment_read = False
        self._proxy: URL | str | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        self._netrc_auth: aiohttp.BasicAuth | None = None
        self.field_manager = field_manager
        self.request_timeout = request_timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.on_error: Callable[[KubernetesError], None] | None = None
        """Told of every request that finally failed (after retries): the metrics hook."""

    # Construction

    @classmethod
    def from_url(cls, url: str, *, token: str | None = None, **options: Any) -> Self:
        """A client for an API server URL (the sandbox), with a bearer ``token`` if given.

        Proxy and netrc settings from the environment are not consulted: the
        URL is used as given (a kubeconfig's client looks them up once).
        """
        configuration = kclient.Configuration(host=url)
        configuration.client_session_kwargs = {"trust_env": False}
        if token is not None:
            configuration.api_key = {"BearerToken": token}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return cls(kclient.ApiClient(configuration), **options)

    @classmethod
    async def from_kubeconfig(
        cls, path: Path | str | None = None, context: str | None = None, **options: Any
    ) -> Self:
        """A client from a kubeconfig file (``$KUBECONFIG`` or ``~/.kube/config`` by default)."""
        configuration = kclient.Configuration()
        if path is not None:
            _check_kubeconfig(Path(path))
        try:
            await kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path) if path is not None else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (kconfig.ConfigException, OSError) as exc:
            raise KubernetesError(f"cannot load kubeconfig {path or ''}: {exc}".strip()) from None
        except (yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError, AttributeError) as exc:
            # The loader indexes whatever the YAML held: a file of another shape fails anywhere.
            what = type(exc).__name__
            raise KubernetesError(f"cannot load kubeconfig {path or ''}: {what}: {exc}") from None
        return cls(kclient.ApiClient(configuration), **options)

    @classmethod
    def from_cluster(cls, **options: Any) -> Self:
        """A client from the pod's service account (in-cluster configuration)."""
        configuration = kclient.Configuration()
        try:
            kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except kconfig.ConfigException as exc:
            raise KubernetesError(f"cannot load in-cluster configuration: {exc}") from None
        return cls(kclient.ApiClient(configuration), **options)

    @classmethod
    async def load(cls, kubeconfig: Path | str | None = None, **options: Any) -> Self:
        """A kubeconfig when one is given or found, else the in-cluster configuration."""
        default = Path(kconfig.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
        if kubeconfig is not None or default.exists():
            return await cls.from_kubeconfig(kubeconfig, **options)
        return cls.from_cluster(**options)

    async def close(self) -> None:
        """Close the HTTP connection pools (once abandoned requests have settled)."""
        await settle(self._abandoned)
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = self._watch_session = None
        if self._transport is not None:
            await self._transport.close()
        self._transport = None
        await self._api.close()  # type: ignore[no-untyped-call]

    def _environment(self) -> None:
        """Proxy and netrc settings for the configured host, looked up once.

        aiohttp would look them up in a thread on every request of a session
        that trusts the environment; they are read here once instead.
        """
        if self._environment_read:
            return
        configuration = self._api.configuration
        extra = getattr(configuration, "client_session_kwargs", None) or {}
        self._proxy = configuration.proxy or None
        self._proxy_auth = None
        self._netrc_auth = None
        if bool(extra.get("trust_env", True)):
            host = URL(configuration.host)
            if self._proxy is None:
                with suppress(LookupError):
                    self._proxy, self._proxy_auth = get_env_proxy_for_url(host)
            if host.host is not None:
                with suppress(LookupError):
                    self._netrc_auth = basicauth_from_netrc(netrc_from_env(), host.host)
        self._environment_read = True

    def _new_transport(self) -> HTTPTransport | None:
        """The lean transport plain requests use, or None where aiohttp must serve them.

        aiohttp keeps what the lean transport does not do: proxies, trace hooks
        and session settings a configuration asks for (``client_session_kwargs``
        beyond ``trust_env``). TLS uses the context the ``kubernetes`` package
        built; the pool is bounded as its aiohttp connector would be.
        """
        self._environment()
        configuration = self._api.configuration
        extra = dict(getattr(configuration, "client_session_kwargs", None) or {})
        extra.pop("trust_env", None)
        if (
            self._proxy is not None
            or extra
            or getattr(configuration, "trace_configs", None) is not None
            or not HTTPTransport.supports(configuration.host)
        ):
            return None
        rest = self._api.rest_client
        limit = rest.maxsize or 0
        per_host = getattr(configuration, "tcp_connector_limit_per_host", None)
        if per_host:
            limit = min(limit, per_host) if limit else per_host
        return HTTPTransport(
            configuration.host,
            ssl_context=rest.ssl_context,
            server_hostname=configuration.tls_server_name,
            limit=limit,
        )

    def _new_session(self, *, watch: bool = False) -> aiohttp.ClientSession:
        """The aiohttp session of watches (``watch``) or requests the lean transport cannot serve.

        Watches have a session of their own, its pool unbounded: a watch holds
        its connection as long as it lasts, and in the bounded pool of requests
        a hundred of them (a hundred spawns, each following its pod's Events)
        took every connection, so the record writes those spawns waited on
        before ending their watches queued until they timed out (30 s).

        The TLS context and connection pool are the ones the ``kubernetes``
        package builds (CA, client certificate, verification settings, pool
        size); proxy and netrc settings come from `_environment`.
        """
        self._environment()
        configuration = self._api.configuration
        extra = dict(getattr(configuration, "client_session_kwargs", None) or {})
        extra.pop("trust_env", None)
        connector = extra.pop("connector", None)
        if watch:
            connector = aiohttp.TCPConnector(limit=0, ssl=self._api.rest_client.ssl_context)
        kwargs: dict[str, Any] = {
            "connector": connector or self._api.rest_client._create_connector(),
            "trust_env": False,
            # Kubernetes watch events can exceed aiohttp's default buffer.
            "read_bufsize": 2**21,
        }
        trace_configs = getattr(configuration, "trace_configs", None)
        if trace_configs is not None:
            kwargs["trace_configs"] = trace_configs
        kwargs.update(extra)
        return aiohttp.ClientSession(**kwargs)

    async def _headers(self, content_type: str) -> dict[str, str]:
        """Request headers: the package's defaults, then its current auth settings.

        The configuration's auth settings are asked on every request, so its
        refresh hook (an exec plugin's or the in-cluster token's) runs as it
        would under the package's own request path.
        """
        headers = {**self._api.default_headers}
        if self._api.cookie:
            headers["Cookie"] = self._api.cookie
        headers["Content-Type"] = content_type
        headers["Accept"] = "application/json"
        for setting in (await self._api.configuration.auth_settings()).values():
            if setting["in"] == "header" and setting["type"] != "http-signature":
                headers[setting["key"]] = setting["value"]
        return headers

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # The raw request helper

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: builtins.list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
        watch: bool = False,
        accept: str | None = None,
    ) -> aiohttp.ClientResponse | Response | Stream:
        """One HTTP request; returns the raw response (caller reads or streams it).

        ``watch``: a long-lived stream, on a connection of its own (the lean
        transport's `HTTPTransport.stream`, or the watches' own aiohttp session,
        `_new_session`); requests go through the lean transport
        (`nublado.kube.transport`) where the set-up allows it, else aiohttp.
        ``timeout``: the default is ``request_timeout`` for the whole exchange.

        Every failure, including the ``kubernetes`` package's own exceptions
        (a kubeconfig exec plugin that fails, a bad parameter), comes out as a
        `KubernetesError`, so callers never need to know that package.
        """
        try:
            headers = await self._headers(content_type)
            if accept is not None:
                headers["Accept"] = accept
            target = path if _PLAIN_PATH.fullmatch(path) else quote(path, safe="/:@!$&'()*+,;=")
            if query:
                target += "?" + _encode_query(query)
            data = body
            if body is not None and not isinstance(body, (bytes, str)):
                data = orjson.dumps(body)
            if self._lean:
                transport = self._transport
                if transport is None:
                    transport = self._transport = self._new_transport()
                    self._lean = transport is not None
                if transport is not None:
                    if self._netrc_auth is not None and "authorization" not in headers:
                        headers["Authorization"] = self._netrc_auth.encode()
                    if watch:
                        # Connected within sock_connect, headers within sock_read (as aiohttp).
                        return await transport.stream(
                            method,
                            target,
                            headers,
                            timeout.sock_connect if timeout is not None else None,
                            timeout.sock_read if timeout is not None else None,
                        )
                    if isinstance(data, str):
                        data = data.encode()
                    return await transport.request(
                        method,
                        target,
                        headers,
                        data if method in _BODY_METHODS else None,
                        self.request_timeout if timeout is None else _timeout_seconds(timeout),
                    )
            if watch:
                if self._watch_session is None:
                    self._watch_session = self._new_session(watch=True)
                session = self._watch_session
            else:
                if self._session is None:
                    self._session = self._new_session()
                session = self._session
            # Already encoded: yarl need not parse and re-quote it.
            request = session.request(
                method,
                URL(self._api.configuration.host + target, encoded=True),
                headers=headers,
                data=data if method in _BODY_METHODS else None,
                timeout=timeout or aiohttp.ClientTimeout(total=self.request_timeout),
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
                proxy_headers=self._api.configuration.proxy_headers,
                auth=None if "authorization" in headers else self._netrc_auth,
                server_hostname=self._api.configuration.tls_server_name,
            )
            if self._api.configuration.host.startswith("https:"):
                # A cancelled request must not interrupt its TLS connection's set-up
                # (`uninterrupted`: uvloop logs an error); plain HTTP has no such trouble.
                return await uninterrupted(request, self._abandoned, _close_response)
            return await request
        except TimeoutError:
            seconds = self.request_timeout if timeout is None else _timeout_seconds(timeout)
            raise KubernetesTimeoutError(f"{method} {path} timed out after {seconds}s") from None
        except (aiohttp.ClientError, TransportError) as exc:
            raise KubernetesConnectionError(f"{method} {path} failed: {exc}") from None
        except (kconfig.ConfigException, kclient.OpenApiException) as exc:
            raise KubernetesError(f"{method} {path} failed: {exc}") from None

    async def _read(
        self, response: aiohttp.ClientResponse | Response | Stream, method: str, path: str
    ) -> bytes | bytearray:
        """The whole body of a response; a body that stalls is a timeout, not a hang."""
        try:
            if isinstance(response, Stream):  # a watch's error: no deadline of its own
                return await response.read(self.request_timeout)
            return await response.read()
        except TimeoutError:
            raise KubernetesTimeoutError(
                f"{method} {path} timed out after {self.request_timeout}s reading the answer"
            ) from None
        except (aiohttp.ClientError, TransportError) as exc:
            raise KubernetesConnectionError(f"{method} {path} failed: {exc}") from None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: builtins.list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        retry: bool = True,
        accept: str | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> tuple[int, Any]:
        """A request with bounded retries; returns (status, decoded JSON) or raises.

        Waits between attempts with exponential backoff, or as long as the
        server's Retry-After asks on 429/503 (at most ``max_retry_after``).
        ``accept``: another Accept header than plain JSON (a metadata-only LIST);
        ``decode``: how a successful answer's body is decoded (error bodies are
        always read as a Status).

        The attempts run in this coroutine rather than one it awaits: an answer
        resumes every coroutine its request waits through, fifteen times a spawn.
        """
        try:
            attempt = 0
            while True:
                delay = min(self.backoff * 2**attempt, 2.0)
                try:
                    if accept is None:
                        response = await self._send(
                            method, path, query=query, body=body, content_type=content_type
                        )
                    else:
                        response = await self._send(
                            method,
                            path,
                            query=query,
                            body=body,
                            content_type=content_type,
                            accept=accept,
                        )
                    data = await self._read(response, method, path)
                except (KubernetesConnectionError, KubernetesTimeoutError):
                    if not retry or attempt >= self.retries:
                        raise
                else:
                    if 200 <= response.status < 300:
                        if decode is None:
                            return response.status, _decode(data)
                        try:
                            # A large body comes as a bytearray (the transport's receive buffer):
                            # the decoders given here, msgspec's and orjson, read it as bytes.
                            return response.status, decode(cast(bytes, data))
                        except Exception as exc:  # the caller's decoder: msgspec's errors, say
                            raise KubernetesError(
                                f"{method} {path}: the answer is not what was expected: {exc}"
                            ) from None
                    decoded = _decode(data)
                    if not retry or response.status not in _RETRYABLE or attempt >= self.retries:
                        raise error_from_status(response.status, decoded, response.reason or "")
                    if response.status in (429, 503):
                        delay = _retry_after(response.headers, delay, self.max_retry_after)
                attempt += 1
                await asyncio.sleep(delay)
        except KubernetesError as exc:
            if self.on_error is not None:
                self.on_error(exc)
            raise

    # Operations

    async def apply(
        self, manifests: Iterable[Object], *, force: bool = True
    ) -> builtins.list[ApplyResult]:
        """Server-side apply manifests in the order given (namespace first, pod last)."""
        return [await self.apply_one(manifest, force=force) for manifest in manifests]

    async def apply_one(
        self,
        manifest: Object,
        *,
        force: bool = True,
        dry_run: bool = False,
        decode: Callable[[bytes], Any] | None = None,
    ) -> ApplyResult:
        """Server-side apply one manifest as field manager ``nublado``.

        Applies ask for strict field validation, as kubectl does: a field a
        template misspells is refused rather than silently dropped. ``decode``:
        how the answer's object is decoded (a typed decoder that builds only what
        the caller reads; orjson, the whole object, by default).
        """
        kind = kind_for_manifest(manifest)
        metadata = _meta(manifest)
        name = metadata.get("name")
        namespace = metadata.get("namespace") if kind.namespaced else None
        if not name:
            raise KubernetesError(f"{kind.kind} manifest has no metadata.name")
        query = [
            ("fieldManager", self.field_manager),
            ("force", "true" if force else "false"),
            ("fieldValidation", "Strict"),
        ]
        if dry_run:
            query.append(("dryRun", "All"))
        status, obj = await self._request(
            "PATCH",
            kind.object_path(name, namespace),
            query=query,
            body=orjson.dumps(manifest),
            content_type=_APPLY,
            decode=decode,
        )
        return ApplyResult(kind.kind, name, namespace, status == 201, obj)

    async def create(
        self, manifest: Object, *, decode: Callable[[bytes], Any] | None = None
    ) -> Object:
        """POST an object (no retry: a retried create could meet its own first attempt).

        ``decode``: how the answer is decoded, as for `apply_one`.
        """
        kind = kind_for_manifest(manifest)
        namespace = _meta(manifest).get("namespace") if kind.namespaced else None
        _, obj = await self._request(
            "POST",
            kind.collection_path(namespace),
            query=[("fieldManager", self.field_manager)],
            body=manifest,
            retry=False,
            decode=decode,
        )
        return dict(obj)

    async def review_access(self, spec: Object) -> Object:
        """Ask the API server whether this client's identity may do something.

        POSTs a SelfSubjectAccessReview (authorization.k8s.io/v1) with ``spec``
        (``resourceAttributes`` or ``nonResourceAttributes``) and returns its
        ``status`` (``allowed``, ``reason``...). Retried like a read: nothing
        is stored. `NotFoundError` where the server does not serve reviews.
        """
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
        _, review = await self._request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={**body, "spec": spec},
        )
        status = review.get("status") if isinstance(review, dict) else None
        return dict(status) if isinstance(status, dict) else {"allowed": False}

    async def replace(
        self, manifest: Object, *, decode: Callable[[bytes], Any] | None = None
    ) -> Object:
        """PUT an object; its ``metadata.resourceVersion``, when set, is a precondition.

        A stale version is refused with `ConflictError` (409), so a writer that
        lost a race notices instead of overwriting. Not retried, like `create`:
        a retried PUT could meet its own first attempt and report a conflict.
        ``decode``: how the answer is decoded, as for `apply_one`.
        """
        kind = kind_for_manifest(manifest)
        metadata = _meta(manifest)
        name = metadata.get("name")
        if not name:
            raise KubernetesError(f"{kind.kind} manifest has no metadata.name")
        namespace = metadata.get("namespace") if kind.namespaced else None
        _, obj = await self._request(
            "PUT",
            kind.object_path(name, namespace),
            query=[("fieldManager", self.field_manager)],
            body=manifest,
            retry=False,
            decode=decode,
        )
        return dict(obj)

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Object:
        """GET one object; raises `NotFoundError` when it is absent."""
        resource = kind_named(kind)
        _, obj = await self._request("GET", resource.object_path(name, namespace))
        return dict(obj)

    async def find(self, kind: str, name: str, namespace: str | None = None) -> Object | None:
        """GET one object, or None when it is absent."""
        try:
            return await self.get(kind, name, namespace)
        except NotFoundError:
            return None

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        metadata_only: bool = False,
    ) -> builtins.list[Object]:
        """LIST objects of a kind, in one namespace or all, following pagination.

        ``metadata_only``: each item a ``meta.k8s.io/v1`` PartialObjectMetadata
        (kind, apiVersion and metadata only), as the server sends it.
        """
        items, _ = await self.list_with_version(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
            metadata_only=metadata_only,
        )
        return items

    async def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        metadata_only: bool = False,
    ) -> tuple[builtins.list[Object], str]:
        """LIST, also returning the list's resourceVersion (where a watch can start)."""
        items: builtins.list[Object] = []
        version = ""
        async for page, page_version in self.list_pages(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
            metadata_only=metadata_only,
        ):
            if page is None:
                items = []  # the pages so far were from a version the server lost
                continue
            items.extend(page)
            version = page_version
        return items, version

    async def list_pages(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        metadata_only: bool = False,
        decode: Callable[[bytes], Any] | None = None,
    ) -> AsyncIterator[tuple[builtins.list[Object] | None, str]]:
        """LIST one page at a time: yields ``(items, resourceVersion of the list)`` per page.

        A caller that cuts each page down as it comes holds one page's full
        objects at a time, not the whole collection's. When a continue token
        outlived the server's history (410), the LIST starts over once from a
        fresh first page, announced by ``(None, "")``: the pages read so far
        are from a version the server no longer has, so drop them.

        ``decode`` decodes each page's JSON instead of orjson: a typed decoder
        (msgspec with TypedDicts) that builds only the fields a caller reads,
        skipping the rest of each object (its managedFields' fieldsV1, a pod's
        spec) without making Python objects of it. Its result must have the
        list's ``metadata`` and ``items``.
        """
        resource = kind_named(kind)
        query = self._selector_query(label_selector, field_selector)
        accept = _METADATA_LIST_ACCEPT if metadata_only else None
        token = ""
        version = ""
        restarted = False
        while True:
            page_query = [*query, ("limit", str(page_size))]
            if token:
                page_query.append(("continue", token))
            try:
                _, body = await self._request(
                    "GET",
                    resource.collection_path(namespace),
                    query=page_query,
                    accept=accept,
                    decode=decode,
                )
            except ExpiredError:
                # The continue token outlived the server's history (410): the
                # pages read so far are from a version it no longer has, so start
                # over once from a fresh first page rather than mix two versions.
                if not token or restarted:
                    raise
                restarted = True
                token, version = "", ""
                yield None, ""
                continue
            items = body.get("items") or []
            if not metadata_only and decode is None:
                for item in items:
                    item.setdefault("apiVersion", resource.api_version)
                    item.setdefault("kind", resource.kind)
            metadata = body.get("metadata") or {}
            version = version or str(metadata.get("resourceVersion", ""))
            token = metadata.get("continue") or ""
            del body
            yield items, version
            if not token:
                return

    @staticmethod
    def _selector_query(
        label_selector: str | dict[str, str] | None, field_selector: str | None
    ) -> builtins.list[tuple[str, str]]:
        query: builtins.list[tuple[str, str]] = []
        if isinstance(label_selector, dict):
            label_selector = _format_labels(label_selector)
        if label_selector:
            # A malformed selector is the API server's to refuse: 400 BadRequest, raised
            # as a KubernetesError with its message.
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        return query

    async def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> bool:
        """DELETE an object and (by default) wait until it is gone.

        Returns False when it was already absent. A namespace waits through
        Terminating until the namespace controller removes it.
        """
        resource = kind_named(kind)
        query: builtins.list[tuple[str, str]] = []
        if propagation_policy:
            query.append(("propagationPolicy", propagation_policy))
        if grace_period_seconds is not None:
            query.append(("gracePeriodSeconds", str(grace_period_seconds)))
        body: Object = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        try:
            _, answer = await self._request(
                "DELETE", resource.object_path(name, namespace), query=query, body=body
            )
        except NotFoundError:
            return False
        except KubernetesError as exc:
            # A namespace already Terminating answers 409; it is on its way out.
            if not (resource.kind == "Namespace" and exc.status == 409):
                raise
            answer = None
        if wait:
            uid = None
            if isinstance(answer, dict) and answer.get("kind") == resource.kind:
                uid = _meta(answer).get("uid")
            elif isinstance(answer, dict) and answer.get("kind") == "Status":
                # An immediate deletion answers a Status naming the deleted uid:
                # a same-name object created since then is not the one to wait for.
                details = answer.get("details")
                uid = details.get("uid") if isinstance(details, dict) else None
            await self.wait_for_deletion(resource.kind, name, namespace, uid=uid, timeout=timeout)
        return True

    async def delete_namespace(self, name: str, *, timeout: float = 120.0) -> bool:
        """Delete a namespace and wait until it has left Terminating and is gone."""
        return await self.delete("Namespace", name, timeout=timeout)

    async def wait_for_deletion(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        """Wait until an object (this ``uid``, if given) no longer exists."""

        def gone(obj: Object | None) -> bool:
            return obj is None or (uid is not None and _meta(obj).get("uid") != uid)

        try:
            await self.wait_for(kind, name, namespace, gone, timeout=timeout)
        except KubernetesTimeoutError:
            raise KubernetesTimeoutError(
                f"{kind} {namespace + '/' if namespace else ''}{name} still exists after {timeout}s"
            ) from None

    async def wait_for(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        predicate: Callable[[Object | None], bool],
        *,
        timeout: float = 60.0,
    ) -> Object | None:
        """Wait until ``predicate(object or None)`` holds; GET first, then watch.

        Returns the object that satisfied it (None if absence did).
        Raises `KubernetesTimeoutError` after ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._wait_for(kind, name, namespace, predicate)
        except TimeoutError:
            raise KubernetesTimeoutError(
                f"timed out after {timeout}s waiting for {kind} {name}"
            ) from None

    async def _wait_for(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        predicate: Callable[[Object | None], bool],
    ) -> Object | None:
        """`wait_for` without its time limit (the caller bounds it)."""
        selector = f"metadata.name={name}"
        items, version = await self.list_with_version(kind, namespace, field_selector=selector)
        current = items[0] if items else None
        if predicate(current):
            return current
        # The watch starts knowing what the list saw, so a relist after a 410
        # reports the object's deletion during the gap (and so does ``current``).
        events = self._watch(
            kind, namespace, field_selector=selector, resource_version=version, known=items
        )
        async with aclosing(events):
            async for event in events:
                current = None if event.type == "DELETED" else event.object
                if predicate(current):
                    return current
        raise KubernetesTimeoutError(f"the watch of {kind} {name} ended")

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
        max_failures: int = 10,
        known: Iterable[Object] = (),
        keep: Callable[[Object], Object] | None = None,
        decode: Callable[[bytes], Object] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Follow changes to objects of a kind; never stops silently.

        Without ``resource_version`` it starts with a LIST and yields ADDED for
        each existing object. It resumes from the last resourceVersion seen
        when the server ends a stream or the connection drops, and relists when
        the version has expired (410), yielding the differences (ADDED,
        MODIFIED, DELETED) so the caller's view stays right. It ends only when
        ``timeout`` seconds have passed; after ``max_failures`` consecutive
        failed attempts it raises the last error. A caller that listed the
        objects itself passes them as ``known`` with the list's
        ``resource_version``, so a relist can also report their deletions.
        ``keep`` is what the watch remembers of each object for that (the
        object of such a DELETED event): the whole object by default; a caller
        following thousands of objects can keep less (their identifying metadata,
        with the uid and resourceVersion a relist compares). ``decode`` decodes
        each line of the stream (``{"type": ..., "object": ...}``) instead of
        orjson: a typed decoder that builds only what the caller reads of the
        objects (their managedFields skipped, say); a relist's objects are whole.

        The generator itself, not a generator wrapping it: each event of a
        wrapper costs a second ``__anext__`` and resumption, a dozen times a
        spawn; closing it (``aclosing``, or its end) closes the watch alike.
        """
        return self._watch(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout=timeout,
            max_failures=max_failures,
            known=known,
            keep=keep,
            decode=decode,
        )

    async def _watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
        max_failures: int = 10,
        known: Iterable[Object] = (),
        keep: Callable[[Object], Object] | None = None,
        decode: Callable[[bytes], Object] | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """`watch`, starting with ``known``: the objects the caller listed at ``resource_version``.

        Knowing them, a relist after a 410 can report DELETED for one removed
        while the history was lost.
        """
        resource = kind_named(kind)
        query = self._selector_query(label_selector, field_selector)
        deadline = None if timeout is None else time.monotonic() + timeout
        remember = keep or (lambda obj: obj)
        seen_objects: dict[str, Object] = {
            str(_meta(obj).get("uid", "")): remember(obj) for obj in known
        }  # uid -> last object seen (what ``keep`` keeps of it)
        version = resource_version
        need_list = version is None
        failures = 0

        def remaining() -> float | None:
            return None if deadline is None else deadline - time.monotonic()

        async def relist() -> builtins.list[WatchEvent]:
            nonlocal version
            items, new_version = await self.list_with_version(
                resource.kind,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            version = new_version
            changes: builtins.list[WatchEvent] = []
            listed: set[str] = set()
            for item in items:
                uid = str(_meta(item).get("uid", ""))
                listed.add(uid)
                old = seen_objects.get(uid)
                seen_objects[uid] = remember(item)
                if old is None:
                    changes.append(WatchEvent("ADDED", item))
                elif _meta(old).get("resourceVersion") != _meta(item).get("resourceVersion"):
                    changes.append(WatchEvent("MODIFIED", item))
            for uid in [u for u in seen_objects if u not in listed]:
                changes.append(WatchEvent("DELETED", seen_objects.pop(uid)))
            return changes

        while True:
            left = remaining()
            if left is not None and left <= 0:
                return
            events = 0
            started = time.monotonic()
            try:
                if need_list:
                    # A relist is retried like any other failed step of the watch.
                    changes = await relist()
                    need_list = False
                    failures = 0
                    for change in changes:
                        yield change
                    continue
                server_timeout = 300 if left is None else max(1, int(left + 0.999))
                stream_query = [
                    *query,
                    ("watch", "true"),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", str(min(server_timeout, 300))),
                ]
                if version:
                    stream_query.append(("resourceVersion", version))
                async for event_type, obj in self._stream(
                    resource, namespace, stream_query, left, decode
                ):
                    events += 1
                    failures = 0
                    metadata = _meta(obj)
                    version = str(metadata.get("resourceVersion") or version or "")
                    if event_type == "BOOKMARK":
                        # Only a resume point: after a quiet spell the watch
                        # resumes from here, not from a version etcd compacted.
                        continue
                    uid = str(metadata.get("uid", ""))
                    if event_type == "DELETED":
                        seen_objects.pop(uid, None)
                    else:
                        seen_objects[uid] = remember(obj)
                    yield WatchEvent(event_type, obj)
                left = remaining()
                if events or time.monotonic() - started >= 1.0 or (left is not None and left <= 0):
                    continue
                # A stream that ends at once with nothing in it (a proxy closing
                # it, a server refusing quietly) must not become a busy loop.
                failures += 1
                if failures >= max_failures:
                    raise KubernetesConnectionError(
                        f"watch of {resource.plural} keeps ending at once without events"
                    )
            except ExpiredError:
                need_list = True
                failures = 0
                continue
            except KubernetesError as exc:
                if exc.status and exc.status not in _RETRYABLE:
                    raise
                if _too_large(exc):
                    # Asked for a version this server has not reached (a client
                    # that moved between servers): start again from a fresh list.
                    need_list = True
                failures += 1
                if failures >= max_failures:
                    raise
            delay = min(self.backoff * 2 ** (failures - 1), 5.0) * (0.5 + random.random() / 2)
            left = remaining()
            if left is not None:
                delay = min(delay, max(left, 0))
            await asyncio.sleep(delay)

    async def _stream(
        self,
        resource: ResourceKind,
        namespace: str | None,
        query: builtins.list[tuple[str, str]],
        left: float | None,
        decode: Callable[[bytes], Object] | None = None,
    ) -> AsyncIterator[tuple[str, Object]]:
        """One watch connection: yields (type, object) until the server ends it."""
        loads = decode or orjson.loads
        read_timeout = 330.0 if left is None else left + 5.0
        response = await self._send(
            "GET",
            resource.collection_path(namespace),
            query=query,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout),
            watch=True,
        )
        assert not isinstance(response, Response)  # a stream: the lean one, or aiohttp's
        raw = response
        finished = False
        try:
            if response.status != 200:
                data = await self._read(response, "GET", resource.collection_path(namespace))
                raise error_from_status(response.status, _decode(data), response.reason or "")
            deadline = None if left is None else time.monotonic() + left
            while True:
                wait = None if deadline is None else max(deadline - time.monotonic(), 0)
                try:
                    if isinstance(raw, Stream):
                        # Silence past sock_read or the watch's deadline, as on aiohttp:
                        # the stream ends (and the watch starts again).
                        line = await raw.readline(
                            read_timeout if wait is None else min(wait, read_timeout)
                        )
                    else:
                        line = await asyncio.wait_for(raw.content.readline(), wait)
                except TimeoutError:
                    return
                except (aiohttp.ClientError, TransportError) as exc:
                    raise KubernetesConnectionError(f"watch connection dropped: {exc}") from None
                if not line:
                    finished = True
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = loads(line)
                except orjson.JSONDecodeError:
                    raise KubernetesConnectionError("watch stream sent a partial event") from None
                event_type = event.get("type")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise error_from_status(code, obj, obj.get("reason", ""))
                yield str(event_type), obj
        finally:
            if isinstance(raw, Stream):
                raw.close()
            elif finished:
                raw.release()
            else:
                raw.close()
