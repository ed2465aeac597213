"""The reference image service the API tests serve: standard.yaml, a respx registry, the sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from fake_registry import FakeRegistry
from reference_cases import INPUTS, reference_config

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.services.images import ImageService, build_image_source

REFERENCE_TAGS: dict[str, str] = json.loads((INPUTS / "registry" / "docker.json").read_text())
CREDENTIALS = INPUTS / "registry" / "docker-creds.json"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def registry(router: respx.MockRouter) -> FakeRegistry:
    return FakeRegistry(router, REFERENCE_TAGS)


@pytest.fixture
def config(request: pytest.FixtureRequest) -> Config:
    """standard.yaml with the reference credentials; ``images`` changes by indirect parameter."""
    config = reference_config("standard")
    changes = {"docker_credentials_path": CREDENTIALS, **getattr(request, "param", {})}
    return config.model_copy(update={"images": config.images.model_copy(update=changes)})


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
