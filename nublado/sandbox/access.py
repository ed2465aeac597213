"""SelfSubjectAccessReview: "may I do this?", answered as kube-apiserver answers it.

``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` with a spec of
exactly one of ``resourceAttributes`` (verb, group, version, resource,
subresource, name, namespace) and ``nonResourceAttributes`` (path, verb) is
answered 201 with the review and its ``status``: in RBAC mode what the RBAC
authorizer decides for the identity that sent the request (``allowed`` and
kube's reason, ``RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r"
to ServiceAccount "name/ns"``); without RBAC mode every request is allowed
(kube's AlwaysAllow, which gives no reason). Asking needs ``create
selfsubjectaccessreviews``, which kube's bootstrap policy gives every
authenticated user (system:basic-user, `nublado.sandbox.rbac.BOOTSTRAP_POLICY`).
Nothing is stored.

Left out: the alpha/beta field and label selectors of ``resourceAttributes``
(read and ignored, as RBAC ignores them; not decoded from protobuf bodies,
which ``kubectl auth can-i`` sends).
"""

from __future__ import annotations

import json
from typing import Any

from .rbac import Identity, RequestAttributes, authorize
from .store import ApiError, Store

__all__ = ["REVIEW_API_VERSION", "REVIEW_PATH", "REVIEW_RESOURCE", "self_subject_access_review"]

Object = dict[str, Any]

REVIEW_API_VERSION = "authorization.k8s.io/v1"
REVIEW_PATH = f"/apis/{REVIEW_API_VERSION}/selfsubjectaccessreviews"
"""Where reviews are created (the resource is cluster-scoped and create-only)."""

REVIEW_RESOURCE: Object = {
    "name": "selfsubjectaccessreviews",
    "singularName": "selfsubjectaccessreview",
    "namespaced": False,
    "kind": "SelfSubjectAccessReview",
    "verbs": ["create"],
}
"""The review's entry in the discovery document of ``authorization.k8s.io/v1``."""

_KIND = "SelfSubjectAccessReview"
_GO_TYPES = {
    "resourceAttributes": "ResourceAttributes",
    "nonResourceAttributes": "NonResourceAttributes",
}


def _go_value(value: Object) -> str:
    """Non-resource attributes as kube prints an invalid value (``%#v`` of the internal type)."""
    body = ", ".join(
        f'{go}:"{value.get(key) or ""}"' for go, key in (("Path", "path"), ("Verb", "verb"))
    )
    return f"authorization.NonResourceAttributes{{{body}}}"


def _invalid(field: str, value: str, detail: str) -> ApiError:
    """kube's 422 for an invalid review (``apierrors.NewInvalid`` with one field error)."""
    message = f"Invalid value: {value}: {detail}"
    return ApiError(
        422,
        "Invalid",
        f'{_KIND}.authorization.k8s.io "" is invalid: {field}: {message}',
        {
            "group": "authorization.k8s.io",
            "kind": _KIND,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def _strings(part: Any) -> bool:
    """Whether attributes are an object of strings (the selectors aside, which are objects)."""
    return isinstance(part, dict) and all(
        isinstance(v, str) for k, v in part.items() if k not in ("fieldSelector", "labelSelector")
    )


def _check(body: Object) -> Object:
    """The review's spec, validated as ValidateSelfSubjectAccessReview does."""
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, _KIND) or api_version not in (None, REVIEW_API_VERSION):
        raise ApiError.bad_request(
            f'no kind "{kind}" is registered for version "{api_version}" in scheme'
            ' "pkg/api/legacyscheme/scheme.go:30"'
        )
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if v is not None}
    if metadata:
        # kube prints the whole Go ObjectMeta here; the sandbox names what was set.
        shown = json.dumps(metadata, sort_keys=True, separators=(",", ":"))
        raise _invalid("metadata", shown, "must be empty")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        raise _invalid(
            "spec.nonResourceAttributes",
            _go_value(non_resource),
            "cannot be specified in combination with resourceAttributes",
        )
    if resource is None and non_resource is None:
        raise _invalid(
            "spec.resourceAttributes",
            '"null"',
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    for key in ("resourceAttributes", "nonResourceAttributes"):
        part = spec.get(key)
        if part is not None and not _strings(part):
            raise ApiError.bad_request(
                f'{_KIND} in version "v1" cannot be handled as a {_KIND}: json: cannot unmarshal'
                f" into Go struct field SelfSubjectAccessReviewSpec.spec.{key} of type"
                f" v1.{_GO_TYPES[key]}"
            )
    return spec


def _attributes(spec: Object) -> RequestAttributes:
    """What the review asks about, as the authorizer sees a request."""
    resource = spec.get("resourceAttributes")
    if resource is not None:
        return RequestAttributes(
            verb=resource.get("verb") or "",
            path="",
            resource_request=True,
            api_group=resource.get("group") or "",
            api_version=resource.get("version") or "",
            namespace=resource.get("namespace") or "",
            resource=resource.get("resource") or "",
            subresource=resource.get("subresource") or "",
            name=resource.get("name") or "",
        )
    non_resource = spec["nonResourceAttributes"]
    return RequestAttributes(
        verb=non_resource.get("verb") or "",
        path=non_resource.get("path") or "",
        resource_request=False,
    )


def self_subject_access_review(store: Store, identity: Identity | None, body: Object) -> Object:
    """The answered review (201) for ``body``; ``identity`` None: no RBAC mode, all allowed.

    `ApiError` 422 for a spec with neither or both kinds of attributes, or
    with metadata; 400 for a body of another kind.
    """
    spec = _check(body)
    if identity is None:
        allowed, reason = True, ""
    else:
        with store.lock:
            allowed, reason = authorize(store, identity, _attributes(spec))
    status: Object = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {
        "kind": _KIND,
        "apiVersion": REVIEW_API_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
