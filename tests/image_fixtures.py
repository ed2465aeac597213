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
from nublado.sandbox.server import Sandbox

REFERENCE_TAGS: dict[str, str] = json.loads((INPUTS / "registry" / "docker.json").read_text())
CREDENTIALS = INPUTS / "registry" / "docker-creds.json"
PREPULL_NAMESPACE = "nublado"
"""The controller's namespace in the reference inputs, where prepull pods go."""
PREPULL_SELECTOR = "nublado.lsst.io/category=prepuller"


def prepull_pods(sandbox: Sandbox) -> list[str]:
    """Names of the prepull pods that exist now."""
    pods = sandbox.objects(PREPULL_NAMESPACE, "Pod", label_selector=PREPULL_SELECTOR)
    return [p["metadata"]["name"] for p in pods]


def pod_posts(sandbox: Sandbox) -> int:
    """How many pods were created in the controller's namespace (the sandbox's request log)."""
    target = f"/api/v1/namespaces/{PREPULL_NAMESPACE}/pods"
    return sum(1 for r in sandbox.requests if r.method == "POST" and r.target.startswith(target))


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
