"""RBAC authorization, as kube-apiserver's RBAC authorizer decides it.

When the sandbox authenticates requests (``SandboxSettings.rbac``), every
request is described by the attributes kube-apiserver's request-info
factory derives (`request_attributes`: verb, API group, resource and
subresource, name, namespace, or the path of a non-resource URL), and
allowed only when a ClusterRoleBinding, or a RoleBinding in the request's
namespace, binds the user (or one of its groups, or its ServiceAccount) to
a role with a rule that covers them (`Authorizer`). The group
``system:masters`` is allowed everything without a look at RBAC, as kube's
privileged-group authorizer does. A refusal is kube's 403 body
(`forbidden_error`).

What kube also does and the sandbox leaves out: escalation prevention (a
user may create or bind a role granting more than it holds), aggregated
ClusterRoles, and authorizers other than RBAC (Node, webhooks).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .store import ApiError, Store

__all__ = [
    "ANONYMOUS",
    "BOOTSTRAP_POLICY",
    "PRIVILEGED_GROUP",
    "Identity",
    "RequestAttributes",
    "UsageLog",
    "Use",
    "authorize",
    "forbidden_error",
    "request_attributes",
    "service_account_identity",
]

Object = dict[str, Any]

PRIVILEGED_GROUP = "system:masters"
"""Members are allowed every request, before RBAC is consulted (kube's privileged group)."""

_RBAC_GROUP = "rbac.authorization.k8s.io"
_SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Identity:
    """Who sent a request: a user name and the groups it belongs to."""

    name: str
    groups: tuple[str, ...]

    @property
    def privileged(self) -> bool:
        """Whether authorization is bypassed (``system:masters``)."""
        return PRIVILEGED_GROUP in self.groups


ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))
"""A request without credentials, where anonymous requests are allowed (health checks)."""


def service_account_identity(namespace: str, name: str) -> Identity:
    """The identity a ServiceAccount's token carries."""
    return Identity(
        f"{_SA_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclass(frozen=True)
class RequestAttributes:
    """What a request asks to do, as RBAC sees it (kube's ``authorizer.Attributes``)."""

    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        """``resource/subresource`` as rules name it (``pods/log``)."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# Subresources of a namespace: /namespaces/NAME/status is the namespace's, not a resource's.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAME_TERM = re.compile(r"^metadata\.name(==?)(.*)$")


def _query_true(value: str | None) -> bool:
    """A boolean query option as apimachinery converts it: anything but 0 or false is true."""
    if value is None:
        return False
    return not (value == "0" or value.lower() == "false")


def _exact_name(selector: str) -> str:
    """The name a ``metadata.name=NAME`` field selector term requires, or ``""``."""
    for term in selector.split(","):
        match = _NAME_TERM.match(term.strip())
        if match:
            name = match.group(2)
            if name and name not in (".", "..") and "/" not in name and "%" not in name:
                return name
    return ""


def request_attributes(
    method: str, path: str, query: Mapping[str, str] | None = None
) -> RequestAttributes:
    """Describe a request as kube-apiserver's RequestInfoFactory does.

    ``query`` maps each parameter to its first value (`QueryParams`, which
    the handlers read too). A GET on a collection is
    ``list``, or ``watch`` with ``watch`` set; a DELETE on a collection is
    ``deletecollection``; a PATCH is ``patch`` whatever its content type
    (server-side apply included); ``dryRun`` and the Accept header change
    nothing. ``/api/v1`` and ``/apis/GROUP/VERSION`` are non-resource URLs
    (discovery), and so is every path outside ``/api`` and ``/apis``.
    """
    query = query or {}
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    non_resource = RequestAttributes(method.lower(), path, False)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            return non_resource  # kube answers an error; no resource is named
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        verb = "watch" if _query_true(query.get("watch")) else "list"
        selector = query.get("fieldSelector")
        if selector:
            name = _exact_name(selector)
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestAttributes(
        verb, path, True, group, version, namespace, resource, subresource, name
    )


def _rule_allows(attributes: RequestAttributes, rule: Object) -> bool:
    """RBAC's RuleAllows: verbs, API groups, resources (``*/sub``), names; or URLs."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attributes.verb not in verbs:
        return False
    if not attributes.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attributes.path:
                return True
            if url.endswith("*") and attributes.path.startswith(url[:-1]):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attributes.api_group not in groups:
        return False
    combined = attributes.combined_resource
    sub = attributes.subresource
    if not any(
        r in ("*", combined) or (sub and r == f"*/{sub}") for r in rule.get("resources") or []
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or (attributes.name != "" and attributes.name in names)


def _applies(subject: Object, identity: Identity, namespace: str) -> bool:
    """Whether a binding's subject is the user (appliesToUser)."""
    match subject.get("kind"):
        case "User":
            return bool(subject.get("name") == identity.name)
        case "Group":
            return subject.get("name") in identity.groups
        case "ServiceAccount":
            sa_namespace = subject.get("namespace") or namespace
            if not sa_namespace:
                return False
            return identity.name == f"{_SA_PREFIX}{sa_namespace}:{subject.get('name')}"
    return False


def _describe_subject(subject: Object, namespace: str) -> str:
    """A subject as kube's RBAC authorizer names it in a reason (``ServiceAccount "name/ns"``)."""
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or namespace}"'
    return f'{kind} "{name}"'


def _describe_binding(binding: Object, kind: str, subject: Object, namespace: str) -> str:
    """The source kube's reason names: ``ClusterRoleBinding "b" of ClusterRole "r" to ...``."""
    name = binding.get("metadata", {}).get("name") or ""
    if kind == "RoleBinding":
        name = f"{name}/{namespace}"
    ref = binding.get("roleRef") or {}
    role = f'{ref.get("kind")} "{ref.get("name") or ""}"'
    return f'{kind} "{name}" of {role} to {_describe_subject(subject, namespace)}'


def _role_rules(store: Store, ref: Object, namespace: str) -> tuple[list[Object], str]:
    """A binding's role's rules, or the error that it does not exist."""
    kind = ref.get("kind")
    name = ref.get("name") or ""
    if kind == "ClusterRole":
        role = store.get("ClusterRole", "", name)
        if role is None:
            return [], f'clusterrole.{_RBAC_GROUP} "{name}" not found'
    elif kind == "Role" and namespace:
        role = store.get("Role", namespace, name)
        if role is None:
            return [], f'role.{_RBAC_GROUP} "{name}" not found'
    else:
        return [], f"unknown role kind {kind!r}"
    return [r for r in role.get("rules") or [] if isinstance(r, dict)], ""


def _bindings(store: Store, kind: str, namespace: str) -> Iterable[Object]:
    return store.iter_objects(kind, namespace or None)


def authorize(store: Store, identity: Identity, attributes: RequestAttributes) -> tuple[bool, str]:
    """Whether RBAC in ``store`` allows the request, and kube's reason when it does not.

    ClusterRoleBindings first, then the RoleBindings of the request's
    namespace, as kube visits them; the reason names each bound role that
    does not exist (``RBAC: clusterrole... "x" not found``), empty otherwise.
    An allowed request's reason is kube's too: ``RBAC: allowed by
    ClusterRoleBinding "b" of ClusterRole "r" to ServiceAccount "name/ns"``
    (empty for ``system:masters``, as kube's privileged-group authorizer
    gives none); SelfSubjectAccessReview answers with it.
    Call with the store's lock held.
    """
    if identity.privileged:
        return True, ""
    errors: list[str] = []
    scopes = [("ClusterRoleBinding", "")]
    if attributes.namespace:
        scopes.append(("RoleBinding", attributes.namespace))
    for kind, namespace in scopes:
        for binding in _bindings(store, kind, namespace):
            subjects = binding.get("subjects") or []
            subject = next(
                (s for s in subjects if isinstance(s, dict) and _applies(s, identity, namespace)),
                None,
            )
            if subject is None:
                continue
            rules, error = _role_rules(store, binding.get("roleRef") or {}, namespace)
            if error:
                errors.append(error)
            if any(_rule_allows(attributes, rule) for rule in rules):
                source = _describe_binding(binding, kind, subject, namespace)
                return True, f"RBAC: allowed by {source}"
    if not errors:
        return False, ""
    return False, f"RBAC: {_aggregate(errors)}"


def _aggregate(errors: list[str]) -> str:
    """apimachinery's aggregate error text: one message alone, several de-duplicated in [a, b].

    Two bindings of one missing role give one message, without brackets, as
    kube's ``utilerrors.NewAggregate(...).Error()`` writes it.
    """
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def forbidden_error(identity: Identity, attributes: RequestAttributes, reason: str) -> ApiError:
    """kube-apiserver's 403 for a request its authorizer refused (responsewriters.Forbidden)."""
    user = identity.name
    if not attributes.resource_request:
        text = f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
    elif attributes.namespace:
        text = (
            f'User "{user}" cannot {attributes.verb} resource "{attributes.combined_resource}" '
            f'in API group "{attributes.api_group}" in the namespace "{attributes.namespace}"'
        )
    else:
        text = (
            f'User "{user}" cannot {attributes.verb} resource "{attributes.combined_resource}" '
            f'in API group "{attributes.api_group}" at the cluster scope'
        )
    if reason:
        text = f"{text}: {reason}"
    details: Object = {}
    if attributes.name:
        details["name"] = attributes.name
    if attributes.api_group:
        details["group"] = attributes.api_group
    if attributes.resource:
        details["kind"] = attributes.resource
    resource = attributes.resource
    if attributes.api_group:
        resource = f"{resource}.{attributes.api_group}"
    if not attributes.resource_request or not resource:
        message = f"forbidden: {text}"
    elif attributes.name:
        message = f'{resource} "{attributes.name}" is forbidden: {text}'
    else:
        message = f"{resource} is forbidden: {text}"
    return ApiError(403, "Forbidden", message, details)


def _cluster_role(name: str, rules: list[Object]) -> Object:
    return {
        "apiVersion": f"{_RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    }


def _group_binding(name: str, groups: list[str]) -> Object:
    return {
        "apiVersion": f"{_RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": _RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": _RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


BOOTSTRAP_POLICY: tuple[Object, ...] = (
    _cluster_role(
        "cluster-admin",
        [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    ),
    _group_binding("cluster-admin", [PRIVILEGED_GROUP]),
    _cluster_role(
        "system:discovery",
        [
            {
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                "verbs": ["get"],
            }
        ],
    ),
    _group_binding("system:discovery", ["system:authenticated"]),
    _cluster_role(
        "system:public-info-viewer",
        [
            {
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }
        ],
    ),
    _group_binding("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
    _cluster_role(
        "system:basic-user",
        [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
                "verbs": ["create"],
            },
        ],
    ),
    _group_binding("system:basic-user", ["system:authenticated"]),
)
"""The default roles and bindings of kube's bootstrap policy that the sandbox keeps.

cluster-admin (bound to ``system:masters``, who bypass RBAC anyway),
discovery for every authenticated user, the public health and version
endpoints for everyone, and system:basic-user (every authenticated user may
ask what it may do: SelfSubjectAccessReview and its kin).
"""


@dataclass(frozen=True, order=True)
class Use:
    """One kind of request RBAC allowed: verb, API group, resource[/subresource], scope.

    ``namespace`` is the namespace of a namespaced request (empty at the
    cluster scope); the audit compares uses with the grants of each rule.
    """

    verb: str
    api_group: str
    resource: str
    namespace: str = ""

    def __str__(self) -> str:
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        group = self.api_group or "core"
        return f"{self.verb} {self.resource} ({group}) {where}"


class UsageLog:
    """Which resource requests each user was allowed, for the least-privilege audit.

    Thread-safe; shared across sandboxes (and across `Sandbox.reset`) when
    given to several.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uses: dict[str, set[Use]] = {}

    def record(self, identity: Identity, attributes: RequestAttributes) -> None:
        """Remember an allowed resource request (non-resource URLs are not recorded)."""
        if not attributes.resource_request:
            return
        use = Use(
            attributes.verb,
            attributes.api_group,
            attributes.combined_resource,
            attributes.namespace,
        )
        with self._lock:
            self._uses.setdefault(identity.name, set()).add(use)

    def uses(self, user: str) -> set[Use]:
        """What ``user`` was allowed so far (a copy)."""
        with self._lock:
            return set(self._uses.get(user, ()))
