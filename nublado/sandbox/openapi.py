"""What the sandbox says about itself: discovery documents and OpenAPI v3.

Discovery (``/api/v1``, ``/apis/GROUP``, ``/apis/GROUP/VERSION``) lists every
served kind with its verbs, short names, categories (``all``, which
``kubectl get all`` expands) and subresources. ``/openapi/v3`` serves
Kubernetes' own schema (`nublado.sandbox.schema`) as kube-apiserver does: one
document per group/version whose ``components.schemas`` hold the definitions
its kinds reach, so ``kubectl explain`` prints the real field documentation,
and whose ``paths`` carry the operations kubectl inspects (the patch
operation's ``fieldValidation`` parameter tells ``kubectl apply`` that the
server validates fields). The documents are big: each is rendered once, on
first request, and kept.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from .kinds import SERVED_KINDS, ResourceKind
from .schema import crd_documents, definition_name, definitions, node_for

__all__ = [
    "GROUPS",
    "KUBERNETES_VERSION",
    "api_group",
    "openapi_document",
    "openapi_root",
    "printer_columns",
    "resource_list",
]

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
_REF = "#/$defs/"
_V3_REF = "#/components/schemas/"
_STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"


def _groups() -> dict[str, list[ResourceKind]]:
    groups: dict[str, list[ResourceKind]] = {}
    for kind in SERVED_KINDS:
        groups.setdefault(kind.api_version, []).append(kind)
    return groups


# Served kinds by group/version (``v1``, ``batch/v1``), in discovery order.
GROUPS = _groups()


def _subresources(kind: ResourceKind) -> list[Object]:
    found: list[Object] = []

    def add(name: str, verbs: list[str]) -> None:
        found.append(
            {
                "name": f"{kind.plural}/{name}",
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": verbs,
            }
        )

    if kind.kind == "Namespace" and not kind.group:
        add("finalize", ["update"])
    if kind.kind == "Pod":
        add("log", ["get"])
    if kind.kind == "ServiceAccount":
        found.append(
            {
                "name": f"{kind.plural}/token",
                "singularName": "",
                "namespaced": True,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }
        )
    if kind.has_status:
        add("status", ["get", "patch", "update"])
    return found


@cache
def resource_list(api_version: str) -> Object:
    """The APIResourceList of one group/version (``GET /api/v1``)."""
    resources = []
    for kind in GROUPS[api_version]:
        entry: Object = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": _VERBS,
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        resources.extend(_subresources(kind))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }


def api_group(api_version: str) -> Object:
    """The APIGroup document of a group (``GET /apis/batch``)."""
    group, _, version = api_version.rpartition("/")
    gv = {"groupVersion": api_version, "version": version}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [gv],
        "preferredVersion": gv,
    }


# -- OpenAPI v3 ----------------------------------------------------------------


def _v3(value: Any) -> Any:
    """A schema from kubernetes-validate's JSON-schema form back to OpenAPI 3.0.

    References move to ``#/components/schemas/``; a reference with siblings
    (a description) is wrapped in ``allOf`` as kube-apiserver writes it; the
    ``["string", "null"]`` type lists become the single type they were.
    """
    if isinstance(value, list):
        return [_v3(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: Object = {}
    for key, item in value.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(item, list):
            types = [t for t in item if t != "null"]
            if types:
                out[key] = types[0]
        elif key == "enum" and isinstance(item, list):
            out[key] = [v for v in item if v is not None]
        elif key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: _v3(spec) for name, spec in item.items()}
        else:
            out[key] = _v3(item)
    ref = value.get("$ref")
    if isinstance(ref, str):
        target = {"$ref": _V3_REF + ref.removeprefix(_REF)}
        if out:
            return {"allOf": [target], **out}
        return target
    return out


def _refs(value: Any, found: set[str]) -> None:
    """Collect the definition names a schema refers to."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            found.add(ref.removeprefix(_REF))
        for item in value.values():
            _refs(item, found)
    elif isinstance(value, list):
        for item in value:
            _refs(item, found)


def _closure(roots: list[str]) -> list[str]:
    """The definitions reachable from ``roots``, sorted."""
    known = definitions()
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in known:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(known[name], found)
        pending.extend(found - seen)
    return sorted(seen)


def _custom_schema_name(kind: ResourceKind) -> str:
    """The component name kube-apiserver gives a custom resource (group reversed)."""
    reversed_group = ".".join(reversed(kind.group.split(".")))
    return f"{reversed_group}.{kind.version}.{kind.kind}"


def _crd_version(kind: ResourceKind) -> Object:
    for crd in crd_documents():
        spec = crd["spec"]
        if spec["group"] != kind.group or spec["names"]["kind"] != kind.kind:
            continue
        for version in spec["versions"]:
            if version["name"] == kind.version:
                return dict(version)
    return {}


def _strip_enums(schema: Object) -> Object:
    """kubernetes-validate pins apiVersion and kind with enums the real documents lack."""
    properties = dict(schema.get("properties") or {})
    for key in ("apiVersion", "kind"):
        if key in properties:
            properties[key] = {k: v for k, v in properties[key].items() if k != "enum"}
    return {**schema, "properties": properties}


def _schemas(api_version: str) -> Object:
    schemas: Object = {}
    roots = [_STATUS]
    for kind in GROUPS[api_version]:
        name = definition_name(api_version, kind.kind)
        if name is not None:
            roots.append(name)
            list_name = definition_name(api_version, kind.list_kind)
            if list_name is not None:
                roots.append(list_name)
            continue
        node = node_for(api_version, kind.kind)
        if node is None:
            continue
        custom = _v3(node.raw)
        custom["x-kubernetes-group-version-kind"] = [
            {"group": kind.group, "version": kind.version, "kind": kind.kind}
        ]
        schemas[_custom_schema_name(kind)] = custom
        found: set[str] = set()
        _refs(node.raw, found)
        roots.extend(found)
    known = definitions()
    for name in _closure(roots):
        schema = known[name]
        if schema.get("x-kubernetes-group-version-kind"):
            schema = _strip_enums(schema)
        schemas[name] = _v3(schema)
    return dict(sorted(schemas.items()))


def _operation(kind: ResourceKind, action: str, parameters: list[str]) -> Object:
    return {
        "operationId": f"{action}{kind.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": kind.group,
            "version": kind.version,
            "kind": kind.kind,
        },
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": _PARAMETER_TYPES.get(name, "string")}}
            for name in parameters
        ],
        "responses": {"200": {"description": "OK"}},
    }


_PARAMETER_TYPES = {"force": "boolean", "limit": "integer", "watch": "boolean"}
_WRITE = ["dryRun", "fieldManager", "fieldValidation"]


def _paths(api_version: str) -> Object:
    paths: Object = {}
    for kind in GROUPS[api_version]:
        collection = kind.collection_path("{namespace}" if kind.namespaced else None)
        paths[collection] = {
            "get": _operation(kind, "list", ["labelSelector", "fieldSelector", "limit", "watch"]),
            "post": _operation(kind, "post", _WRITE),
        }
        paths[f"{collection}/{{name}}"] = {
            "get": _operation(kind, "get", []),
            "put": _operation(kind, "put", _WRITE),
            "patch": _operation(kind, "patch", [*_WRITE, "force"]),
            "delete": _operation(kind, "delete", ["dryRun", "propagationPolicy"]),
        }
    return paths


@cache
def openapi_document(api_version: str) -> bytes:
    """The OpenAPI v3 document of one group/version, rendered once (JSON bytes)."""
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": _paths(api_version),
        "components": {"schemas": _schemas(api_version)},
    }
    return orjson.dumps(document)


def _document_key(api_version: str) -> str:
    return f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"


@cache
def openapi_root() -> Object:
    """The ``/openapi/v3`` index: each document's URL with a hash of its content.

    kubectl caches documents by that URL, so the hash changes when a
    document does (rendering every document once, on the first request).
    """
    paths = {}
    for api_version in GROUPS:
        key = _document_key(api_version)
        digest = hashlib.sha512(openapi_document(api_version)).hexdigest().upper()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def printer_columns(kind: ResourceKind) -> list[Object]:
    """A custom resource's ``additionalPrinterColumns`` from its CRD (empty if none)."""
    return list(_crd_version(kind).get("additionalPrinterColumns") or [])
