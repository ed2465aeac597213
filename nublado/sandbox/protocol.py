"""The sandbox's HTTP face: the Kubernetes REST protocol as a Starlette app.

Discovery (/version, /api, /apis, per group/version lists, a minimal
/openapi/v3 so that ``kubectl apply --server-side`` works), the resource
verbs with their query parameters, watch streams, Status error bodies, and
the fault-injection middleware tests use.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .cluster import Cluster, parse_object, parse_selectors
from .kinds import KINDS, ResourceKind
from .request import FieldValidation, writing
from .store import ApiError, Watcher, status_body
from .validation import check_body_size, decoding_patch

if TYPE_CHECKING:
    from .server import Sandbox

__all__ = ["Fault", "create_app", "parse_bool", "parse_dry_run", "parse_timeout_seconds"]

Object = dict[str, Any]

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class _WatchCut(Exception):
    """Raised inside a watch stream to drop its connection without a clean end."""


@dataclass
class Fault:
    """A rule of the fault-injection middleware.

    Matches requests by method and a glob on the path (with ``?query`` when the
    pattern has a ``?``). Delays them by ``delay`` seconds, then, when ``status``
    is set, answers that status with a Kubernetes Status body instead of
    serving them. ``count`` is how many requests it still affects (None: all).
    """

    method: str = "*"
    path: str = "*"
    status: int | None = 500
    count: int | None = 1
    delay: float = 0.0
    reason: str | None = None
    message: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str, query: str) -> bool:
        """Whether a request is affected."""
        if self.count is not None and self.count <= 0:
            return False
        if self.method != "*" and self.method.upper() != method:
            return False
        target = f"{path}?{query}" if "?" in self.path else path
        return fnmatch.fnmatchcase(target, self.path)

    def response_body(self) -> Object:
        """The Status body of the injected error."""
        status = self.status or 500
        reason = self.reason or _REASONS.get(status, "InternalError")
        message = self.message or f"injected fault: {status} {reason}"
        return status_body(status, reason, message)


def parse_bool(value: str | None, name: str) -> bool:
    """Go's strconv.ParseBool, as the API server parses boolean query parameters."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax ({name})')


def _field_validation(value: str | None) -> FieldValidation:
    """The ``fieldValidation`` query value (kube-apiserver's default is Warn)."""
    if not value:
        return "Warn"
    if value not in ("Ignore", "Warn", "Strict"):
        raise ApiError.bad_request(
            f"fieldValidation parameter unsupported: {value}. Must be one of: Ignore, Warn, Strict"
        )
    return value  # type: ignore[return-value]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json(exc.body, exc.code)


class FaultMiddleware:
    """ASGI middleware applying the sandbox's fault rules and recording requests."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", [])
            if k in (b"user-agent", b"authorization")
        }
        self.sandbox._record(method, path, query, headers)
        fault = self.sandbox._take_fault(method, path, query)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                response = _json(fault.response_body(), fault.status)
                if fault.status in (429, 503):
                    response.headers["Retry-After"] = "1"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _groups() -> dict[str, list[ResourceKind]]:
    groups: dict[str, list[ResourceKind]] = {}
    for kind in KINDS:
        groups.setdefault(kind.api_version, []).append(kind)
    return groups


_GROUPS = _groups()


def _resource_list(api_version: str) -> Object:
    resources = []
    for kind in _GROUPS[api_version]:
        entry: Object = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": _VERBS,
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        resources.append(entry)
        if kind.has_status:
            resources.append(
                {
                    "name": f"{kind.plural}/status",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }


def _api_group(api_version: str) -> Object:
    group, _, version = api_version.rpartition("/")
    gv = {"groupVersion": api_version, "version": version}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [gv],
        "preferredVersion": gv,
    }


def _openapi_root() -> Object:
    paths = {}
    for api_version in _GROUPS:
        key = f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=sandbox"}
    return {"paths": paths}


def _openapi_group(api_version: str) -> Object:
    paths: Object = {}
    for kind in _GROUPS[api_version]:
        path = kind.collection_path("{namespace}" if kind.namespaced else None) + "/{name}"
        paths[path] = {
            "patch": {
                "x-kubernetes-group-version-kind": {
                    "group": kind.group,
                    "version": kind.version,
                    "kind": kind.kind,
                },
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


@dataclass(frozen=True)
class _Target:
    kind: ResourceKind
    namespace: str | None
    name: str | None
    subresource: str


def _resolve(path: str) -> _Target | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        api_version, rest = parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    kinds = {k.plural: k for k in _GROUPS.get(api_version, [])}
    if not rest or not kinds:
        return None
    namespace = None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and rest[2] in kinds
        and kinds[rest[2]].namespaced
    ):
        namespace, rest = rest[1], rest[2:]
    kind = kinds.get(rest[0])
    if kind is None or len(rest) > 3:
        return None
    if namespace is not None and not kind.namespaced:
        return None
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else ""
    if subresource and subresource not in ("status", "finalize"):
        return None
    return _Target(kind, namespace, name, subresource)


def _encode_continue(revision: int, after: tuple[str, str]) -> str:
    raw = orjson.dumps({"rv": revision, "start": list(after)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start = data["start"]
        return int(data["rv"]), (str(start[0]), str(start[1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise ApiError.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None


_SUBRESOURCE_METHODS = {"status": ("GET", "PUT", "PATCH"), "finalize": ("PUT",)}
_OPTIONS = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}


def _method_not_allowed() -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )


def parse_dry_run(values: list[str], options_kind: str) -> bool:
    """The dryRun parameter of a write, as the API server validates it: only ``All``.

    Any other value is refused with 422 Invalid (no write happens).
    """
    if not values:
        return False
    if any(v != "All" for v in values):
        quoted = ", ".join(f'"{v}"' for v in values)
        raise ApiError(
            422,
            "Invalid",
            f'{options_kind}.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
            f'[]string{{{quoted}}}: supported values: "All"',
        )
    return True


def parse_timeout_seconds(text: str | None, default: float) -> float:
    """timeoutSeconds of a list or watch: a whole number of seconds, else 400."""
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError.bad_request(
            f'invalid value for timeoutSeconds: strconv.ParseInt: parsing "{text}": invalid syntax'
        ) from None
    return float(value) if value > 0 else default


def _too_large_resource_version(wanted: int, current: int) -> Object:
    """The Status a watch from a resourceVersion the server has not reached answers."""
    body = status_body(
        504, "Timeout", f"Timeout: Too large resource version: {wanted}, current: {current}"
    )
    body["details"] = {
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }
    return body


class _Handlers:
    """Request handlers bound to one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def cluster(self) -> Cluster:
        """The sandbox's cluster now (`Sandbox.reset` swaps it for a fresh one)."""
        return self.sandbox.cluster

    async def version(self, request: Request) -> Response:
        return _json(KUBERNETES_VERSION)

    async def api(self, request: Request) -> Response:
        server = f"{request.url.hostname}:{request.url.port}"
        return _json(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": server}
                ],
            }
        )

    async def apis(self, request: Request) -> Response:
        groups = [_api_group(v) for v in _GROUPS if "/" in v]
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def openapi(self, request: Request) -> Response:
        path = request.path_params.get("path", "")
        if not path:
            return _json(_openapi_root())
        api_version = path.removeprefix("apis/").removeprefix("api/")
        if api_version not in _GROUPS:
            return _json(
                status_body(404, "NotFound", "the server could not find the requested resource"),
                404,
            )
        return _json(_openapi_group(api_version))

    async def resource(self, request: Request) -> Response:
        try:
            validation = _field_validation(request.query_params.get("fieldValidation"))
        except ApiError as exc:
            return _error(exc)
        with writing(validation) as write:
            try:
                if request.method in ("POST", "PUT", "PATCH"):
                    check_body_size(await request.body(), request.method)
                response = await self._resource(request)
            except ApiError as exc:
                response = _error(exc)
        for warning in write.warnings:
            # warn-code 299 and agent "-", as kube-apiserver writes them.
            text = warning.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.append("Warning", f'299 - "{text}"')
        return response

    async def _resource(self, request: Request) -> Response:
        path = request.url.path
        parts = [p for p in path.split("/") if p]
        # Group and group/version documents.
        is_get = request.method == "GET"
        if is_get and len(parts) == 2 and parts[0] == "api" and parts[1] in _GROUPS:
            return _json(_resource_list(parts[1]))
        if parts and parts[0] == "apis" and request.method == "GET":
            if len(parts) == 3 and f"{parts[1]}/{parts[2]}" in _GROUPS:
                return _json(_resource_list(f"{parts[1]}/{parts[2]}"))
            if len(parts) == 2:
                versions = [v for v in _GROUPS if v.startswith(f"{parts[1]}/")]
                if versions:
                    return _json(_api_group(versions[0]))
        target = _resolve(path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        method = request.method
        query = request.query_params
        if target.subresource:
            if target.subresource == "status" and not target.kind.has_status:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if target.subresource == "finalize" and target.kind.kind != "Namespace":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if method not in _SUBRESOURCE_METHODS[target.subresource]:
                raise _method_not_allowed()
        options_kind = "DeleteOptions" if method == "DELETE" else _OPTIONS.get(method, "")
        dry_run = parse_dry_run(query.getlist("dryRun"), options_kind) if options_kind else False
        if target.name is None:
            if method == "GET":
                if parse_bool(query.get("watch"), "watch"):
                    return await self._watch(request, target)
                return self._list(request, target)
            if method == "POST":
                if target.kind.namespaced and target.namespace is None:
                    raise ApiError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                body = parse_object(await request.body())
                obj = self.cluster.create(
                    target.kind.kind,
                    target.namespace,
                    body,
                    field_manager=query.get("fieldManager"),
                    user_agent=request.headers.get("user-agent"),
                    dry_run=dry_run,
                )
                return _json(obj, 201)
            if method == "DELETE":
                return await self._delete_collection(request, target, dry_run)
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if method == "GET":
            return _json(self.cluster.get(target.kind.kind, target.namespace or "", target.name))
        if method == "PUT":
            body = parse_object(await request.body())
            obj = self.cluster.replace(
                target.kind.kind,
                target.namespace,
                target.name,
                body,
                subresource=target.subresource if target.subresource == "status" else "",
                field_manager=query.get("fieldManager"),
                user_agent=request.headers.get("user-agent"),
                dry_run=dry_run,
            )
            return _json(obj)
        if method == "PATCH":
            return await self._patch(request, target, dry_run)
        if method == "DELETE":
            return await self._delete(request, target, dry_run)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _list(self, request: Request, target: _Target) -> Response:
        query = request.query_params
        token = query.get("continue")
        at_revision, after = _decode_continue(token) if token else (None, ("", ""))
        # Later pages show the collection as it was at the first page's version.
        items, revision = self.cluster.list(
            target.kind.kind,
            target.namespace,
            query.get("labelSelector"),
            query.get("fieldSelector"),
            at_revision=at_revision,
        )
        metadata: Object = {"resourceVersion": str(revision)}
        if token:
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
        limit_text = query.get("limit")
        if limit_text:
            try:
                limit = int(limit_text)
            except ValueError:
                raise ApiError.bad_request(f"invalid limit {limit_text!r}") from None
            if 0 < limit < len(items):
                last = items[limit - 1]["metadata"]
                metadata["continue"] = _encode_continue(
                    revision, (last.get("namespace", ""), last["name"])
                )
                metadata["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        with self.cluster.store.lock:
            body = orjson.dumps(
                {
                    "kind": target.kind.list_kind,
                    "apiVersion": target.kind.api_version,
                    "metadata": metadata,
                    "items": items,
                }
            )
        return Response(body, media_type="application/json")

    async def _watch(self, request: Request, target: _Target) -> Response:
        query = request.query_params
        kind = target.kind
        labels, fields = parse_selectors(
            kind.kind, query.get("labelSelector"), query.get("fieldSelector")
        )
        rv_text = query.get("resourceVersion")
        try:
            resource_version = int(rv_text) if rv_text else None
        except ValueError:
            raise ApiError.bad_request(f"invalid resourceVersion {rv_text!r}") from None
        timeout = parse_timeout_seconds(query.get("timeoutSeconds"), 1800.0)
        current = self.cluster.store.revision
        if resource_version is not None and resource_version > current:
            # The real server waits a moment for its cache to catch up, then sends
            # this as the stream's only event (the sandbox has nothing to wait for).
            too_large = _too_large_resource_version(resource_version, current)
            line = orjson.dumps({"type": "ERROR", "object": too_large}) + b"\n"
            return Response(line, media_type="application/json")
        watcher = Watcher(
            kind=kind.kind,
            namespace=target.namespace if kind.namespaced else None,
            labels=labels,
            fields=fields,
            loop=asyncio.get_running_loop(),
            limit=self.cluster.settings.watch_queue_limit,
        )
        store = self.cluster.store  # the stream stays with this store across a reset
        replay = store.subscribe(watcher, resource_version)

        async def stream() -> AsyncIterator[bytes]:
            try:
                if replay is None:
                    expired = status_body(
                        410,
                        "Expired",
                        f"too old resource version: {resource_version} ({store.revision})",
                    )
                    yield orjson.dumps({"type": "ERROR", "object": expired}) + b"\n"
                    return
                for event_type, obj in replay:
                    yield orjson.dumps({"type": event_type, "object": obj}) + b"\n"
                deadline = time.monotonic() + timeout
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(watcher.queue.get(), remaining)
                    except TimeoutError:
                        return
                    if item is None:
                        if watcher.cut:
                            raise _WatchCut("watch cut by the sandbox")
                        return
                    event_type, obj = item
                    yield orjson.dumps({"type": event_type, "object": obj}) + b"\n"
            finally:
                store.unsubscribe(watcher)

        if replay is None:
            store.unsubscribe(watcher)
        return StreamingResponse(stream(), media_type="application/json")

    async def _patch(self, request: Request, target: _Target, dry_run: bool) -> Response:
        query = request.query_params
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        raw = await request.body()
        force_text = query.get("force")
        if content_type == "application/apply-patch+yaml":
            obj, created = self.cluster.apply(
                target.kind.kind,
                target.namespace,
                target.name or "",
                raw,
                field_manager=query.get("fieldManager"),
                force=parse_bool(force_text, "force"),
                subresource=target.subresource if target.subresource == "status" else "",
                dry_run=dry_run,
            )
            return _json(obj, 201 if created else 200)
        if content_type not in (
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        if force_text is not None:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified '
                "for non-apply patch",
            )
        with decoding_patch():
            obj = self.cluster.patch(
                target.kind.kind,
                target.namespace,
                target.name or "",
                content_type,
                raw,
                subresource=target.subresource if target.subresource == "status" else "",
                field_manager=query.get("fieldManager"),
                user_agent=request.headers.get("user-agent"),
                dry_run=dry_run,
            )
        return _json(obj)

    async def _delete_options(
        self, request: Request, dry_run: bool = False
    ) -> tuple[str | None, int | None, Object | None, bool]:
        query = request.query_params
        policy = query.get("propagationPolicy")
        grace_text = query.get("gracePeriodSeconds")
        preconditions = None
        raw = await request.body()
        if raw.strip():
            options = parse_object(raw)
            policy = options.get("propagationPolicy") or policy
            if options.get("gracePeriodSeconds") is not None:
                grace_text = str(options["gracePeriodSeconds"])
            if options.get("orphanDependents") is True and policy is None:
                policy = "Orphan"
            preconditions = options.get("preconditions")
            body_dry_run = options.get("dryRun")
            if isinstance(body_dry_run, list) and body_dry_run:
                dry_run = parse_dry_run([str(v) for v in body_dry_run], "DeleteOptions")
        if policy is None and query.get("orphanDependents") is not None:
            policy = (
                "Orphan"
                if parse_bool(query.get("orphanDependents"), "orphanDependents")
                else "Background"
            )
        grace = None
        if grace_text is not None:
            try:
                grace = int(grace_text)
            except ValueError:
                raise ApiError.bad_request(f"invalid gracePeriodSeconds {grace_text!r}") from None
        return policy, grace, preconditions, dry_run

    async def _delete(self, request: Request, target: _Target, dry_run: bool) -> Response:
        policy, grace, preconditions, dry_run = await self._delete_options(request, dry_run)
        body = self.cluster.delete(
            target.kind.kind,
            target.namespace,
            target.name or "",
            propagation_policy=policy,
            grace_period_seconds=grace,
            preconditions=preconditions,
            dry_run=dry_run,
        )
        return _json(body)

    async def _delete_collection(
        self, request: Request, target: _Target, dry_run: bool
    ) -> Response:
        policy, grace, _, dry_run = await self._delete_options(request, dry_run)
        query = request.query_params
        items, _ = self.cluster.list(
            target.kind.kind,
            target.namespace,
            query.get("labelSelector"),
            query.get("fieldSelector"),
        )
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                self.cluster.delete(
                    target.kind.kind,
                    meta.get("namespace"),
                    meta["name"],
                    propagation_policy=policy,
                    grace_period_seconds=grace,
                    dry_run=dry_run,
                )
                deleted.append(obj)
            except ApiError:
                continue
        return _json(
            {
                "kind": target.kind.list_kind,
                "apiVersion": target.kind.api_version,
                "metadata": {"resourceVersion": str(self.cluster.store.revision)},
                "items": deleted,
            }
        )


def create_app(sandbox: Sandbox) -> Starlette:
    """The Starlette app serving a sandbox (wrapped in its fault middleware)."""
    handlers = _Handlers(sandbox)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox.cluster.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            sandbox.cluster.store.close_watches()
            sandbox.cluster.loop = None

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/version", handlers.version, methods=["GET"]),
        Route("/api", handlers.api, methods=["GET"]),
        Route("/apis", handlers.apis, methods=["GET"]),
        Route("/openapi/v3", handlers.openapi, methods=["GET"]),
        Route("/openapi/v3/{path:path}", handlers.openapi, methods=["GET"]),
        Route("/{path:path}", handlers.resource, methods=methods),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(FaultMiddleware, sandbox=sandbox)
    return app
