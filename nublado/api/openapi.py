"""The controller's OpenAPI 3.1 document, built from its route table and pydantic models.

Upstream (FastAPI) served ``PREFIX/openapi.json``, ``PREFIX/docs`` and
``PREFIX/redoc`` to anonymous callers (api.md 1.2, 3). Starlette has no
generator, so this module holds what a route table cannot say (summary,
tag, headers, body, responses) per route name in `OPERATIONS`, and
`openapi_document` walks the app's routes: a route is documented at its
own path and methods, so the document cannot drift from what is served.
Component schemas come from the models the routes render, adjusted to
what ``to_json`` really sends (nulls kept or omitted, the lab owner without
Gafaelfawr's extra fields).

``python -m nublado.api.openapi CONFIG`` writes (or ``--check``\\ s) the
committed schema/openapi.json for a configuration; the test suite checks it
is current for the reference configuration (prefix ``/nublado``).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import click
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..config import Config, load_config
from ..errors import InputError
from ..models.fsadmin import FSAdminCommand, FSAdminStatus
from ..models.images import PrepullerStatus, SpawnerImages
from ..models.lab import LabSpecification, LabState
from .app import DESCRIPTION, api_route, prefixed
from .auth import TOKEN_HEADER, USER_HEADER

__all__ = [
    "DEFAULT_OPENAPI_PATH",
    "OPERATIONS",
    "TAGS",
    "Operation",
    "component_schemas",
    "controller_routes",
    "openapi_document",
    "openapi_routes",
    "openapi_text",
]

DEFAULT_OPENAPI_PATH = Path("schema/openapi.json")
"""Where the document for the reference configuration is committed."""

TAGS = [
    {"name": "hub", "description": "Called by JupyterHub with its admin token: status, delete."},
    {"name": "user", "description": "Called with the user's token: lab form, create, events."},
    {"name": "admin", "description": "Administrators' views of images and the prepuller."},
    {"name": "internal", "description": "Service metadata."},
]
"""The tags of api.md 3, by caller."""

_REF = "#/components/schemas/{model}"

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": dict(schema)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("ErrorModel"), description)


_VALIDATION = _json(_ref("HTTPValidationError"), "Validation Error")

_VALIDATION_OR_ERROR = _json(
    {"anyOf": [_ref("HTTPValidationError"), _ref("ErrorModel")]},
    "Validation Error, or a lab size or image reference the controller cannot use",
)

_INVALID_TOKEN = _error("Gafaelfawr rejected the delegated token (invalid_token)")

_DENIED = _error("The caller is not the user of the path, or may not do this (permission_denied)")


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one route beyond its path and methods."""

    summary: str
    tag: str
    responses: Mapping[str, Mapping[str, Any]]
    description: str | None = None
    headers: Sequence[str] = ()
    """Required request headers (lower case), in declaration order."""

    body: str | None = None
    """Component schema of the JSON request body, if any."""

    path_parameters: Mapping[str, str] = field(default_factory=dict)
    """Description of each path parameter."""


_USERNAME = {"username": "The user whose lab this is."}
_FILESERVER_USER = {"username": "The user whose file server this is."}
_RUNNING = {
    "type": "object",
    "properties": {"running": {"type": "boolean", "const": True}},
    "required": ["running"],
}
_NOT_SUPPORTED = _error("File servers are disabled in the configuration (not_supported)")

_FSADMIN_ABSENT = _error(
    "No fsadmin pod (not_found), or one that is not Running (invalid_phase, msg: the phase)"
)

OPERATIONS: Mapping[str, Operation] = {
    "external_index": Operation(
        summary="Application metadata",
        tag="internal",
        responses={"200": _json({"$ref": _REF.format(model="Index")}, "Service metadata")},
    ),
    "lab-form": Operation(
        summary="Lab creation form",
        tag="user",
        description="The HTML fragment JupyterHub embeds in its spawn page (api.md 4.3).",
        headers=(USER_HEADER, TOKEN_HEADER),
        path_parameters=_USERNAME,
        responses={
            "200": {
                "description": "The form",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "401": _INVALID_TOKEN,
            "403": _DENIED,
            "422": _VALIDATION,
        },
    ),
    "labs": Operation(
        summary="List all users with running labs",
        tag="hub",
        responses={
            "200": _json(
                {"type": "array", "items": {"type": "string"}},
                "Usernames in the order the controller first saw them",
            )
        },
    ),
    "lab": Operation(
        summary="Status of user's lab",
        tag="hub",
        path_parameters=_USERNAME,
        responses={
            "200": _json(_ref("LabState"), "The lab"),
            "404": _error("No lab for this user (unknown_user)"),
        },
    ),
    "delete-lab": Operation(
        summary="Delete user lab",
        tag="hub",
        description="Answers once the lab's namespace is gone (api.md 4.7).",
        path_parameters=_USERNAME,
        responses={
            "204": {"description": "Lab deleted"},
            "404": _error("No lab for this user (unknown_user)"),
            "409": _error("Another operation in progress (operation_in_progress)"),
            "500": _error("Deleting the lab failed or timed out (delete_failed)"),
        },
    ),
    "create-lab": Operation(
        summary="Create user lab",
        tag="user",
        description=(
            "Starts the spawn and answers at once; follow it with the events stream."
            " The body is JSON ``null``."
        ),
        headers=(USER_HEADER, TOKEN_HEADER),
        body="LabSpecification",
        path_parameters=_USERNAME,
        responses={
            "201": {
                "description": "Spawn started",
                "headers": {
                    "Location": {
                        "description": "Absolute URL of the lab's status",
                        "schema": {"type": "string", "format": "uri"},
                    }
                },
                "content": {_JSON: {"schema": {"type": "null"}}},
            },
            "400": _json(
                {"anyOf": [_ref("ErrorModel"), _ref("HTTPError")]},
                "Unknown image (unknown_image), or a body that is not UTF-8",
            ),
            "401": _INVALID_TOKEN,
            "403": _error(
                "Another user's path, spawning not permitted, no UID or GID"
                " (permission_denied), or a size beyond the quota (insufficient_quota)"
            ),
            "409": _error("Lab exists (lab_exists) or operation in progress"),
            "422": _VALIDATION_OR_ERROR,
        },
    ),
    "lab-events": Operation(
        summary="Get event stream for user's lab",
        tag="user",
        description=(
            "Server-sent events of the lab's current or last operation, replayed from the"
            " start; the stream ends after a ``complete`` or ``failed`` event."
        ),
        headers=(USER_HEADER,),
        path_parameters=_USERNAME,
        responses={
            "200": {
                "description": "The event stream",
                "content": {"text/event-stream": {"schema": _ref("SpawnEvent")}},
            },
            "403": _DENIED,
            "404": _error("No lab record for this user (unknown_user)"),
            "422": _VALIDATION,
        },
    ),
    "user-status": Operation(
        summary="Status of the caller's own lab",
        tag="user",
        headers=(USER_HEADER,),
        responses={
            "200": _json(_ref("LabState"), "The lab"),
            "404": _error("No lab for the caller (unknown_user)"),
            "422": _VALIDATION,
        },
    ),
    "images": Operation(
        summary="Get known images and their names",
        tag="admin",
        responses={"200": _json(_ref("SpawnerImages"), "Known images, nulls omitted")},
    ),
    "prepulls": Operation(
        summary="Get status of prepulled images",
        tag="admin",
        responses={"200": _json(_ref("PrepullerStatus"), "The prepuller's status")},
    ),
    "fileserver-users": Operation(
        summary="List all users with running file servers",
        tag="admin",
        responses={
            "200": _json({"type": "array", "items": {"type": "string"}}, "Usernames, sorted"),
            "404": _NOT_SUPPORTED,
        },
    ),
    "fileserver-user": Operation(
        summary="Whether a user's file server is running",
        tag="admin",
        path_parameters=_FILESERVER_USER,
        responses={
            "200": _json(_RUNNING, "The file server runs"),
            "404": _error("No file server running (unknown_user), or disabled (not_supported)"),
        },
    ),
    "fileserver-delete-user": Operation(
        summary="Delete a user's file server",
        tag="admin",
        description="Answers once the file server's objects are gone (api.md 4.13).",
        path_parameters=_FILESERVER_USER,
        responses={
            "204": {"description": "File server deleted"},
            "404": _error("Never seen or not running (unknown_user), or disabled (not_supported)"),
            "500": _error("Deleting failed or timed out (file_server_delete_failed)"),
        },
    ),
    "fileserver-user-status": Operation(
        summary="Whether the caller's own file server is running",
        tag="user",
        headers=(USER_HEADER,),
        responses={
            "200": _json(_RUNNING, "The file server runs"),
            "404": _error("No file server running (unknown_user), or disabled (not_supported)"),
            "422": _VALIDATION,
        },
    ),
    "fsadmin": Operation(
        summary="Status of fsadmin",
        tag="admin",
        responses={
            "200": _json(_ref("FSAdminStatus"), "The fsadmin pod is running"),
            "404": _FSADMIN_ABSENT,
        },
    ),
    "start-fsadmin": Operation(
        summary="Start fsadmin",
        tag="admin",
        description=(
            "Starts the fsadmin pod unless it is running and answers its status; waits"
            " until the pod has left Pending (api.md 4.14)."
        ),
        body="FSAdminCommand",
        responses={
            "200": _json(_ref("FSAdminStatus"), "The fsadmin pod is running"),
            "400": _json(_ref("HTTPError"), "A body that is not UTF-8"),
            "404": _FSADMIN_ABSENT,
            "422": _VALIDATION,
        },
    ),
    "delete-fsadmin": Operation(
        summary="Delete fsadmin",
        tag="admin",
        description="Answers once the pod and its PVCs are gone, also when there were none.",
        responses={"204": {"description": "fsadmin deleted"}},
    ),
}
"""Per route name, what the document says about the route."""

_UNDOCUMENTED = {"internal_index", "openapi", "docs", "redoc"}
"""Routes upstream left out of its document (``GET /``, the documentation itself)."""

_HEADER_DESCRIPTIONS = {
    USER_HEADER: "The authenticated username, set by the Gafaelfawr ingress.",
    TOKEN_HEADER: "The delegated token Gafaelfawr issued for this request.",
}

# Hand-written schemas of bodies no model describes.

_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "ErrorLocation": {
        "title": "ErrorLocation",
        "type": "array",
        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "description": 'Where the error lies: ``["path", "username"]``, ``["body", ...]``.',
    },
    "ErrorDetail": {
        "title": "ErrorDetail",
        "type": "object",
        "properties": {
            "loc": _ref("ErrorLocation"),
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
        "required": ["msg", "type"],
    },
    "ErrorModel": {
        "title": "ErrorModel",
        "description": "An expected error (api.md 2.1): one entry naming its type code.",
        "type": "object",
        "properties": {"detail": {"type": "array", "items": _ref("ErrorDetail")}},
        "required": ["detail"],
    },
    "ValidationError": {
        "title": "ValidationError",
        "type": "object",
        "properties": {
            "loc": _ref("ErrorLocation"),
            "msg": {"type": "string"},
            "type": {"type": "string"},
            "input": {},
            "ctx": {"type": "object"},
        },
        "required": ["loc", "msg", "type"],
    },
    "HTTPValidationError": {
        "title": "HTTPValidationError",
        "description": "The request does not match the route (FastAPI's 422 body, api.md 2.3).",
        "type": "object",
        "properties": {"detail": {"type": "array", "items": _ref("ValidationError")}},
        "required": ["detail"],
    },
    "HTTPError": {
        "title": "HTTPError",
        "description": "A failure outside the routes' own errors, as FastAPI words it.",
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "Metadata": {
        "title": "Metadata",
        "type": "object",
        "properties": {
            name: {"type": "string"}
            for name in ("name", "version", "description", "repository_url", "documentation_url")
        },
        "required": ["name", "version"],
    },
    "Index": {
        "title": "Index",
        "type": "object",
        "properties": {"metadata": _ref("Metadata")},
        "required": ["metadata"],
    },
    "SpawnEvent": {
        "title": "SpawnEvent",
        "description": (
            "One server-sent event (api.md 6): ``event`` and ``data`` lines only, no id or"
            " retry; ``: ping - <UTC time>`` comments every 15 s keep the stream open."
        ),
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["info", "error", "complete", "failed"]},
            "data": {
                "type": "string",
                "contentMediaType": _JSON,
                "contentSchema": _ref("SpawnEventData"),
            },
        },
        "required": ["event", "data"],
    },
    "SpawnEventData": {
        "title": "SpawnEventData",
        "description": "An event's JSON data: progress only on progress steps.",
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "progress": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        "required": ["message"],
        "additionalProperties": False,
    },
    "LabUser": {
        "title": "LabUser",
        "description": "The lab's owner as the lab state shows them (no email, no quota).",
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "uid": {"type": "integer"},
            "gid": {"type": "integer"},
            "groups": {"type": "array", "items": _ref("UserGroup")},
        },
        "required": ["username", "name", "uid", "gid", "groups"],
    },
}


def _refs(schema: Any) -> Iterator[str]:
    """Names of the components ``schema`` refers to directly."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _reachable(schemas: Mapping[str, Any], roots: Sequence[str]) -> list[str]:
    """The components ``roots`` need, themselves included."""
    seen: list[str] = []
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.append(name)
        pending.extend(_refs(schemas[name]))
    return seen


def _without_nulls(schema: Any) -> Any:
    """``schema`` with every ``null`` alternative and null default dropped (nulls omitted)."""
    if isinstance(schema, list):
        return [_without_nulls(value) for value in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _without_nulls(value) for key, value in schema.items()}
    if "default" in result and result["default"] is None:
        del result["default"]
    options = result.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            del result["anyOf"]
            result.update(kept[0])
        else:
            result["anyOf"] = kept
    return result


def _all_present(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema whose every property is sent (serialised without omissions)."""
    if "properties" in schema:
        schema = {**schema, "required": list(schema["properties"])}
    return schema


def component_schemas() -> dict[str, Any]:
    """``components.schemas``: the request and response models, as the routes send them."""
    _, defs = models_json_schema(
        [
            (LabSpecification, "validation"),
            (LabState, "serialization"),
            (SpawnerImages, "serialization"),
            (PrepullerStatus, "serialization"),
            (FSAdminCommand, "validation"),
            (FSAdminStatus, "serialization"),
        ],
        ref_template=_REF,
        by_alias=False,
    )
    schemas: dict[str, Any] = {**copy.deepcopy(defs["$defs"]), **copy.deepcopy(_ERROR_SCHEMAS)}
    # The lab state's user is the owner without Gafaelfawr's email and quota.
    schemas["LabState"]["properties"]["user"] = _ref("LabUser")
    # LabState and PrepullerStatus are dumped whole: every key is present, nulls included.
    for name in _reachable(schemas, ["LabState", "PrepullerStatus"]):
        if name not in _ERROR_SCHEMAS:
            schemas[name] = _all_present(schemas[name])
    # The image list leaves out every null, at every level.
    for name in _reachable(schemas, ["SpawnerImages"]):
        schemas[name] = _without_nulls(schemas[name])
    used = _reachable(
        schemas,
        [
            "LabSpecification",
            "LabState",
            "SpawnerImages",
            "PrepullerStatus",
            "FSAdminCommand",
            "FSAdminStatus",
            *_ERROR_SCHEMAS,
        ],
    )
    return {name: schemas[name] for name in sorted(used)}


def _parameters(route: Route, operation: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for name in route.param_convertors:
        parameter: dict[str, Any] = {
            "name": name,
            "in": "path",
            "required": True,
            # A path part: any characters but the slash that ends it.
            "schema": {"type": "string", "pattern": "^[^/]+$"},
        }
        if name in operation.path_parameters:
            parameter["description"] = operation.path_parameters[name]
        parameters.append(parameter)
    for header in operation.headers:
        parameters.append(
            {
                "name": header,
                "in": "header",
                "required": True,
                "description": _HEADER_DESCRIPTIONS[header],
                "schema": {"type": "string"},
            }
        )
    return parameters


def _operation(route: Route, method: str, operation: Operation | None) -> dict[str, Any]:
    if operation is None:  # a route added without an entry: document what is known
        doc = (route.endpoint.__doc__ or "").strip().splitlines()
        return {
            "summary": doc[0] if doc else route.name,
            "operationId": f"{route.name}_{method}",
            "responses": {"200": {"description": "Successful Response"}},
        }
    result: dict[str, Any] = {
        "tags": [operation.tag],
        "summary": operation.summary,
        "operationId": f"{route.name}_{method}",
    }
    if operation.description:
        result["description"] = operation.description
    parameters = _parameters(route, operation)
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _ref(operation.body)}},
        }
    result["responses"] = copy.deepcopy(dict(operation.responses))
    return result


def openapi_document(config: Config, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (an app's route table) under ``config``.

    Every `Route` under the prefix is documented at its path, once per
    method, except the documentation routes themselves; the health check
    ``/`` and mounts (such as ``/metrics``) are not API routes and are left out.
    """
    prefix = prefixed(config)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or route.name in _UNDOCUMENTED:
            continue
        if route.path != prefix and not route.path.startswith(f"{prefix.rstrip('/')}/"):
            continue
        operation = OPERATIONS.get(route.name)
        for method in sorted(route.methods or ()):
            key = method.lower()
            paths.setdefault(route.path, {})[key] = _operation(route, key, operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": config.name, "description": DESCRIPTION, "version": __version__},
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": component_schemas()},
    }


_SWAGGER_UI = """<!DOCTYPE html>
<html>
<head>
<title>{title} - Swagger UI</title>
<meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({{url: "{url}", dom_id: "#swagger-ui"}});
</script>
</body>
</html>
"""

_REDOC = """<!DOCTYPE html>
<html>
<head>
<title>{title} - ReDoc</title>
<meta charset="utf-8">
</head>
<body>
<redoc spec-url="{url}"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body>
</html>
"""


def openapi_routes(config: Config) -> list[BaseRoute]:
    """``PREFIX/openapi.json``, ``PREFIX/docs`` and ``PREFIX/redoc``: anonymous (api.md 1.2).

    The document is built on first request from the app serving it, so it
    covers exactly that app's routes, and kept.
    """
    url = prefixed(config, "/openapi.json")
    cache: dict[int, JSONResponse] = {}

    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI document of this app."""
        app = request.app
        if id(app) not in cache:
            cache[id(app)] = JSONResponse(openapi_document(config, app.routes))
        return cache[id(app)]

    async def docs(request: Request) -> HTMLResponse:
        """Swagger UI reading the document."""
        return HTMLResponse(_SWAGGER_UI.format(title=config.name, url=url))

    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc reading the document."""
        return HTMLResponse(_REDOC.format(title=config.name, url=url))

    return [
        api_route(url, openapi, name="openapi"),
        api_route(prefixed(config, "/docs"), docs, name="docs"),
        api_route(prefixed(config, "/redoc"), redoc, name="redoc"),
    ]


class _NotServing:
    """Stands in for a service in a route table built only to be documented."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{name}: this route table is for the OpenAPI document only")


def controller_routes(config: Config) -> list[BaseRoute]:
    """The controller's API route table for ``config``, built to be read, never served.

    The same route builders the controller uses, with services that refuse
    every use: the committed document is generated from the real table.
    """
    from .app import create_app
    from .files import fileserver_routes
    from .forms import form_routes
    from .fsadmin import fsadmin_routes
    from .labs import lab_routes

    unused = cast(Any, _NotServing())
    routes = [
        *form_routes(config, unused, unused, unused),
        *lab_routes(config, unused, unused),
        *fileserver_routes(config, unused, unused),
        *fsadmin_routes(config, unused),
    ]
    return list(create_app(config, images=unused, routes=routes).routes)


def openapi_text(config: Config) -> str:
    """The committed form of the document: sorted keys, two-space indent, final newline."""
    document = openapi_document(config, controller_routes(config))
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@click.command()
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OPENAPI_PATH,
    show_default=True,
    help="File to write; '-' writes to standard output.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the file is out of date.")
def main(config_path: Path, output: Path, check: bool) -> None:
    """Write the controller's OpenAPI document for the configuration CONFIG_PATH."""
    text = openapi_text(load_config(config_path))
    if str(output) == "-":
        sys.stdout.write(text)
        return
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            click.echo(f"{output} is out of date; run python -m nublado.api.openapi", err=True)
            sys.exit(1)
        return
    try:
        output.parent.mkdir(exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--output {output}: {exc.strerror}") from exc
    click.echo(f"Wrote {output}", err=True)


if __name__ == "__main__":
    main()
