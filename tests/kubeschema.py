"""Check rendered manifests the way a Kubernetes 1.32 API server would, offline and fast.

Every manifest the test suite renders goes through `validate_manifest` or
`validate_manifests`: built-in kinds against the strict (unknown fields
rejected) JSON Schemas that kubernetes-validate bundles, custom resources
against the CRDs the sandbox serves (nublado/sandbox/crds), plus the name, label, annotation
and data-key rules the API server enforces but the schemas do not express.

kubernetes-validate's own `validate()` re-reads and re-parses its 1.3 MB
definitions file on every call (20 to 40 ms each); here the definitions are
parsed once (about 0.2 s), inlined into one cached validator per (apiVersion,
kind), and a call costs about 0.4 ms for a typical object and 10 ms for a full
lab pod. Nothing is imported or loaded until the first validation, so
importing this module costs a test module nothing.

Usage in a test (tests/ is on the pytest path)::

    from kubeschema import validate_manifests

    validate_manifests(render("lab", context))  # AssertionError naming kind/name and path

From a shell, ``python -m tests.kubeschema FILE...`` validates YAML or JSON
manifest files and prints the time each object took.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from referencing import Registry

__all__ = [
    "CRD_DIR",
    "KUBERNETES_VERSION",
    "supported_kinds",
    "validate_manifest",
    "validate_manifests",
]

KUBERNETES_VERSION = "1.32"
"""Kubernetes release whose API the manifests must satisfy."""

CRD_DIR = Path(__file__).resolve().parents[1] / "nublado" / "sandbox" / "crds"
"""Vendored CustomResourceDefinitions (one YAML file each) for the custom kinds we render."""

_SCHEMA_DIR = f"v{KUBERNETES_VERSION}.0-local-strict"
_OBJECT_META_REF = "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_MAX_ERRORS = 10
_MAX_MESSAGE = 300

# Name rules of k8s.io/apimachinery/pkg/util/validation, which the API server
# applies and the OpenAPI schemas do not.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_MAX_ANNOTATIONS_BYTES = 256 * 1024

# Kinds whose names must be DNS-1123 labels or DNS-1035 labels rather than subdomains.
_LABEL_NAMED_KINDS = {"Namespace"}
_DNS1035_NAMED_KINDS = {"Service"}


def validate_manifest(obj: dict[str, Any]) -> None:
    """Raise AssertionError (kind/name, JSON path, reason) if an API server would reject ``obj``."""
    problems = _problems(obj)
    if problems:
        raise AssertionError(_report(obj, problems))


def validate_manifests(objs: Iterable[dict[str, Any]]) -> None:
    """Validate every manifest, then raise one AssertionError listing every invalid one."""
    reports = [_report(obj, problems) for obj in objs if (problems := _problems(obj))]
    if reports:
        raise AssertionError("\n".join(reports))


def supported_kinds() -> set[tuple[str, str]]:
    """The custom (apiVersion, kind) pairs with a vendored CRD; built-in kinds are always known."""
    return set(_crd_schemas())


# Problems are (JSON path, message) pairs.
Problem = tuple[str, str]


def _problems(obj: Any) -> list[Problem]:
    if not isinstance(obj, dict):
        return [("$", f"manifest is a {type(obj).__name__}, not a mapping")]
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [("$", "apiVersion and kind must both be strings")]
    problems = _metadata_problems(obj)
    crd_validator = _crd_validator(api_version, kind)
    if crd_validator:
        problems += _schema_problems(_object_meta_validator(), obj.get("metadata"), "$.metadata")
        problems += _schema_problems(crd_validator, obj, "$")
        return problems
    validator = _builtin_validator(api_version, kind)
    if validator is None:
        return [
            (
                "$",
                f"no schema for {kind} ({api_version}) in Kubernetes {KUBERNETES_VERSION}"
                f" or in {CRD_DIR.name}/ (unknown kind or apiVersion)",
            )
        ]
    problems += _schema_problems(validator, obj, "$")
    problems += _data_key_problems(obj)
    return problems


def _name(obj: Any) -> str:
    """How a report names an object: kind/name (apiVersion)."""
    if not isinstance(obj, dict):
        return repr(obj)[:60]
    metadata = obj.get("metadata")
    object_name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{obj.get('kind')}/{object_name} ({obj.get('apiVersion')})"


def _report(obj: Any, problems: list[Problem]) -> str:
    lines = [f"{_name(obj)} is invalid for Kubernetes {KUBERNETES_VERSION}:"]
    lines += [f"  {path}: {message}" for path, message in problems[:_MAX_ERRORS]]
    if len(problems) > _MAX_ERRORS:
        lines.append(f"  ... and {len(problems) - _MAX_ERRORS} more")
    return "\n".join(lines)


def _schema_problems(validator: Validator, instance: Any, prefix: str) -> list[Problem]:
    from jsonschema.exceptions import best_match, relevance

    problems = []
    for error in sorted(validator.iter_errors(instance), key=relevance):
        message = _shorten(error.message)
        if error.context:
            # oneOf/anyOf failures: say which alternative came closest and why.
            cause = best_match(error.context)
            message += (
                f" (closest: {_join_path(prefix, cause.json_path)}: {_shorten(cause.message)})"
            )
        problems.append((_join_path(prefix, error.json_path), message))
    return sorted(problems)


def _join_path(prefix: str, json_path: str) -> str:
    return prefix + json_path[1:]


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _schema_root() -> Any:
    """The installed kubernetes-validate schemas for our Kubernetes version (imported lazily)."""
    from importlib.resources import files

    root = files("kubernetes_validate") / "kubernetes-json-schema" / _SCHEMA_DIR
    if not root.is_dir():
        raise RuntimeError(f"kubernetes-validate has no {_SCHEMA_DIR} schemas; upgrade it")
    return root


@cache
def _definitions() -> dict[str, Any]:
    """All Kubernetes definitions (the 1.3 MB `_definitions.json`), parsed once."""
    return json.loads((_schema_root() / "_definitions.json").read_bytes())  # type: ignore[no-any-return]


@cache
def _registry() -> Registry:
    """Resolves the few references left after inlining (recursive definitions)."""
    from referencing import Registry, Resource

    return Resource.from_contents(_definitions()) @ Registry()


_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_DEFINITION_REF = re.compile(r"(?:/api/_definitions\.json)?#/\$defs/(?P<name>[^/]+)")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
_inlined: dict[str, Any] = {}


def _inline(schema: Any, expanding: frozenset[str] = frozenset()) -> Any:
    """Replace `$ref`s to the shared definitions by the definitions themselves.

    jsonschema resolves every `$ref` through the registry at each use, which
    makes up about 40% of validation time; inlining (sharing, not copying, each
    definition) removes that. A definition that refers to itself keeps its
    `$ref`, still resolved through the registry. Siblings of a `$ref` are only
    annotations (description, x-kubernetes-*) in these schemas, so dropping them
    changes no verdict.
    """
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    match = _DEFINITION_REF.fullmatch(ref) if isinstance(ref, str) else None
    if match:
        name = match["name"]
        if name in expanding:
            # Kind files say "/api/_definitions.json#...", definitions "#...": make it absolute.
            return {**schema, "$ref": f"{_DEFINITIONS_ID}#/$defs/{name}"}
        if name not in _inlined:
            _inlined[name] = _inline(_definitions()["$defs"][name], expanding | {name})
        return _inlined[name]
    result = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            result[key] = {name: _inline(child, expanding) for name, child in schema[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            result[key] = [_inline(child, expanding) for child in schema[key]]
    for key in _SCHEMA_VALUES:
        if isinstance(schema.get(key), dict):
            result[key] = _inline(schema[key], expanding)
    return result


def _schema_file_name(api_version: str, kind: str) -> str:
    """kubernetes-validate's naming: ``<kind>-<first label of group>-<version>.json``."""
    group, _, version = api_version.rpartition("/")
    group_label = group.split(".", 1)[0]
    parts = [kind.lower(), group_label, version] if group else [kind.lower(), version]
    return "-".join(parts) + ".json"


@cache
def _builtin_validator(api_version: str, kind: str) -> Validator | None:
    """One validator per built-in (apiVersion, kind); None when Kubernetes has no such kind."""
    from jsonschema import Draft202012Validator

    path = _schema_root() / _schema_file_name(api_version, kind)
    if not path.is_file():
        return None
    schema = json.loads(path.read_bytes())
    group, _, version = api_version.rpartition("/")
    declared = schema.get("x-kubernetes-group-version-kind", [])
    # The file name keeps only the group's first label: make sure the group really matches.
    if {"group": group, "kind": kind, "version": version} not in declared:
        return None
    return Draft202012Validator(_inline(schema), registry=_registry())


@cache
def _object_meta_validator() -> Validator:
    """Validates a custom resource's metadata, which the API server checks as for any object."""
    from jsonschema import Draft202012Validator

    # Any $id on kubernetes.io lets a leftover "/api/..." reference resolve.
    object_meta = _inline({"$ref": _OBJECT_META_REF})
    schema = {**object_meta, "$id": "https://kubernetes.io/api/objectmeta"}
    return Draft202012Validator(schema, registry=_registry())


@cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of every vendored CRD."""
    import yaml

    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = _draft4_schema(version["schema"]["openAPIV3Schema"])
    return schemas


@cache
def _crd_validator(api_version: str, kind: str) -> Validator | None:
    schema = _crd_schemas().get((api_version, kind))
    if schema is None:
        return None
    from jsonschema import Draft4Validator, FormatChecker

    return Draft4Validator(schema, format_checker=FormatChecker())


def _draft4_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate the OpenAPI v3 extensions Draft 4 does not know into plain Draft 4."""
    result = copy.deepcopy(schema)
    for node in _subschemas(result):
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["anyOf"] = [*node.get("anyOf", []), {"type": "integer"}, {"type": "string"}]
        if node.pop("nullable", False) and "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = [*types, "null"]
    return result


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for key in ("properties", "patternProperties"):
        for child in schema.get(key, {}).values():
            yield from _subschemas(child)
    for key in ("items", "additionalProperties", "not"):
        child = schema.get(key)
        if isinstance(child, dict):
            yield from _subschemas(child)
    for key in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(key, []):
            yield from _subschemas(child)


def _metadata_problems(obj: dict[str, Any]) -> list[Problem]:
    """Name, label and annotation rules the API server enforces beyond the schema."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [("$.metadata", "metadata is required (a mapping with at least a name)")]
    problems: list[Problem] = []
    name = metadata.get("name")
    kind = obj["kind"]
    if not isinstance(name, str) or not name:
        problems.append(("$.metadata.name", "a name is required"))
    elif kind in _DNS1035_NAMED_KINDS:
        problems += _check_name("$.metadata.name", name, _DNS1035_LABEL, 63, "DNS-1035 label")
    elif kind in _LABEL_NAMED_KINDS:
        problems += _check_name("$.metadata.name", name, _DNS1123_LABEL, 63, "DNS-1123 label")
    else:
        problems += _check_name(
            "$.metadata.name", name, _DNS1123_SUBDOMAIN, 253, "DNS-1123 subdomain"
        )
    namespace = metadata.get("namespace")
    if isinstance(namespace, str):
        problems += _check_name(
            "$.metadata.namespace", namespace, _DNS1123_LABEL, 63, "DNS-1123 label"
        )
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            path = f"$.metadata.labels[{json.dumps(key)}]"
            problems += _check_qualified_name(path, key)
            if isinstance(value, str) and value:
                problems += _check_name(path, value, _QUALIFIED_NAME, 63, "label value")
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        size = 0
        for key, value in annotations.items():
            problems += _check_qualified_name(f"$.metadata.annotations[{json.dumps(key)}]", key)
            size += len(str(key).encode()) + len(str(value).encode())
        if size > _MAX_ANNOTATIONS_BYTES:
            problems.append(("$.metadata.annotations", f"{size} bytes, more than 256 KiB"))
    return problems


def _check_name(
    path: str, value: str, pattern: re.Pattern[str], max_length: int, what: str
) -> list[Problem]:
    if len(value) > max_length:
        return [(path, f"{_shorten(repr(value))} is longer than {max_length} characters ({what})")]
    if not pattern.fullmatch(value):
        return [(path, f"{value!r} is not a valid {what} (must match {pattern.pattern})")]
    return []


def _check_qualified_name(path: str, key: str) -> list[Problem]:
    """Label and annotation keys: an optional DNS subdomain prefix, a slash, then a short name."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash:
        if not prefix:
            problems.append((path, f"key {key!r} has an empty prefix"))
        else:
            problems += _check_name(path, prefix, _DNS1123_SUBDOMAIN, 253, "key prefix")
    problems += _check_name(path, name, _QUALIFIED_NAME, 63, "key name")
    return problems


def _data_key_problems(obj: dict[str, Any]) -> list[Problem]:
    """ConfigMap and Secret keys become file names; Secret data must be base64."""
    fields: dict[str, Callable[[str], str | None]] = {}
    if obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1":
        fields = {"data": _no_check, "binaryData": _check_base64}
    elif obj["kind"] == "Secret" and obj["apiVersion"] == "v1":
        fields = {"data": _check_base64, "stringData": _no_check}
    problems: list[Problem] = []
    for field, check_value in fields.items():
        values = obj.get(field)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            path = f"$.{field}[{json.dumps(key)}]"
            if len(key) > 253 or not _CONFIG_MAP_KEY.fullmatch(key) or key.startswith(".."):
                problems.append((path, f"{key!r} is not a valid key (must match [-._a-zA-Z0-9]+)"))
            elif key == ".":
                problems.append((path, "'.' is not a valid key"))
            if isinstance(value, str) and (reason := check_value(value)):
                problems.append((path, reason))
    return problems


def _no_check(value: str) -> str | None:
    return None


def _check_base64(value: str) -> str | None:
    if len(value) % 4 or not _BASE64.fullmatch(value):
        return f"{_shorten(repr(value))} is not base64"
    return None


def _main(paths: list[str]) -> int:
    """Validate manifest files (YAML or JSON, lists allowed) and print the time per object."""
    import time

    import yaml

    objs: list[Any] = []
    for path in paths:
        for document in yaml.safe_load_all(Path(path).read_text()):
            objs.extend(document if isinstance(document, list) else [document])
    start = time.perf_counter()
    if objs:
        _problems(objs[0])
    first = time.perf_counter() - start
    failures = 0
    for obj in objs:
        start = time.perf_counter()
        problems = _problems(obj)
        elapsed = (time.perf_counter() - start) * 1000
        failures += bool(problems)
        print(_report(obj, problems) if problems else f"ok {elapsed:7.3f} ms  {_name(obj)}")
    print(f"{len(objs)} objects, {failures} invalid; first call (loads schemas) {first:.3f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
