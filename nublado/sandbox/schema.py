"""Kubernetes' own schema, the one source of the sandbox's apply, patch and validation rules.

The Kubernetes 1.32 definitions shipped by ``kubernetes-validate`` carry, for
every built-in kind, what kube-apiserver's structured-merge-diff and strategic
merge patch read: ``x-kubernetes-list-type`` and ``-list-map-keys``,
``x-kubernetes-map-type``, ``x-kubernetes-patch-strategy`` and
``-patch-merge-key``, plus types, required fields and enums. Custom resources
take their schema from their CRD (``crds/`` beside this module). The files
are read once, on first use, and each node is wrapped once.

A `Node` answers the questions the merge, patch and validation code ask of one
place in an object: is it a struct, a map, a list or a scalar; how does a list
merge; which fields does a struct declare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "KUBERNETES_VERSION",
    "ListType",
    "Node",
    "NodeKind",
    "crd_documents",
    "definition_name",
    "definitions",
    "node_for",
    "node_for_definition",
]

KUBERNETES_VERSION = "1.32"
_DEFINITIONS_DIR = f"v{KUBERNETES_VERSION}.0-local"
_CRD_DIR = Path(__file__).resolve().parent / "crds"
_REF_PREFIX = "#/$defs/"

NodeKind = Literal["struct", "map", "list", "scalar", "untyped"]
ListType = Literal["atomic", "set", "map"]

Object = dict[str, Any]


@cache
def definitions() -> dict[str, Object]:
    """Every built-in definition by its OpenAPI name (``io.k8s.api.core.v1.Pod``)."""
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema" / _DEFINITIONS_DIR
    data: dict[str, Object] = json.loads((base / "_definitions.json").read_text())["$defs"]
    return data


@cache
def _gvk_index() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) -> definition name, from ``x-kubernetes-group-version-kind``."""
    index: dict[tuple[str, str], str] = {}
    for name, schema in definitions().items():
        if "properties" not in schema:
            continue
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group, version = gvk["group"], gvk["version"]
            api_version = f"{group}/{version}" if group else version
            # DeleteOptions and WatchEvent claim every group; keep the first owner.
            index.setdefault((api_version, gvk["kind"]), name)
    return index


def definition_name(api_version: str, kind: str) -> str | None:
    """The definition name of a built-in kind (``io.k8s.api.core.v1.Pod``), None if unknown."""
    return _gvk_index().get((api_version, kind))


@cache
def crd_documents() -> tuple[Object, ...]:
    """The CustomResourceDefinitions the sandbox serves, as loaded from ``crds/``."""
    docs: list[Object] = []
    for path in sorted(_CRD_DIR.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return tuple(docs)


@cache
def _crd_schemas() -> dict[tuple[str, str], Object]:
    schemas: dict[tuple[str, str], Object] = {}
    for crd in crd_documents():
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            root = dict(version["schema"]["openAPIV3Schema"])
            properties = dict(root.get("properties", {}))
            # The API server adds the standard object fields to every CR schema.
            properties.setdefault("apiVersion", {"type": "string"})
            properties.setdefault("kind", {"type": "string"})
            properties["metadata"] = {"$ref": _REF_PREFIX + _OBJECT_META}
            root["properties"] = properties
            schemas[key] = root
    return schemas


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# Definitions that hold arbitrary JSON: structured-merge-diff treats them as
# "untyped" (deduced), a scalar or an atomic value depending on what is there.
_UNTYPED = {
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
}
# Definitions that are strings on the wire whatever their JSON schema says.
_STRING_LIKE = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "quantity",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "int-or-string",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "date-time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "date-time",
}
# Defaults kube-apiserver's 1.32 OpenAPI declares (``default``) that the
# kubernetes-validate copy drops; structured-merge-diff fills in a missing
# associative-list key from them (a Service port without ``protocol``).
_LOST_DEFAULTS: dict[tuple[str, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.LocalObjectReference", "name"): "",
}


@dataclass(eq=False)
class Node:
    """One place in an object's schema, with its references resolved.

    ``name`` is the definition name when the node is a whole definition
    (``io.k8s.api.core.v1.Container``), else empty. ``custom`` is true inside
    a custom resource's schema, where unknown-field and list rules differ.
    """

    raw: Object
    name: str = ""
    custom: bool = False
    _fields: dict[str, Node | None] = field(default_factory=dict, repr=False)
    _items: Node | None = field(default=None, repr=False)
    _values: Node | None = field(default=None, repr=False)

    # -- shape ---------------------------------------------------------------

    @property
    def kind(self) -> NodeKind:
        """How structured-merge-diff sees this node."""
        raw = self.raw
        if self.name in _UNTYPED:
            return "untyped"
        shaped = raw.get("properties") or raw.get("items") or raw.get("additionalProperties")
        if raw.get("x-kubernetes-preserve-unknown-fields") and not shaped:
            return "untyped"
        if self.name in _STRING_LIKE or raw.get("x-kubernetes-int-or-string"):
            return "scalar"
        types = self.types
        if "properties" in raw:
            return "struct"
        if isinstance(raw.get("additionalProperties"), dict):
            return "map"
        if "array" in types:
            return "list"
        if "object" in types:
            # An object with neither properties nor a value schema: any map.
            return "map" if raw.get("additionalProperties") is not False else "struct"
        if not types:
            return "untyped"
        return "scalar"

    @property
    def types(self) -> tuple[str, ...]:
        """The JSON types the node allows, without ``null``."""
        declared = self.raw.get("type")
        if declared is None and "oneOf" in self.raw:
            found: list[str] = []
            for option in self.raw["oneOf"]:
                value = option.get("type")
                found.extend(value if isinstance(value, list) else [value] if value else [])
            declared = found
        if isinstance(declared, str):
            declared = [declared]
        return tuple(t for t in (declared or []) if t != "null")

    @property
    def format(self) -> str:
        """The value's wire format: ``quantity``, ``int-or-string``, ``date-time``, ``byte``..."""
        if self.name in _STRING_LIKE:
            return _STRING_LIKE[self.name]
        if self.raw.get("x-kubernetes-int-or-string"):
            return "int-or-string"
        return str(self.raw.get("format", ""))

    def field(self, name: str) -> Node | None:
        """The schema of a struct's field, or None when the struct does not declare it."""
        if name in self._fields:
            return self._fields[name]
        spec = self.raw.get("properties", {}).get(name)
        child = _wrap(spec, self.custom) if spec is not None else None
        self._fields[name] = child
        return child

    def field_default(self, name: str) -> Any:
        """The schema default of a struct's field, or None when it declares none."""
        spec = self.raw.get("properties", {}).get(name) or {}
        if "default" in spec:
            return spec["default"]
        return _LOST_DEFAULTS.get((self.name, name))

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields a struct declares."""
        return tuple(self.raw.get("properties", {}))

    @property
    def preserves_unknown_fields(self) -> bool:
        """True where a custom resource keeps fields its schema does not declare."""
        return bool(self.raw.get("x-kubernetes-preserve-unknown-fields"))

    @property
    def items(self) -> Node:
        """The schema of a list's elements."""
        if self._items is None:
            self._items = _wrap(self.raw.get("items") or {}, self.custom)
        return self._items

    @property
    def values(self) -> Node:
        """The schema of a map's values."""
        if self._values is None:
            extra = self.raw.get("additionalProperties")
            self._values = _wrap(extra if isinstance(extra, dict) else {}, self.custom)
        return self._values

    # -- merge semantics -----------------------------------------------------

    @property
    def list_type(self) -> ListType:
        """How server-side apply merges this list.

        ``x-kubernetes-list-type`` when declared; otherwise, as the API
        server's schema conversion does for built-in kinds, a ``merge`` patch
        strategy makes an associative list keyed by the patch merge key (or a
        set of scalars without one); anything else is atomic.
        """
        declared = self.raw.get("x-kubernetes-list-type")
        if declared in ("atomic", "set", "map"):
            return declared  # type: ignore[no-any-return]
        if "merge" in self.patch_strategy.split(","):
            return "map" if self.patch_merge_key else "set"
        return "atomic"

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        """The keys that identify an element of an associative list."""
        keys = self.raw.get("x-kubernetes-list-map-keys")
        if keys:
            return tuple(keys)
        return (self.patch_merge_key,) if self.patch_merge_key else ()

    @property
    def atomic(self) -> bool:
        """True when a struct or map is replaced whole (``x-kubernetes-map-type: atomic``)."""
        return self.raw.get("x-kubernetes-map-type") == "atomic"

    @property
    def patch_strategy(self) -> str:
        """Strategic merge patch strategy: ``merge``, ``replace``, ``retainKeys`` or a mix."""
        return str(self.raw.get("x-kubernetes-patch-strategy", ""))

    @property
    def patch_merge_key(self) -> str:
        """The field that identifies a list element in a strategic merge patch."""
        return str(self.raw.get("x-kubernetes-patch-merge-key", ""))

    # -- validation ----------------------------------------------------------

    @property
    def required(self) -> tuple[str, ...]:
        """Fields a struct requires."""
        return tuple(self.raw.get("required", ()))

    @property
    def enum(self) -> tuple[Any, ...]:
        """Allowed values, when the schema lists them."""
        return tuple(v for v in self.raw.get("enum", ()) if v is not None)


def _wrap(spec: Object, custom: bool) -> Node:
    """The node for a property, item or value schema, following a ``$ref``."""
    ref = spec.get("$ref")
    if ref is None and "allOf" in spec and len(spec["allOf"]) == 1:
        ref = spec["allOf"][0].get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        name = ref[len(_REF_PREFIX) :]
        # A property may qualify the shared definition (its own patch strategy
        # or map type); such a node is the definition with those keys on top.
        extras = {k: v for k, v in spec.items() if k.startswith("x-kubernetes-")}
        if extras:
            return Node({**definitions()[name], **extras}, name=name)
        return node_for_definition(name)
    return Node(spec, custom=custom)


@cache
def node_for_definition(name: str) -> Node:
    """The node of a built-in definition (one shared instance per name)."""
    return Node(definitions()[name], name=name)


@cache
def node_for(api_version: str, kind: str) -> Node | None:
    """The root node of a kind, built-in or custom; None when the sandbox has no schema."""
    name = _gvk_index().get((api_version, kind))
    if name is not None:
        return node_for_definition(name)
    custom = _crd_schemas().get((api_version, kind))
    if custom is not None:
        return Node(custom, custom=True)
    return None
