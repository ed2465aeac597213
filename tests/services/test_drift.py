"""Drift of labs and file servers against the sandbox: desired render rebuilt from live,
compared through a server-side dry-run apply (services/drift.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fake_registry import FakeRegistry
from reference_cases import TOKEN, reference_discovery, reference_spec, reference_user

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.render.engine import Renderer
from nublado.sandbox.server import SandboxSettings
from nublado.services.drift import (
    desired_lab_manifests,
    lab_drift,
    read_lab,
)
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService

NAMESPACE = "nublado"
LAB_NS = "userlabs-rachel"
USER = "rachel"


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(pod_grace_scale=0.0)


@pytest.fixture
async def labs(
    config: Config, registry: FakeRegistry, client: KubernetesClient
) -> AsyncIterator[LabService]:
    from lab_api_support import controller_namespace

    await controller_namespace(client)

    async def discovery() -> dict[str, Any]:
        return reference_discovery()

    async with httpx.AsyncClient() as http:
        images = ImageService(config, build_image_source(config.images, http), client)
        await images.refresh()
        service = LabService(
            config,
            client,
            images,
            Renderer(config.template_dirs),
            namespace=NAMESPACE,
            identity="replica-a",
            discovery=discovery,
        )
        await service.start()
        yield service
        await service.stop()


async def spawn(labs: LabService) -> None:
    await labs.create(reference_user(), TOKEN, reference_spec())
    async with asyncio.timeout(10):
        async for _ in await labs.events(USER):
            pass


async def test_a_spawned_lab_has_no_drift(
    labs: LabService, config: Config, client: KubernetesClient
) -> None:
    await spawn(labs)
    live = await read_lab(client, config, USER)
    assert live is not None
    desired = desired_lab_manifests(config, Renderer(config.template_dirs), USER, live)
    drift = await lab_drift(client, desired, live)
    assert [(d.title, d.fields, d.refused) for d in drift] == []


async def test_a_file_server_has_no_drift(client: KubernetesClient) -> None:
    from fileserver_support import fileserver_config
    from lab_api_support import CONTROLLER_NAMESPACE, user_for

    from nublado.models.user import UserInfo
    from nublado.services.drift import (
        desired_fileserver_manifests,
        fileserver_drift,
        read_fileserver,
    )
    from nublado.services.fileservers import FileServerService

    await client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    )
    config = fileserver_config()
    renderer = Renderer(config.template_dirs)
    service = FileServerService(
        config, client, renderer, namespace=CONTROLLER_NAMESPACE, identity="a"
    )
    await service.start()
    try:
        await service.ensure(UserInfo.model_validate(user_for("rachel")))
    finally:
        await service.stop()
    live = await read_fileserver(client, config, "rachel")
    assert live is not None
    desired = desired_fileserver_manifests(config, renderer, "rachel", live)
    drift = await fileserver_drift(client, desired, live)
    assert [(d.title, d.fields, d.refused) for d in drift] == []
