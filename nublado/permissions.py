"""The start-up permission check: may the controller do what its RBAC says it needs?

``nublado serve`` and ``nublado daemon`` call `check_permissions` before
anything else talks to the cluster. The list of what to ask about has one
source, templates/controller/rbac.yaml rendered for the controller's
namespace (through the configuration's template folders, as ``nublado render
controller`` renders it): every verb on every resource of its ClusterRole is
asked cluster-wide, every one of its Role in that namespace. Each is one
SelfSubjectAccessReview, sent concurrently (at most `CONCURRENCY` at once), so
the check costs one round of requests.

A deployment whose RBAC lacks something (Phalanx's chart grants no
``patch``, no Leases, and only ``get`` of Secrets in the controller's
namespace) would otherwise start and then fail request by request with 403s;
here it stops at once with one line naming each missing grant
(`MissingPermissionsError`, exit status 2). An API server that does not
serve SelfSubjectAccessReview (404), or a check that cannot be made, is
warned about once and the controller starts anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import InputError

if TYPE_CHECKING:
    from .kube.client import KubernetesClient

__all__ = [
    "CONCURRENCY",
    "SKIP_ENV",
    "Grant",
    "MissingPermissionsError",
    "check_permissions",
    "grants_of",
    "missing_grants",
    "rendered_grants",
    "skip_permission_check_option",
]

CONCURRENCY = 16
"""Reviews in flight at once: the whole check is one round (about 60 reviews)."""

SKIP_ENV = "NUBLADO_SKIP_PERMISSION_CHECK"
"""Set to ``true`` (or pass ``--skip-permission-check``) to start without the check."""

_log = logging.getLogger(__name__)

Object = dict[str, Any]


@dataclass(frozen=True, order=True)
class Grant:
    """One verb on one resource (or URL) that the rendered RBAC grants, and where."""

    verb: str
    group: str
    resource: str  # ``pods`` or ``pods/log``; empty for a non-resource URL
    namespace: str = ""  # a Role's namespace; empty: cluster-wide (the ClusterRole)
    name: str = ""  # one of a rule's resourceNames, if it has any
    url: str = ""  # a nonResourceURLs entry

    def __str__(self) -> str:
        if self.url:
            return f"{self.verb} {self.url}"
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        named = f" {self.name}" if self.name else ""
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {resource}{named} {where}"

    def review_spec(self) -> Object:
        """The SelfSubjectAccessReview spec that asks for this grant."""
        if self.url:
            return {"nonResourceAttributes": {"verb": self.verb, "path": self.url}}
        resource, _, subresource = self.resource.partition("/")
        attributes = {
            "verb": self.verb,
            "group": self.group,
            "resource": resource,
            "subresource": subresource,
            "namespace": self.namespace,
            "name": self.name,
        }
        return {"resourceAttributes": {k: v for k, v in attributes.items() if v}}


def grants_of(manifests: Iterable[Object]) -> list[Grant]:
    """Every grant of the Roles (in their namespace) and ClusterRoles (cluster-wide) given."""
    grants: set[Grant] = set()
    for manifest in manifests:
        if manifest.get("kind") not in ("Role", "ClusterRole"):
            continue
        namespace = manifest["metadata"].get("namespace", "") if manifest["kind"] == "Role" else ""
        for rule in manifest.get("rules") or []:
            for verb in rule.get("verbs") or []:
                for url in rule.get("nonResourceURLs") or []:
                    grants.add(Grant(verb, "", "", url=url))
                for group in rule.get("apiGroups") or []:
                    for resource in rule.get("resources") or []:
                        for name in rule.get("resourceNames") or [""]:
                            grants.add(Grant(verb, group, resource, namespace, name))
    return sorted(grants)


def rendered_grants(template_dirs: Sequence[Path], namespace: str) -> list[Grant]:
    """The grants of templates/controller/rbac.yaml for a controller in ``namespace``."""
    from .render.controller import RBAC_TEMPLATE, rbac_context
    from .render.engine import Renderer

    manifests = Renderer(template_dirs).render_template(RBAC_TEMPLATE, rbac_context(namespace))
    return grants_of(manifests)


async def missing_grants(
    kube: KubernetesClient, grants: Sequence[Grant], concurrency: int = CONCURRENCY
) -> list[Grant]:
    """The grants the API server says this client's identity does not hold, in order.

    Raises what the first failed review raised (`NotFoundError` where
    reviews are not served).
    """
    limit = asyncio.Semaphore(concurrency)

    async def allowed(grant: Grant) -> bool:
        async with limit:
            status = await kube.review_access(grant.review_spec())
        return status.get("allowed") is True

    answers = await asyncio.gather(*(allowed(g) for g in grants), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return [grant for grant, answer in zip(grants, answers, strict=True) if answer is False]


class MissingPermissionsError(InputError):
    """The controller's identity lacks grants its RBAC template says it needs."""

    def __init__(self, missing: Sequence[Grant]) -> None:
        self.missing = list(missing)
        super().__init__(
            f"the controller's Kubernetes identity lacks {len(missing)} of the grants it needs:"
            f" {', '.join(str(g) for g in missing)}; grant them with the RBAC that"
            " 'nublado render controller' prints (README, \"Least privilege\")"
        )


async def check_permissions(
    kube: KubernetesClient, template_dirs: Sequence[Path], namespace: str
) -> None:
    """Stop the start-up (`MissingPermissionsError`) if a rendered grant is not held.

    Logs one ERROR line naming the missing grants before raising; warns once
    and returns when the check cannot be made (404: reviews not served).
    """
    from .kube.errors import KubernetesError, NotFoundError

    grants = rendered_grants(template_dirs, namespace)
    try:
        missing = await missing_grants(kube, grants)
    except NotFoundError:
        _log.warning(
            "Permissions not checked: the API server does not serve SelfSubjectAccessReview"
        )
        return
    except KubernetesError as exc:
        _log.warning("Permissions not checked: %s", exc)
        return
    if missing:
        error = MissingPermissionsError(missing)
        _log.error("Missing Kubernetes permissions: %s", ", ".join(str(g) for g in missing))
        raise error
    _log.info("Permissions checked: all %d grants of the controller's RBAC are held", len(grants))


skip_permission_check_option = click.option(
    "--skip-permission-check",
    is_flag=True,
    envvar=SKIP_ENV,
    show_envvar=True,
    help="Start without asking the API server whether the controller's RBAC is granted.",
)
"""The flag ``nublado serve`` and ``nublado daemon`` share."""
