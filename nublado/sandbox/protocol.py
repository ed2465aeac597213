"""The sandbox's HTTP face: the Kubernetes REST protocol as an ASGI app.

Discovery (/version, /api, /apis, per group/version lists and /openapi/v3,
from `nublado.sandbox.openapi`), health endpoints, the resource verbs with
their query parameters, watch streams, Status error bodies, and the
fault-injection middleware tests use. Bodies may be JSON, YAML or kubectl's
protobuf (`nublado.sandbox.protobuf`); reads may ask for Tables
(`nublado.sandbox.table`); events.k8s.io Events are core Events converted at
this edge (`nublado.sandbox.events`).
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import events, health, protobuf, table
from .access import REVIEW_API_VERSION, REVIEW_PATH, REVIEW_RESOURCE, self_subject_access_review
from .auth import Tokens, token_request_response, unauthorized
from .cluster import Cluster, parse_object
from .fields import check_field_manager
from .kinds import VIEWS, ResourceKind
from .logs import pod_log
from .negotiate import METADATA, METADATA_LIST, TABLE, negotiate, partial_list, partial_object
from .openapi import (
    GROUPS,
    KUBERNETES_VERSION,
    api_group,
    openapi_document,
    openapi_root,
    resource_list,
)
from .params import parse_bool, parse_timeout_seconds
from .patch import check_patch_type
from .present import (
    event_writer,
    field_selector,
    include_object,
    present,
    presenter,
    request_object,
    view_patch,
)
from .protobuf import PROTOBUF_MEDIA_TYPE as PROTOBUF
from .rbac import Identity, UsageLog, authorize, forbidden_error, request_attributes
from .request import ApiRequest, FieldValidation, QueryParams, writing
from .store import ApiError, status_body
from .validation import check_body_size, decoding_patch
from .watch import list_collection, watch_response

__all__ = [
    "Fault",
    "SandboxApp",
    "SandboxHandle",
    "create_app",
    "parse_bool",
    "parse_dry_run",
    "parse_timeout_seconds",
]

Object = dict[str, Any]

_IDENTITY = "nublado.sandbox.identity"
"""The ASGI scope key under which RBAC mode leaves the request's `Identity` for handlers."""

_REVIEW_GROUP = api_group(REVIEW_API_VERSION)
"""Discovery of authorization.k8s.io, which serves only SelfSubjectAccessReview here."""

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


class SandboxHandle(Protocol):
    """What the HTTP layer needs of `nublado.sandbox.server.Sandbox`.

    A protocol rather than the class, since the server module imports this one.
    """

    @property
    def cluster(self) -> Cluster: ...

    @property
    def tokens(self) -> Tokens: ...

    @property
    def usage(self) -> UsageLog: ...

    def _record(self, method: str, path: str, query: str, headers: dict[str, str]) -> None: ...

    def _take_fault(self, method: str, path: str, query: str) -> Fault | None: ...


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


def _field_validation(value: str | None) -> FieldValidation:
    """The ``fieldValidation`` query value (kube-apiserver's default is Warn)."""
    if not value:
        return "Warn"
    if value not in ("Ignore", "Warn", "Strict"):
        raise ApiError.bad_request(
            f"fieldValidation parameter unsupported: {value}. Must be one of: Ignore, Warn, Strict"
        )
    return value  # type: ignore[return-value]


def _both_propagation_options(policy: str) -> ApiError:
    """ValidateDeleteOptions: the deprecated orphanDependents excludes propagationPolicy."""
    message = "orphanDependents and deletionPropagation cannot be both set"
    return ApiError(
        422,
        "Invalid",
        f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: '
        f'"{policy}": {message}',
        {
            "group": "meta.k8s.io",
            "kind": "DeleteOptions",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "{policy}": {message}',
                    "field": "propagationPolicy",
                }
            ],
        },
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json(exc.body, exc.code)


@dataclass(frozen=True)
class _Target:
    kind: ResourceKind
    namespace: str | None
    name: str | None
    subresource: str


def _segments(path: str) -> list[str] | None:
    """A resource path's segments, or None when one inside it is empty (kube: 404).

    Leading and trailing slashes are trimmed, as kube's RequestInfoFactory and
    router trim them; an empty segment inside (``/api/v1//namespaces``)
    matches no route, so RBAC's request attributes and the handler never read
    one path two ways.
    """
    trimmed = path.strip("/")
    if not trimmed:
        return []
    parts = trimmed.split("/")
    return None if "" in parts else parts


def _resolve(path: str) -> _Target | None:
    parts = _segments(path)
    if parts is None:
        return None
    if len(parts) >= 2 and parts[0] == "api":
        api_version, rest = parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    kinds = {k.plural: k for k in GROUPS.get(api_version, [])}
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
    if subresource and subresource not in ("status", "finalize", "log", "token"):
        return None
    return _Target(kind, namespace, name, subresource)


_SUBRESOURCE_METHODS = {
    "status": ("GET", "PUT", "PATCH"),
    "finalize": ("PUT",),
    "log": ("GET",),
    "token": ("POST",),
}
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


class _Handlers:
    """Request handlers bound to one sandbox."""

    def __init__(self, sandbox: SandboxHandle) -> None:
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
        groups = [api_group(v) for v in GROUPS if "/" in v] + [_REVIEW_GROUP]
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def openapi(self, request: Request) -> Response:
        path = request.path_params.get("path", "")
        if not path:
            return _json(openapi_root())
        api_version = path.removeprefix("apis/").removeprefix("api/")
        if api_version not in GROUPS:
            return _json(
                status_body(404, "NotFound", "the server could not find the requested resource"),
                404,
            )
        return Response(openapi_document(api_version), media_type="application/json")

    async def resource(self, request: ApiRequest) -> Response:
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
                if request.path.startswith(events.EVENTS_PREFIX):
                    exc = events.view_error(exc)
                response = _error(exc)
        for warning in write.warnings:
            # warn-code 299 and agent "-", as kube-apiserver writes them.
            text = warning.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.append("Warning", f'299 - "{text}"')
        return response

    async def _resource(self, request: ApiRequest) -> Response:
        path = request.path
        parts = _segments(path)
        if parts is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        # Group and group/version documents.
        is_get = request.method == "GET"
        if is_get and len(parts) == 2 and parts[0] == "api" and parts[1] in GROUPS:
            return _json(resource_list(parts[1]))
        if parts and parts[0] == "apis" and request.method == "GET":
            if len(parts) == 3 and f"{parts[1]}/{parts[2]}" in GROUPS:
                return _json(resource_list(f"{parts[1]}/{parts[2]}"))
            if len(parts) == 2:
                versions = [v for v in GROUPS if v.startswith(f"{parts[1]}/")]
                if versions:
                    return _json(api_group(versions[0]))
            if len(parts) in (2, 3) and parts[1] == _REVIEW_GROUP["name"]:
                if len(parts) == 2:
                    return _json(_REVIEW_GROUP)
                if len(parts) == 3 and parts[2] == _REVIEW_GROUP["preferredVersion"]["version"]:
                    return _json(
                        {
                            "kind": "APIResourceList",
                            "apiVersion": "v1",
                            "groupVersion": REVIEW_API_VERSION,
                            "resources": [REVIEW_RESOURCE],
                        }
                    )
        if path.rstrip("/") == REVIEW_PATH:
            return await self._review(request)
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
            if target.subresource == "log" and target.kind.kind != "Pod":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if target.subresource == "token" and target.kind.kind != "ServiceAccount":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if method not in _SUBRESOURCE_METHODS[target.subresource]:
                raise _method_not_allowed()
        options_kind = "DeleteOptions" if method == "DELETE" else _OPTIONS.get(method, "")
        dry_run = parse_dry_run(query.getlist("dryRun"), options_kind) if options_kind else False
        if method in _OPTIONS:
            check_field_manager(options_kind, query.get("fieldManager"))
        if target.name is None:
            if method == "GET":
                if parse_bool(query.get("watch"), "watch"):
                    return await self._watch(request, target)
                return await self._list(request, target)
            if method == "POST":
                if target.kind.namespaced and target.namespace is None:
                    raise ApiError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                body = await request_object(request, target.kind, target.namespace or "")
                obj = self.cluster.create(
                    target.kind.kind,
                    target.namespace,
                    body,
                    field_manager=query.get("fieldManager"),
                    user_agent=request.headers.get("user-agent"),
                    dry_run=dry_run,
                )
                return _json(present(target.kind, obj), 201)
            if method == "DELETE":
                return await self._delete_collection(request, target, dry_run)
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if method == "POST" and target.subresource == "token":
            content_type = request.headers.get("content-type", "").split(";", 1)[0].strip()
            raw = await request.body()
            body = protobuf.decode_object(raw) if content_type == PROTOBUF else parse_object(raw)
            return _json(
                token_request_response(
                    self.sandbox.tokens,
                    self.cluster.store,
                    target.namespace or "",
                    target.name,
                    body,
                ),
                201,
            )
        if method == "GET" and target.subresource == "log":
            pod = self.cluster.get("Pod", target.namespace or "", target.name)
            return pod_log(
                pod, query.get("container"), parse_bool(query.get("previous"), "previous")
            )
        if method == "GET":
            wanted = negotiate(target.kind, request.headers.get("accept", ""), listing=False)
            obj = self.cluster.get(target.kind.kind, target.namespace or "", target.name)
            if wanted.form == TABLE:
                return _json(
                    table.object_table(
                        target.kind,
                        obj,
                        include_object=include_object(request),
                        present=presenter(target.kind),
                    )
                )
            if wanted.form == METADATA:
                return _json(partial_object(present(target.kind, obj)))
            return _json(present(target.kind, obj))
        if method == "PUT":
            body = await request_object(request, target.kind)
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
            return _json(present(target.kind, obj))
        if method == "PATCH":
            return await self._patch(request, target, dry_run)
        if method == "DELETE":
            return await self._delete(request, target, dry_run)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    async def _review(self, request: ApiRequest) -> Response:
        """A SelfSubjectAccessReview, answered for whoever sent it (`nublado.sandbox.access`)."""
        if request.method != "POST":
            raise _method_not_allowed()
        # Checked as for any create; a dry run changes nothing, since nothing is stored.
        parse_dry_run(request.query_params.getlist("dryRun"), "CreateOptions")
        check_field_manager("CreateOptions", request.query_params.get("fieldManager"))
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip()
        raw = await request.body()
        body = protobuf.decode_object(raw) if content_type == PROTOBUF else parse_object(raw)
        identity: Identity | None = request.scope.get(_IDENTITY)
        return _json(self_subject_access_review(self.cluster.store, identity, body), 201)

    async def _list(self, request: ApiRequest, target: _Target) -> Response:
        kind = target.kind
        query = dict(request.query_params)
        if "fieldSelector" in query:
            query["fieldSelector"] = field_selector(kind, query["fieldSelector"]) or ""
        wanted = negotiate(kind, request.headers.get("accept", ""), listing=True)
        body = await list_collection(self.cluster, kind, target.namespace, query)
        store = self.cluster.store
        plain = presenter(kind) is None  # shown as stored: each object's JSON can be kept
        with store.lock:
            if wanted.form == METADATA_LIST:
                # Only the metadata is encoded, never the specs and statuses.
                if plain:
                    items = body["items"]
                    parts = store.encoded_all(kind.kind, items, "metadata", _partial_json)
                    return Response(
                        _joined(partial_list({**body, "items": []}), parts),
                        media_type="application/json",
                    )
                body["items"] = [present(kind, o) for o in body["items"]]
                return Response(orjson.dumps(partial_list(body)), media_type="application/json")
            if wanted.form == TABLE:
                shown = table.table(
                    kind,
                    body["items"],
                    body["metadata"],
                    include_object=include_object(request),
                    present=presenter(kind),
                )
                return Response(orjson.dumps(shown), media_type="application/json")
            if plain:
                parts = store.encoded_all(kind.kind, body["items"], "object", orjson.dumps)
                raw = _joined({**body, "items": []}, parts)
            else:
                body["items"] = [present(kind, o) for o in body["items"]]
                raw = orjson.dumps(body)
        return Response(raw, media_type="application/json")

    async def _watch(self, request: ApiRequest, target: _Target) -> Response:
        kind = target.kind
        query = dict(request.query_params)
        if "fieldSelector" in query:
            query["fieldSelector"] = field_selector(kind, query["fieldSelector"]) or ""
        return await watch_response(
            self.cluster, kind, target.namespace, query, write=event_writer(request, kind)
        )

    async def _patch(self, request: ApiRequest, target: _Target, dry_run: bool) -> Response:
        query = request.query_params
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        raw = await request.body()
        if target.kind in VIEWS:
            raw = view_patch(content_type, raw)
        force_text = query.get("force")
        if content_type == "application/apply-patch+yaml":
            self._authorize_apply_create(request, target)
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
            return _json(present(target.kind, obj), 201 if created else 200)
        check_patch_type(target.kind.api_version, target.kind.kind, content_type)
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
        return _json(present(target.kind, obj))

    def _authorize_apply_create(self, request: ApiRequest, target: _Target) -> None:
        """In RBAC mode, an apply that would create its object must also be allowed ``create``.

        kube-apiserver's patch handler authorizes the create an apply makes
        (dry run or not) as ``create`` of that name, beside the request's own
        ``patch``: a ``patch`` grant alone updates objects but makes none.
        """
        identity: Identity | None = request.scope.get(_IDENTITY)
        if identity is None or not target.name or target.subresource:
            return
        store = self.cluster.store
        namespace = (target.namespace or "") if target.kind.namespaced else ""
        attributes = request_attributes("PATCH", request.path, request.query_params)
        creating = replace(attributes, verb="create")
        with store.lock:
            if store.get(target.kind.kind, namespace, target.name) is not None:
                return
            allowed, reason = authorize(store, identity, creating)
        if not allowed:
            raise forbidden_error(identity, creating, reason)
        self.sandbox.usage.record(identity, creating)

    async def _delete_options(
        self, request: ApiRequest, dry_run: bool = False
    ) -> tuple[str | None, int | None, Object | None, bool]:
        query = request.query_params
        policy = query.get("propagationPolicy")
        grace_text = query.get("gracePeriodSeconds")
        preconditions = None
        raw = await request.body()
        orphan_given = query.get("orphanDependents") is not None
        if raw.strip():
            options = parse_object(raw)
            orphan_given = options.get("orphanDependents") is not None
            policy = options.get("propagationPolicy") or policy
            if options.get("gracePeriodSeconds") is not None:
                grace_text = str(options["gracePeriodSeconds"])
            if options.get("orphanDependents") is True and policy is None:
                policy = "Orphan"
            preconditions = options.get("preconditions")
            body_dry_run = options.get("dryRun")
            if isinstance(body_dry_run, list) and body_dry_run:
                dry_run = parse_dry_run([str(v) for v in body_dry_run], "DeleteOptions")
        if orphan_given and policy is not None:
            raise _both_propagation_options(policy)
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

    async def _delete(self, request: ApiRequest, target: _Target, dry_run: bool) -> Response:
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
        self, request: ApiRequest, target: _Target, dry_run: bool
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
                "items": [present(target.kind, o) for o in deleted],
            }
        )


# Paths Starlette's router serves: discovery, OpenAPI and health (any method, so
# that one it refuses there is refused exactly as before); every other path is
# the resource API, served by `SandboxApp` without the router.
_ROUTED_PATHS = frozenset(
    {"/version", "/api", "/apis", "/openapi/v3", *(f"/{endpoint}" for endpoint in health.CHECKS)}
)
_ROUTED_PREFIXES = ("/openapi/v3/", *(f"/{endpoint}/" for endpoint in health.CHECKS))
# The resource route's methods (Starlette adds HEAD to a route that has GET).
_RESOURCE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


def _routed(path: str) -> bool:
    """Whether Starlette's router serves ``path`` (not the resource API)."""
    return not path.startswith("/") or path in _ROUTED_PATHS or path.startswith(_ROUTED_PREFIXES)


class SandboxApp:
    """The sandbox's ASGI app: fault rules and request recording, then dispatch.

    Resource requests (nearly all of them) go straight to `_Handlers.resource`
    with an `ApiRequest`: Starlette's middleware stack, router, Request, URL
    and QueryParams cost about a tenth of the sandbox's CPU per spawn and did
    nothing for these paths but find the one catch-all route. The rest (and
    lifespan) goes to the Starlette app, whose routes are unchanged. A handler
    that fails unexpectedly answers 500 ``Internal Server Error`` as
    Starlette's ServerErrorMiddleware does, and the error propagates to uvicorn.
    """

    def __init__(self, sandbox: SandboxHandle, handlers: _Handlers, routed: Starlette) -> None:
        self.sandbox = sandbox
        self.handlers = handlers
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.routed(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
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
        if self.sandbox.cluster.settings.rbac:
            refusal = self._refusal(scope, query, headers.get("authorization", ""))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if method not in _RESOURCE_METHODS or _routed(path):
            await self.routed(scope, receive, send)
            return
        try:
            response = await self.handlers.resource(ApiRequest(scope, receive))
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)

    def _refusal(self, scope: Scope, query: str, authorization: str) -> Response | None:
        """In RBAC mode: 401 for a request nobody sent, 403 for one RBAC does not allow.

        An allowed resource request is added to the sandbox's usage log, and
        its sender left in the scope (SelfSubjectAccessReview answers for it).
        """
        method, path = scope["method"], scope["path"]
        cluster = self.sandbox.cluster
        try:
            identity = self.sandbox.tokens.authenticate(cluster.store, authorization, path)
        except ApiError:
            return _json(unauthorized(), 401)
        attributes = request_attributes(method, path, QueryParams(query))
        with cluster.store.lock:
            allowed, reason = authorize(cluster.store, identity, attributes)
        if not allowed:
            return _error(forbidden_error(identity, attributes, reason))
        self.sandbox.usage.record(identity, attributes)
        scope[_IDENTITY] = identity
        return None


def create_app(sandbox: SandboxHandle) -> SandboxApp:
    """The ASGI app serving a sandbox."""
    handlers = _Handlers(sandbox)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox.cluster.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            sandbox.cluster.store.close_watches()
            sandbox.cluster.loop = None

    async def resource(request: Request) -> Response:
        # A resource path with a method another route refuses (POST /version).
        return await handlers.resource(ApiRequest(request.scope, request.receive))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/version", handlers.version, methods=["GET"]),
        Route("/api", handlers.api, methods=["GET"]),
        Route("/apis", handlers.apis, methods=["GET"]),
        Route("/openapi/v3", handlers.openapi, methods=["GET"]),
        *(
            Route(path, health.health, methods=["GET"])
            for endpoint in health.CHECKS
            for path in (f"/{endpoint}", f"/{endpoint}/{{check:path}}")
        ),
        Route("/openapi/v3/{path:path}", handlers.openapi, methods=["GET"]),
        Route("/{path:path}", resource, methods=methods),
    ]
    return SandboxApp(sandbox, handlers, Starlette(routes=routes, lifespan=lifespan))


def _partial_json(obj: Object) -> bytes:
    return orjson.dumps(partial_object(obj))


def _joined(empty: Object, items: list[bytes]) -> bytes:
    """A list body's JSON from the body with no items and each item's JSON: the bytes
    ``orjson.dumps`` makes of the whole body (compact JSON, ``items`` its last key)."""
    head = orjson.dumps(empty)
    if not head.endswith(b'"items":[]}'):
        raise ValueError("a list body's items must be its last key")
    if not items:
        return head
    # One copy of the items (a pods' LIST is 50 MB): the head joined to the first, the
    # tail to the last, rather than the items joined and then the whole joined again.
    first, last = head[:-2] + items[0], items[-1] + b"]}"
    if len(items) == 1:
        return head[:-2] + items[0] + b"]}"
    return b",".join((first, *items[1:-1], last))
