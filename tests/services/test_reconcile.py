"""The lab reconcile against the sandbox: drift, orphans, ended labs, faults, two replicas.

Each test spawns real labs through the real `LabService` on the sandbox, then
changes the cluster behind the controller's back (with another field manager,
as kubectl would) and runs one reconcile pass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import httpx
import pytest
from fake_registry import FakeRegistry
from lab_api_support import RecordingAlerts, wait_until
from lab_api_support import controller_namespace as create_controller_namespace
from prometheus_client import generate_latest
from reference_cases import TOKEN, reference_discovery, reference_spec, reference_user

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.kube.errors import KubernetesError
from nublado.metrics import Metrics
from nublado.models.lab import LabStatus
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services import reconcile as reconcile_module
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService, trim_cached
from nublado.services.labstate import LabObjects, OperationRecord, derive_state, rebuild_state
from nublado.services.reconcile import (
    ORPHAN_ANNOTATION,
    LabReconciler,
    ReconcileError,
    ReconcileReport,
)

NAMESPACE = "nublado"
USER = "rachel"
LAB_NS = "userlabs-rachel"
LABELS = {
    "nublado.lsst.io/category": "lab",
    "nublado.lsst.io/user": USER,
    "argocd.argoproj.io/instance": "nublado-users",
}
NETWORK_POLICIES = f"/apis/networking.k8s.io/v1/namespaces/{LAB_NS}/networkpolicies"
NETWORK_POLICY: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "rachel-nb", "namespace": LAB_NS},
}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    """Pods start at once and go at once."""
    return SandboxSettings(pod_grace_scale=0.0)


@pytest.fixture
async def images(
    config: Config, registry: FakeRegistry, client: KubernetesClient
) -> AsyncIterator[ImageService]:
    async with httpx.AsyncClient() as http:
        service = ImageService(config, build_image_source(config.images, http), client)
        await service.refresh()
        yield service


async def _discovery() -> dict[str, Any]:
    return reference_discovery()


@pytest.fixture
async def controller_namespace(client: KubernetesClient) -> None:
    """The controller's namespace with the reference source Secrets."""
    await create_controller_namespace(client)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def labs(
    config: Config,
    client: KubernetesClient,
    images: ImageService,
    controller_namespace: None,
    metrics: Metrics,
) -> AsyncIterator[LabService]:
    service = LabService(
        config,
        client,
        images,
        Renderer(config.template_dirs),
        namespace=NAMESPACE,
        identity="replica-a",
        discovery=_discovery,
        metrics=metrics,
    )
    await service.start()
    yield service
    await service.stop()


class Clock:
    """The reconcile's clock, moved by the tests (orphan grace periods)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alerts() -> RecordingAlerts:
    return RecordingAlerts()


@pytest.fixture
def reconciler(
    config: Config,
    client: KubernetesClient,
    labs: LabService,
    metrics: Metrics,
    clock: Clock,
    alerts: RecordingAlerts,
) -> LabReconciler:
    return LabReconciler(
        config,
        client,
        labs,
        Renderer(config.template_dirs),
        namespace=NAMESPACE,
        metrics=metrics,
        alerts=alerts,
        discovery=_discovery,
        clock=clock,
    )


async def spawn(labs: LabService, username: str = USER, env: dict[str, str] | None = None) -> None:
    """A lab spawned and running (the spawner's env with ``env`` added)."""
    user = reference_user() if username == USER else reference_user(username=username)
    spec = reference_spec()
    if env:
        spec = spec.model_copy(update={"env": {**spec.env, **env}})
    if username != USER:
        spec = spec.model_copy(
            update={"env": {**spec.env, "JUPYTERHUB_SERVICE_PREFIX": f"/nb/user/{username}/"}}
        )
    await labs.create(user, TOKEN, spec)
    events = [e async for e in await labs.events(username)]
    assert events[-1].event == "complete", events


def lab_objects(sandbox: Sandbox, namespace: str = LAB_NS) -> dict[tuple[str, str], Any]:
    """Kind and name -> what a spawn wrote (spec, data, labels, annotations), no Events."""
    found = {}
    for obj in sandbox.objects(namespace):
        if obj["kind"] in ("Event", "ServiceAccount"):
            continue
        metadata = obj["metadata"]
        spec = obj.get("spec")
        if obj["kind"] == "Service":  # a recreated Service gets another address
            spec = {k: v for k, v in spec.items() if k not in ("clusterIP", "clusterIPs")}
        found[obj["kind"], metadata["name"]] = (
            metadata.get("labels"),
            {k: v for k, v in (metadata.get("annotations") or {}).items()},
            spec,
            obj.get("data"),
        )
    return found


def apply_as_kubectl(sandbox: Sandbox, manifest: dict[str, Any]) -> None:
    """A change under another field manager (taking over the fields), as kubectl makes it."""
    sandbox.apply(manifest, field_manager="kubectl", force=True)


def metric(metrics: Metrics, line: str) -> bool:
    return line in generate_latest(metrics.registry).decode().splitlines()


# Nothing to do


async def test_nothing_to_do_sends_only_lists(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox, metrics: Metrics
) -> None:
    """A healthy lab costs the pass no request but its LISTs, and counts as running."""
    await spawn(labs)
    before = lab_objects(sandbox)
    metrics.active_labs.set(0)
    mark = len(sandbox.requests)
    report = await reconciler.run()
    sent = sandbox.requests[mark:]
    assert report == ReconcileReport(labs=1, running=1, seconds=report.seconds)
    assert [r.method for r in sent] == ["GET"] * len(sent)
    paths = sorted(r.target.split("?")[0] for r in sent)
    assert paths == sorted(
        [
            f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases",
            "/api/v1/namespaces",
            "/api/v1/persistentvolumeclaims",
            "/api/v1/configmaps",
            "/api/v1/secrets",
            "/api/v1/resourcequotas",
            "/apis/networking.k8s.io/v1/networkpolicies",
            "/api/v1/services",
            "/api/v1/pods",
        ]
    )
    assert all("labelSelector=nublado.lsst.io" in r.target for r in sent)
    assert lab_objects(sandbox) == before
    assert metric(metrics, "nublado_active_labs 1.0")


async def test_a_pass_gives_its_freed_heap_back_even_when_it_fails(
    labs: LabService, reconciler: LabReconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass's decoded LISTs, freed at its end, leave no pages in the heap (`trim_heap`)."""
    trims: list[bool] = []
    monkeypatch.setattr(reconcile_module, "trim_heap", lambda: trims.append(True) or True)
    await spawn(labs)
    await reconciler.run()
    assert trims == [True]

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise KubernetesError("list failed")

    monkeypatch.setattr(reconciler, "_list", failing)
    with pytest.raises(ReconcileError):
        await reconciler.run()
    assert trims == [True, True]


async def test_user_named_like_a_fixed_object_name(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    """User ``lab`` (the Service is ``lab`` for everyone): their objects are still theirs."""
    await spawn(labs, "lab")
    mark = len(sandbox.requests)
    report = await reconciler.run()
    assert (report.running, report.reapplied, report.drift) == (1, [], [])
    assert [r.method for r in sandbox.requests[mark:]] == ["GET"] * 9


# Missing and changed objects


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("NetworkPolicy", "rachel-nb"),
        ("ConfigMap", "rachel-nb-env"),
        ("ConfigMap", "rachel-nb-nss"),
        ("Service", "lab"),
        ("Secret", "rachel-nb"),
    ],
)
async def test_missing_object_is_reapplied(
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
    metrics: Metrics,
    kind: str,
    name: str,
) -> None:
    """A deleted object of a running lab comes back as the spawn made it; the pod stays."""
    await spawn(labs)
    before = lab_objects(sandbox)
    pod_uid = sandbox.get("Pod", "rachel-nb", LAB_NS)["metadata"]["uid"]  # type: ignore[index]
    assert sandbox.delete(kind, name, LAB_NS)
    await wait_until(lambda: sandbox.get(kind, name, LAB_NS) is None)
    report = await reconciler.run()
    if kind == "Secret":
        # The token lived only in the Secret: it cannot be rebuilt, only reported.
        assert report.reapplied == []
        assert report.drift == [(USER, "Secret", "rachel-nb")]
        assert sandbox.get(kind, name, LAB_NS) is None
        return
    assert report.reapplied == [(USER, kind, name)]
    assert report.deleted == {}
    assert lab_objects(sandbox) == before
    assert sandbox.get("Pod", "rachel-nb", LAB_NS)["metadata"]["uid"] == pod_uid  # type: ignore[index]
    assert metric(metrics, 'nublado_lab_reconcile_actions_total{action="reapplied"} 1.0')
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.RUNNING

    again = await reconciler.run()
    assert again.reapplied == []


async def test_env_rebuilt_without_the_hub_token_is_reported_incomplete(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox, metrics: Metrics
) -> None:
    """The record never holds the hub's API token (api.md 4.6 sends it in the spawn env):
    a deleted env comes back with every other key, reported as drift (env_incomplete)."""
    await spawn(labs, env={"JUPYTERHUB_API_TOKEN": "hub-secret-1", "FAVOURITE_COLOUR": "teal"})
    before = sandbox.get("ConfigMap", "rachel-nb-env", LAB_NS)
    assert before is not None
    lease = sandbox.get("Lease", "lab-rachel", NAMESPACE)
    assert "hub-secret-1" not in json.dumps(lease)
    assert sandbox.delete("ConfigMap", "rachel-nb-env", LAB_NS)
    await wait_until(lambda: sandbox.get("ConfigMap", "rachel-nb-env", LAB_NS) is None)

    report = await reconciler.run()

    assert report.reapplied == [(USER, "ConfigMap", "rachel-nb-env")]
    assert report.drift == [(USER, "ConfigMap", "rachel-nb-env")]
    after = sandbox.get("ConfigMap", "rachel-nb-env", LAB_NS)
    assert after is not None
    wanted = {k: v for k, v in before["data"].items() if k != "JUPYTERHUB_API_TOKEN"}
    assert after["data"] == wanted
    assert metric(metrics, 'nublado_lab_reconcile_actions_total{action="env_incomplete"} 1.0')
    assert metric(metrics, 'nublado_lab_drift{kind="ConfigMap"} 1.0')


async def test_changed_network_policy_is_fixed_in_place(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    await spawn(labs)
    before = lab_objects(sandbox)
    uid = sandbox.get("NetworkPolicy", "rachel-nb", LAB_NS)["metadata"]["uid"]  # type: ignore[index]
    apply_as_kubectl(
        sandbox,
        {
            **NETWORK_POLICY,
            "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]},
        },
    )
    report = await reconciler.run()
    assert report.fixed == [(USER, "NetworkPolicy", "rachel-nb")]
    assert report.drift == []
    assert lab_objects(sandbox) == before
    assert sandbox.get("NetworkPolicy", "rachel-nb", LAB_NS)["metadata"]["uid"] == uid  # type: ignore[index]


async def test_foreign_label_that_changes_nothing_we_declare_is_left(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    """Someone else's extra label is theirs: compared (dry run), not drift, not applied."""
    await spawn(labs)
    apply_as_kubectl(
        sandbox,
        {**NETWORK_POLICY, "metadata": {**NETWORK_POLICY["metadata"], "labels": {"team": "x"}}},
    )
    mark = len(sandbox.requests)
    report = await reconciler.run()
    assert (report.fixed, report.drift, report.reapplied) == ([], [], [])
    writes = [r for r in sandbox.requests[mark:] if r.method == "PATCH"]
    assert [("dryRun=All" in r.target) for r in writes] == [True]


async def test_drifted_pod_is_reported_not_touched(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox, metrics: Metrics
) -> None:
    """A changed pod image is drift apply would "fix" by restarting the lab: only reported."""
    await spawn(labs)
    pod = sandbox.get("Pod", "rachel-nb", LAB_NS)
    assert pod is not None
    image = "lighthouse.ceres/library/sketchbook:other"
    containers = [{"name": "notebook", "image": image}]
    apply_as_kubectl(
        sandbox,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "rachel-nb", "namespace": LAB_NS},
            "spec": {"containers": containers},
        },
    )
    report = await reconciler.run()
    assert report.drift == [(USER, "Pod", "rachel-nb")]
    assert report.fixed == []
    assert report.deleted == {}
    after = sandbox.get("Pod", "rachel-nb", LAB_NS)
    assert after is not None
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    notebook = next(c for c in after["spec"]["containers"] if c["name"] == "notebook")
    assert notebook["image"] == image
    assert metric(metrics, 'nublado_lab_drift{kind="Pod"} 1.0')
    assert metric(metrics, 'nublado_lab_drift{kind="NetworkPolicy"} 0.0')
    state = labs.state(USER)
    assert state is not None
    assert state.status is LabStatus.RUNNING


# Ended labs


def set_phase(sandbox: Sandbox, phase: str) -> None:
    """The pod's phase as the kubelet would set it (Unknown: the node stopped reporting)."""
    if phase in ("Succeeded", "Failed"):
        assert sandbox.finish_pod(LAB_NS, "rachel-nb", phase)
        return

    def mutate(pod: dict[str, Any]) -> None:
        pod["status"]["phase"] = phase

    with sandbox.cluster.store.lock:
        assert sandbox.cluster.update_internal("Pod", LAB_NS, "rachel-nb", mutate, "kubelet")


@pytest.mark.parametrize(
    ("phase", "why", "message"),
    [
        ("Succeeded", "terminated", f"Lab pod {LAB_NS}/rachel-nb terminated: deleting the lab"),
        ("Failed", "terminated", f"Lab pod {LAB_NS}/rachel-nb terminated: deleting the lab"),
        ("Unknown", "failed", "Lab for rachel failed: deleting it"),
    ],
)
async def test_ended_pod_is_deleted_in_the_same_pass(
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
    metrics: Metrics,
    phase: str,
    why: str,
    message: str,
) -> None:
    """api.md 7.7: terminated (Succeeded, Failed) or failed (Unknown), then deleted: 404."""
    await spawn(labs)
    set_phase(sandbox, phase)
    report = await reconciler.run()
    assert report.deleted == {USER: why}
    assert report.running == 0
    assert metric(metrics, "nublado_active_labs 0.0")
    assert metric(metrics, f'nublado_lab_reconcile_actions_total{{action="deleted_{why}"}} 1.0')
    assert sandbox.get("Namespace", LAB_NS) is None
    await wait_until(lambda: labs.state(USER) is None)
    events = [(e.event, e.message) async for e in await labs.events(USER)]
    assert events == [
        ("info", message),
        ("info", "Shutting down Kubernetes pod"),
        ("info", "Deleting user namespace"),
        ("info", "Lab for rachel deleted"),
    ]


async def test_vanished_pod_is_deleted(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    await spawn(labs)
    assert sandbox.delete("Pod", "rachel-nb", LAB_NS)
    await sandbox.wait_for_async(lambda: sandbox.get("Pod", "rachel-nb", LAB_NS) is None)
    report = await reconciler.run()
    assert report.deleted == {USER: "vanished"}
    assert sandbox.get("Namespace", LAB_NS) is None
    await wait_until(lambda: labs.state(USER) is None)


async def test_deleted_namespace_ends_the_lab(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox, client: KubernetesClient
) -> None:
    """Someone deleted the namespace: the record ends as a delete, and GET would 404."""
    await spawn(labs)
    await client.delete("Namespace", LAB_NS, timeout=10)
    report = await reconciler.run()
    assert report.deleted == {USER: "namespace-gone"}
    lease = sandbox.get("Lease", "lab-rachel", NAMESPACE)
    assert lease is not None
    annotations = lease["metadata"]["annotations"]
    assert (annotations["nublado.lsst.io/operation"], annotations["nublado.lsst.io/result"]) == (
        "delete",
        "deleted",
    )
    await wait_until(lambda: labs.state(USER) is None)
    again = await reconciler.run()
    assert again.deleted == {}


@pytest.mark.parametrize(
    ("kind", "name", "namespace"),
    [("Pod", "rachel-nb", LAB_NS), ("Namespace", LAB_NS, None)],
)
@pytest.mark.parametrize(
    "labels",
    [{"nublado.lsst.io/category": "debug"}, {"nublado.lsst.io/user": "someone"}],
)
async def test_relabelled_lab_object_is_relabelled_not_deleted(
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
    kind: str,
    name: str,
    namespace: str | None,
    labels: dict[str, str],
) -> None:
    """``kubectl label`` on the pod or namespace of a running lab: the LIST misses it, yet
    the lab is running. Read by name, the labels are put back; nothing is deleted."""
    await spawn(labs)
    pod_uid = sandbox.get("Pod", "rachel-nb", LAB_NS)["metadata"]["uid"]  # type: ignore[index]
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if namespace is not None:
        metadata["namespace"] = namespace
    sandbox.apply(
        {"apiVersion": "v1", "kind": kind, "metadata": metadata},
        field_manager="kubectl-label",
        force=True,
    )
    report = await reconciler.run()
    assert report.deleted == {}
    assert report.fixed == [(USER, kind, name)]
    assert report.running == 1
    relabelled = sandbox.get(kind, name, namespace)
    assert relabelled is not None
    for key, value in LABELS.items():
        assert relabelled["metadata"]["labels"][key] == value
    assert sandbox.get("Pod", "rachel-nb", LAB_NS)["metadata"]["uid"] == pod_uid  # type: ignore[index]
    again = await reconciler.run()
    assert (again.deleted, again.fixed, again.running) == ({}, [], 1)


async def test_operation_in_progress_is_left_alone(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox, client: KubernetesClient
) -> None:
    """A record showing an operation (another replica's spawn) keeps the reconcile off."""
    await spawn(labs)
    lease = await client.get("Lease", "lab-rachel", NAMESPACE)
    lease["metadata"]["annotations"]["nublado.lsst.io/result"] = ""
    lease["metadata"]["annotations"]["nublado.lsst.io/operation-id"] = "other"
    lease["spec"]["holderIdentity"] = "replica-b"
    await client.replace(lease)
    assert sandbox.finish_pod(LAB_NS, "rachel-nb", "Failed")
    assert sandbox.delete("NetworkPolicy", "rachel-nb", LAB_NS)
    report = await reconciler.run()
    assert report.busy == [USER]
    assert report.deleted == {}
    assert report.reapplied == []
    assert sandbox.get("Namespace", LAB_NS) is not None


async def test_record_written_since_the_list_stops_the_delete(
    labs: LabService, sandbox: Sandbox, client: KubernetesClient
) -> None:
    """The reconcile's delete claims over the Lease it listed: a newer one wins."""
    await spawn(labs)
    listed = await client.get("Lease", "lab-rachel", NAMESPACE)
    newer = json.loads(json.dumps(listed))
    newer["metadata"]["annotations"]["touched"] = "yes"
    await client.replace(newer)
    state = labs.state(USER)
    assert state is not None
    assert not await labs.delete_for_reconcile(USER, listed, state, "test")
    assert sandbox.get("Namespace", LAB_NS) is not None


# Orphans


async def orphan_namespace(client: KubernetesClient, username: str = "orphan") -> str:
    name = f"userlabs-{username}"
    labels = {**LABELS, "nublado.lsst.io/user": username}
    await client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )
    return name


async def test_orphan_is_removed_after_its_grace_period(
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
    client: KubernetesClient,
    clock: Clock,
    config: Config,
) -> None:
    """First seen: marked on the namespace; removed only once seen orphaned that long."""
    name = await orphan_namespace(client)
    grace = config.lab.orphan_grace_period
    clock.now += grace * 2  # old enough by its creation: still one glimpse only
    first = await reconciler.run()
    assert first.orphans == ["orphan"]
    marked = sandbox.get("Namespace", name)
    assert marked is not None
    assert ORPHAN_ANNOTATION in marked["metadata"]["annotations"]

    clock.now += grace - timedelta(seconds=1)
    second = await reconciler.run()
    assert (second.orphans, second.deleted) == (["orphan"], {})

    clock.now += timedelta(seconds=2)
    third = await reconciler.run()
    assert third.deleted == {"orphan": "orphan"}
    assert sandbox.get("Namespace", name) is None


async def test_orphan_mark_is_kept_on_the_namespace_for_another_leader(
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
    client: KubernetesClient,
    clock: Clock,
    config: Config,
) -> None:
    """A new reconciler (another leader) counts from the first one's mark."""
    name = await orphan_namespace(client)
    await reconciler.run()
    later = Clock()
    later.now = clock.now + config.lab.orphan_grace_period + timedelta(seconds=1)
    other = LabReconciler(
        config,
        client,
        labs,
        Renderer(config.template_dirs),
        namespace=NAMESPACE,
        discovery=_discovery,
        clock=later,
    )
    report = await other.run()
    assert report.deleted == {"orphan": "orphan"}
    assert sandbox.get("Namespace", name) is None


async def test_orphan_mark_of_a_namespace_with_a_lab_is_dropped(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    """A mark left from when the namespace had no lab would make a later orphan go early."""
    await spawn(labs)
    namespace = sandbox.get("Namespace", LAB_NS)
    assert namespace is not None
    namespace["metadata"]["annotations"][ORPHAN_ANNOTATION] = "2026-01-01T00:00:00.000000Z"
    namespace["metadata"].pop("managedFields")
    sandbox.cluster.replace("Namespace", None, LAB_NS, namespace, field_manager="test")
    report = await reconciler.run()
    assert (report.orphans, report.deleted) == ([], {})
    after = sandbox.get("Namespace", LAB_NS)
    assert after is not None
    assert ORPHAN_ANNOTATION not in after["metadata"]["annotations"]


# Faults


async def test_failed_list_fails_the_pass_and_the_next_repairs(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox, metrics: Metrics
) -> None:
    await spawn(labs)
    assert sandbox.delete("NetworkPolicy", "rachel-nb", LAB_NS)
    sandbox.inject_fault("GET", "/apis/networking.k8s.io/v1/networkpolicies", count=None)
    with pytest.raises(ReconcileError, match="^Lab reconcile failed listing lab objects: "):
        await reconciler.run()
    assert sandbox.get("NetworkPolicy", "rachel-nb", LAB_NS) is None
    assert metric(metrics, 'nublado_lab_reconcile_errors_total{stage="list"} 1.0')
    sandbox.clear_faults()
    report = await reconciler.run()
    assert report.reapplied == [(USER, "NetworkPolicy", "rachel-nb")]


async def test_failed_repair_is_counted_and_the_next_pass_repairs(
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
    metrics: Metrics,
    alerts: RecordingAlerts,
) -> None:
    """One lab's failed apply fails the pass (after the other labs), nothing half done."""
    await spawn(labs)
    await spawn(labs, "wilma")
    for username in (USER, "wilma"):
        assert sandbox.delete("NetworkPolicy", f"{username}-nb", f"userlabs-{username}")
    sandbox.inject_fault("PATCH", f"{NETWORK_POLICIES}/rachel-nb", count=None, status=500)
    with pytest.raises(ReconcileError, match="^Lab reconcile could not repair: rachel$") as caught:
        await reconciler.run()
    report = caught.value.report
    assert report is not None
    assert report.reapplied == [("wilma", "NetworkPolicy", "wilma-nb")]
    assert [user for user, _ in report.errors] == [USER]
    assert sandbox.get("NetworkPolicy", "rachel-nb", LAB_NS) is None
    assert metric(metrics, 'nublado_lab_reconcile_errors_total{stage="lab"} 1.0')
    assert [(summary, user) for summary, user, _ in alerts.reports] == [
        ("Lab reconcile failed", USER)
    ]
    sandbox.clear_faults()
    again = await reconciler.run()
    assert again.reapplied == [(USER, "NetworkPolicy", "rachel-nb")]
    assert again.running == 2


async def test_failed_delete_leaves_a_failed_record_and_the_next_pass_deletes(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    await spawn(labs)
    assert sandbox.finish_pod(LAB_NS, "rachel-nb", "Failed")
    sandbox.inject_fault("DELETE", f"/api/v1/namespaces/{LAB_NS}", count=None, status=500)
    with pytest.raises(ReconcileError):
        await reconciler.run()
    assert sandbox.get("Namespace", LAB_NS) is not None
    sandbox.clear_faults()
    report = await reconciler.run()
    assert report.deleted == {USER: "failed"}
    assert sandbox.get("Namespace", LAB_NS) is None
    await wait_until(lambda: labs.state(USER) is None)


# Two replicas


async def test_spawn_on_another_replica_during_the_pass_is_left_alone(
    config: Config,
    client: KubernetesClient,
    images: ImageService,
    labs: LabService,
    reconciler: LabReconciler,
    sandbox: Sandbox,
) -> None:
    """Replica B's spawn has its namespace but not yet its pod: not an orphan, not touched."""
    other = LabService(
        config,
        client,
        images,
        Renderer(config.template_dirs),
        namespace=NAMESPACE,
        identity="replica-b",
        discovery=_discovery,
    )
    await other.start()
    try:
        sandbox.add_latency(1.0, "PATCH", "/api/v1/namespaces/userlabs-wilma/pods/*", count=1)
        spec = reference_spec()
        spec = spec.model_copy(
            update={"env": {**spec.env, "JUPYTERHUB_SERVICE_PREFIX": "/nb/user/wilma/"}}
        )
        await other.create(reference_user(username="wilma"), TOKEN, spec)
        await sandbox.wait_for_async(lambda: sandbox.get("Namespace", "userlabs-wilma"))
        assert sandbox.get("Pod", "wilma-nb", "userlabs-wilma") is None
        report = await reconciler.run()
        assert report.busy == ["wilma"]
        assert (report.orphans, report.deleted, report.reapplied) == ([], {}, [])
        events = [e async for e in await other.events("wilma")]
        assert events[-1].event == "complete"
        after = await reconciler.run()
        assert (after.busy, after.running) == ([], 1)
    finally:
        await other.stop()


async def test_several_ended_labs_are_deleted_in_one_pass(
    labs: LabService, reconciler: LabReconciler, sandbox: Sandbox
) -> None:
    users = ["ada", "bob", "cy"]
    for username in users:
        await spawn(labs, username)
        assert sandbox.finish_pod(f"userlabs-{username}", f"{username}-nb", "Succeeded")
    report = await reconciler.run()
    assert report.deleted == dict.fromkeys(users, "terminated")
    assert [sandbox.get("Namespace", f"userlabs-{u}") for u in users] == [None] * 3


# The lab service's caches at scale


async def test_lab_caches_keep_trimmed_objects_and_answer_as_the_full_objects(
    config: Config, labs: LabService, sandbox: Sandbox
) -> None:
    """The caches keep only what their readers read: the state is the same as from the whole."""
    await spawn(labs)
    full = sandbox.get("Pod", "rachel-nb", LAB_NS)
    assert full is not None
    cached = labs._objects["Pod"][USER]
    assert set(cached["spec"]) == {"initContainers", "containers"}
    assert [c["name"] for c in cached["spec"]["containers"]] == [
        c["name"] for c in full["spec"]["containers"]
    ]
    notebook = cached["spec"]["containers"][0]
    assert set(notebook) == {"name", "securityContext"}
    assert set(notebook["securityContext"]) == {"runAsUser", "runAsGroup"}
    assert cached["status"]["phase"] == full["status"]["phase"] == "Running"
    assert set(cached["metadata"]) == {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "labels",
        "annotations",
    }
    assert cached["metadata"]["labels"] == full["metadata"]["labels"]
    env = labs._objects["ConfigMap"][USER]["data"]
    assert "JUPYTER_IMAGE_SPEC" in env
    assert "JUPYTERHUB_API_URL" not in env
    assert labs._objects["ResourceQuota"][USER]["spec"] == {
        "hard": {"limits.cpu": mock.ANY, "limits.memory": mock.ANY}
    }
    lease = sandbox.get("Lease", f"lab-{USER}", NAMESPACE)
    assert lease is not None
    whole = LabObjects(
        namespace=sandbox.get("Namespace", LAB_NS),
        pod=full,
        env=sandbox.get("ConfigMap", "rachel-nb-env", LAB_NS),
        quota=sandbox.get("ResourceQuota", "rachel-nb", LAB_NS),
    )
    expected = derive_state(config, OperationRecord.from_lease(lease), whole)
    assert labs.state(USER) == expected
    # Rebuilt without a record (an adopted lab), from the trimmed objects as from the whole.
    assert rebuild_state(config, USER, labs._lab_objects(USER)) == rebuild_state(
        config, USER, whole
    )


def test_trim_cached_keeps_what_readers_read() -> None:
    """Each kind keeps its readers' fields (rebuild_state, _pod_verdict, _store), no more."""
    metadata = {
        "name": "a-nb",
        "namespace": "userlabs-a",
        "uid": "u1",
        "resourceVersion": "7",
        "deletionTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"nublado.lsst.io/user": "a"},
        "annotations": {"nublado.lsst.io/user-name": "A", "other": "x"},
        "managedFields": [{"manager": "nublado"}],
        "ownerReferences": [{"uid": "o"}],
    }
    kept_metadata = {
        k: v
        for k, v in metadata.items()
        if k not in ("managedFields", "annotations", "ownerReferences")
    }
    env = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": metadata}
    env["data"] = {"CPU_LIMIT": "1", "JUPYTERHUB_API_TOKEN_PATH": "x", "DEBUG": "TRUE"}
    assert trim_cached("ConfigMap", env) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": kept_metadata,
        "data": {"CPU_LIMIT": "1", "DEBUG": "TRUE"},
    }
    quota = {"kind": "ResourceQuota", "apiVersion": "v1", "metadata": metadata}
    quota["spec"] = {"hard": {"limits.cpu": "2", "limits.memory": "1Gi", "pods": "1"}}
    quota["status"] = {"used": {}}
    assert trim_cached("ResourceQuota", quota)["spec"] == {
        "hard": {"limits.cpu": "2", "limits.memory": "1Gi"}
    }
    assert "status" not in trim_cached("ResourceQuota", quota)
    namespace = {"kind": "Namespace", "apiVersion": "v1", "metadata": metadata, "spec": {}}
    assert trim_cached("Namespace", namespace) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": kept_metadata,
    }
    waiting = {"waiting": {"reason": "ErrImagePull", "message": "no"}}
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "i",
                    "env": [{"name": "X", "value": "y"}],
                    "securityContext": {"runAsUser": 1, "runAsGroup": 2, "privileged": False},
                }
            ],
            "volumes": [{"name": "v"}],
        },
        "status": {
            "phase": "Pending",
            "reason": "r",
            "podIP": "10.0.0.1",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None}],
            "containerStatuses": [{"name": "notebook", "state": waiting, "imageID": "x"}],
        },
    }
    assert trim_cached("Pod", pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**kept_metadata, "annotations": {"nublado.lsst.io/user-name": "A"}},
        "spec": {
            "containers": [
                {"name": "notebook", "securityContext": {"runAsUser": 1, "runAsGroup": 2}}
            ]
        },
        "status": {
            "phase": "Pending",
            "reason": "r",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "notebook", "state": waiting}],
        },
    }


async def test_running_answers_as_state_without_decoding_every_record(
    labs: LabService, sandbox: Sandbox
) -> None:
    """running() lists the users whose state() is running, from annotations and pod phases."""
    for username in ("ada", "bob", "cy"):
        await spawn(labs, username)
    assert sandbox.finish_pod("userlabs-bob", "bob-nb", "Succeeded")
    await wait_until(
        lambda: labs.state("bob") is not None and labs.state("bob").status is LabStatus.TERMINATED
    )  # type: ignore[union-attr]
    labs._parsed.clear()
    assert labs.running() == ["ada", "cy"]
    assert labs._parsed == {}  # no record decoded for it
    states = {u: labs.state(u) for u in ("ada", "bob", "cy")}
    assert [u for u, s in states.items() if s is not None and s.status is LabStatus.RUNNING] == [
        "ada",
        "cy",
    ]
