"""The reference image service the API tests serve: standard.yaml, a respx registry, the sandbox.

The controller runs as its rendered ServiceAccount (`controller_identity`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from controller_identity import client, controller_token, sandbox
from fake_registry import FakeRegistry

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.services.images import ImageService, build_image_source

__all__ = ["client", "controller_token", "http", "images", "sandbox"]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def images(
    config: Config, registry: FakeRegistry, http: httpx.AsyncClient, client: KubernetesClient
) -> ImageService:
    """The reference image service, without a prepuller (nothing changes behind the test)."""
    return ImageService(config, build_image_source(config.images, http), client)
