"""The controller's identity in the API and daemon tests: its ServiceAccount's client.

tests/api/conftest.py and tests/daemon/conftest.py import these fixtures, so
in those suites the sandbox runs in RBAC mode and ``client`` (what every
controller component is built on) is the controller's ServiceAccount; test
setup uses ``admin``. See `least_privilege` for the audit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest
from least_privilege import CONTROLLER_ACCOUNT, CONTROLLER_NAMESPACE, USAGE, grant_controller
from sandbox_fixtures import NODES, STORAGE_CLASSES

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox, SandboxSettings

__all__ = ["client", "controller_token", "sandbox"]


@pytest.fixture
def sandbox(served_sandbox: Sandbox, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    """The module's sandbox in RBAC mode, fresh per test, the controller's RBAC applied."""
    settings = dataclasses.replace(sandbox_settings, rbac=True)
    served_sandbox.reset(settings, nodes=NODES, storage_classes=STORAGE_CLASSES)
    served_sandbox.usage = USAGE
    grant_controller(served_sandbox)
    yield served_sandbox
    served_sandbox.reset()


@pytest.fixture
def controller_token(sandbox: Sandbox) -> str:
    """A token of the controller's ServiceAccount (its namespace and RBAC are in place)."""
    return sandbox.request_token(CONTROLLER_NAMESPACE, CONTROLLER_ACCOUNT)


@pytest.fixture
async def client(sandbox: Sandbox, controller_token: str) -> AsyncIterator[KubernetesClient]:
    """The controller's client: the real client, as its ServiceAccount; quick retries."""
    assert sandbox.url is not None
    async with KubernetesClient.from_url(
        sandbox.url, token=controller_token, backoff=0.01, max_retry_after=0.05
    ) as kube:
        yield kube
