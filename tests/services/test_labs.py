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
from lab_api_support import RecordingAlerts, reference_lab_differences
from lab_api_support import controller_namespace as create_controller_namespace
from prometheus_client import generate_latest
from reference_cases import (
    EXPECTED,
    INPUTS,
    TOKEN,
    reference_discovery,
    reference_spec,
    reference_user,
)

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
from nublado.kube.errors import KubernetesError
from nublado.metrics import Metrics
from nublado.models.lab import LabSpecification, LabStatus
from nublado.models.user import NotebookQuota, UserQuota
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService, SpawnEvent, _apply_steps, _Waker
from nublado.services.labstate import OperationRecord

NAMESPACE = "nublado"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/*"
LAB_NS = "userlabs-rachel"
USER = "rachel"

Factory = Callable[..., Awaitable[LabService]]


@pytest.fixture
def sandbox_settings(request: pytest.FixtureRequest) -> SandboxSettings:
    """Pods start at once and go at once, unless a test asks otherwise (indirect parameter)."""
    settings: SandboxSettings = getattr(request, "param", SandboxSettings(pod_grace_scale=0.0))
    return settings


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
    await create_controller_namespace(client)


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


def with_timeouts(
    config: Config, spawn: float | None = None, delete: float | None = None
) -> Config:
    changes: dict[str, Any] = {}
    if spawn is not None:
        changes["spawn_timeout"] = timedelta(seconds=spawn)
    if delete is not None:
        changes["delete_timeout"] = timedelta(seconds=delete)
    return config.model_copy(update={"lab": config.lab.model_copy(update=changes)})


LAB_STATUS = json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
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


async def test_reference_spawn(labs: LabService, sandbox: Sandbox) -> None:
    # The record write after the objects is held back so the pod is Running by the time
    # the spawn looks at it: a pod that starts at once, as in upstream's fixture.
    sandbox.add_latency(0.1, "PUT", LEASES)
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

    problems = reference_lab_differences(sandbox, LAB_NS)
    assert problems == [], "\n".join(problems)
    secret = sandbox.get("Secret", "rachel-nb", LAB_NS)
    assert secret is not None
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN


async def test_source_secrets_come_from_the_watch_and_fresh_ones_from_the_cluster(
    labs: LabService, sandbox: Sandbox, client: KubernetesClient
) -> None:
    """A spawn reads its source Secrets from the service's cache, not with a request.

    A Secret the cache lacks (just recreated, its watch event not yet handled)
    is read from the cluster, so the lab gets the new value, never a stale one.
    """
    mark = len(sandbox.requests)
    await labs.create(reference_user(), TOKEN, reference_spec())
    assert messages(await collect(labs))[-1] == COMPLETE
    sent = [r.target for r in sandbox.requests[mark:]]
    reads = [t for t in sent if t.startswith(f"/api/v1/namespaces/{NAMESPACE}/secrets")]
    assert [t for t in reads if "watch=true" not in t] == []
    await labs.delete(USER)

    sandbox.delete("Secret", "extra-secret", NAMESPACE)
    await wait_until(lambda: "extra-secret" not in labs._sources)
    labs._store_spawn_input = lambda *args, **kwargs: None  # type: ignore[method-assign]
    await client.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "extra-secret", "namespace": NAMESPACE},
            "data": {"db-password": base64.b64encode(b"rotated").decode()},
        }
    )
    await labs.create(reference_user(), TOKEN, reference_spec())
    assert messages(await collect(labs))[-1] == COMPLETE
    secret = sandbox.get("Secret", "rachel-nb", LAB_NS)
    assert secret is not None
    assert base64.b64decode(secret["data"]["db-password"]) == b"rotated"


async def test_while_the_secret_watch_is_down_spawns_read_the_secrets_fresh(
    labs: LabService, sandbox: Sandbox, client: KubernetesClient
) -> None:
    """A Secret changed while its watch is down (and LISTs fail) is not copied stale.

    Until a LIST succeeds again the cache may miss changes, so a spawn reads
    each Secret from the cluster, as it would without a cache.
    """
    sandbox.inject_fault("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets", count=None)
    sandbox.cut_watches()
    await wait_until(lambda: not labs._sources_current)
    await client.apply_one(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "extra-secret", "namespace": NAMESPACE},
            "data": {"db-password": base64.b64encode(b"changed").decode()},
        }
    )
    await labs.create(reference_user(), TOKEN, reference_spec())
    assert messages(await collect(labs))[-1] == COMPLETE
    secret = sandbox.get("Secret", "rachel-nb", LAB_NS)
    assert secret is not None
    assert base64.b64decode(secret["data"]["db-password"]) == b"changed"

    sandbox.clear_faults()
    await wait_until(lambda: labs._sources_current, timeout=10)


async def test_a_start_that_fails_leaves_no_watch_running(
    config: Config,
    client: KubernetesClient,
    images: ImageService,
    sandbox: Sandbox,
    controller_namespace: None,
) -> None:
    """Without the right to list ServiceAccounts cluster-wide, start fails and cleans up."""
    sandbox.inject_fault("GET", "/api/v1/serviceaccounts", status=403, count=None)
    labs = LabService(config, client, images, Renderer(config.template_dirs), namespace=NAMESPACE)
    with pytest.raises(KubernetesError):
        await labs.start()
    assert labs._watches == []
    await sandbox.wait_for_async(lambda: sandbox.watch_count() == 0)


async def test_spawn_waits_for_a_service_account_the_cache_cannot_vouch_for(
    labs: LabService, sandbox: Sandbox
) -> None:
    """A cached ``default`` ServiceAccount saves the wait only if newer than the namespace.

    One recorded before the namespace's current version may belong to a deleted
    namespace of the same name, so the spawn reads the cluster as before.
    """
    mark = len(sandbox.requests)
    await labs.create(reference_user(), TOKEN, reference_spec())
    assert messages(await collect(labs))[-1] == COMPLETE
    assert not [
        r
        for r in sandbox.requests[mark:]
        if "/serviceaccounts" in r.target and "watch" not in r.target
    ]
    await labs.delete(USER)
    mark = len(sandbox.requests)

    labs._store_spawn_input = lambda *args, **kwargs: None  # type: ignore[method-assign]
    labs._accounts[LAB_NS] = 0  # older than any namespace
    await labs.create(reference_user(), TOKEN, reference_spec())
    assert messages(await collect(labs))[-1] == COMPLETE
    assert [r for r in sandbox.requests[mark:] if f"{LAB_NS}/serviceaccounts" in r.target]


# Helpers for the slower cases

SLOW = SandboxSettings(pod_grace_scale=0.0, schedule_delay=60.0)
"""Pods stay Pending (unscheduled, no Events) until the test moves them on."""


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
    return value


def objects_created(labs: LabService) -> bool:
    state = labs.state(USER)
    return state is not None and state.internal_url is not None


def pod_event(sandbox: Sandbox, message: str, index: int) -> None:
    pod = sandbox.get("Pod", "rachel-nb", LAB_NS)
    assert pod is not None
    sandbox.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"rachel-nb.test{index}", "namespace": LAB_NS},
            "involvedObject": {
                "kind": "Pod",
                "namespace": LAB_NS,
                "name": "rachel-nb",
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
            },
            "reason": "Test",
            "message": message,
            "type": "Normal",
            "source": {"component": "test"},
        }
    )


def run_pod(sandbox: Sandbox) -> None:
    """Mark the pod Running, as the kubelet would (a status write of the cluster itself)."""

    def mutate(pod: dict[str, Any]) -> None:
        status = pod.setdefault("status", {})
        status["phase"] = "Running"
        status["conditions"] = [{"type": "PodScheduled", "status": "True"}]

    with sandbox.cluster.store.lock:
        assert sandbox.cluster.update_internal("Pod", LAB_NS, "rachel-nb", mutate, "kubelet")


def recorded_events(sandbox: Sandbox) -> str:
    """The events annotation of rachel's operation record, as JSON text."""
    lease = sandbox.get("Lease", "lab-rachel", NAMESPACE) or {}
    return str(lease.get("metadata", {}).get("annotations", {}).get("nublado.lsst.io/events"))


def user_with(**changes: Any) -> Any:
    return reference_user(**changes)


def spec_with(**options: Any) -> LabSpecification:
    data = json.loads((INPUTS / "lab-specification.json").read_text())
    data["options"].update(options)
    return LabSpecification.model_validate(data)


# Validation (api.md 4.6 steps 2-7): errors, and no record left behind


@pytest.mark.parametrize(
    ("user", "spec", "error", "body"),
    [
        (
            {"quota": UserQuota(notebook=NotebookQuota(cpu=9, memory=27, spawn=False))},
            {},
            PermissionDeniedError,
            {"msg": "Spawning a notebook is not permitted", "type": "permission_denied"},
        ),
        (
            {"uid": None},
            {},
            PermissionDeniedError,
            {"msg": "Must have a UID to spawn labs", "type": "permission_denied"},
        ),
        (
            {"gid": 0},
            {},
            PermissionDeniedError,
            {"msg": "Must have a GID to spawn labs", "type": "permission_denied"},
        ),
        (
            {},
            {"image_list": None, "image_tag": "w_2099_01"},
            UnknownImageRequestError,
            {
                "msg": 'Docker tag "w_2099_01" not found',
                "type": "unknown_image",
                "loc": ["body", "options", "image_tag"],
            },
        ),
        (
            {},
            {"size": "colossal"},
            InvalidLabSizeError,
            {
                "msg": 'Invalid lab size "colossal"',
                "type": "invalid_lab_size",
                "loc": ["body", "options", "size"],
            },
        ),
        (
            {"quota": UserQuota(notebook=NotebookQuota(cpu=0.5, memory=27))},
            {},
            InsufficientQuotaError,
            {
                "msg": "Insufficient quota to spawn requested lab",
                "type": "insufficient_quota",
                "loc": ["body", "options", "size"],
            },
        ),
    ],
)
async def test_create_refused(
    labs: LabService,
    sandbox: Sandbox,
    user: dict[str, Any],
    spec: dict[str, Any],
    error: type[Exception],
    body: dict[str, Any],
) -> None:
    with pytest.raises(error) as caught:
        await labs.create(user_with(**user), TOKEN, spec_with(**spec))
    assert caught.value.detail() == body  # type: ignore[attr-defined]
    assert labs.state(USER) is None
    with pytest.raises(UnknownUserError):
        await labs.events(USER)
    assert sandbox.objects(NAMESPACE, "Lease") == []


# Pod progress and failures


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_delayed_spawn_reports_pod_events(labs: LabService, sandbox: Sandbox) -> None:
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    listeners = [asyncio.create_task(collect(labs)) for _ in range(3)]
    pod_event(sandbox, "Autoscaling cluster for reasons", 1)
    await wait_until(lambda: "Autoscaling" in recorded_events(sandbox))
    pod_event(sandbox, "Mounting all the things", 2)
    await wait_until(lambda: "Mounting" in recorded_events(sandbox))
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.PENDING
    assert state.internal_url == "http://lab.userlabs-rachel:8888/nb/user/rachel/"
    run_pod(sandbox)
    expected = [
        STARTED,
        CREATED,
        ("info", "Autoscaling cluster for reasons", 35),
        ("info", "Mounting all the things", 48),
        COMPLETE,
    ]
    for listener in listeners:
        assert messages(await listener) == expected
    assert messages(await collect(labs)) == expected
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.RUNNING


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_stream_sees_a_change_made_while_it_handed_out_an_event(
    labs: LabService, sandbox: Sandbox
) -> None:
    """A change written while a stream waits at its ``yield`` wakes it: no lost wake-up.

    Behind a real server the send of one event can suspend the stream between its
    read of the record and its wait for the next change. A change written then must
    still end that wait at once, not at the next poll (a third of the lease duration).
    """
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    stream = await labs.events(USER)
    first = await anext(stream)  # it has read the record (started, created) and waits here
    run_pod(sandbox)
    await wait_until(lambda: labs._ops[USER].done.is_set())  # complete written, waiters woken
    async with asyncio.timeout(2):  # the poll would answer after 5 s
        rest = [event async for event in stream]
    assert messages([first, *rest]) == [STARTED, CREATED, COMPLETE]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("ErrImagePull", "ErrImagePull"),
        ("ImagePullBackOff", "ImagePullBackOff"),
        ("CrashLoopBackOff", "CrashLoopBackOff"),
        ("Failed", "terminated with phase Failed"),
    ],
)
async def test_pod_failure_fails_spawn_at_once(
    labs: LabService, sandbox: Sandbox, failure: str, reason: str
) -> None:
    sandbox.set_pod_failure(failure, name="rachel-nb")
    metrics = Metrics()
    labs._metrics = metrics
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    assert messages(events[:2]) == [STARTED, CREATED]
    assert events[-2].event == "error"
    assert reason in events[-2].message
    assert events[-2].message.startswith("Pod userlabs-rachel/rachel-nb")
    assert messages(events[-1:]) == [FAILED]
    assert all(e.event == "info" for e in events[2:-2])
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED
    assert state.internal_url == "http://lab.userlabs-rachel:8888/nb/user/rachel/"
    assert sandbox.get("Namespace", LAB_NS) is not None  # left for DELETE
    assert metrics.spawns.labels(outcome="failure")._value.get() == 1

    await labs.delete(USER)
    assert labs.state(USER) is None
    assert sandbox.get("Namespace", LAB_NS) is None


async def test_unschedulable_pod_fails_spawn(labs: LabService, sandbox: Sandbox) -> None:
    for node in sandbox.objects(None, "Node"):
        sandbox.delete("Node", node["metadata"]["name"])
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    assert events[-2].event == "error"
    assert events[-2].message.startswith("Pod userlabs-rachel/rachel-nb cannot be scheduled")
    assert messages(events[-1:]) == [FAILED]


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_spawn_timeout(make_service: Factory, config: Config, sandbox: Sandbox) -> None:
    labs = await make_service(cfg=with_timeouts(config, spawn=0.5))
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    assert messages(events) == [
        STARTED,
        CREATED,
        ("error", "Lab spawn timed out after 0.5", None),
        FAILED,
    ]
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED


async def test_kubernetes_error_during_spawn(labs: LabService, sandbox: Sandbox) -> None:
    alerts = RecordingAlerts()
    labs._alerts = alerts
    sandbox.inject_fault(
        "PATCH",
        f"/api/v1/namespaces/{LAB_NS}/secrets/rachel-nb",
        status=400,
        message="Something bad happened",
    )
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    assert messages(events) == [
        STARTED,
        (
            "error",
            "Error creating object (Secret userlabs-rachel/rachel-nb, status 400):"
            " Something bad happened",
            None,
        ),
        FAILED,
    ]
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED
    assert state.internal_url is None
    assert sandbox.get("Namespace", LAB_NS) is not None
    await wait_until(lambda: alerts.reports)
    assert [(s, u) for s, u, _ in alerts.reports] == [("Lab spawn failed", USER)]
    await labs.delete(USER)
    assert labs.state(USER) is None
    assert messages(await collect(labs)) == DELETED


def lab_applies(sandbox: Sandbox) -> list[str]:
    """The kind/name of each lab object applied, in the order the sandbox got them."""
    prefix = "/api/v1/namespaces/"
    result = []
    for request in sandbox.requests:
        path = request.target.partition("?")[0]
        if request.method != "PATCH":
            continue
        if path == f"/api/v1/namespaces/{LAB_NS}":
            result.append("namespaces")
        elif path.startswith(f"{prefix}{LAB_NS}/") or f"/namespaces/{LAB_NS}/" in path:
            kind, name = path.rsplit("/", 2)[-2:]
            result.append(f"{kind}/{name}")
    return result


async def test_objects_the_pod_uses_are_applied_together(
    labs: LabService, sandbox: Sandbox
) -> None:
    """Upstream's order where admission depends on it; the objects between at once.

    The namespace first; the PVCs, ConfigMaps and Secrets together; the quota
    alone (it counts what comes after it); the NetworkPolicy and Service
    together; the pod last.
    """
    # Five objects held 0.4 s each: 2 s or more one at a time, about 0.4 s at once.
    sandbox.add_latency(0.4, "PATCH", f"/api/v1/namespaces/{LAB_NS}/configmaps/*")
    sandbox.add_latency(0.4, "PATCH", f"/api/v1/namespaces/{LAB_NS}/secrets/*")
    started = asyncio.get_running_loop().time()
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    took = asyncio.get_running_loop().time() - started
    assert messages(events)[-1] == COMPLETE
    assert took < 1.5, f"the spawn took {took:.2f} s"
    applied = lab_applies(sandbox)
    steps = [
        {"namespaces"},
        {
            "persistentvolumeclaims/rachel-nb-pvc-scratch",
            "persistentvolumeclaims/rachel-nb-pvc-temporary",
            "configmaps/rachel-nb-env",
            "configmaps/rachel-nb-nss",
            "configmaps/rachel-nb-files",
            "secrets/rachel-nb",
            "secrets/pull-secret",
        },
        {"resourcequotas/rachel-nb"},
        {"networkpolicies/rachel-nb", "services/lab"},
        {"pods/rachel-nb"},
    ]
    assert len(applied) == sum(len(step) for step in steps)
    for step in steps:
        assert set(applied[: len(step)]) == step
        applied = applied[len(step) :]


def test_objects_a_site_adds_keep_their_place() -> None:
    """A kind the lab set does not know is applied alone, in the set's order."""

    def manifest(kind: str, name: str) -> dict[str, Any]:
        return {"kind": kind, "metadata": {"name": name}}

    names = [
        ("Namespace", "ns"),
        ("ConfigMap", "a"),
        ("Secret", "b"),
        ("ServiceAccount", "lab"),
        ("Secret", "token"),
        ("Role", "r"),
        ("RoleBinding", "rb"),
        ("Service", "lab"),
        ("NetworkPolicy", "np"),
        ("Pod", "p"),
    ]
    steps = _apply_steps([manifest(kind, name) for kind, name in names])
    assert [[m["metadata"]["name"] for m in step] for step in steps] == [
        ["ns"],
        ["a", "b"],
        ["lab"],
        ["token"],
        ["r"],
        ["rb"],
        ["lab", "np"],
        ["p"],
    ]


async def test_the_first_failed_object_in_the_set_is_reported_and_no_pod_made(
    labs: LabService, sandbox: Sandbox
) -> None:
    """Objects applied together fail as they did one by one: the earliest in the set wins."""
    sandbox.inject_fault(
        "PATCH",
        f"/api/v1/namespaces/{LAB_NS}/secrets/rachel-nb",
        status=400,
        message="Something bad happened",
    )
    # Before the Secret in the set's order, but its refusal comes 0.5 s later.
    sandbox.inject_fault(
        "PATCH",
        f"/api/v1/namespaces/{LAB_NS}/configmaps/rachel-nb-nss",
        status=422,
        message="Something else happened",
        delay=0.5,
    )
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    assert messages(events)[1:] == [
        (
            "error",
            "Error creating object (ConfigMap userlabs-rachel/rachel-nb-nss, status 422):"
            " Something else happened",
            None,
        ),
        FAILED,
    ]
    assert "pods/rachel-nb" not in lab_applies(sandbox)
    assert sandbox.get("Pod", "rachel-nb", LAB_NS) is None


async def test_missing_secret_fails_spawn(labs: LabService, sandbox: Sandbox) -> None:
    sandbox.delete("Secret", "extra-secret", NAMESPACE)
    await wait_until(lambda: "extra-secret" not in labs._sources)  # the watch saw it go
    await labs.create(reference_user(), TOKEN, reference_spec())
    events = await collect(labs)
    assert messages(events) == [
        STARTED,
        ("error", "Secret nublado/extra-secret does not exist", None),
        FAILED,
    ]


# Delete


async def test_delete_running_lab(labs: LabService, sandbox: Sandbox) -> None:
    with pytest.raises(UnknownUserError) as caught:
        await labs.delete(USER)
    assert caught.value.detail() == {
        "msg": "Unknown user rachel",
        "type": "unknown_user",
        "loc": ["path", "username"],
    }
    await labs.create(reference_user(), TOKEN, reference_spec())
    await collect(labs)
    with pytest.raises(LabExistsError):
        await labs.create(reference_user(), TOKEN, reference_spec())

    await asyncio.gather(labs.delete(USER), labs.delete(USER), labs.delete(USER))
    assert labs.state(USER) is None
    assert labs.running() == []
    assert sandbox.get("Namespace", LAB_NS) is None
    assert messages(await collect(labs)) == DELETED
    with pytest.raises(UnknownUserError):
        await labs.delete(USER)
    deletes = [
        r
        for r in sandbox.requests
        if r.method == "DELETE" and r.target.split("?")[0].endswith(f"/{LAB_NS}")
    ]
    assert len(deletes) == 1


async def test_delete_failure(make_service: Factory, config: Config, sandbox: Sandbox) -> None:
    labs = await make_service(cfg=with_timeouts(config, delete=5))
    await labs.create(reference_user(), TOKEN, reference_spec())
    await collect(labs)
    sandbox.inject_fault("DELETE", f"/api/v1/namespaces/{LAB_NS}", status=500, count=None)
    with pytest.raises(DeleteFailedError) as caught:
        await labs.delete(USER)
    assert caught.value.detail() == {"msg": "Failed to delete lab", "type": "delete_failed"}
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED
    assert state.internal_url is None
    events = await collect(labs)
    assert messages(events[:2]) == DELETED[:2]
    assert events[2].event == "error"
    assert messages(events[3:]) == [("failed", "Lab delete failed", None)]

    sandbox.clear_faults()
    await labs.delete(USER)
    assert labs.state(USER) is None


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_delete_during_spawn(labs: LabService, sandbox: Sandbox) -> None:
    await labs.create(reference_user(), TOKEN, reference_spec())
    with pytest.raises(OperationInProgressError) as caught:
        await labs.create(reference_user(), TOKEN, reference_spec())
    assert caught.value.detail() == {
        "msg": "Conflicting operation for rachel already in progress",
        "type": "operation_in_progress",
    }
    await wait_until(lambda: objects_created(labs))
    listener = asyncio.create_task(collect(labs))
    await asyncio.sleep(0.05)
    await labs.delete(USER)
    assert messages(await listener) == [STARTED, CREATED, ("failed", "Operation cancelled", None)]
    assert labs.state(USER) is None
    assert sandbox.get("Namespace", LAB_NS) is None
    assert messages(await collect(labs)) == DELETED


async def test_recreate_after_failed_pod(labs: LabService, sandbox: Sandbox) -> None:
    sandbox.set_pod_failure("Failed", name="rachel-nb")
    await labs.create(reference_user(), TOKEN, reference_spec())
    await collect(labs)
    sandbox.clear_pod_failures()
    sandbox.add_latency(0.1, "PUT", LEASES)

    await labs.create(reference_user(), TOKEN, reference_spec())
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.PENDING
    assert messages(await collect(labs)) == [
        STARTED,
        ("info", "Deleting existing failed lab for rachel", 2),
        ("info", "Shutting down Kubernetes pod", 5),
        ("info", "Deleting user namespace", 12),
        ("info", "Lab for rachel deleted", 20),
        CREATED,
        COMPLETE,
    ]
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.RUNNING


# Replicas, restarts, adoption


async def test_second_replica_sees_status_and_events(
    labs: LabService, make_service: Factory, sandbox: Sandbox
) -> None:
    other = await make_service(identity="replica-b")
    sandbox.add_latency(0.1, "PUT", LEASES)
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: other.state(USER) is not None)
    events = await collect(other)
    assert as_wire(events) == json.loads((EXPECTED / "spawn" / "events.json").read_text())
    await wait_until(lambda: other.running() == [USER])
    assert other.state(USER) == labs.state(USER)
    with pytest.raises(LabExistsError):
        await other.create(reference_user(), TOKEN, reference_spec())


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_two_replicas_create_at_once(
    labs: LabService, make_service: Factory, sandbox: Sandbox
) -> None:
    other = await make_service(identity="replica-b")
    results = await asyncio.gather(
        labs.create(reference_user(), TOKEN, reference_spec()),
        other.create(reference_user(), TOKEN, reference_spec()),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "OperationInProgressError"]


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_delete_on_other_replica_cancels_spawn(
    labs: LabService, make_service: Factory, sandbox: Sandbox
) -> None:
    other = await make_service(identity="replica-b")
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    await wait_until(lambda: other.state(USER) is not None)
    listener = asyncio.create_task(collect(other))
    await asyncio.sleep(0.05)
    await other.delete(USER)
    assert messages(await listener) == [STARTED, CREATED, ("failed", "Operation cancelled", None)]
    assert other.state(USER) is None
    await wait_until(lambda: labs.state(USER) is None)
    assert sandbox.get("Namespace", LAB_NS) is None
    assert messages(await collect(other)) == DELETED


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_restart_hands_spawn_over(make_service: Factory, sandbox: Sandbox) -> None:
    first = await make_service(identity="replica-a")
    await first.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(first))
    await first.stop()
    lease = sandbox.get("Lease", "lab-rachel", NAMESPACE)
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]
    assert lease["metadata"]["annotations"]["nublado.lsst.io/result"] == ""

    second = await make_service(identity="replica-b")
    state = second.state(USER)
    assert state is not None
    assert state.status is LabStatus.PENDING
    listener = asyncio.create_task(collect(second))
    await asyncio.sleep(0.05)
    run_pod(sandbox)
    assert messages(await listener) == [
        ("info", "Monitoring in-progress lab creation for rachel", 1),
        COMPLETE,
    ]
    await wait_until(lambda: second.running() == [USER])


async def test_adopts_lab_present_before_start(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    await client.apply(lab_manifests)
    await wait_until(
        lambda: (
            (sandbox.get("Pod", "rachel-nb", LAB_NS) or {}).get("status", {}).get("phase")
            == "Running"
        )
    )
    labs = await make_service()
    state = labs.state(USER)
    assert state is not None
    expected = json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
    assert state.to_json() == expected
    assert labs.running() == [USER]
    assert messages(await collect(labs)) == [COMPLETE]
    with pytest.raises(LabExistsError):
        await labs.create(reference_user(), TOKEN, reference_spec())
    await labs.delete(USER)
    assert labs.state(USER) is None


def abandoned_lease(operation: str, **annotations: str) -> dict[str, Any]:
    """The record of an operation whose replica died (stopped renewing long ago)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "lab-rachel",
            "namespace": NAMESPACE,
            "labels": {"nublado.lsst.io/category": "lab-operation", "nublado.lsst.io/user": USER},
            "annotations": {
                "nublado.lsst.io/operation": operation,
                "nublado.lsst.io/operation-id": "0123456789abcdef",
                "nublado.lsst.io/result": "",
                "nublado.lsst.io/events": json.dumps([list(STARTED)]),
                "nublado.lsst.io/lab-state": json.dumps(
                    {**LAB_STATUS, "status": "pending", "internal_url": None}
                ),
                **annotations,
            },
        },
        "spec": {
            "holderIdentity": "dead-replica",
            "leaseDurationSeconds": 15,
            "renewTime": "2026-01-01T00:00:00.000000Z",
        },
    }


async def test_takes_over_abandoned_spawn_with_pod(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    await client.create(abandoned_lease("spawn"))
    await client.apply(lab_manifests)
    await wait_until(lambda: (sandbox.get("Pod", "rachel-nb", LAB_NS) or {}).get("status"))
    labs = await make_service()
    events = await collect(labs)
    assert messages(events) == [
        ("info", "Monitoring in-progress lab creation for rachel", 1),
        COMPLETE,
    ]
    lease = sandbox.get("Lease", "lab-rachel", NAMESPACE)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == labs.identity != "dead-replica"
    await wait_until(lambda: labs.running() == [USER])


async def test_fails_abandoned_spawn_without_pod(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    await client.create(abandoned_lease("spawn"))
    await client.apply([m for m in lab_manifests if m["kind"] != "Pod"])
    labs = await make_service()
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED
    assert messages(await collect(labs)) == [
        STARTED,
        ("error", "Lab spawn interrupted: the controller running it stopped", None),
        FAILED,
    ]
    await wait_until(lambda: sandbox.get("Namespace", LAB_NS) is None)  # nothing orphaned
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED
    await labs.delete(USER)
    assert labs.state(USER) is None


async def test_finishes_abandoned_delete(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    await client.create(abandoned_lease("delete"))
    await client.apply(lab_manifests)
    labs = await make_service()
    await wait_until(lambda: labs.state(USER) is None)
    assert sandbox.get("Namespace", LAB_NS) is None
    assert messages(await collect(labs)) == DELETED


async def test_monitors_pending_lab_found_at_start(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    sandbox.set_pod_failure("ImagePullBackOff", name="rachel-nb")  # stays Pending
    await client.apply(lab_manifests)
    labs = await make_service()
    events = await collect(labs)
    assert events[0] == SpawnEvent("info", "Monitoring in-progress lab creation for rachel", 1)
    assert events[-2].event == "error"
    assert "ImagePullBackOff" in events[-2].message
    assert messages(events[-1:]) == [FAILED]


async def test_stop_fails_spawn_that_has_no_pod_yet(
    make_service: Factory, sandbox: Sandbox
) -> None:
    first = await make_service(identity="replica-a")
    first.handoff_wait = 0.1
    sandbox.add_latency(1.0, "PATCH", f"/api/v1/namespaces/{LAB_NS}/pods/rachel-nb")
    await first.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: sandbox.get("ConfigMap", "rachel-nb-env", LAB_NS) is not None)
    listener = asyncio.create_task(collect(first))
    await asyncio.sleep(0.05)
    await first.stop()
    assert messages(await listener) == [
        STARTED,
        ("error", "Lab spawn interrupted: the controller running it stopped", None),
        FAILED,
    ]
    second = await make_service(identity="replica-b")
    state = second.state(USER)
    assert state is not None
    assert state.status is LabStatus.FAILED
    await wait_until(lambda: sandbox.get("Namespace", LAB_NS) is None)


# Review of issue #9 (hostile review, branch review9)


async def test_delete_before_namespace_exists_answers_and_leaves_nothing(
    labs: LabService, sandbox: Sandbox
) -> None:
    """api.md 4.7 case 2: a DELETE during a spawn still applying its namespace is a 204.

    The cancelled spawn writes result=cancelled before the delete looks at the
    record: the delete must still run (not 404), and the namespace apply that
    was on the wire must not stay behind.
    """
    sandbox.add_latency(0.5, "PATCH", f"/api/v1/namespaces/{LAB_NS}", count=1)
    await labs.create(reference_user(), TOKEN, reference_spec())
    await asyncio.sleep(0.2)  # the namespace apply is on the wire
    await labs.delete(USER)  # UnknownUserError (404) before the fix
    await asyncio.sleep(1.0)  # let the held apply land and the watch report it
    assert labs.state(USER) is None
    assert sandbox.get("Namespace", LAB_NS) is None
    assert messages(await collect(labs)) == DELETED


async def test_delete_racing_a_recreate_does_not_leave_a_running_lab(
    make_service: Factory, sandbox: Sandbox
) -> None:
    """api.md 4.7 (204 once the lab is gone) and 7.6: a DELETE racing a recreate on one replica.

    The recreate's claim wins; the DELETE's claim conflicts and, seeing this
    replica's own live spawn, used to claim over it and delete nothing while
    the spawn, still applying its namespace, applied every object: 204 and a running
    lab. The DELETE must stop that spawn and delete what it made.
    """
    labs = await make_service(identity="replica-a")
    sandbox.set_pod_failure("Failed", name="rachel-nb")
    await labs.create(reference_user(), TOKEN, reference_spec())
    await collect(labs)
    sandbox.clear_pod_failures()
    sandbox.add_latency(0.3, "PUT", LEASES, count=2)
    sandbox.add_latency(
        0.6,
        "GET",
        f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/lab-rachel",
        count=1,
    )
    sandbox.add_latency(1.0, "PATCH", f"/api/v1/namespaces/{LAB_NS}", count=1)
    create = asyncio.ensure_future(labs.create(reference_user(), TOKEN, reference_spec()))
    await asyncio.sleep(0.02)
    delete = asyncio.ensure_future(labs.delete(USER))
    results = await asyncio.gather(create, delete, return_exceptions=True)
    await asyncio.sleep(3)
    assert results[1] is None or isinstance(results[0], OperationInProgressError), results
    if results[1] is None:  # the DELETE answered 204: the lab must be gone
        assert sandbox.get("Namespace", LAB_NS) is None
        assert labs.state(USER) is None


async def test_concurrent_deletes_on_two_replicas_join(
    make_service: Factory, sandbox: Sandbox
) -> None:
    """api.md 4.7 case 1: a DELETE while another replica's delete runs joins it (204 or 404).

    The replica whose claim lost used to answer 409 (the spawner's stop() fails on it).
    """
    a = await make_service(identity="replica-a")
    b = await make_service(identity="replica-b")
    await a.create(reference_user(), TOKEN, reference_spec())
    await collect(a)
    await wait_until(lambda: (s := b.state(USER)) is not None and s.status == "running")
    results = await asyncio.gather(a.delete(USER), b.delete(USER), return_exceptions=True)
    assert all(r is None or isinstance(r, UnknownUserError) for r in results), results
    assert sandbox.get("Namespace", LAB_NS) is None
    assert a.state(USER) is None
    assert b.state(USER) is None


async def test_monitored_spawn_failure_is_alerted_and_counted(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    """api.md 6.6 (a monitored lab ends as a spawn): its failure is alerted and counted.

    A pending lab taken over at start-up (operation ``monitor``) that then
    fails (ImagePullBackOff) used to send no alert and count no spawn.
    """
    sandbox.set_pod_failure("ImagePullBackOff", name="rachel-nb")
    await client.apply(lab_manifests)
    alerts = RecordingAlerts()
    metrics = Metrics()
    labs = await make_service(identity="replica-a", alerts=alerts, metrics=metrics)
    events = await collect(labs)
    assert events[-1].event == "failed"
    await wait_until(lambda: alerts.reports)
    assert [(s, u) for s, u, _ in alerts.reports] == [("Lab spawn failed", USER)]
    text = generate_latest(metrics.registry).decode()
    assert 'nublado_spawns_total{outcome="failure"} 1.0' in text


async def test_interrupted_spawn_taken_over_is_alerted_and_counted(
    make_service: Factory, client: KubernetesClient, sandbox: Sandbox, lab_manifests: Any
) -> None:
    """An abandoned spawn without its pod, failed at takeover: alerted and counted as a spawn."""
    await client.create(abandoned_lease("spawn"))
    await client.apply([m for m in lab_manifests if m["kind"] != "Pod"])
    alerts = RecordingAlerts()
    metrics = Metrics()
    labs = await make_service(alerts=alerts, metrics=metrics)
    assert (await collect(labs))[-1] == SpawnEvent("failed", "Lab spawn failed")
    await wait_until(lambda: alerts.reports)
    assert alerts.reports == [
        ("Lab spawn failed", USER, "Lab spawn interrupted: the controller running it stopped")
    ]
    text = generate_latest(metrics.registry).decode()
    assert 'nublado_spawns_total{outcome="failure"} 1.0' in text


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_spawn_is_counted_once_when_its_complete_write_fails(
    labs: LabService, sandbox: Sandbox
) -> None:
    """A success counted before the ``complete`` write was counted again when the write failed."""
    metrics = Metrics()
    labs._metrics = metrics
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    sandbox.inject_fault("PUT", LEASES, status=500, count=None)
    run_pod(sandbox)
    await wait_until(lambda: labs._ops[USER].done.is_set())
    sandbox.clear_faults()
    outcomes = ("success", "failure", "timeout", "cancelled")
    assert sum(metrics.spawns.labels(outcome=o)._value.get() for o in outcomes) == 1


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_delete_on_other_replica_when_the_spawn_just_finished(
    make_service: Factory, sandbox: Sandbox
) -> None:
    """The holder's spawn completes just before the other replica's cancel request is written.

    The request then conflicts and the holder never sees it: the DELETE used to
    wait a whole lease duration (15 s) before deleting; it must act at once.
    """
    a = await make_service(identity="replica-a")
    b = await make_service(identity="replica-b")
    await a.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(b))
    sandbox.add_latency(0.5, "PUT", LEASES, count=1)  # b's cancel request
    delete = asyncio.create_task(b.delete(USER))
    await asyncio.sleep(0.1)
    run_pod(sandbox)  # a writes complete while b's request is held
    async with asyncio.timeout(4):
        await delete
    assert sandbox.get("Namespace", LAB_NS) is None
    assert b.state(USER) is None


async def test_relist_drops_deleted_objects_it_no_longer_lists(
    labs: LabService, sandbox: Sandbox
) -> None:
    """A relist after a failed watch forgets deleted objects the watch never reported gone.

    The uids of objects this replica deleted are kept until their DELETED event
    (so a lagging watch cannot bring the lab back); a watch that failed before
    delivering it used to leave them there for ever.
    """
    await labs.create(reference_user(), TOKEN, reference_spec())
    await collect(labs)
    pod = sandbox.get("Pod", "rachel-nb", LAB_NS)
    assert pod is not None
    uid = pod["metadata"]["uid"]
    labs._gone["stale-pod-uid"] = "Pod"
    labs._gone[uid] = "Pod"  # still listed: kept
    labs._gone["stale-namespace-uid"] = "Namespace"  # another kind: not this relist's
    await labs._relist("Pod", None, "nublado.lsst.io/category=lab")
    assert labs._gone == {uid: "Pod", "stale-namespace-uid": "Namespace"}


async def test_active_labs_gauge_follows_status_changes(labs: LabService) -> None:
    """nublado_active_labs changes with a lab's status, not only on a list or every few s."""
    metrics = Metrics()
    labs._metrics = metrics
    await labs.create(reference_user(), TOKEN, reference_spec())
    await collect(labs)
    await wait_until(lambda: metrics.active_labs._value.get() == 1, timeout=1)
    await labs.delete(USER)
    await wait_until(lambda: metrics.active_labs._value.get() == 0, timeout=1)


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_spawn_survives_failing_pod_and_event_watches(
    make_service: Factory, config: Config, sandbox: Sandbox
) -> None:
    """A spawn must not wait past a watch failure (review H2): the shared pod watch cut and
    refused once (403) is relisted; the pod Events watch refused (403) only loses progress.
    """
    labs = await make_service(cfg=with_timeouts(config, spawn=30))
    sandbox.inject_fault("GET", f"/api/v1/namespaces/{LAB_NS}/events*", status=403, count=None)
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    sandbox.inject_fault("GET", "/api/v1/pods*", status=403, count=1)
    sandbox.cut_watches()
    await asyncio.sleep(0.2)
    run_pod(sandbox)
    events = await collect(labs, timeout=5)
    assert messages(events) == [STARTED, CREATED, COMPLETE]


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_spawn_fails_at_once_when_following_its_pod_fails(
    make_service: Factory, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task following the pod in the cache dying (any error) fails the spawn at once,
    rather than leaving it waiting on its queue until lab.spawnTimeout."""
    labs = await make_service(cfg=with_timeouts(config, spawn=30))
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))

    async def broken(timeout: float, username: str | None = None, *args: Any, **kw: Any) -> None:
        raise RuntimeError("cache broken")

    monkeypatch.setattr(labs, "_wait_change", broken)
    await labs._notify(USER)
    await wait_until(lambda: labs._ops[USER].done.is_set())
    monkeypatch.undo()
    events = await collect(labs, timeout=5)
    assert messages(events[-2:]) == [
        ("error", "Error following pod userlabs-rachel/rachel-nb: cache broken", None),
        FAILED,
    ]


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)
async def test_record_renewal_survives_a_failed_write(
    make_service: Factory, sandbox: Sandbox
) -> None:
    """One failed renewal (500) used to end the renewals: the record then expired under a
    running spawn and another replica took it over."""
    labs = await make_service(lease_duration=3)
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    sandbox.inject_fault("PUT", LEASES, status=500, count=1)
    await asyncio.sleep(1.2)  # one renewal (every second) failed
    before = sandbox.get("Lease", "lab-rachel", NAMESPACE)
    assert before is not None
    await asyncio.sleep(1.2)
    after = sandbox.get("Lease", "lab-rachel", NAMESPACE)
    assert after is not None
    assert after["spec"]["renewTime"] != before["spec"]["renewTime"]


async def test_status_right_after_complete_on_other_replica_has_internal_url(
    make_service: Factory,
) -> None:
    """The spawner reads the status as soon as ``complete`` arrives: when that stream came
    from the replica that did not spawn, the same cache answers, with internal_url."""
    a = await make_service(identity="replica-a")
    b = await make_service(identity="replica-b")
    await a.create(reference_user(), TOKEN, reference_spec())
    async with asyncio.timeout(10):
        async for event in await b.events(USER):
            if event.event == "complete":
                state = b.state(USER)
                assert state is not None
                assert state.status is LabStatus.RUNNING
                assert state.internal_url == "http://lab.userlabs-rachel:8888/nb/user/rachel/"
                break
        else:
            raise AssertionError("no complete event")


@pytest.mark.parametrize("sandbox_settings", [SLOW], indirect=True)  # no kubelet writes
async def test_only_a_change_of_what_a_waiter_reads_wakes_it(
    labs: LabService, sandbox: Sandbox, client: KubernetesClient
) -> None:
    """Streams and deletes wait on the record, a spawn on its pod: a change of the env
    ConfigMap wakes neither, nor does a watch echo of the version a cache already holds;
    a record change wakes the record's waiters only."""
    await labs.create(reference_user(), TOKEN, reference_spec())
    await wait_until(lambda: objects_created(labs))
    run_pod(sandbox)
    await wait_until(lambda: labs._ops[USER].done.is_set())
    record_waker, pod_waker = labs._waker(USER), labs._waker(USER, pod=True)

    lease = await client.get("Lease", "lab-rachel", NAMESPACE)
    assert not labs._store("Lease", lease)  # the version the cache holds: no change
    env = await client.get("ConfigMap", "rachel-nb-env", LAB_NS)
    env["metadata"]["labels"]["extra"] = "1"  # its data is immutable
    changed = await client.replace(env)
    version = changed["metadata"]["resourceVersion"]
    await wait_until(
        lambda: labs._objects["ConfigMap"][USER]["metadata"]["resourceVersion"] == version
    )
    assert not record_waker.is_set()
    assert not pod_waker.is_set()

    lease["metadata"]["annotations"]["other"] = "x"
    await client.replace(lease)
    await wait_until(record_waker.is_set)
    assert not pod_waker.is_set()


def test_the_record_round_trips_through_its_lease() -> None:
    """Events and env survive the Lease's annotations, a lone surrogate and a secret too."""
    record = OperationRecord(
        username="rachel",
        operation="spawn",
        operation_id="0123",
        holder="replica-a",
        events=[
            ("info", 'Pulling image "lab:w_2026_01" (é, \ud800)', 35),
            ("complete", "Lab Kubernetes pod started for rachel", None),
        ],
        spawn_env={"A": "1", "JUPYTERHUB_API_TOKEN": "secret-value", "B": "ü"},
    )
    lease = record.to_lease(NAMESPACE)
    assert "secret-value" not in json.dumps(lease)
    back = OperationRecord.from_lease(lease)
    assert back.events == record.events
    assert back.spawn_env == {"A": "1", "B": "ü"}
    assert back.withheld_env == ["JUPYTERHUB_API_TOKEN"]


async def test_a_waker_wakes_every_waiter_once_and_a_wait_ends_at_its_limit() -> None:
    """`_Waker` (what `_wait_change` waits on): `set` wakes every waiter, a wait past its limit
    returns without an error, a set waker returns at once, a cancelled wait leaves nothing."""
    loop = asyncio.get_running_loop()
    waker = _Waker()
    started = loop.time()
    await waker.wait(loop, 0.05)  # nothing set it: back at the limit, no error
    assert 0.04 <= loop.time() - started < 1
    assert not waker.is_set()

    cancelled = asyncio.create_task(waker.wait(loop, 10))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert waker._waiters == []

    waiters = [asyncio.create_task(waker.wait(loop, 10)) for _ in range(3)]
    await asyncio.sleep(0)
    started = loop.time()
    waker.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert loop.time() - started < 1
    assert waker.is_set() and waker._waiters == []
    await asyncio.wait_for(waker.wait(loop, 10), 1)  # already set: at once
