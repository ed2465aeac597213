"""What kube-apiserver refuses in an object, with the answers it writes.

Two steps, as in the real server. `decode_object` is the request decoder:
a value of the wrong JSON type, a quantity that does not parse or a Secret
value that is not base64 is a 400 BadRequest (``Pod in version "v1" cannot
be handled as a Pod: ...``), and fields the schema does not declare are
refused, warned about or dropped per the request's ``fieldValidation``.
`validate_object` is the validation of a decoded object: the rules of
Kubernetes' ``validation`` packages a lab controller can break (names, labels,
annotations, pod containers and volumes, ConfigMap and Secret keys and size,
Service ports, NetworkPolicy, ResourceQuota, PVC), each a cause of one 422
Invalid whose message is built as apimachinery's ``NewInvalid`` builds it.

Everything is read from Kubernetes' schema (`nublado.sandbox.schema`); the
rules themselves are hand-written because the real ones are code, not schema.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import orjson

from .body import json_type
from .gotime import TimeParseError, canonical_time
from .kinds import ResourceKind
from .quantity import Quantity, QuantityError, canonical_quantity, decode_quantity
from .request import current_write
from .schema import Node, node_for
from .store import ApiError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DATA_BYTES",
    "SERVICE_CIDR",
    "FieldError",
    "GoSyntax",
    "check_body_size",
    "check_service_range",
    "decode_object",
    "decoding_patch",
    "find_unknown_fields",
    "invalid_error",
    "validate_object",
]

Object = dict[str, Any]

MAX_BODY_BYTES = 3 * 1024 * 1024
"""kube-apiserver's limit on a request body (``--max-request-bytes`` default)."""

MAX_DATA_BYTES = 1024 * 1024
"""The most data a ConfigMap or Secret may hold (``core.MaxSecretSize``)."""

_MAX_ANNOTATION_BYTES = 256 * 1024

# -- field errors, as apimachinery's field.Error writes them -------------------

_REASON_TEXT = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueTypeInvalid": "Invalid value",
}
# Reasons whose message never shows the bad value.
_VALUELESS = frozenset({"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong"})


@dataclass(frozen=True)
class GoSyntax:
    """A bad value already written as Go's ``%#v`` writes it (a struct, a slice)."""

    text: str


@dataclass(frozen=True)
class FieldError:
    """One cause of a 422: a reason, the field path, the bad value and a detail."""

    reason: str
    field: str
    value: Any = ""
    detail: str = ""

    def body(self) -> str:
        """The message without the field (``ErrorBody``), the cause's ``message``."""
        text = _REASON_TEXT[self.reason]
        if self.reason not in _VALUELESS:
            text = f"{text}: {_go_value(self.value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def _go_value(value: Any) -> str:
    if isinstance(value, GoSyntax):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, "", detail)


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, value, detail)


def _not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    quoted = ", ".join(json.dumps(v) for v in supported)
    return FieldError("FieldValueNotSupported", path, value, f"supported values: {quoted}")


def _duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, value)


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, "", detail)


def _too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, "", f"must have at most {limit} bytes")


def _not_found(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", path, value)


def invalid_error(kind: ResourceKind, name: str, errors: list[FieldError]) -> ApiError:
    """The 422 Invalid of ``errors.NewInvalid``: every cause, the message aggregated.

    The message lists each distinct error once, in brackets when there are
    several, as apimachinery's aggregate error prints them.
    """
    qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    texts: list[str] = []
    for error in errors:
        text = str(error)
        if text not in texts:
            texts.append(text)
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: Object = {"name": name}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.kind
    details["causes"] = [
        {"reason": e.reason, "message": e.body(), "field": e.field} for e in errors
    ]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)


# -- request body limit -------------------------------------------------------


def check_body_size(raw: bytes, method: str = "") -> None:
    """413 for a body past kube-apiserver's 3 MiB limit, before anything parses it.

    The body of a POST or PUT is also kept for the request's strict decoding,
    which looks for duplicate fields the JSON parser has already merged.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            f"Request entity too large: limit is {MAX_BODY_BYTES}",
        )
    if method in ("POST", "PUT"):
        _BODY.set(raw)


_BODY: ContextVar[bytes | None] = ContextVar("sandbox_body", default=None)


class _Pairs(dict[str, Any]):
    """A JSON object that remembers the keys it held more than once."""

    duplicates: frozenset[str] = frozenset()


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    result = _Pairs(items)
    if len(result) != len(items):
        seen: set[str] = set()
        repeated: set[str] = set()
        for key, _ in items:
            if key in seen:
                repeated.add(key)
            seen.add(key)
        result.duplicates = frozenset(repeated)
    return result


def _with_duplicates(node: Node) -> list[str] | None:
    """Strict errors of the request body, duplicates included, when it has duplicate fields.

    Read once per request (the first object decoded is the body's), and only
    under Strict: parsing the body a second time costs more than the rest.
    """
    raw = _BODY.get()
    if raw is None:
        return None
    _BODY.set(None)
    if not raw.lstrip().startswith(b"{") or b'"' not in raw:
        return None
    found: list[bool] = []

    def pairs(items: list[tuple[str, Any]]) -> _Pairs:
        result = _pairs(items)
        if result.duplicates:
            found.append(True)
        return result

    try:
        tree = json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    if not found:
        return None
    decoder = _Decoder(node, prune=False, check_types=False)
    decoder.walk(node, tree)
    return decoder.strict


# -- decoding -------------------------------------------------------------------


class _DecodeError(Exception):
    """A value the decoder cannot store: its text is the decoder's message."""


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _go_package(definition: str) -> str:
    parts = definition.split(".")
    return f"{parts[-2]}.{parts[-1]}" if len(parts) >= 2 else definition


def _go_type(node: Node) -> str:
    """The Go type a schema node decodes into, as Go's decoder names it."""
    if node.format == "date-time":
        return "string"  # metav1.Time decodes its JSON string first
    if node.name:
        if node.kind == "scalar" and node.format in ("quantity", "int-or-string"):
            return _go_package(node.name)
        if node.kind == "struct":
            return _go_package(node.name)
    kind = node.kind
    if kind == "list":
        return "[]" + _go_type(node.items)
    if kind == "map":
        return "map[string]" + _go_type(node.values)
    types = node.types
    if "integer" in types and "string" in types:
        return "intstr.IntOrString"
    if node.format == "byte":
        return "[]uint8"
    if "integer" in types:
        return node.format if node.format in _INT_RANGES else "int"
    if "number" in types:
        return "float64"
    if "boolean" in types:
        return "bool"
    if "string" in types:
        return "string"
    return "interface {}"


def _base64_error(text: str) -> str | None:
    """The error Go's ``base64.StdEncoding`` gives for a value, or None if it decodes."""
    data = text.encode()
    position = 0
    end = len(data)
    while position < end:
        quantum = 0
        while quantum < 4:
            if position == end:
                if quantum == 0:
                    return None
                return f"illegal base64 data at input byte {position - quantum}"
            char = data[position]
            position += 1
            if char in (10, 13):
                continue
            if char in _BASE64:
                quantum += 1
                continue
            if char != ord("="):
                return f"illegal base64 data at input byte {position - 1}"
            if quantum in (0, 1):
                return f"illegal base64 data at input byte {position - 1}"
            if quantum == 2:
                while position < end and data[position] in (10, 13):
                    position += 1
                if position == end:
                    return f"illegal base64 data at input byte {end}"
                if data[position] != ord("="):
                    return f"illegal base64 data at input byte {position - 1}"
                position += 1
            while position < end and data[position] in (10, 13):
                position += 1
            if position < end:
                return f"illegal base64 data at input byte {position}"
            return None
    return None


# How a scalar is checked: its JSON type, or the format that decodes it.
_CHECKS = (
    "any",
    "string",
    "byte",
    "integer",
    "number",
    "boolean",
    "quantity",
    "intstr",
    "time",
    "microtime",
)
_TIME_DEFINITIONS = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "microtime",
}
# What Go's decoder stores for a null map value or list item of each check
# (the zero value of its type); None where the zero value is itself null.
_ZEROS: dict[str, Any] = {
    "string": "",
    "quantity": "0",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "intstr": 0,
}


@dataclass(frozen=True)
class _Shape:
    """What the decoder needs of a schema node, computed once per node."""

    kind: str
    check: str
    int_format: str
    preserve: bool
    required: tuple[str, ...]
    enum: tuple[Any, ...] = ()
    pattern: re.Pattern[str] | None = None
    # The Python type that is always a valid value (str for a plain string).
    quick: type | None = None
    # A struct's fields met so far: name -> (node, shape), or None when undeclared.
    fields: dict[str, tuple[Node, _Shape] | None] = field(default_factory=dict)
    # A built-in struct's required fields: the ones Go writes even when empty
    # (the Kubernetes convention: optional fields are omitempty).
    keep: frozenset[str] = frozenset()


_SHAPES: dict[Node, _Shape] = {}


def _shape(node: Node) -> _Shape:
    """The node's shape (nodes live as long as the schema, so the cache never grows stale)."""
    shape = _SHAPES.get(node)
    if shape is not None:
        return shape
    kind = node.kind
    check = "any"
    if kind == "scalar":
        types = node.types
        form = node.format
        if form == "quantity":
            check = "quantity"
        elif node.name in _TIME_DEFINITIONS:
            check = _TIME_DEFINITIONS[node.name]
        elif form == "int-or-string" or ("integer" in types and "string" in types):
            check = "intstr"
        elif "string" in types:
            check = "byte" if form == "byte" else "string"
        elif "integer" in types:
            check = "integer"
        elif "number" in types:
            check = "number"
        elif "boolean" in types:
            check = "boolean"
    custom_rules = node.custom and ("enum" in node.raw or "pattern" in node.raw)
    quick = {"string": str, "boolean": bool}.get(check) if not custom_rules else None
    shape = _Shape(
        kind=kind,
        check=check,
        quick=quick,
        int_format=node.format if node.format in _INT_RANGES else "int64",
        preserve=node.preserves_unknown_fields,
        required=node.required if node.custom else (),
        keep=frozenset(node.required) if not node.custom else frozenset(),
        # Only a custom resource's schema is enforced as such; built-in kinds
        # have their validation code instead.
        enum=node.enum if node.custom else (),
        pattern=re.compile(node.raw["pattern"]) if node.custom and "pattern" in node.raw else None,
    )
    _SHAPES[node] = shape
    return shape


_UNSEEN: Any = object()


class _MapKey(str):
    """A map key in a path (printed ``[key]``), as opposed to a field name."""


class _Decoder:
    """One walk of an object against its schema: types, formats and unknown fields.

    Built-in kinds are checked as Go's decoder checks them (the first bad
    value raises `_DecodeError`); custom resources collect schema errors as
    422 causes instead. Unknown fields are collected, and removed when
    ``prune`` is set. The path of the value being checked is kept as a stack
    of parts and written out only for an error or an unknown field.
    """

    def __init__(self, root: Node, *, prune: bool, check_types: bool = True) -> None:
        self.root = root
        self.typed = not root.custom
        self.prune = prune
        self.check_types = check_types
        self.parts: list[str | int] = []
        self.unknown: list[str] = []
        self.strict: list[str] = []  # unknown and duplicate fields, in document order
        self.errors: list[FieldError] = []
        # A built-in kind's decode stores what Go would write back: canonical
        # quantities and times, no empty optional maps, lists or nulls.
        self.normalize = self.typed and prune and check_types

    def walk(self, node: Node, value: Any, shape: _Shape | None = None) -> None:
        """Check ``value`` against ``node``; ``self.parts`` is the path to it."""
        if shape is None:
            shape = _shape(node)
        kind = shape.kind
        if kind == "struct":
            if not isinstance(value, dict):
                self._type_error(node, value)
                return
            self._struct(node, shape, value)
            return
        if kind == "map":
            if not isinstance(value, dict):
                self._type_error(node, value)
                return
            values = node.values
            values_shape = _shape(values)
            normalize = self.normalize
            for key, item in value.items():
                if item is None and normalize:
                    value[key] = _zero(values_shape)
                    continue
                new = self._child(values, values_shape, item, _MapKey(key))
                if new is not item:
                    value[key] = new
            return
        if kind == "list":
            if type(value) is not list:
                self._type_error(node, value)
                return
            items = node.items
            items_shape = _shape(items)
            normalize = self.normalize
            for index, item in enumerate(value):
                if item is None and normalize:
                    value[index] = _zero(items_shape)
                    continue
                new = self._child(items, items_shape, item, index)
                if new is not item:
                    value[index] = new
            return
        if kind == "scalar" and self.check_types:
            self._scalar(node, shape, value)

    def _struct(self, node: Node, shape: _Shape, value: Object) -> None:
        if shape.required and self.check_types:
            for name in shape.required:
                if name not in value:
                    self.errors.append(_required(self._path(name)))
        duplicates = value.duplicates if type(value) is _Pairs else ()
        fields = shape.fields
        for key in list(value) if self.prune else value:
            entry = fields.get(key, _UNSEEN)
            if entry is _UNSEEN:
                child = node.field(key)
                entry = fields[key] = (child, _shape(child)) if child is not None else None
            if entry is None:
                if shape.preserve:
                    continue
                self.unknown.append(self._path(key))
                self.strict.append(f'unknown field "{self.unknown[-1]}"')
                if self.prune:
                    del value[key]
                continue
            if key in duplicates:
                self.strict.append(f'duplicate field "{self._path(key)}"')
            item = value[key]
            if self.normalize and key not in shape.keep and _empty(item, entry[1]):
                # Go's omitempty: an empty optional map or list, or a null, is not written.
                del value[key]
                continue
            new = self._child(entry[0], entry[1], item, key)
            if new is not item:
                value[key] = new

    def _child(self, node: Node, shape: _Shape, value: Any, part: str | int) -> Any:
        """Check one value under ``part``; plain strings and booleans without another call.

        Returns the value as stored (a quantity or a time rewritten to its
        canonical form), ``value`` itself when unchanged.
        """
        if value is None or type(value) is shape.quick:
            return value
        kind = shape.kind
        if kind == "scalar":
            if self.check_types:
                self.parts.append(part)
                value = self._scalar(node, shape, value)
                self.parts.pop()
            return value
        if kind != "untyped":
            self.parts.append(part)
            self.walk(node, value, shape)
            self.parts.pop()
        return value

    def _scalar(self, node: Node, shape: _Shape, value: Any) -> Any:
        if shape.enum or shape.pattern:
            self._schema_rules(shape, value)
        check = shape.check
        kind = type(value)
        if check == "string":
            if kind is str:
                return value
        elif check == "quantity":
            if self.typed:
                # Quantity.UnmarshalJSON: the text trimmed, or a number's literal.
                text = value if kind is str else _quantity_text(value)
                try:
                    return canonical_quantity(text)
                except QuantityError as exc:
                    raise _DecodeError(str(exc)) from None
            if kind in (str, int, float):
                return value
        elif check in ("time", "microtime"):
            if kind is not str:
                # Time.UnmarshalJSON reads the value into a string first.
                raise _DecodeError(
                    f"json: cannot unmarshal {json_type(value)} into Go value of type string"
                )
            try:
                return canonical_time(value, check == "microtime")
            except TimeParseError as exc:
                raise _DecodeError(str(exc)) from None
        elif check == "intstr":
            if kind is str or (kind is int and _fits(value, "int32")):
                return value
            if self.typed:
                # IntOrString decodes anything but a string into its int32.
                raise _DecodeError(self._unmarshal(value, "int32"))
        elif check == "byte":
            if kind is str:
                if self.typed:
                    problem = _base64_error(value)
                    if problem is not None:
                        raise _DecodeError(problem)
                return value
        elif check == "integer":
            if kind is int and _fits(value, shape.int_format):
                return value
        elif check == "number":
            if kind in (int, float):
                return value
        elif check == "boolean":
            if kind is bool:
                return value
        else:
            return value
        self._type_error(node, value)
        return value

    def _schema_rules(self, shape: _Shape, value: Any) -> None:
        """A custom resource's ``enum`` and ``pattern``, as its CRD validation writes them."""
        if shape.enum and value not in shape.enum:
            self.errors.append(_not_supported(self._path(), value, [str(v) for v in shape.enum]))
        if shape.pattern and isinstance(value, str) and not shape.pattern.search(value):
            path = self._path()
            detail = f"{path} in body should match '{shape.pattern.pattern}'"
            self.errors.append(_invalid(path, value, detail))

    # -- paths and errors -----------------------------------------------------

    def _path(self, last: str | None = None) -> str:
        """The display path of the current value (``spec.containers[0].image``)."""
        text = ""
        for part in [*self.parts, last] if last is not None else self.parts:
            if isinstance(part, int | _MapKey):
                text += f"[{part}]"
            else:
                text = f"{text}.{part}" if text else part
        return text

    def _go_context(self) -> tuple[str, str]:
        """Go's error context: the field names from the root, and the struct holding the last."""
        names = [p for p in self.parts if isinstance(p, str) and not isinstance(p, _MapKey)]
        node: Node | None = self.root
        owner = self.root.name.rsplit(".", 1)[-1]
        for part in self.parts[:-1]:
            if node is None:
                break
            if isinstance(part, int):
                node = node.items
            elif isinstance(part, _MapKey):
                node = node.values
            else:
                node = node.field(part)
            if node is not None and node.name and _shape(node).kind == "struct":
                owner = node.name.rsplit(".", 1)[-1]
        return ".".join(names), owner

    def _unmarshal(self, value: Any, go_type: str, node: Node | None = None) -> str:
        """Go's UnmarshalTypeError text, with the struct and field path it adds."""
        got = json_type(value)
        integer = go_type == "int32" or (node is not None and "integer" in node.types)
        if got == "number" and integer:
            # Go names the literal when a number does not fit an integer field.
            got = f"number {json.dumps(value)}"
        stack, owner = self._go_context()
        if stack:
            target = f"Go struct field {owner}.{stack}"
            return f"json: cannot unmarshal {got} into {target} of type {go_type}"
        return f"json: cannot unmarshal {got} into Go value of type {go_type}"

    def _type_error(self, node: Node, value: Any) -> None:
        if not self.check_types:
            return
        if self.typed:
            raise _DecodeError(self._unmarshal(value, _go_type(node), node))
        expected = {"list": "array", "map": "object", "struct": "object"}.get(node.kind) or (
            node.types[0] if node.types else "object"
        )
        path = self._path()
        got = _schema_type(value)
        self.errors.append(
            FieldError(
                "FieldValueTypeInvalid",
                path,
                got,
                f"{path} in body must be of type {expected}: {json.dumps(got)}",
            )
        )


def _empty(value: Any, shape: _Shape) -> bool:
    """Whether Go's omitempty leaves out ``value``: a null, or an empty map or list.

    A null time stays: a metav1.Time that is not a pointer (a condition's
    ``lastProbeTime``) is a struct, which omitempty never leaves out, and Go
    writes its zero value as null.
    """
    if value is None:
        return shape.check not in ("time", "microtime")
    return not value and type(value) in (dict, list) and shape.kind in ("map", "list")


def _zero(shape: _Shape) -> Any:
    """Go's zero value for a null map value or list item (``data: {a: null}`` is ``""``)."""
    if shape.kind == "struct":
        return {}
    return _ZEROS.get(shape.check) if shape.kind == "scalar" else None


def _fits(value: int, form: str) -> bool:
    low, high = _INT_RANGES[form]
    return low <= value <= high


def _quantity_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def _schema_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def find_unknown_fields(node: Node, value: Any, *, prune: bool = False) -> list[str]:
    """Paths (``spec.containers[0].foo``) of the fields ``node``'s schema does not declare.

    With ``prune`` they are also removed from ``value``. Custom resources keep
    fields under ``x-kubernetes-preserve-unknown-fields``. Types are not
    checked, so this serves any body (an apply configuration as well).
    """
    decoder = _Decoder(node, prune=prune, check_types=False)
    decoder.walk(node, value)
    return decoder.unknown


_PATCHING: ContextVar[bool] = ContextVar("sandbox_patching", default=False)


@contextmanager
def decoding_patch() -> Iterator[None]:
    """Serve a JSON, merge or strategic merge patch: its decode errors answer differently.

    kube-apiserver's patch handler decodes the patched object itself and
    wraps any error (a wrong type, or unknown fields under Strict) in a 422
    Invalid with an empty kind and name, the field ``patch`` and the patched
    object as the bad value, instead of the 400 of a create or update.
    """
    token = _PATCHING.set(True)
    try:
        yield
    finally:
        _PATCHING.reset(token)


def _patch_invalid(patched: bytes, message: str) -> ApiError:
    error = _invalid("patch", patched.decode(), message)
    return ApiError(
        422,
        "Invalid",
        f' "" is invalid: {error}',
        {"causes": [{"reason": error.reason, "message": error.body(), "field": error.field}]},
    )


def decode_object(kind: ResourceKind, obj: Object) -> None:
    """Decode a written object as kube-apiserver's decoder does, in place.

    Raises 400 BadRequest for a value Go cannot decode (and 422 for a custom
    resource that breaks its schema's types or required fields). Unknown
    fields answer per the write's ``fieldValidation``: ``Strict`` refuses them
    (400 ``strict decoding error``), ``Warn`` drops them with a warning each,
    ``Ignore`` drops them silently.
    """
    node = node_for(kind.api_version, kind.kind)
    if node is None:
        return
    decoder = _Decoder(node, prune=True)
    version = kind.api_version.rpartition("/")[2]
    prefix = f'{kind.kind} in version "{version}" cannot be handled as a {kind.kind}'
    try:
        patched = orjson.dumps(obj) if _PATCHING.get() else None
    except orjson.JSONEncodeError:
        patched = b"{}"  # nested deeper than orjson writes; only an error message shows it
    try:
        decoder.walk(node, obj)
    except _DecodeError as exc:
        if patched is not None:
            raise _patch_invalid(patched, str(exc)) from None
        raise ApiError.bad_request(f"{prefix}: {exc}") from None
    write = current_write()
    with_duplicates = _with_duplicates(node) if write.field_validation == "Strict" else None
    if decoder.unknown or with_duplicates:
        messages = [f'unknown field "{path}"' for path in decoder.unknown]
        if write.field_validation == "Strict":
            strict = f"strict decoding error: {', '.join(with_duplicates or messages)}"
            if patched is not None:
                raise _patch_invalid(patched, strict)
            raise ApiError.bad_request(f"{prefix}: {strict}")
        if write.field_validation == "Warn":
            for message in messages:
                write.warn(message)
    if decoder.errors:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise invalid_error(kind, name, decoder.errors)
    if node.custom:
        _check_storable(obj)


def _check_storable(obj: Object) -> None:
    """Refuse a custom resource the sandbox could not write back (a sandbox limit).

    A custom resource keeps what its schema preserves, at any depth; Go
    writes 10,000 levels, orjson 255. Better a 400 naming the limit than a
    500 on every later read. Built-in kinds never get here with such depth:
    their decode drops the undeclared fields that could hold it.
    """
    try:
        orjson.dumps(obj)
    except orjson.JSONEncodeError:
        raise ApiError.bad_request(
            "the sandbox cannot store a value nested deeper than 255 levels"
        ) from None


# -- names, labels and the other string rules of apimachinery -------------------

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_LABEL_RE = re.compile(f"^{_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}$")
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_PORT_NAME_CHARS = re.compile("^[-a-z0-9]+$")
_RELAXED_ENV_NAME = re.compile("^[ -<>-~]+$")
_QNAME_MESSAGE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError: the message, examples and the regular expression."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len(limit: int) -> str:
    return f"must be no more than {limit} characters"


@lru_cache(maxsize=4096)
def dns1123_label(value: str) -> tuple[str, ...]:
    """IsDNS1123Label."""
    errors = [_max_len(63)] if len(value) > 63 else []
    if not _LABEL_RE.match(value):
        if _SUBDOMAIN_RE.match(value):
            errors.append("must not contain dots")
        else:
            errors.append(
                _regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character",
                    _LABEL_FMT,
                    "my-name",
                    "123-abc",
                )
            )
    return tuple(errors)


@lru_cache(maxsize=4096)
def dns1123_subdomain(value: str) -> tuple[str, ...]:
    """IsDNS1123Subdomain."""
    errors = [_max_len(253)] if len(value) > 253 else []
    if not _SUBDOMAIN_RE.match(value):
        errors.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                _SUBDOMAIN_FMT,
                "example.com",
            )
        )
    return tuple(errors)


@lru_cache(maxsize=4096)
def dns1035_label(value: str) -> tuple[str, ...]:
    """IsDNS1035Label (Service names)."""
    errors = [_max_len(63)] if len(value) > 63 else []
    if not _DNS1035_RE.match(value):
        errors.append(
            _regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character",
                _DNS1035_FMT,
                "my-name",
                "abc-123",
            )
        )
    return tuple(errors)


@lru_cache(maxsize=4096)
def qualified_name(value: str) -> tuple[str, ...]:
    """IsQualifiedName: label and annotation keys, ``prefix/name``."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {m}" for m in dns1123_subdomain(prefix))
    else:
        return (
            "a qualified name "
            + _regex_error(_QNAME_MESSAGE, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part " + _max_len(63))
    if not _QNAME_RE.match(name):
        errors.append(
            "name part " + _regex_error(_QNAME_MESSAGE, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return tuple(errors)


@lru_cache(maxsize=4096)
def label_value(value: str) -> tuple[str, ...]:
    """IsValidLabelValue."""
    errors = [_max_len(63)] if len(value) > 63 else []
    if not _LABEL_VALUE_RE.match(value):
        errors.append(
            _regex_error(
                "a valid label must be an empty string or " + _QNAME_MESSAGE.removeprefix("must "),
                _LABEL_VALUE_FMT,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return tuple(errors)


@lru_cache(maxsize=4096)
def _port_name(value: str) -> tuple[str, ...]:
    """IsValidPortName (an IANA service name)."""
    errors = [_max_len(15)] if len(value) > 15 else []
    if not _PORT_NAME_CHARS.match(value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errors.append("must not begin or end with a hyphen")
    return tuple(errors)


def _port_number(value: int) -> list[str]:
    if 1 <= value <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


@lru_cache(maxsize=4096)
def _config_key(value: str) -> tuple[str, ...]:
    """IsConfigMapKey: ConfigMap and Secret data keys."""
    errors = [_max_len(253)] if len(value) > 253 else []
    if not _CONFIG_KEY_RE.match(value):
        errors.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY_FMT,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    if value == ".":
        errors.append("must not be '.'")
    elif value == "..":
        errors.append("must not be '..'")
    elif value.startswith(".."):
        errors.append("must not start with '..'")
    return tuple(errors)


def _mask_trailing_dash(value: str) -> str:
    return value[:-1] + "a" if len(value) > 1 and value.endswith("-") else value


def _labels(labels: Any, path: str) -> list[FieldError]:
    """ValidateLabels: keys are qualified names, values label values."""
    errors: list[FieldError] = []
    for key, value in (labels or {}).items():
        # The checks' answers are cached; most are empty, and a generator for each
        # of a lab's many labels was most of validating its metadata.
        problems = qualified_name(key)
        if problems:
            errors.extend(_invalid(path, key, m) for m in problems)
        problems = label_value(value if type(value) is str else str(value))
        if problems:
            errors.extend(_invalid(path, value, m) for m in problems)
    return errors


def _label_selector(selector: Any, path: str) -> list[FieldError]:
    """ValidateLabelSelector: matchLabels and matchExpressions."""
    if not isinstance(selector, dict):
        return []
    errors = _labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for index, requirement in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        operator = requirement.get("operator")
        values = requirement.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(
                    _required(
                        f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errors.append(
                    _forbidden(
                        f"{where}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            errors.append(_invalid(f"{where}.operator", operator, "not a valid selector operator"))
        key = requirement.get("key") or ""
        errors.extend(_invalid(f"{where}.key", key, m) for m in qualified_name(key))
        for i, value in enumerate(values):
            errors.extend(_invalid(f"{where}.values[{i}]", value, m) for m in label_value(value))
    return errors


# -- metadata ----------------------------------------------------------------------

# Kinds whose names follow another rule than a DNS-1123 subdomain.
_NAME_RULES: dict[str, Callable[[str], tuple[str, ...]]] = {
    "Namespace": dns1123_label,
    "Service": dns1035_label,
    "Role": lambda name: rbac_name(name),
    "ClusterRole": lambda name: rbac_name(name),
    "RoleBinding": lambda name: rbac_name(name),
    "ClusterRoleBinding": lambda name: rbac_name(name),
}


def _metadata(kind: ResourceKind, metadata: Object) -> list[FieldError]:
    """ValidateObjectMeta: names, labels, annotations."""
    errors: list[FieldError] = []
    rule = _NAME_RULES.get(kind.kind, dns1123_subdomain)
    generate = metadata.get("generateName")
    if generate:
        errors.extend(
            _invalid("metadata.generateName", generate, m)
            for m in rule(_mask_trailing_dash(generate))
        )
    name = metadata.get("name") or ""
    if not name:
        errors.append(_required("metadata.name", "name or generateName is required"))
    else:
        errors.extend(_invalid("metadata.name", name, m) for m in rule(name))
    errors.extend(_labels(metadata.get("labels"), "metadata.labels"))
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        problems = qualified_name(key.lower())
        if problems:
            errors.extend(_invalid("metadata.annotations", key, m) for m in problems)
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > _MAX_ANNOTATION_BYTES:
        errors.append(_too_long("metadata.annotations", _MAX_ANNOTATION_BYTES))
    references = metadata.get("ownerReferences")
    if isinstance(references, list):
        errors.extend(_owner_references(references, "metadata.ownerReferences"))
    return errors


def _owner_references(references: list[Any], path: str) -> list[FieldError]:
    """ValidateOwnerReferences: apiVersion, kind, name and uid set; one controller at most.

    Every error is on the list's path, without an index, as in apimachinery.
    """
    errors: list[FieldError] = []
    first_controller = ""
    for reference in references:
        if not isinstance(reference, dict):
            continue
        api_version = reference.get("apiVersion") or ""
        if not _api_version_has_version(api_version):
            errors.append(_invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            value = reference.get(key) or ""
            if not value:
                errors.append(_invalid(f"{path}.{key}", value, f"{key} must not be empty"))
        if reference.get("controller") is True:
            current = f"{reference.get('kind') or ''}/{reference.get('name') or ''}"
            if first_controller:
                errors.append(
                    _invalid(
                        path,
                        _go_owner_references(references),
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {first_controller} and {current}",
                    )
                )
            else:
                first_controller = current
    return errors


def _api_version_has_version(api_version: str) -> bool:
    """Whether schema.ParseGroupVersion finds a version (``v1``, ``apps/v1``)."""
    if api_version.count("/") > 1:
        return False
    return bool(api_version.rpartition("/")[2])


def _go_owner_references(references: list[Any]) -> GoSyntax:
    """The list as ``%#v`` prints []v1.OwnerReference (pointers print as addresses)."""

    def pointer(value: Any) -> str:
        return "(*bool)(nil)" if value is None else "(*bool)(0xc000000000)"

    items = []
    for ref in references:
        if not isinstance(ref, dict):
            continue
        fields = ", ".join(
            [
                f"APIVersion:{json.dumps(str(ref.get('apiVersion') or ''))}",
                f"Kind:{json.dumps(str(ref.get('kind') or ''))}",
                f"Name:{json.dumps(str(ref.get('name') or ''))}",
                f"UID:{json.dumps(str(ref.get('uid') or ''))}",
                f"Controller:{pointer(ref.get('controller'))}",
                f"BlockOwnerDeletion:{pointer(ref.get('blockOwnerDeletion'))}",
            ]
        )
        items.append(f"v1.OwnerReference{{{fields}}}")
    return GoSyntax("[]v1.OwnerReference{" + ", ".join(items) + "}")


# -- pods ------------------------------------------------------------------------

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_NONNEGATIVE = "must be greater than or equal to 0"
_USER_ID = "must be between 0 and 2147483647, inclusive"


def _quantity(value: Any) -> Quantity | None:
    try:
        return decode_quantity(value)
    except QuantityError:
        return None


@cache
def _volume_sources() -> tuple[str, ...]:
    """The volume source fields of the Volume schema (every field but ``name``)."""
    node = node_for("v1", "Pod")
    assert node is not None
    volume = node.field("spec").field("volumes").items  # type: ignore[union-attr]
    return tuple(name for name in volume.field_names if name != "name")


def _volumes(volumes: list[Any], path: str) -> tuple[set[str], list[FieldError]]:
    """ValidateVolumes: unique DNS-label names, exactly one source each.

    As in the real rule, a volume with an error does not count as declared,
    so mounts of it are refused too.
    """
    errors: list[FieldError] = []
    names: set[str] = set()
    sources = _volume_sources()
    for index, volume in enumerate(volumes):
        where = f"{path}[{index}]"
        if not isinstance(volume, dict):
            continue
        name = volume.get("name") or ""
        given = [s for s in sources if volume.get(s) is not None]
        found: list[FieldError] = []
        if not given:
            found.append(_required(where, "must specify a volume type"))
        for extra in given[1:]:
            found.append(_forbidden(f"{where}.{extra}", "may not specify more than 1 volume type"))
        found.extend(_volume_source(volume, where))
        if not name:
            found.append(_required(f"{where}.name"))
        else:
            found.extend(_invalid(f"{where}.name", name, m) for m in dns1123_label(name))
        if name in names:
            found.append(_duplicate(f"{where}.name", name))
        if found:
            errors.extend(found)
        else:
            names.add(name)
    return names, errors


_SOURCE_REQUIRED = {
    "configMap": "name",
    "secret": "secretName",
    "persistentVolumeClaim": "claimName",
    "hostPath": "path",
}


_FILE_MODE = "must be a number between 0 and 0777 (octal), both inclusive"
_HOST_PATH_TYPES = (
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
)


def _volume_source(volume: Object, where: str) -> list[FieldError]:
    """The per-source rules of validateVolumeSource a pod spec can break."""
    errors = []
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, dict) and empty_dir.get("sizeLimit") is not None:
        limit = _quantity(empty_dir["sizeLimit"])
        if limit is not None and limit.value < 0:
            errors.append(
                _forbidden(
                    f"{where}.emptyDir.sizeLimit",
                    "SizeLimit field must be a valid resource quantity",
                )
            )
    for source, key in _SOURCE_REQUIRED.items():
        spec = volume.get(source)
        if isinstance(spec, dict) and not spec.get(key):
            errors.append(_required(f"{where}.{source}.{key}"))
            if source == "hostPath":
                continue
        if not isinstance(spec, dict):
            continue
        if source == "hostPath":
            errors.extend(_no_backsteps(spec["path"], f"{where}.hostPath.path"))
            host_type = spec.get("type")
            if host_type is not None and host_type not in _HOST_PATH_TYPES:
                errors.append(_not_supported(f"{where}.hostPath.type", host_type, _HOST_PATH_TYPES))
        elif source in ("secret", "configMap"):
            errors.extend(_file_mode(spec.get("defaultMode"), f"{where}.{source}.defaultMode"))
            for index, item in enumerate(spec.get("items") or []):
                if isinstance(item, dict):
                    errors.extend(_key_to_path(item, f"{where}.{source}.items[{index}]"))
    downward = volume.get("downwardAPI")
    if isinstance(downward, dict):
        errors.extend(_file_mode(downward.get("defaultMode"), f"{where}.downwardAPI.defaultMode"))
        for item in downward.get("items") or []:
            if isinstance(item, dict):
                # The real rule reports every item under the source's path, without an index.
                errors.extend(_downward_api_file(item, f"{where}.downwardAPI"))
    nfs = volume.get("nfs")
    if isinstance(nfs, dict):
        if not nfs.get("server"):
            errors.append(_required(f"{where}.nfs.server"))
        path = nfs.get("path") or ""
        if not path:
            errors.append(_required(f"{where}.nfs.path"))
        elif not path.startswith("/"):
            errors.append(_invalid(f"{where}.nfs.path", path, "must be an absolute path"))
    return errors


def _file_mode(mode: Any, path: str) -> list[FieldError]:
    if isinstance(mode, int) and not 0 <= mode <= 0o777:
        return [_invalid(path, mode, _FILE_MODE)]
    return []


def _no_backsteps(value: str, path: str) -> list[FieldError]:
    """validatePathNoBacksteps: one error however many ``..`` elements."""
    if ".." in value.replace("\\", "/").split("/"):
        return [_invalid(path, value, "must not contain '..'")]
    return []


def _local_non_reserved_path(value: str, path: str) -> list[FieldError]:
    """ValidateLocalNonReservedPath: relative, no ``..`` element, not starting with ``..``."""
    errors = []
    if value.startswith("/"):
        errors.append(_invalid(path, value, "must be a relative path"))
    errors.extend(_no_backsteps(value, path))
    if value.startswith("..") and not value.startswith("../"):
        errors.append(_invalid(path, value, "must not start with '..'"))
    return errors


def _key_to_path(item: Object, path: str) -> list[FieldError]:
    """validateKeyToPath: a ConfigMap or Secret item's key, path and mode."""
    errors = []
    if not item.get("key"):
        errors.append(_required(f"{path}.key"))
    target = item.get("path") or ""
    if not target:
        errors.append(_required(f"{path}.path"))
    errors.extend(_local_non_reserved_path(target, f"{path}.path"))
    errors.extend(_file_mode(item.get("mode"), f"{path}.mode"))
    return errors


_VOLUME_FIELD_PATHS = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
)
_ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
# What ConvertDownwardAPIFieldLabel accepts for a v1 pod.
_DOWNWARD_LABELS = frozenset(
    {
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)
_RESOURCE_FIELD_PATHS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)


def _split_subscript(field_path: str) -> tuple[str, str] | None:
    """SplitMaybeSubscriptedPath: ``metadata.labels['key']`` -> (path, key)."""
    if not field_path.endswith("']"):
        return None
    head, sep, key = field_path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def _object_field_selector(
    selector: Object, expressions: tuple[str, ...], path: str
) -> list[FieldError]:
    """validateObjectFieldSelector (apiVersion defaults to v1, as the real defaulting does)."""
    version = selector.get("apiVersion") or "v1"
    field_path = selector.get("fieldPath") or ""
    if not field_path:
        return [_required(f"{path}.fieldPath")]
    problem = None
    subscripted = _split_subscript(field_path)
    if version != "v1":
        problem = f"unsupported pod version: {version}"
    elif subscripted is not None:
        if subscripted[0] not in ("metadata.annotations", "metadata.labels"):
            problem = f"field label does not support subscript: {field_path}"
    elif field_path == "spec.host":
        field_path = "spec.nodeName"
    elif field_path not in _DOWNWARD_LABELS:
        problem = f"field label not supported: {field_path}"
    if problem is not None:
        detail = f"error converting fieldPath: {problem}"
        return [_invalid(f"{path}.fieldPath", selector.get("fieldPath"), detail)]
    if subscripted is not None:
        head, key = subscripted
        key = key.lower() if head == "metadata.annotations" else key
        return [_invalid(path, key, m) for m in qualified_name(key)]
    if field_path not in expressions:
        return [_not_supported(f"{path}.fieldPath", field_path, expressions)]
    return []


def _resource_field_selector(selector: Object, path: str, volume: bool) -> list[FieldError]:
    """validateContainerResourceFieldSelector (hugepages resources allowed by prefix)."""
    resource = selector.get("resource") or ""
    if volume and not selector.get("containerName"):
        return [_required(f"{path}.containerName")]
    if not resource:
        return [_required(f"{path}.resource")]
    if resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(
        ("limits.hugepages-", "requests.hugepages-")
    ):
        return [_not_supported(f"{path}.resource", resource, _RESOURCE_FIELD_PATHS)]
    return []


def _downward_api_file(item: Object, path: str) -> list[FieldError]:
    """validateDownwardAPIVolumeFile."""
    errors = []
    target = item.get("path") or ""
    if not target:
        errors.append(_required(f"{path}.path"))
    errors.extend(_local_non_reserved_path(target, f"{path}.path"))
    field_ref = item.get("fieldRef")
    resource_ref = item.get("resourceFieldRef")
    if isinstance(field_ref, dict):
        errors.extend(_object_field_selector(field_ref, _VOLUME_FIELD_PATHS, f"{path}.fieldRef"))
        if resource_ref is not None:
            errors.append(
                _invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif isinstance(resource_ref, dict):
        errors.extend(_resource_field_selector(resource_ref, f"{path}.resourceFieldRef", True))
    else:
        errors.append(_required(path, "one of fieldRef and resourceFieldRef is required"))
    errors.extend(_file_mode(item.get("mode"), f"{path}.mode"))
    return errors


def _env_value_from(variable: Object, path: str) -> list[FieldError]:
    """validateEnvVarValueFrom: exactly one source, and not together with ``value``."""
    source = variable.get("valueFrom")
    if not isinstance(source, dict):
        return []
    errors: list[FieldError] = []
    count = 0
    if isinstance(source.get("fieldRef"), dict):
        count += 1
        errors.extend(
            _object_field_selector(source["fieldRef"], _ENV_FIELD_PATHS, f"{path}.fieldRef")
        )
    if isinstance(source.get("resourceFieldRef"), dict):
        count += 1
        errors.extend(
            _resource_field_selector(source["resourceFieldRef"], f"{path}.resourceFieldRef", False)
        )
    for key in ("configMapKeyRef", "secretKeyRef"):
        selector = source.get(key)
        if not isinstance(selector, dict):
            continue
        count += 1
        name = selector.get("name") or ""
        errors.extend(_invalid(f"{path}.{key}.name", name, m) for m in dns1123_subdomain(name))
        item = selector.get("key") or ""
        if not item:
            errors.append(_required(f"{path}.{key}.key"))
        else:
            errors.extend(_invalid(f"{path}.{key}.key", item, m) for m in _config_key(item))
    if count == 0:
        errors.append(
            _invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        )
    elif variable.get("value"):
        errors.append(_invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errors.append(_invalid(path, "", "may not have more than one field specified at a time"))
    return errors


def _container_ports(ports: list[Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"{path}[{index}]"
        name = port.get("name") or ""
        if name:
            problems = _port_name(name)
            errors.extend(_invalid(f"{where}.name", name, m) for m in problems)
            if not problems:
                if name in names:
                    errors.append(_duplicate(f"{where}.name", name))
                names.add(name)
        number = port.get("containerPort") or 0
        if number == 0:
            errors.append(_required(f"{where}.containerPort"))
        else:
            errors.extend(
                _invalid(f"{where}.containerPort", number, m) for m in _port_number(number)
            )
        host = port.get("hostPort") or 0
        if host:
            errors.extend(_invalid(f"{where}.hostPort", host, m) for m in _port_number(host))
        protocol = port.get("protocol", "TCP")
        if not protocol:
            errors.append(_required(f"{where}.protocol"))
        elif protocol not in _PROTOCOLS:
            errors.append(_not_supported(f"{where}.protocol", protocol, _PROTOCOLS))
    return errors


def _env(env: list[Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, variable in enumerate(env):
        where = f"{path}[{index}].name"
        name = variable.get("name") or ""
        if not name:
            errors.append(_required(where))
            errors.append(_invalid(where, name, "environment variable name must be non-empty"))
        elif not _RELAXED_ENV_NAME.match(name):
            errors.append(
                _invalid(
                    where,
                    name,
                    "a valid environment variable name must consist only of printable ASCII "
                    "characters other than '='",
                )
            )
        errors.extend(_env_value_from(variable, f"{path}[{index}].valueFrom"))
    return errors


def _volume_mounts(mounts: list[Any], volumes: set[str], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, mount in enumerate(mounts):
        where = f"{path}[{index}]"
        name = mount.get("name") or ""
        if not name:
            errors.append(_required(f"{where}.name"))
        if name not in volumes:
            errors.append(_not_found(f"{where}.name", name))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            errors.append(_required(f"{where}.mountPath"))
        if mount_path in seen:
            errors.append(_invalid(f"{where}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
        sub_path = mount.get("subPath") or ""
        if sub_path:
            errors.extend(_descending_path(sub_path, f"{path}.subPath"))
    return errors


def _descending_path(value: str, path: str) -> list[FieldError]:
    errors = []
    if value.startswith("/"):
        errors.append(_invalid(path, value, "must be a relative path"))
    if ".." in value.replace("\\", "/").split("/"):
        errors.append(_invalid(path, value, "must not contain '..'"))
    return errors


def _resources(resources: Any, path: str) -> list[FieldError]:
    """ValidateResourceRequirements: names, non-negative values, requests <= limits."""
    if not isinstance(resources, dict):
        return []
    errors: list[FieldError] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    parsed_limits: dict[str, Quantity] = {}
    for key, text in limits.items():
        where = f"{path}.limits[{key}]"
        errors.extend(_container_resource_name(key, where))
        quantity = _quantity(text)
        if quantity is not None:
            parsed_limits[key] = quantity
            if quantity.value < 0:
                errors.append(_invalid(where, str(quantity), _NONNEGATIVE))
    for key, text in requests.items():
        where = f"{path}.requests[{key}]"
        errors.extend(_container_resource_name(key, where))
        quantity = _quantity(text)
        if quantity is None:
            continue
        if quantity.value < 0:
            errors.append(_invalid(where, str(quantity), _NONNEGATIVE))
        limit = parsed_limits.get(key)
        overcommit = _overcommit_allowed(key)
        if limit is not None and quantity.value != limit.value and not overcommit:
            errors.append(
                _invalid(
                    f"{path}.requests", str(quantity), f"must be equal to {key} limit of {limit}"
                )
            )
        elif limit is not None and quantity.value > limit.value:
            errors.append(
                _invalid(
                    f"{path}.requests",
                    str(quantity),
                    f"must be less than or equal to {key} limit of {limit}",
                )
            )
        elif limit is None and key not in limits and not overcommit:
            errors.append(
                _required(f"{path}.limits", "Limit must be set for non overcommitable resources")
            )
    names = set(limits) | set(requests)
    if names.isdisjoint(("cpu", "memory")) and any(n.startswith("hugepages-") for n in names):
        errors.append(_forbidden(path, "HugePages require cpu or memory"))
    return errors


def _overcommit_allowed(name: str) -> bool:
    """IsOvercommitAllowed: native resources but hugepages (requests may be below limits)."""
    native = "/" not in name or "kubernetes.io/" in name
    return native and not name.startswith("hugepages-")


def _container_resource_name(name: str, path: str) -> list[FieldError]:
    errors = [_invalid(path, name, m) for m in qualified_name(name)]
    if "/" not in name and name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        errors.append(_invalid(path, name, "must be a standard resource for containers"))
    return errors


def _user_ids(context: Any, path: str, keys: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(context, dict):
        return errors
    for key in keys:
        value = context.get(key)
        if isinstance(value, int) and not 0 <= value <= 2147483647:
            errors.append(_invalid(f"{path}.{key}", value, _USER_ID))
    return errors


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")
_PROBE_COUNTS = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
)


def _handler(handler: Object, path: str, kinds: tuple[str, ...]) -> list[FieldError]:
    """validateHandler: exactly one action, each well formed."""
    errors: list[FieldError] = []
    count = 0
    for kind in kinds:
        action = handler.get(kind)
        if action is None:
            continue
        where = f"{path}.{kind}"
        if count:
            errors.append(_forbidden(where, "may not specify more than 1 handler type"))
            continue
        count += 1
        if not isinstance(action, dict):
            continue
        if kind == "exec" and not action.get("command"):
            errors.append(_required(f"{where}.command"))
        elif kind in ("httpGet", "tcpSocket"):
            errors.extend(_port_or_name(action.get("port"), f"{where}.port"))
            scheme = action.get("scheme")
            if kind == "httpGet" and scheme is not None and scheme not in ("HTTP", "HTTPS"):
                errors.append(_not_supported(f"{where}.scheme", scheme, ("HTTP", "HTTPS")))
        elif kind == "grpc":
            port = action.get("port")
            if isinstance(port, int):
                errors.extend(_invalid(f"{where}.port", port, m) for m in _port_number(port))
    if count == 0:
        errors.append(_required(path, "must specify a handler type"))
    return errors


def _probe(probe: Any, path: str, kind: str) -> list[FieldError]:
    """validateLivenessProbe, validateReadinessProbe, validateStartupProbe."""
    if not isinstance(probe, dict):
        return []
    errors = _handler(probe, path, _HANDLERS[:4])
    for key in _PROBE_COUNTS:
        value = probe.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(_invalid(f"{path}.{key}", value, _NONNEGATIVE))
    grace = probe.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace <= 0:
        errors.append(
            _invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0")
        )
    success = probe.get("successThreshold")
    if kind != "readinessProbe" and success is not None and success != 1:
        errors.append(_invalid(f"{path}.successThreshold", success, "must be 1"))
    if kind == "readinessProbe" and grace is not None:
        errors.append(
            _invalid(
                f"{path}.terminationGracePeriodSeconds",
                grace,
                "must not be set for readinessProbes",
            )
        )
    return errors


def _probes_and_lifecycle(container: Object, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                where = f"{path}.lifecycle.{hook}"
                kinds = ("exec", "httpGet", "tcpSocket", "sleep")
                errors.extend(_handler(lifecycle[hook], where, kinds))
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        errors.extend(_probe(container.get(kind), f"{path}.{kind}", kind))
    return errors


def _container_kind_rules(container: Object, path: str, init: bool) -> list[FieldError]:
    """What validateContainers and validateInitContainers add to the common rules."""
    restart = container.get("restartPolicy")
    if not init:
        errors = _probes_and_lifecycle(container, path)
        if restart is not None:
            errors.append(
                _forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")
            )
        return errors
    errors = []
    if restart == "Always":
        errors.extend(_probes_and_lifecycle(container, path))
        return errors
    for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
        if container.get(key) is not None:
            errors.append(
                _forbidden(
                    f"{path}.{key}",
                    "may not be set for init containers without restartPolicy=Always",
                )
            )
    return errors


def _container(container: Object, volumes: set[str], path: str, init: bool) -> list[FieldError]:
    """validateContainerCommon: what every container needs."""
    errors: list[FieldError] = []
    name = container.get("name") or ""
    if not name:
        errors.append(_required(f"{path}.name"))
    else:
        errors.extend(_invalid(f"{path}.name", name, m) for m in dns1123_label(name))
    if not container.get("image"):
        errors.append(_required(f"{path}.image"))
    policy = container.get("terminationMessagePolicy")
    if policy is not None and policy not in _MESSAGE_POLICIES:
        errors.append(_not_supported(f"{path}.terminationMessagePolicy", policy, _MESSAGE_POLICIES))
    errors.extend(_container_ports(container.get("ports") or [], f"{path}.ports"))
    errors.extend(_env(container.get("env") or [], f"{path}.env"))
    mounts = container.get("volumeMounts") or []
    errors.extend(_volume_mounts(mounts, volumes, f"{path}.volumeMounts"))
    pull = container.get("imagePullPolicy")
    if pull is not None and pull not in _PULL_POLICIES:
        errors.append(_not_supported(f"{path}.imagePullPolicy", pull, _PULL_POLICIES))
    errors.extend(_resources(container.get("resources"), f"{path}.resources"))
    context = container.get("securityContext")
    errors.extend(_user_ids(context, f"{path}.securityContext", ("runAsUser", "runAsGroup")))
    if (
        isinstance(context, dict)
        and context.get("privileged") is True
        and context.get("allowPrivilegeEscalation") is False
    ):
        errors.append(
            _invalid(
                f"{path}.securityContext",
                GoSyntax("false"),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            )
        )
    return errors


def _pod_spec(spec: Any, path: str, for_pod: bool = False) -> list[FieldError]:
    """ValidatePodSpec, the parts a lab controller can get wrong.

    ``for_pod`` adds the checks kube-apiserver makes of a pod but not of a
    pod template (validateContainersOnlyForPod), after the spec's own.
    """
    if not isinstance(spec, dict):
        return []
    errors: list[FieldError] = []
    volumes, volume_errors = _volumes(spec.get("volumes") or [], f"{path}.volumes")
    errors.extend(volume_errors)
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not containers:
        errors.append(_required(f"{path}.containers"))
    names: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{path}.containers[{index}]"
        errors.extend(_container(container, volumes, where, init=False))
        name = container.get("name") or ""
        if name in names:
            errors.append(_duplicate(f"{where}.name", name))
        names.add(name)
        errors.extend(_container_kind_rules(container, where, init=False))
    init_containers = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    for index, container in enumerate(init_containers):
        where = f"{path}.initContainers[{index}]"
        errors.extend(_container(container, volumes, where, init=True))
        restart_policy = container.get("restartPolicy")
        if restart_policy is not None and restart_policy != "Always":
            errors.append(_not_supported(f"{where}.restartPolicy", restart_policy, ("Always",)))
        name = container.get("name") or ""
        if name in names:
            errors.append(_duplicate(f"{where}.name", name))
        names.add(name)
        errors.extend(_container_kind_rules(container, where, init=True))
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in _RESTART_POLICIES:
        errors.append(_not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns is not None and dns not in _DNS_POLICIES:
        errors.append(_not_supported(f"{path}.dnsPolicy", dns, _DNS_POLICIES))
    errors.extend(_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    context = spec.get("securityContext")
    errors.extend(
        _user_ids(context, f"{path}.securityContext", ("runAsUser", "runAsGroup", "fsGroup"))
    )
    groups = (context or {}).get("supplementalGroups") or []
    for index, group in enumerate(groups):
        if isinstance(group, int) and not 0 <= group <= 2147483647:
            errors.append(
                _invalid(f"{path}.securityContext.supplementalGroups[{index}]", group, _USER_ID)
            )
    change_policy = (context or {}).get("fsGroupChangePolicy")
    if change_policy is not None and change_policy not in _FS_GROUP_CHANGE_POLICIES:
        errors.append(
            _not_supported(
                f"{path}.securityContext.fsGroupChangePolicy",
                change_policy,
                _FS_GROUP_CHANGE_POLICIES,
            )
        )
    errors.extend(_affinity(spec.get("affinity"), f"{path}.affinity"))
    errors.extend(_dns_config(spec.get("dnsConfig"), dns, f"{path}.dnsConfig"))
    account = spec.get("serviceAccountName") or ""
    if account:
        errors.extend(
            _invalid(f"{path}.serviceAccountName", account, m) for m in dns1123_subdomain(account)
        )
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= 2147483647:
        errors.append(
            _invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    for key in ("hostname", "subdomain"):
        value = spec.get(key) or ""
        if value:
            errors.extend(_invalid(f"{path}.{key}", value, m) for m in dns1123_label(value))
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    errors.extend(_tolerations(tolerations, f"{path}.tolerations"))
    if for_pod:
        for key, listed in (("containers", containers), ("initContainers", init_containers)):
            for index, container in enumerate(listed):
                image = container.get("image")
                if isinstance(image, str) and image != image.strip():
                    errors.append(
                        _invalid(
                            f"{path}.{key}[{index}].image",
                            image,
                            "must not have leading or trailing whitespace",
                        )
                    )
    return errors


_FS_GROUP_CHANGE_POLICIES = ("Always", "OnRootMismatch")
_TOLERATION_OPERATORS = ("Equal", "Exists")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_VALID_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _tolerations(tolerations: list[Object], path: str) -> list[FieldError]:
    """ValidateTolerations."""
    errors: list[FieldError] = []
    for index, toleration in enumerate(tolerations):
        where = f"{path}[{index}]"
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or ""
        value = toleration.get("value") or ""
        effect = toleration.get("effect") or ""
        if key:
            errors.extend(_invalid(f"{where}.key", key, m) for m in qualified_name(key))
        elif operator != "Exists":
            errors.append(
                _invalid(
                    f"{where}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errors.append(
                _invalid(
                    f"{where}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            problems = label_value(value)
            if problems:
                errors.append(_invalid(f"{where}.operator", value, ";".join(problems)))
        elif operator == "Exists":
            if value:
                errors.append(
                    _invalid(
                        f"{where}.operator",
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            errors.append(_not_supported(f"{where}.operator", operator, _TOLERATION_OPERATORS))
        if effect and effect not in _TAINT_EFFECTS:
            errors.append(_not_supported(f"{where}.effect", effect, _TAINT_EFFECTS))
    return errors


def _node_selector_term(term: Any, path: str, check_values: bool) -> list[FieldError]:
    """ValidateNodeSelectorTerm: its matchExpressions and matchFields."""
    if not isinstance(term, dict):
        return []
    errors: list[FieldError] = []
    for index, requirement in enumerate(term.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        operator = requirement.get("operator") or ""
        values = requirement.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(
                    _required(
                        f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errors.append(
                    _forbidden(
                        f"{where}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        elif operator in ("Gt", "Lt"):
            if len(values) != 1:
                errors.append(
                    _required(
                        f"{where}.values",
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    )
                )
        else:
            errors.append(_invalid(f"{where}.operator", operator, "not a valid selector operator"))
        key = requirement.get("key") or ""
        errors.extend(_invalid(f"{where}.key", key, m) for m in qualified_name(key))
        if check_values:
            for i, value in enumerate(values):
                errors.extend(
                    _invalid(f"{where}.values[{i}]", value, m) for m in label_value(str(value))
                )
    for index, requirement in enumerate(term.get("matchFields") or []):
        where = f"{path}.matchFields[{index}]"
        operator = requirement.get("operator") or ""
        values = requirement.get("values") or []
        if operator in ("In", "NotIn"):
            if len(values) != 1:
                errors.append(
                    _required(
                        f"{where}.values",
                        "must be only one value when `operator` is 'In' or 'NotIn' for node "
                        "field selector",
                    )
                )
        else:
            errors.append(_invalid(f"{where}.operator", operator, "not a valid selector operator"))
        key = requirement.get("key") or ""
        if key != "metadata.name":
            errors.append(_invalid(f"{where}.key", key, "not a valid field selector key"))
        else:
            for i, value in enumerate(values):
                errors.extend(
                    _invalid(f"{where}.values[{i}]", value, m) for m in dns1123_subdomain(value)
                )
    return errors


def _affinity(affinity: Any, path: str) -> list[FieldError]:
    """validateAffinity: the node affinity (pod affinity terms are left to the scheduler)."""
    if not isinstance(affinity, dict):
        return []
    node = affinity.get("nodeAffinity")
    if not isinstance(node, dict):
        return []
    errors: list[FieldError] = []
    where = f"{path}.nodeAffinity"
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required, dict):
        terms_path = f"{where}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        terms = required.get("nodeSelectorTerms") or []
        if not terms:
            errors.append(_required(terms_path, "must have at least one node selector term"))
        for index, term in enumerate(terms):
            errors.extend(_node_selector_term(term, f"{terms_path}[{index}]", True))
    preferred = node.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    for index, term in enumerate(preferred):
        if not isinstance(term, dict):
            continue
        term_path = f"{where}.preferredDuringSchedulingIgnoredDuringExecution[{index}]"
        weight = term.get("weight") or 0
        if not 1 <= weight <= 100:
            errors.append(_invalid(f"{term_path}.weight", weight, "must be in the range 1-100"))
        errors.extend(_node_selector_term(term.get("preference"), f"{term_path}.preference", False))
    return errors


def _valid_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def _dns_config(config: Any, policy: Any, path: str) -> list[FieldError]:
    """validatePodDNSConfig: dnsPolicy None needs a config with a nameserver."""
    if policy == "None":
        if not isinstance(config, dict):
            return [_required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.get("nameservers"):
            return [
                _required(
                    f"{path}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if not isinstance(config, dict):
        return []
    errors: list[FieldError] = []
    for index, server in enumerate(config.get("nameservers") or []):
        if not _valid_ip(server):
            errors.append(_invalid(f"{path}.nameservers[{index}]", server, _VALID_IP))
    for index, option in enumerate(config.get("options") or []):
        if isinstance(option, dict) and not option.get("name"):
            errors.append(_required(f"{path}.options[{index}]", "must not be empty"))
    return errors


# -- other kinds ---------------------------------------------------------------------


def _config_map(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    size = 0
    for key, value in data.items():
        problems = _config_key(key)
        if problems:
            errors.extend(_invalid(f"data[{key}]", key, m) for m in problems)
        if key in binary:
            errors.append(_invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        size += len(str(value).encode())
    for key, value in binary.items():
        problems = _config_key(key)
        if problems:
            errors.extend(_invalid(f"binaryData[{key}]", key, m) for m in problems)
        if key in data:
            errors.append(_invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        size += _decoded_length(value)
    if size > MAX_DATA_BYTES:
        # Field "" is the whole object; apimachinery prints its path as "[]".
        errors.append(_too_long("[]", MAX_DATA_BYTES))
    return errors


def _decoded_length(value: Any) -> int:
    text = str(value).replace("\n", "").replace("\r", "")
    return len(text) * 3 // 4 - text[-2:].count("=")


def _secret(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    data = obj.get("data") or {}
    size = 0
    for key, value in data.items():
        problems = _config_key(key)
        if problems:
            errors.extend(_invalid(f"data[{key}]", key, m) for m in problems)
        size += _decoded_length(value)
    if size > MAX_DATA_BYTES:
        errors.append(_too_long("data", MAX_DATA_BYTES))
    secret_type = obj.get("type")
    required_keys = {
        "kubernetes.io/tls": ("tls.crt", "tls.key"),
        "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
        "kubernetes.io/dockercfg": (".dockercfg",),
        "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    }.get(str(secret_type), ())
    for key in required_keys:
        if key not in data:
            errors.append(_required(f"data[{key}]"))
    return errors


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_SESSION_AFFINITIES = ("ClientIP", "None")


def _go_service_port(port: Object) -> GoSyntax:
    """A port's (protocol, port) key as ``%#v`` prints the core.ServicePort struct."""
    return GoSyntax(
        f'core.ServicePort{{Name:"", Protocol:"{port.get("protocol", "")}", '
        f"AppProtocol:(*string)(nil), Port:{port.get('port', 0)}, "
        'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
    )


def _port_or_name(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, int):
        return [_invalid(path, value, m) for m in _port_number(value)]
    if isinstance(value, str):
        return [_invalid(path, value, m) for m in _port_name(value)]
    return []


def _service(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    service_type = spec.get("type")
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and service_type != "ExternalName":
        errors.append(_required("spec.ports"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"spec.ports[{index}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            errors.append(_required(f"{where}.name"))
        elif name:
            errors.extend(_invalid(f"{where}.name", name, m) for m in dns1123_label(name))
            if name in names:
                errors.append(_duplicate(f"{where}.name", name))
            names.add(name)
        number = port.get("port") or 0
        errors.extend(_invalid(f"{where}.port", number, m) for m in _port_number(number))
        protocol = port.get("protocol") or ""
        if not protocol:
            errors.append(_required(f"{where}.protocol"))
        elif protocol not in _PROTOCOLS:
            errors.append(_not_supported(f"{where}.protocol", protocol, _PROTOCOLS))
        errors.extend(_port_or_name(port.get("targetPort"), f"{where}.targetPort"))
        app_protocol = port.get("appProtocol")
        if isinstance(app_protocol, str):
            errors.extend(
                _invalid(f"{where}.appProtocol", app_protocol, m)
                for m in qualified_name(app_protocol)
            )
    if service_type == "ExternalName":
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if cname:
            errors.extend(_invalid("spec.externalName", cname, m) for m in dns1123_subdomain(cname))
        else:
            errors.append(_required("spec.externalName"))
    for index, ip in enumerate(spec.get("clusterIPs") or []):
        if ip != "None" and not _valid_ip(ip):
            errors.append(_invalid(f"spec.clusterIPs[{index}]", ip, _VALID_IP))
    if service_type in (None, "ClusterIP"):
        for index, port in enumerate(ports):
            if port.get("nodePort"):
                errors.append(
                    _forbidden(
                        f"spec.ports[{index}].nodePort",
                        "may not be used when `type` is 'ClusterIP'",
                    )
                )
    if spec.get("selector") is not None:
        errors.extend(_labels(spec.get("selector"), "spec.selector"))
    affinity = spec.get("sessionAffinity")
    if affinity is not None and affinity not in _SESSION_AFFINITIES:
        errors.append(_not_supported("spec.sessionAffinity", affinity, _SESSION_AFFINITIES))
    if service_type is not None and service_type not in _SERVICE_TYPES:
        errors.append(_not_supported("spec.type", service_type, _SERVICE_TYPES))
    seen: set[tuple[Any, Any]] = set()
    for index, port in enumerate(ports):
        key = (port.get("protocol"), port.get("port"))
        if key in seen:
            errors.append(_duplicate(f"spec.ports[{index}]", _go_service_port(port)))
        seen.add(key)
    return errors


def _network_policy(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = _label_selector(spec.get("podSelector"), "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(spec.get(direction) or []):
            where = f"spec.{direction}[{index}]"
            for i, port in enumerate(rule.get("ports") or []):
                errors.extend(_network_policy_port(port, f"{where}.ports[{i}]"))
            for i, peer in enumerate(rule.get(peers_key) or []):
                errors.extend(_network_policy_peer(peer, f"{where}.{peers_key}[{i}]"))
    types = spec.get("policyTypes") or []
    if len(types) > 2:
        errors.append(
            _invalid(
                "spec.policyTypes",
                GoSyntax(
                    "&[]networking.PolicyType{" + ", ".join(json.dumps(t) for t in types) + "}"
                ),
                "may not specify more than two policyTypes",
            )
        )
        return errors
    for index, policy_type in enumerate(types):
        if policy_type not in ("Ingress", "Egress"):
            errors.append(
                _not_supported(f"spec.policyTypes[{index}]", policy_type, ("Ingress", "Egress"))
            )
    return errors


def _network_policy_port(port: Object, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
        errors.append(_not_supported(f"{path}.protocol", protocol, ("TCP", "UDP", "SCTP")))
    number = port.get("port")
    end = port.get("endPort")
    if isinstance(number, int):
        errors.extend(_invalid(f"{path}.port", number, m) for m in _port_number(number))
        if isinstance(end, int):
            if end < number:
                errors.append(
                    _invalid(f"{path}.endPort", number, "must be greater than or equal to `port`")
                )
            errors.extend(_invalid(f"{path}.endPort", end, m) for m in _port_number(end))
    elif isinstance(number, str):
        if end is not None:
            errors.append(
                _invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric")
            )
        errors.extend(_invalid(f"{path}.port", number, m) for m in _port_name(number))
    elif end is not None:
        errors.append(
            _invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified")
        )
    return errors


def _network_policy_peer(peer: Object, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    count = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            count += 1
            errors.extend(_label_selector(peer[key], f"{path}.{key}"))
    block = peer.get("ipBlock")
    if block is not None:
        count += 1
        cidr = block.get("cidr") or ""
        if not cidr:
            errors.append(_required(f"{path}.ipBlock.cidr"))
        else:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                network = None
                errors.append(
                    _invalid(
                        f"{path}.ipBlock.cidr",
                        cidr,
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    )
                )
            for i, excluded in enumerate(block.get("except") or []):
                try:
                    inner = ipaddress.ip_network(excluded, strict=False)
                except ValueError:
                    errors.append(
                        _invalid(
                            f"{path}.ipBlock.except[{i}]",
                            excluded,
                            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                        )
                    )
                    continue
                if network is not None and (
                    inner.version != network.version
                    or not inner.subnet_of(network)  # type: ignore[arg-type]
                    or inner == network
                ):
                    errors.append(
                        _invalid(
                            f"{path}.ipBlock.except[{i}]",
                            excluded,
                            "must be a strict subset of `cidr`",
                        )
                    )
    if count == 0:
        errors.append(_required(path, "must specify a peer"))
    elif count > 1 and block is not None:
        errors.append(_forbidden(path, "may not specify both ipBlock and another peer"))
    return errors


_QUOTA_RESOURCES = frozenset(
    {
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
        "cpu",
        "memory",
        "ephemeral-storage",
        "storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    }
)
_QUOTA_INTEGERS = frozenset(
    {
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    }
)
_QUOTA_SCOPES = frozenset(
    {
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
    }
)


def _resource_quota(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    for key, text in (spec.get("hard") or {}).items():
        where = f"spec.hard[{key}]"
        errors.extend(_invalid(where, key, m) for m in qualified_name(key))
        standard = key in _QUOTA_RESOURCES or key.startswith(("hugepages-", "requests.hugepages-"))
        if "/" not in key and not standard:
            errors.append(_invalid(where, key, "must be a standard resource for quota"))
        quantity = _quantity(text)
        if quantity is None:
            continue
        if quantity.value < 0:
            errors.append(_invalid(where, str(quantity), _NONNEGATIVE))
        integer = key in _QUOTA_INTEGERS or key.startswith("count/")
        if integer and quantity.value.denominator != 1:
            errors.append(_invalid(where, GoSyntax(str(quantity)), "must be an integer"))
    scopes = spec.get("scopes") or []
    for scope in scopes:
        if scope not in _QUOTA_SCOPES:
            shown = ", ".join(json.dumps(s) for s in scopes)
            errors.append(
                _invalid(
                    "spec.scopes",
                    GoSyntax(f"[]core.ResourceQuotaScope{{{shown}}}"),
                    "unsupported scope",
                )
            )
    pairs = (("Terminating", "NotTerminating"), ("BestEffort", "NotBestEffort"))
    for first, second in pairs:
        if first in scopes and second in scopes:
            shown = ", ".join(json.dumps(s) for s in scopes)
            errors.append(
                _invalid(
                    "spec.scopes",
                    GoSyntax(f"[]core.ResourceQuotaScope{{{shown}}}"),
                    "conflicting scopes",
                )
            )
    return errors


_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_VOLUME_MODES = ("Block", "Filesystem")


def _pvc(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    modes = spec.get("accessModes") or []
    if not modes:
        errors.append(_required("spec.accessModes", "at least 1 access mode is required"))
    if spec.get("selector") is not None:
        errors.extend(_label_selector(spec["selector"], "spec.selector"))
    for mode in modes:
        if mode not in _ACCESS_MODES:
            errors.append(_not_supported("spec.accessModes", mode, _ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errors.append(
            _forbidden("spec.accessModes", "may not use ReadWriteOncePod with other access modes")
        )
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        errors.append(_required("spec.resources[storage]"))
    else:
        quantity = _quantity(storage)
        if quantity is not None and quantity.value <= 0:
            errors.append(
                _invalid("spec.resources[storage]", str(quantity), "must be greater than zero")
            )
    storage_class = spec.get("storageClassName")
    if storage_class:
        errors.extend(
            _invalid("spec.storageClassName", storage_class, m)
            for m in dns1123_subdomain(storage_class)
        )
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        errors.append(_not_supported("spec.volumeMode", mode, _VOLUME_MODES))
    return errors


def _job(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels")
    errors = _labels(template_labels, "spec.template.metadata.labels")
    errors.extend(_pod_spec(template.get("spec"), "spec.template.spec"))
    restart = (template.get("spec") or {}).get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        errors.append(
            _not_supported("spec.template.spec.restartPolicy", restart, ("OnFailure", "Never"))
        )
    return errors


def _go_labels(labels: Any) -> GoSyntax:
    """A label map as Go's ``%#v`` prints it (keys sorted)."""
    pairs = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted((labels or {}).items()))
    return GoSyntax(f"map[string]string{{{pairs}}}")


def _selector_matches(selector: Object, labels: dict[str, Any]) -> bool:
    """LabelSelectorAsSelector(selector).Matches(labels)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key = requirement.get("key")
        values = requirement.get("values") or []
        operator = requirement.get("operator")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


_PERCENT = re.compile(r"[0-9]+%")


def _int_or_percent(value: Any, path: str) -> list[FieldError]:
    """ValidatePositiveIntOrPercent."""
    if isinstance(value, str):
        if not _PERCENT.fullmatch(value):
            return [
                _invalid(
                    path,
                    value,
                    "a valid percent string must be a numeric string followed by an ending '%'"
                    " (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )
            ]
    elif isinstance(value, int) and value < 0:
        return [_invalid(path, value, "must be greater than or equal to 0")]
    return []


def _zero_int_or_percent(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_PERCENT.fullmatch(value)) and int(value[:-1]) == 0
    return bool(value == 0)


def _deployment_strategy(strategy: Any) -> list[FieldError]:
    """ValidateDeploymentStrategy (after defaulting: a rolling update always has its block)."""
    if not isinstance(strategy, dict):
        return []
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            detail = "may not be specified when strategy `type` is 'Recreate'"
            return [_forbidden("spec.strategy.rollingUpdate", detail)]
        return []
    if kind != "RollingUpdate":
        shown = GoSyntax(f"apps.DeploymentStrategy{{Type:{json.dumps(kind or '')}, ...}}")
        return [_not_supported("spec.strategy", shown, ("Recreate", "RollingUpdate"))]
    if not isinstance(rolling, dict):
        return [
            _required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")
        ]
    path = "spec.strategy.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errors = _int_or_percent(unavailable, f"{path}.maxUnavailable")
    errors.extend(_int_or_percent(surge, f"{path}.maxSurge"))
    if _zero_int_or_percent(unavailable) and _zero_int_or_percent(surge):
        detail = "may not be 0 when `maxSurge` is 0"
        errors.append(_invalid(f"{path}.maxUnavailable", unavailable, detail))
    over = isinstance(unavailable, str) and _PERCENT.fullmatch(unavailable)
    if over and int(str(unavailable)[:-1]) > 100:
        detail = "must not be greater than 100%"  # IsNotMoreThan100Percent
        errors.append(_invalid(f"{path}.maxUnavailable", unavailable, detail))
    return errors


def _deployment(obj: Object) -> list[FieldError]:
    """ValidateDeploymentSpec: replicas, selector, template (as a ReplicaSet's), strategy."""
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(_invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        errors.append(_required("spec.selector"))
        selector = {}
    else:
        errors.extend(_label_selector(selector, "spec.selector"))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            shown = GoSyntax("&v1.LabelSelector{MatchLabels:map[string]string(nil), ...}")
            errors.append(
                _invalid("spec.selector", shown, "empty selector is invalid for deployment")
            )
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not _selector_matches(selector, labels):
        errors.append(
            _invalid(
                "spec.template.metadata.labels",
                _go_labels(labels),
                "`selector` does not match template `labels`",
            )
        )
    errors.extend(_labels(labels, "spec.template.metadata.labels"))
    template_spec = template.get("spec")
    errors.extend(_pod_spec(template_spec, "spec.template.spec"))
    if isinstance(template_spec, dict):
        restart = template_spec.get("restartPolicy")
        if restart != "Always":
            errors.append(_not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
        if template_spec.get("activeDeadlineSeconds") is not None:
            detail = "activeDeadlineSeconds in ReplicaSet is not Supported"
            errors.append(_forbidden("spec.template.spec.activeDeadlineSeconds", detail))
    errors.extend(_deployment_strategy(spec.get("strategy")))
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int):
        if deadline < 0:
            errors.append(
                _invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than or equal to 0"
                )
            )
        elif deadline <= (spec.get("minReadySeconds") or 0):
            detail = "must be greater than minReadySeconds"
            errors.append(_invalid("spec.progressDeadlineSeconds", deadline, detail))
    return errors


def _lease_spec(spec: Any) -> list[FieldError]:
    """ValidateLeaseSpec: a positive duration, no negative transition count."""
    if not isinstance(spec, dict):
        return []
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        path = "spec.leaseDurationSeconds"
        errors.append(_invalid(path, duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        path = "spec.leaseTransitions"
        errors.append(_invalid(path, transitions, "must be greater than or equal to 0"))
    return errors


def rbac_name(value: str) -> tuple[str, ...]:
    """ValidateRBACName (path.IsValidPathSegmentName): roles, bindings and what they name."""
    if value in (".", ".."):
        return (f"may not be '{value}'",)
    return tuple(f"may not contain '{c}'" for c in "/%" if c in value)


def _go_strings(values: list[Any]) -> GoSyntax:
    return GoSyntax("[]string{" + ", ".join(_go_value(str(v)) for v in values) + "}")


def _policy_rules(obj: Object, namespaced: bool) -> list[FieldError]:
    """ValidatePolicyRule for each of a Role's or ClusterRole's rules."""
    errors: list[FieldError] = []
    for index, rule in enumerate(obj.get("rules") or []):
        if not isinstance(rule, dict):
            continue
        path = f"rules[{index}]"
        if not rule.get("verbs"):
            errors.append(_required(f"{path}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                errors.append(
                    _invalid(
                        f"{path}.nonResourceURLs",
                        _go_strings(urls),
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errors.append(
                    _invalid(
                        f"{path}.nonResourceURLs",
                        _go_strings(urls),
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            errors.append(
                _required(f"{path}.apiGroups", "resource rules must supply at least one api group")
            )
        if not rule.get("resources"):
            errors.append(
                _required(f"{path}.resources", "resource rules must supply at least one resource")
            )
    return errors


_RBAC_GROUP = "rbac.authorization.k8s.io"


def _subject(subject: Object, namespaced: bool, path: str) -> list[FieldError]:
    """ValidateRoleBindingSubject."""
    errors: list[FieldError] = []
    name = subject.get("name") or ""
    group = subject.get("apiGroup") or ""
    if not name:
        errors.append(_required(f"{path}.name"))
    match subject.get("kind"):
        case "ServiceAccount":
            if name:
                errors.extend(_invalid(f"{path}.name", name, m) for m in dns1123_subdomain(name))
            if group:
                errors.append(_not_supported(f"{path}.apiGroup", group, [""]))
            if not namespaced and not subject.get("namespace"):
                errors.append(_required(f"{path}.namespace"))
        case "User" | "Group":
            if group != _RBAC_GROUP:
                errors.append(_not_supported(f"{path}.apiGroup", group, [_RBAC_GROUP]))
        case other:
            errors.append(
                _not_supported(f"{path}.kind", other or "", ["ServiceAccount", "User", "Group"])
            )
    return errors


def _binding(obj: Object, namespaced: bool) -> list[FieldError]:
    """ValidateRoleBinding / ValidateClusterRoleBinding: the role named, the subjects."""
    errors: list[FieldError] = []
    given = obj.get("roleRef")
    ref: Object = given if isinstance(given, dict) else {}
    if ref.get("apiGroup") != _RBAC_GROUP:
        errors.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [_RBAC_GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        errors.append(_not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    role = ref.get("name") or ""
    if not role:
        errors.append(_required("roleRef.name"))
    else:
        errors.extend(_invalid("roleRef.name", role, m) for m in rbac_name(role))
    for index, subject in enumerate(obj.get("subjects") or []):
        if isinstance(subject, dict):
            errors.extend(_subject(subject, namespaced, f"subjects[{index}]"))
    return errors


_KIND_RULES: dict[str, Callable[[Object], list[FieldError]]] = {
    "Role": lambda obj: _policy_rules(obj, True),
    "ClusterRole": lambda obj: _policy_rules(obj, False),
    "RoleBinding": lambda obj: _binding(obj, True),
    "ClusterRoleBinding": lambda obj: _binding(obj, False),
    "Pod": lambda obj: _pod_spec(obj.get("spec"), "spec", for_pod=True),
    "ConfigMap": _config_map,
    "Secret": _secret,
    "Service": _service,
    "NetworkPolicy": _network_policy,
    "ResourceQuota": _resource_quota,
    "PersistentVolumeClaim": _pvc,
    "Job": _job,
    "Deployment": _deployment,
    "Lease": lambda obj: _lease_spec(obj.get("spec")),
}


SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
"""The sandbox's service range (the IPs it allocates are 10.96.x.y)."""


def check_service_range(kind: ResourceKind, obj: Object) -> None:
    """The allocator's answer to a requested clusterIP outside the service range.

    kube-apiserver allocates a Service's IPs before it validates the object,
    so this 422 comes alone.
    """
    ips = (obj.get("spec") or {}).get("clusterIPs") or []
    for ip in ips:
        try:
            address = ipaddress.ip_address(str(ip))
        except ValueError:
            return  # validation's "must be a valid IP address" answers
        if address.version == SERVICE_CIDR.version and address not in SERVICE_CIDR:
            shown = ", ".join(json.dumps(str(i)) for i in ips)
            error = _invalid(
                "spec.clusterIPs",
                GoSyntax(f"[]string{{{shown}}}"),
                f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                f"The range of valid IPs is {SERVICE_CIDR}",
            )
            raise invalid_error(kind, str(obj["metadata"].get("name") or ""), [error])


def validate_object(kind: ResourceKind, obj: Object) -> None:
    """Run the kind's validation on a decoded, defaulted object; 422 with every cause."""
    metadata = obj.get("metadata") or {}
    errors = _metadata(kind, metadata)
    rule = _KIND_RULES.get(kind.kind)
    if rule is not None:
        errors.extend(rule(obj))
    if errors:
        raise invalid_error(kind, str(metadata.get("name") or ""), errors)
