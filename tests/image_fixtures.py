"""The reference image inputs as fixtures: standard.yaml, a respx registry of the reference tags.

Shared by the image service, prepuller and API tests (registered in
tests/conftest.py); a module may still define its own fixture of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import respx
from fake_registry import FakeRegistry
from reference_cases import INPUTS, reference_config

from nublado.config import Config

REFERENCE_TAGS: dict[str, str] = json.loads((INPUTS / "registry" / "docker.json").read_text())
CREDENTIALS = INPUTS / "registry" / "docker-creds.json"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """respx for every httpx request of the test (the kube client is not httpx)."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def registry(router: respx.MockRouter) -> FakeRegistry:
    """The reference registry (inputs/registry/docker.json) at lighthouse.ceres."""
    return FakeRegistry(router, REFERENCE_TAGS)


@pytest.fixture
def config(request: pytest.FixtureRequest) -> Config:
    """standard.yaml with the reference credentials; ``images`` changes by indirect parameter."""
    config = reference_config("standard")
    changes = {"docker_credentials_path": CREDENTIALS, **getattr(request, "param", {})}
    return config.model_copy(update={"images": config.images.model_copy(update=changes)})
