"""The lab service against the sandbox: spawn, status, events, delete, failures, replicas.

The reference case (standard.yaml, rachel, the reference request, secrets and
discovery) must give upstream's events, status and objects; the rest follows
api.md 4.6, 4.7, 6 and 7 and PLAN-LABS.md (state in the cluster, two replicas).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fake_registry import FakeRegistry
from reference_cases import (
    EXPECTED,
    INPUTS,
    TOKEN,
    reference_discovery,
    reference_spec,
    reference_user,
)
from sandbox_fixtures import drop_refused_toleration_seconds

from nublado.api.errors import (
    DeleteFailedError,
    InsufficientQuotaError,
    InvalidLabSizeError,
    LabExistsError,
    OperationInProgressError,
    PermissionDeniedError,
    UnknownImageRequestError,
    UnknownUserError,
)
from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.metrics import Metrics
from nublado.models.lab import LabSpecification, LabStatus
from nublado.models.user import NotebookQuota, UserQuota
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService, SpawnEvent
from nublado.units import cpu_to_cores

NAMESPACE = "nublado"
LAB_NS = "userlabs-rachel"
USER = "rachel"

Factory = Callable[..., Awaitable[LabService]]


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(pod_grace_scale=0.0)


@pytest.fixture
async def images(
    config: Config, registry: FakeRegistry, client: KubernetesClient
) -> AsyncIterator[ImageService]:
    async with httpx.AsyncClient() as http:
        service = ImageService(config, build_image_source(config.images, http), client)
        await service.refresh()
        yield service


@pytest.fixture
async def controller_namespace(client: KubernetesClient) -> None:
    """The controller's namespace with the reference source Secrets."""
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    plain = json.loads((INPUTS / "secrets.json").read_text())
    for name, values in plain.items():
        secret: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        if ".dockerconfigjson" in values:
            secret["type"] = "kubernetes.io/dockerconfigjson"
        await client.create(secret)


@pytest.fixture
async def make_service(
    config: Config,
    client: KubernetesClient,
    images: ImageService,
    controller_namespace: None,
) -> AsyncIterator[Factory]:
    """Builds started LabServices (replicas) on the sandbox; stops them all at the end."""
    services: list[LabService] = []

    async def discovery() -> dict[str, Any]:
        return reference_discovery()

    async def factory(
        *, cfg: Config | None = None, identity: str | None = None, **options: Any
    ) -> LabService:
        service = LabService(
            cfg or config,
            client,
            images,
            Renderer(config.template_dirs),
            namespace=NAMESPACE,
            identity=identity,
            discovery=discovery,
            **options,
        )
        await service.start()
        services.append(service)
        return service

    yield factory
    for service in services:
        await service.stop()


@pytest.fixture
async def labs(make_service: Factory) -> LabService:
    return await make_service(identity="replica-a")


async def collect(labs: LabService, username: str = USER, timeout: float = 10) -> list[SpawnEvent]:
    """Every event of the user's stream until it ends."""
    result = []
    async with asyncio.timeout(timeout):
        async for event in await labs.events(username):
            result.append(event)
    return result


def as_wire(events: list[SpawnEvent]) -> list[dict[str, str]]:
    return [{"event": e.event, "data": e.data()} for e in events]


def messages(events: list[SpawnEvent]) -> list[tuple[str, str, int | None]]:
    return [(e.event, e.message, e.progress) for e in events]


def with_timeouts(config: Config, spawn: float | None = None, delete: float | None = None) -> Config:
    changes: dict[str, Any] = {}
    if spawn is not None:
        changes["spawn_timeout"] = timedelta(seconds=spawn)
    if delete is not None:
        changes["delete_timeout"] = timedelta(seconds=delete)
    return config.model_copy(update={"lab": config.lab.model_copy(update=changes)})


STARTED = ("info", "Starting lab creation for rachel", 1)
CREATED = ("info", "Created Kubernetes objects for user lab", 30)
COMPLETE = ("complete", "Lab Kubernetes pod started for rachel", None)
FAILED = ("failed", "Lab spawn failed", None)
DELETED = [
    ("info", "Shutting down Kubernetes pod", 25),
    ("info", "Deleting user namespace", 62),
    ("info", "Lab for rachel deleted", 100),
]


# Reference spawn


def _normalise_cluster(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects read back from the sandbox, without what only a server adds (README 3)."""
    result = []
    for obj in objects:
        if obj["kind"] == "Event":
            continue
        obj = json.loads(json.dumps(obj))
        metadata = obj["metadata"]
        for key in ("uid", "creationTimestamp", "managedFields", "resourceVersion", "generation"):
            metadata.pop(key, None)
        if obj["kind"] == "Pod":
            obj["status"] = {"phase": obj["status"]["phase"]}
        else:
            obj.pop("status", None)
        if obj["kind"] == "Namespace":
            obj.pop("spec", None)
        result.append(obj)
    return sorted(result, key=lambda o: (o["kind"], o["metadata"]["name"]))


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


_SERVER_METADATA = ("kubernetes.io/metadata.name", "pv.kubernetes.io/", "volume.")
"""Labels and annotations the API server or its controllers add (the namespace's name label,
the volume binder's PVC annotations)."""


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """What differs, ``"<ANY>"`` matching anything.

    Fields the API server fills in (defaults such as ``dnsPolicy`` or a
    Service's ``clusterIP``) are allowed on the actual side, except in labels
    and annotations, which must be exactly ours; CPU quantities are compared
    as numbers (the server writes ``1.0`` as ``1`` and ``0.25`` as ``250m``).
    """
    if expected == "<ANY>":
        return []
    if isinstance(expected, dict) and isinstance(actual, dict):
        exact = path.endswith((".labels", ".annotations"))
        problems = []
        for key in sorted(expected.keys() | actual.keys()):
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            elif key not in expected:
                if exact and not key.startswith(_SERVER_METADATA):
                    problems.append(f"{path}.{key}: unexpected {actual[key]!r}")
            else:
                problems.extend(_differences(expected[key], actual[key], f"{path}.{key}"))
        return problems
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            problem
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for problem in _differences(e, a, f"{path}[{i}]")
        ]
    if isinstance(expected, str) and isinstance(actual, str) and path.endswith("cpu"):
        if cpu_to_cores(expected) == cpu_to_cores(actual):
            return []
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]


async def test_reference_spawn(labs: LabService, sandbox: Sandbox) -> None:
    # The record write after the objects is held back so the pod is Running by the time
    # the spawn looks at it: a pod that starts at once, as in upstream's fixture.
    sandbox.add_latency("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/*", 0.1)
    await labs.create(reference_user(), TOKEN, reference_spec())
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.PENDING
    assert state.internal_url is None

    events = await collect(labs)
    expected = json.loads((EXPECTED / "spawn" / "events.json").read_text())
    assert as_wire(events) == expected
    state = labs.state(USER)
    assert state is not None
    assert state.to_json() == json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
    assert labs.running() == [USER]

    expected_objects = json.loads((EXPECTED / "objects" / "lab.json").read_text())
    drop_refused_toleration_seconds(expected_objects)
    expected_objects = sorted(
        (_drop_nulls(o) for o in expected_objects),
        key=lambda o: (o["kind"], o["metadata"]["name"]),
    )
    namespace = sandbox.get("Namespace", LAB_NS)
    assert namespace is not None
    actual = _drop_nulls(_normalise_cluster([namespace, *sandbox.objects(LAB_NS)]))
    names = [(o["kind"], o["metadata"]["name"]) for o in actual]
    assert names == [(o["kind"], o["metadata"]["name"]) for o in expected_objects]
    problems = []
    for e, a in zip(expected_objects, actual, strict=True):
        problems.extend(f"{a['kind']}/{a['metadata']['name']}{p}" for p in _differences(e, a))
    assert problems == [], "\n".join(problems)
    secret = sandbox.get("Secret", "rachel-nb", LAB_NS)
    assert secret is not None
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN
