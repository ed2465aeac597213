"""Sandbox fixtures for the client and sandbox tests: a served sandbox, a client, manifests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nublado.kube.client import KubernetesClient
from nublado.models.metadata import ControllerMetadata
from nublado.sandbox.server import Sandbox, SandboxSettings

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The reference nodes (upstream's) with what the reference lab's configuration
# asks of a cluster, which upstream's mock never checked: a zone label for its
# required node affinity, a taint it tolerates, and its PVCs' storage class.
NODES = EXAMPLES / "nodes.json"
STORAGE_CLASSES = EXAMPLES / "storage-classes.json"

# Apply order of a lab set: namespace first, pod last.
_ORDER = [
    "Namespace",
    "PersistentVolumeClaim",
    "ConfigMap",
    "Secret",
    "ResourceQuota",
    "NetworkPolicy",
    "Service",
    "ServiceAccount",
    "GafaelfawrIngress",
    "Job",
    "Pod",
]


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A manifest as a renderer would produce it: no status, no server metadata."""
    manifest = {k: v for k, v in obj.items() if k != "status"}
    metadata = {
        k: v
        for k, v in manifest["metadata"].items()
        if k not in ("resourceVersion", "managedFields", "uid", "creationTimestamp")
    }
    manifest["metadata"] = metadata
    return manifest


def drop_refused_toleration_seconds(value: Any) -> None:
    """Drop ``tolerationSeconds`` from tolerations whose effect is not NoExecute.

    A fixed upstream bug (DECISIONS: an object Kubernetes would reject):
    standard.yaml's NoSchedule toleration sets it, kube-apiserver refuses a
    pod with it, and our renderer leaves it out; upstream's reference
    objects keep it, so tests drop it from them.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "tolerations" and isinstance(item, list):
                for toleration in item:
                    if toleration.get("effect") != "NoExecute":
                        toleration.pop("tolerationSeconds", None)
            else:
                drop_refused_toleration_seconds(item)
    elif isinstance(value, list):
        for item in value:
            drop_refused_toleration_seconds(item)


def deployable(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Manifests as a real API server accepts them, changed in place where upstream's are not.

    Upstream's reference objects are kept verbatim for the parity tests; three
    of their values a cluster refuses:

    - "<ANY>" stands for a value the renderer computes (the user's token); a
      Secret needs base64 there, as the renderer's output has;
    - the GafaelfawrIngress CRD requires an https base URL (the reference
      configuration serves Gafaelfawr on local http);
    - the reference configuration's toleration sets ``tolerationSeconds`` with
      effect NoSchedule, which pod validation refuses (only NoExecute may).
    """
    for manifest in manifests:
        data = manifest.get("data") if manifest["kind"] == "Secret" else None
        for key, value in (data or {}).items():
            if value == "<ANY>":
                data[key] = "dG9rZW4="
        config = manifest.get("config") if manifest["kind"] == "GafaelfawrIngress" else None
        if config and not str(config.get("baseUrl", "https://")).startswith("https://"):
            config["baseUrl"] = "https://data.example.com"
    drop_refused_toleration_seconds(manifests)
    return manifests


def reference_manifests(name: str) -> list[dict[str, Any]]:
    """The reference object set ``name`` (lab, fileserver...) as deployable manifests, in order."""
    objects = json.loads((REFERENCE / "expected" / "objects" / f"{name}.json").read_text())
    manifests = deployable([strip_server_fields(o) for o in objects if o["kind"] in _ORDER])
    return sorted(manifests, key=lambda m: _ORDER.index(m["kind"]))


@pytest.fixture
def lab_manifests() -> list[dict[str, Any]]:
    """The reference lab set (namespace userlabs-rachel) as manifests."""
    return reference_manifests("lab")


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    """Sandbox behaviour; override in a test module to change delays."""
    return SandboxSettings()


@pytest.fixture(scope="module")
def served_sandbox() -> Iterator[Sandbox]:
    """One sandbox server per test module: starting and stopping uvicorn costs ~0.25 s."""
    box = Sandbox()
    with box.serve():
        yield box


@pytest.fixture
def sandbox(served_sandbox: Sandbox, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    """A sandbox with the reference nodes and storage classes, on 127.0.0.1, fresh per test.

    The module's server is kept; its cluster, faults and recorded requests are
    reset before and after the test.
    """
    served_sandbox.reset(sandbox_settings, nodes=NODES, storage_classes=STORAGE_CLASSES)
    yield served_sandbox
    served_sandbox.reset()


@pytest.fixture
def http(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A plain HTTP client on the served sandbox, with the test module's ``NS`` created.

    The namespace is ``p`` in a module that names none.
    """
    assert sandbox.url is not None
    namespace = getattr(request.module, "NS", "p")
    with httpx.Client(base_url=sandbox.url, timeout=60) as client:
        response = client.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
        assert response.status_code == 201
        yield client


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[KubernetesClient]:
    """The real client, over HTTP, on the sandbox; quick retries."""
    assert sandbox.url is not None
    async with KubernetesClient.from_url(sandbox.url, backoff=0.01, max_retry_after=0.05) as kube:
        yield kube


@pytest.fixture
async def admin(sandbox: Sandbox) -> AsyncIterator[KubernetesClient]:
    """A client for test setup: the sandbox's admin (system:masters) when it runs RBAC.

    Where the controller runs as its ServiceAccount (tests/api, tests/daemon),
    ``client`` is the controller's; what a test plants or inspects goes
    through this one.
    """
    assert sandbox.url is not None
    async with KubernetesClient.from_url(
        sandbox.url, token=sandbox.admin_token, backoff=0.01, max_retry_after=0.05
    ) as kube:
        yield kube


async def ensure_namespace(kube: KubernetesClient, name: str) -> None:
    """Create a namespace unless it exists (the controller's exists where it has RBAC)."""
    if await kube.find("Namespace", name) is None:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture
async def controller_metadata(admin: KubernetesClient) -> ControllerMetadata:
    """The controller's namespace and pod (owner of prepull pods), created in the sandbox.

    The garbage collector removes a pod whose owner does not exist, so the
    owner is real; its uid is the sandbox's, not the reference file's.
    """
    reference = ControllerMetadata.from_directory(REFERENCE / "inputs" / "metadata")
    await ensure_namespace(admin, reference.namespace)
    pod = await admin.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": reference.name, "namespace": reference.namespace},
            "spec": {
                "containers": [{"name": "controller", "image": "ghcr.io/lsst-sqre/nublado:11.1.1"}]
            },
        }
    )
    return ControllerMetadata(reference.name, reference.namespace, pod["metadata"]["uid"])
