"""fsadmin on the sandbox for the service and route tests: config, service, reference check.

The reference case is upstream's ``fsadmin.yaml`` (tests/data/reference):
``POST fsadmin/v1/service`` then the namespace's PVCs and the ``fsadmin``
pod compared with expected/objects/fsadmin.json under the same reference
normalisation as the lab (objects.md 11.2, 11.6; `lab_api_support`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from lab_api_support import (
    CONTROLLER_NAMESPACE,
    _drop_nulls,
    _normalise_cluster,
    object_list_differences,
)
from reference_cases import EXPECTED, reference_config, reference_metadata

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox
from nublado.services.fsadmin import FSAdminService

__all__ = [
    "FSADMIN",
    "fsadmin_config",
    "fsadmin_service",
    "pod_posts",
    "reference_fsadmin_differences",
]

FSADMIN = f"/{CONTROLLER_NAMESPACE}/fsadmin/v1/service"
"""The routes' path under the reference prefix."""


def fsadmin_config(timeout: float | None = None) -> Config:
    """Upstream's fsadmin.yaml; ``timeout`` (seconds) replaces ``fsadmin.timeout``."""
    config = reference_config("fsadmin")
    if timeout is None:
        return config
    fsadmin = config.fsadmin.model_copy(update={"timeout": timedelta(seconds=timeout)})
    return config.model_copy(update={"fsadmin": fsadmin})


def fsadmin_service(config: Config, client: KubernetesClient) -> FSAdminService:
    """A new service (as after a controller restart) over the sandbox, in ``nublado``."""
    return FSAdminService(
        config,
        client,
        Renderer(config.template_dirs),
        reference_metadata(),
        namespace=CONTROLLER_NAMESPACE,
    )


def pod_posts(sandbox: Sandbox) -> int:
    """How many pods were created in the controller namespace so far."""
    target = f"/api/v1/namespaces/{CONTROLLER_NAMESPACE}/pods"
    return sum(1 for r in sandbox.requests if r.method == "POST" and r.target.startswith(target))


def _without_omitted_empties(expected: Any, actual: Any) -> Any:
    """``expected`` without the empty lists and maps that ``actual`` lacks.

    The API server stores ``omitempty`` fields without an empty value (the
    pod's ``tolerations: []`` reads back absent), as kube-apiserver does;
    upstream's mock kept them. The manifest sent still has them (the render
    parity tests check that).
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {
            k: _without_omitted_empties(v, actual.get(k))
            for k, v in expected.items()
            if not (v in ([], {}) and k not in actual)
        }
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [_without_omitted_empties(e, a) for e, a in zip(expected, actual, strict=True)]
    return expected


def reference_fsadmin_differences(sandbox: Sandbox) -> list[str]:
    """How the namespace's PVCs and fsadmin pod differ from upstream's fsadmin.json.

    Empty when equal under the full reference normalisation (objects.md
    11.6: every PVC of the namespace, then the pod; ``<ANY>`` matches
    anything; server-filled fields are allowed, labels and annotations are
    exact); the kinds and names must be exactly the reference's.
    """
    expected: list[dict[str, Any]] = json.loads((EXPECTED / "objects" / "fsadmin.json").read_text())
    expected = [_drop_nulls(o) for o in expected]
    found = sandbox.objects(CONTROLLER_NAMESPACE, "PersistentVolumeClaim")
    pod = sandbox.get("Pod", "fsadmin", CONTROLLER_NAMESPACE)
    actual = _drop_nulls(_normalise_cluster([*found, *([pod] if pod else [])]))
    return object_list_differences(expected, actual, _without_omitted_empties)
