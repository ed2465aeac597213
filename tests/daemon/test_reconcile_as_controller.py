"""The daemon's lab reconcile repairs labs as the controller's ServiceAccount.

tests/services/test_reconcile.py proves what each repair does; these run the
repairs (a missing object re-applied from the source Secrets, a changed or
relabelled object fixed in place, an ended lab removed) with the controller's
own client, so each request they make is one its rendered RBAC must allow,
and the least-privilege audit counts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fake_registry import FakeRegistry
from lab_api_support import CONTROLLER_NAMESPACE, controller_namespace, wait_until
from reference_cases import TOKEN, reference_discovery, reference_spec, reference_user

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService
from nublado.services.reconcile import LabReconciler

LAB_NS = "userlabs-rachel"


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(pod_grace_scale=0.0)


async def _discovery() -> dict[str, Any]:
    return reference_discovery()


@pytest.fixture
async def labs(
    config: Config, registry: FakeRegistry, client: KubernetesClient, admin: KubernetesClient
) -> AsyncIterator[LabService]:
    """The lab service as the controller, rachel's lab spawned and running."""
    await controller_namespace(admin)
    async with httpx.AsyncClient() as http:
        images = ImageService(config, build_image_source(config.images, http), client)
        await images.refresh()
        service = LabService(
            config,
            client,
            images,
            Renderer(config.template_dirs),
            namespace=CONTROLLER_NAMESPACE,
            identity="replica-a",
            discovery=_discovery,
        )
        await service.start()
        await service.create(reference_user(), TOKEN, reference_spec())
        events = [e async for e in await service.events("rachel")]
        assert events[-1].event == "complete", events
        yield service
        await service.stop()


@pytest.fixture
def reconciler(config: Config, client: KubernetesClient, labs: LabService) -> LabReconciler:
    return LabReconciler(
        config,
        client,
        labs,
        Renderer(config.template_dirs),
        namespace=CONTROLLER_NAMESPACE,
        discovery=_discovery,
    )


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("NetworkPolicy", "rachel-nb"),
        ("ConfigMap", "rachel-nb-nss"),
        ("Service", "lab"),
        ("ResourceQuota", "rachel-nb"),
    ],
)
async def test_a_missing_object_is_reapplied(
    reconciler: LabReconciler, sandbox: Sandbox, kind: str, name: str
) -> None:
    assert sandbox.delete(kind, name, LAB_NS)
    await wait_until(lambda: sandbox.get(kind, name, LAB_NS) is None)

    report = await reconciler.run()

    assert report.reapplied == [("rachel", kind, name)]
    assert sandbox.get(kind, name, LAB_NS) is not None


async def test_a_changed_object_is_fixed_in_place(
    reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    sandbox.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "rachel-nb", "namespace": LAB_NS},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]},
        },
        field_manager="kubectl",
        force=True,
    )

    report = await reconciler.run()

    assert report.fixed == [("rachel", "NetworkPolicy", "rachel-nb")]


@pytest.mark.parametrize(
    ("kind", "name", "namespace"),
    [("Pod", "rachel-nb", LAB_NS), ("Namespace", LAB_NS, None)],
)
async def test_a_relabelled_object_is_read_by_name_and_relabelled(
    reconciler: LabReconciler, sandbox: Sandbox, kind: str, name: str, namespace: str | None
) -> None:
    metadata: dict[str, Any] = {"name": name, "labels": {"nublado.lsst.io/category": "debug"}}
    if namespace is not None:
        metadata["namespace"] = namespace
    sandbox.apply(
        {"apiVersion": "v1", "kind": kind, "metadata": metadata},
        field_manager="kubectl-label",
        force=True,
    )

    report = await reconciler.run()

    assert (report.fixed, report.deleted) == ([("rachel", kind, name)], {})


async def test_an_ended_lab_is_removed(reconciler: LabReconciler, sandbox: Sandbox) -> None:
    assert sandbox.finish_pod(LAB_NS, "rachel-nb", "Failed")

    report = await reconciler.run()

    assert "rachel" in str(report.deleted)
    await wait_until(lambda: sandbox.get("Pod", "rachel-nb", LAB_NS) is None)
