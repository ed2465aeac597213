"""What kube-apiserver would refuse in a rendered manifest, found before it leaves the renderer.

A value that reaches a manifest from a user (a long username), a request or
an operator's template can make a name, a label or a quantity that the
cluster refuses; without this check a dry-run render prints such objects and
a spawn fails half-way with twelve schema errors. These are the rules of
Kubernetes' own validation (apimachinery's DNS-1123/1035 names, qualified
names and label values, resource quantities) for the fields our sets use,
kept cheap enough for every render (a few tens of microseconds a lab set):
the full schema check runs in tests, not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from ..config._base import (
    MAX_ID,
    check_image_reference,
    config_key_problem,
    env_name_problem,
    id_problem,
    label_value_problem,
    quantity_sign,
)
from ..errors import InputError

__all__ = ["InvalidManifestError", "check_manifests", "namespace_problem"]

Manifest = dict[str, Any]

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS_1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")

_LABEL_RULE = (
    "a DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric"
)
_SUBDOMAIN_RULE = (
    "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending"
    " alphanumeric"
)
_1035_RULE = "a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"


class InvalidManifestError(InputError):
    """A rendered object that Kubernetes would refuse; says which object, field and rule."""

    def __init__(self, manifest: Manifest, field: str, value: Any, reason: str) -> None:
        metadata = manifest.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        self.kind = str(manifest.get("kind", "object"))
        self.name = name if isinstance(name, str) else ""
        self.field = field
        self.value = value
        self.reason = reason
        shown = _shorten(self.name)
        super().__init__(f"{self.kind} {shown}: {field}: {reason}" if shown else reason)


def _shorten(text: str) -> str:
    return text if len(text) <= 70 else f"{text[:50]}...{text[-12:]}"


def _too_long(value: str, limit: int) -> str:
    return f"{_shorten(value)!r} is {len(value)} characters, Kubernetes allows at most {limit}"


def _name_problem(value: Any, pattern: re.Pattern[str], limit: int, rule: str) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > limit:
        return _too_long(value, limit)
    if not pattern.fullmatch(value):
        return f"{_shorten(value)!r} is not {rule}"
    return None


# Each check is memoised: a set repeats its namespace, labels and images in
# several objects, and most strings recur from render to render, so a render
# pays a dictionary lookup for most values instead of a regular expression.
_CACHE = 4096


@lru_cache(maxsize=_CACHE)
def _dns_label_problem(value: str) -> str | None:
    return _name_problem(value, _DNS_LABEL, 63, _LABEL_RULE)


@lru_cache(maxsize=_CACHE)
def _dns_1035_problem(value: str) -> str | None:
    return _name_problem(value, _DNS_1035_LABEL, 63, _1035_RULE)


@lru_cache(maxsize=_CACHE)
def _subdomain_problem(value: str) -> str | None:
    return _name_problem(value, _DNS_SUBDOMAIN, 253, _SUBDOMAIN_RULE)


def _checked(check: Callable[[str], str | None], value: Any) -> str | None:
    """``check(value)`` for a string (memoised), a plain answer for anything else."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    return check(value)


_NAME_CHECKS: dict[str, Callable[[str], str | None]] = {
    "Namespace": _dns_label_problem,
    "Service": _dns_1035_problem,
}
"""How metadata.name is checked, by kind; any other kind's name is a DNS-1123 subdomain."""


@lru_cache(maxsize=_CACHE)
def _label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and _subdomain_problem(prefix) is not None:
        return f"label key {key!r} has an invalid prefix (it must be {_SUBDOMAIN_RULE})"
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"label key {_shorten(key)!r} is not a qualified name (at most 63 letters,"
            " digits, '-', '_' and '.', starting and ending alphanumeric)"
        )
    return None


_label_value_problem = lru_cache(maxsize=_CACHE)(label_value_problem)


@lru_cache(maxsize=_CACHE)
def _image_problem(image: str) -> str | None:
    try:
        check_image_reference(image)
    except ValueError as exc:
        return str(exc)
    return None


_config_key_problem = lru_cache(maxsize=_CACHE)(config_key_problem)
_env_name_problem = lru_cache(maxsize=_CACHE)(env_name_problem)
_quantity_sign = lru_cache(maxsize=_CACHE)(quantity_sign)


def _check_labels(manifest: Manifest, field: str, labels: Any) -> None:
    if not isinstance(labels, Mapping):
        return
    for key, value in labels.items():
        problem = _label_key_problem(key)
        if problem is not None:
            raise InvalidManifestError(manifest, field, key, problem)
        if not isinstance(value, str):
            reason = "label values must be strings"
            raise InvalidManifestError(manifest, f"{field}[{key}]", value, reason)
        problem = _label_value_problem(value)
        if problem is not None:
            raise InvalidManifestError(manifest, f"{field}[{key}]", value, problem)


def _check_quantities(manifest: Manifest, field: str, values: Any, *, positive: bool) -> None:
    if not isinstance(values, Mapping):
        return
    for key, value in values.items():
        sign = _quantity_sign(value) if isinstance(value, str) else quantity_sign(value)
        if sign is None:
            reason = f"{value!r} is not a Kubernetes quantity (like 1Gi or 500m)"
            raise InvalidManifestError(manifest, f"{field}[{key}]", value, reason)
        if sign < 0 or (positive and sign == 0):
            bound = "greater than zero" if positive else "zero or more"
            reason = f"must be {bound}, got {value!r}"
            raise InvalidManifestError(manifest, f"{field}[{key}]", value, reason)


def _check_ids(manifest: Manifest, field: str, context: Any) -> None:
    if not isinstance(context, Mapping):
        return
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        value = context.get(key)
        if value is not None and not (type(value) is int and 0 <= value <= MAX_ID):
            problem = id_problem(value)
            if problem is not None:
                raise InvalidManifestError(manifest, f"{field}.{key}", value, problem)
    for index, value in enumerate(context.get("supplementalGroups") or ()):
        if type(value) is int and 0 <= value <= MAX_ID:
            continue
        problem = id_problem(value)
        if problem is not None:
            where = f"{field}.supplementalGroups[{index}]"
            raise InvalidManifestError(manifest, where, value, problem)


@lru_cache(maxsize=_CACHE)
def _first_problem(
    check: Callable[[str], str | None], values: tuple[Any, ...]
) -> tuple[int, str] | None:
    """The index of the first of ``values`` that ``check`` refuses, and why; None if none.

    Memoised on the whole tuple: a lab's env ConfigMap keys and its containers'
    variable names are the same from render to render, so a set pays one
    lookup for each instead of one per key.
    """
    for index, value in enumerate(values):
        problem = _checked(check, value)
        if problem is not None:
            return index, problem
    return None


def _first(check: Callable[[str], str | None], values: tuple[Any, ...]) -> tuple[int, str] | None:
    try:
        return _first_problem(check, values)
    except TypeError:  # an unhashable value (a list where a name belongs): no memo
        return _first_problem.__wrapped__(check, values)


def _check_env(manifest: Manifest, field: str, env: Any) -> None:
    if not isinstance(env, list) or not env:
        return
    # dict, not Mapping: an ABC isinstance per variable costs more than the rest.
    names = tuple(v.get("name") if type(v) is dict else None for v in env)
    found = _first(_env_name_problem, names)
    if found is not None:
        index, problem = found
        raise InvalidManifestError(manifest, f"{field}[{index}].name", names[index], problem)


def _check_data_keys(manifest: Manifest, field: str, data: Any) -> None:
    if type(data) is not dict or not data:
        return
    keys = tuple(data)
    found = _first(_config_key_problem, keys)
    if found is not None:
        index, problem = found
        raise InvalidManifestError(manifest, field, keys[index], problem)


def _check_pod_spec(manifest: Manifest, field: str, spec: Any) -> None:
    if not isinstance(spec, Mapping):
        return
    _check_ids(manifest, f"{field}.securityContext", spec.get("securityContext"))
    for index, volume in enumerate(spec.get("volumes") or ()):
        name = volume.get("name")
        problem = _checked(_dns_label_problem, name)
        if problem is not None:
            raise InvalidManifestError(manifest, f"{field}.volumes[{index}].name", name, problem)
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or ()):
            where = f"{field}.{kind}[{index}]"
            name = container.get("name")
            problem = _checked(_dns_label_problem, name)
            if problem is not None:
                raise InvalidManifestError(manifest, f"{where}.name", name, problem)
            image = container.get("image")
            if image is not None:
                problem = _checked(_image_problem, image)
                if problem is not None:
                    raise InvalidManifestError(manifest, f"{where}.image", image, problem)
            resources = container.get("resources")
            if isinstance(resources, Mapping):
                for part in ("requests", "limits"):
                    _check_quantities(
                        manifest, f"{where}.resources.{part}", resources.get(part), positive=False
                    )
            _check_ids(manifest, f"{where}.securityContext", container.get("securityContext"))
            _check_env(manifest, f"{where}.env", container.get("env"))


def _check_manifest(manifest: Manifest) -> None:
    kind = manifest.get("kind")
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping):
        return
    if "name" in metadata:
        check = _NAME_CHECKS.get(kind, _subdomain_problem)  # type: ignore[arg-type]
        problem = _checked(check, metadata["name"])
        if problem is not None:
            raise InvalidManifestError(manifest, "metadata.name", metadata["name"], problem)
    if "namespace" in metadata:
        problem = _checked(_dns_label_problem, metadata["namespace"])
        if problem is not None:
            field = "metadata.namespace"
            raise InvalidManifestError(manifest, field, metadata["namespace"], problem)
    _check_labels(manifest, "metadata.labels", metadata.get("labels"))
    if kind in ("ConfigMap", "Secret"):
        for part in ("data", "binaryData", "stringData"):
            _check_data_keys(manifest, part, manifest.get(part))
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return
    if kind == "Pod":
        _check_pod_spec(manifest, "spec", spec)
    elif kind in ("Job", "Deployment"):
        if kind == "Deployment":
            selector = spec.get("selector")
            if isinstance(selector, Mapping):
                _check_labels(manifest, "spec.selector.matchLabels", selector.get("matchLabels"))
        template = spec.get("template")
        if isinstance(template, Mapping):
            template_metadata = template.get("metadata")
            if isinstance(template_metadata, Mapping):
                labels = template_metadata.get("labels")
                _check_labels(manifest, "spec.template.metadata.labels", labels)
            _check_pod_spec(manifest, "spec.template.spec", template.get("spec"))
    elif kind == "PersistentVolumeClaim":
        resources = spec.get("resources")
        if isinstance(resources, Mapping):
            requests = resources.get("requests")
            _check_quantities(manifest, "spec.resources.requests", requests, positive=True)
    elif kind == "ResourceQuota":
        _check_quantities(manifest, "spec.hard", spec.get("hard"), positive=False)
    elif kind == "Service":
        _check_labels(manifest, "spec.selector", spec.get("selector"))


def namespace_problem(name: str) -> str | None:
    """Why Kubernetes would refuse ``name`` as a namespace, or None (a DNS-1123 label)."""
    return _dns_label_problem(name)


def check_manifests(manifests: list[Manifest]) -> list[Manifest]:
    """Return ``manifests`` if Kubernetes would accept their names, labels and quantities.

    Raises `InvalidManifestError` for the first value it would refuse, naming
    the object, the field and the rule (with the length limit for a name or
    label value that is too long).
    """
    for manifest in manifests:
        _check_manifest(manifest)
    return manifests
