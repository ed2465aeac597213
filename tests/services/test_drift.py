"""Drift of labs and file servers against the sandbox: desired render rebuilt from live,
compared through a server-side dry-run apply (services/drift.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fake_registry import FakeRegistry
from fileserver_support import FS_NAMESPACE, fileserver_config
from lab_api_support import CONTROLLER_NAMESPACE, user_for
from reference_cases import TOKEN, reference_discovery, reference_spec, reference_user

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.models.user import UserInfo
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.drift import (
    DriftError,
    FieldDrift,
    LiveObjects,
    NoLabError,
    ObjectDrift,
    Remedy,
    desired_fileserver_manifests,
    desired_lab_manifests,
    differences,
    fileserver_drift,
    lab_drift,
    read_fileserver,
    read_lab,
    read_labs,
)
from nublado.services.fileservers import FileServerService
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService
from nublado.services.labstate import OperationRecord, is_secret_name

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


async def drift_of(
    config: Config, client: KubernetesClient, *, quick: bool = False, **options: Any
) -> list[ObjectDrift]:
    live = await read_lab(client, config, USER, **options)
    assert live is not None
    desired = desired_lab_manifests(config, Renderer(config.template_dirs), USER, live)
    return await lab_drift(client, desired, live, quick=quick)


def summary(drift: list[ObjectDrift]) -> list[tuple[str, bool, Remedy, str]]:
    return [(d.title, d.missing, d.remedy, d.reason) for d in drift]


async def test_a_spawned_lab_has_no_drift(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await spawn(labs)
    objects = sandbox.objects(LAB_NS)
    versions = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in objects
    }
    mark = len(sandbox.requests)
    assert await drift_of(config, client) == []
    # The comparison changes nothing: every apply it sends is a dry run.
    patches = [r.target for r in sandbox.requests[mark:] if r.method == "PATCH"]
    assert len(patches) == 12  # the reference lab's objects, namespace to pod
    assert all("dryRun=All" in t for t in patches)
    objects = sandbox.objects(LAB_NS)
    assert {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in objects
    } == versions
    # The quick comparison finds the same without a single apply.
    mark = len(sandbox.requests)
    assert await drift_of(config, client, quick=True) == []
    assert [r for r in sandbox.requests[mark:] if r.method == "PATCH"] == []


async def test_only_the_dry_run_sees_a_field_apply_would_remove(
    labs: LabService, config: Config, client: KubernetesClient
) -> None:
    """A field nublado applied once and no longer renders: apply removes it, so it is drift."""
    await spawn(labs)
    live = await read_lab(client, config, USER)
    assert live is not None
    desired = desired_lab_manifests(config, Renderer(config.template_dirs), USER, live)
    [manifest] = [m for m in desired if m["kind"] == "Service"]
    manifest["metadata"]["labels"]["left"] = "over"
    await client.apply_one(manifest)
    assert await drift_of(config, client, quick=True) == []
    [found] = await drift_of(config, client)
    assert found.fields == [FieldDrift("metadata.labels.left", "over", None)]
    assert found.remedy is Remedy.APPLY


Change = Callable[[KubernetesClient, Sandbox], Awaitable[None]]


async def delete_network_policy(client: KubernetesClient, sandbox: Sandbox) -> None:
    sandbox.delete("NetworkPolicy", "rachel-nb", LAB_NS)


async def edit_service_label(client: KubernetesClient, sandbox: Sandbox) -> None:
    service = await client.get("Service", "lab", LAB_NS)
    service["metadata"]["labels"]["argocd.argoproj.io/instance"] = "elsewhere"
    await client.replace(service)


async def edit_pod_annotation(client: KubernetesClient, sandbox: Sandbox) -> None:
    pod = await client.get("Pod", "rachel-nb", LAB_NS)
    pod["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = "Prune=true"
    await client.replace(pod)


async def change_pod_image(client: KubernetesClient, sandbox: Sandbox) -> None:
    pod = await client.get("Pod", "rachel-nb", LAB_NS)
    pod["spec"]["containers"][0]["image"] = "lighthouse.ceres/library/sketchbook:other"
    await client.replace(pod)


async def recreate_env(client: KubernetesClient, sandbox: Sandbox) -> None:
    env = await client.get("ConfigMap", "rachel-nb-env", LAB_NS)
    sandbox.delete("ConfigMap", "rachel-nb-env", LAB_NS)
    metadata = {k: env["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}
    await client.create({**env, "metadata": metadata, "data": {**env["data"], "CPU_LIMIT": "9.0"}})


async def delete_secret(client: KubernetesClient, sandbox: Sandbox) -> None:
    sandbox.delete("Secret", "rachel-nb", LAB_NS)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            delete_network_policy,
            (
                "NetworkPolicy/userlabs-rachel/rachel-nb",
                True,
                Remedy.CREATE,
                "missing: apply creates it",
            ),
        ),
        (
            edit_service_label,
            ("Service/userlabs-rachel/lab", False, Remedy.APPLY, "apply fixes it in place"),
        ),
        (
            edit_pod_annotation,
            (
                "Pod/userlabs-rachel/rachel-nb",
                False,
                Remedy.APPLY,
                "the pod's metadata: apply fixes it in place",
            ),
        ),
        (
            change_pod_image,
            (
                "Pod/userlabs-rachel/rachel-nb",
                False,
                Remedy.REPORT,
                "the pod's spec changed: reported, never fixed by deleting it",
            ),
        ),
        (
            recreate_env,
            (
                "ConfigMap/userlabs-rachel/rachel-nb-env",
                False,
                Remedy.REPLACE,
                "the server refuses the change in place (immutable)",
            ),
        ),
        (
            delete_secret,
            (
                "Secret/userlabs-rachel/rachel-nb",
                True,
                Remedy.REPORT,
                "the lab Secret is gone with the user's token: reported",
            ),
        ),
    ],
)
@pytest.mark.parametrize("quick", [False, True], ids=["dry-run", "quick"])
async def test_each_drift_has_its_remedy(
    labs: LabService,
    config: Config,
    client: KubernetesClient,
    sandbox: Sandbox,
    change: Change,
    expected: tuple[str, bool, Remedy, str],
    quick: bool,
) -> None:
    await spawn(labs)
    await change(client, sandbox)
    drift = await drift_of(config, client, quick=quick)
    assert summary(drift) == [expected]
    assert drift[0].fixable == (expected[2] in (Remedy.CREATE, Remedy.APPLY))


async def test_the_fields_of_each_change(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await spawn(labs)
    for change in (edit_service_label, edit_pod_annotation, recreate_env):
        await change(client, sandbox)
    fields = {d.kind: d.fields for d in await drift_of(config, client)}
    assert fields == {
        "Service": [
            FieldDrift(
                'metadata.labels["argocd.argoproj.io/instance"]', "elsewhere", "nublado-users"
            )
        ],
        "Pod": [
            FieldDrift(
                'metadata.annotations["argocd.argoproj.io/sync-options"]',
                "Prune=true",
                "Prune=false",
            )
        ],
        "ConfigMap": [FieldDrift("data.CPU_LIMIT", "9.0", "1.0")],
    }


async def test_applying_the_fixable_drift_repairs_the_lab(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    """What the reconcile does with the comparison: apply what apply can fix, then none."""
    await spawn(labs)
    before = {
        name: sandbox.get("ConfigMap", name, LAB_NS) for name in ("rachel-nb-env", "rachel-nb-nss")
    }
    await delete_network_policy(client, sandbox)
    await edit_service_label(client, sandbox)
    for name in before:
        sandbox.delete("ConfigMap", name, LAB_NS)
    drift = await drift_of(config, client)
    assert [(d.title, d.remedy) for d in drift] == [
        ("ConfigMap/userlabs-rachel/rachel-nb-env", Remedy.CREATE),
        ("ConfigMap/userlabs-rachel/rachel-nb-nss", Remedy.CREATE),
        ("NetworkPolicy/userlabs-rachel/rachel-nb", Remedy.CREATE),
        ("Service/userlabs-rachel/lab", Remedy.APPLY),
    ]
    for found in drift:
        await client.apply_one(found.manifest)
    assert await drift_of(config, client) == []
    for name, old in before.items():
        new = sandbox.get("ConfigMap", name, LAB_NS)
        assert old is not None and new is not None
        # Whole again: the reference spawner sent nothing but the service prefix and the
        # size (what else it sends was only in the env ConfigMap).
        assert new["data"] == old["data"]


async def test_a_vanished_pod_is_reported_from_the_lab_record(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await spawn(labs)
    sandbox.delete("Pod", "rachel-nb", LAB_NS)
    with pytest.raises(DriftError) as failed:
        await drift_of(config, client)
    assert str(failed.value) == "cannot rebuild the lab of rachel: no pod and no lab record"
    record = OperationRecord.from_lease(await client.get("Lease", "lab-rachel", NAMESPACE))
    drift = await drift_of(config, client, record=record)
    assert summary(drift) == [
        (
            "Pod/userlabs-rachel/rachel-nb",
            True,
            Remedy.REPORT,
            "the pod is gone: reported, not recreated",
        )
    ]


async def test_a_user_without_a_lab_has_none(
    labs: LabService, config: Config, client: KubernetesClient
) -> None:
    assert await read_lab(client, config, USER) is None
    live = LiveObjects.of([], kinds=("Namespace",))
    with pytest.raises(NoLabError) as failed:
        desired_lab_manifests(config, Renderer(config.template_dirs), USER, live)
    assert str(failed.value) == "no lab found for user rachel"


async def test_read_labs_lists_each_kind_once_and_finds_objects_out_of_the_list(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await spawn(labs)
    service = await client.get("Service", "lab", LAB_NS)
    service["metadata"]["labels"]["nublado.lsst.io/category"] = "edited"
    await client.replace(service)
    mark = len(sandbox.requests)
    found = await read_labs(client, config)
    sent = [(r.method, r.target) for r in sandbox.requests[mark:] if "watch=true" not in r.target]
    # One labelled LIST per kind: the namespaces, then the seven kinds in all namespaces.
    assert [(method, target.split("?")[0]) for method, target in sent] == [
        ("GET", "/api/v1/namespaces"),
        ("GET", "/api/v1/persistentvolumeclaims"),
        ("GET", "/api/v1/configmaps"),
        ("GET", "/api/v1/secrets"),
        ("GET", "/api/v1/resourcequotas"),
        ("GET", "/apis/networking.k8s.io/v1/networkpolicies"),
        ("GET", "/api/v1/services"),
        ("GET", "/api/v1/pods"),
    ]
    assert all("labelSelector=nublado.lsst.io/category%3Dlab&" in t for _, t in sent)
    assert list(found) == [USER]
    live = found[USER]
    assert live.get("Service", "lab") is None  # its label took it out of the labelled LIST
    assert live.get("Pod", "rachel-nb") is not None
    desired = desired_lab_manifests(config, Renderer(config.template_dirs), USER, live)
    drift = await lab_drift(client, desired, live)
    assert [(d.title, d.missing, d.fields) for d in drift] == [
        (
            "Service/userlabs-rachel/lab",
            False,
            [FieldDrift('metadata.labels["nublado.lsst.io/category"]', "edited", "lab")],
        )
    ]


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        ({"a": {"b.c/d": "x"}}, {"a": {"b.c/d": "y"}}, [FieldDrift('a["b.c/d"]', "x", "y")]),
        ({"a": 1}, {}, [FieldDrift("a", 1, None)]),
        ({"cpu": "1"}, {"cpu": "1.0"}, []),
        ({"limits": {"memory": "3Gi"}}, {"limits": {"memory": "3221225472"}}, []),
        (
            {"c": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]},
            {"c": [{"name": "a", "v": 1}, {"name": "b", "v": 3}]},
            [FieldDrift("c[name=b].v", 2, 3)],
        ),
        ({"c": [1, 2]}, {"c": [1, 3]}, [FieldDrift("c[1]", 2, 3)]),
        ({"c": [1, 2]}, {"c": [1]}, [FieldDrift("c", [1, 2], [1])]),
    ],
)
def test_differences_name_their_paths(
    live: dict[str, Any], desired: dict[str, Any], expected: list[FieldDrift]
) -> None:
    assert differences(live, desired) == expected


async def test_a_file_server_has_no_drift_and_a_changed_job_is_report_only(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
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

    async def drift(quick: bool = False) -> list[ObjectDrift]:
        live = await read_fileserver(client, config, "rachel")
        assert live is not None
        desired = desired_fileserver_manifests(config, renderer, "rachel", live)
        return await fileserver_drift(client, desired, live, quick=quick)

    assert await drift() == []
    assert await drift(quick=True) == []
    assert await read_fileserver(client, config, "nobody") is None

    def mutate(job: dict[str, Any]) -> None:
        job["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "1"

    with sandbox.cluster.store.lock:
        sandbox.cluster.update_internal("Job", FS_NAMESPACE, "rachel-fs", mutate, "editor")
    found = await drift()
    assert await drift(quick=True) == found
    assert summary(found) == [
        (
            "Job/fileservers/rachel-fs",
            False,
            Remedy.REPORT,
            "the file-server Job's spec changed: reported, never fixed by deleting it",
        )
    ]
    assert found[0].fields == [
        FieldDrift(
            "spec.template.spec.containers[name=fileserver].env[name=WORBLEHAT_TIMEOUT].value",
            "1",
            "3600",
        )
    ]


async def test_the_fingerprint_changes_with_any_object(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await spawn(labs)
    first = await read_lab(client, config, USER)
    again = await read_lab(client, config, USER)
    assert first is not None and again is not None
    assert first.fingerprint() == again.fingerprint()
    assert len(first.fingerprint()) == 12  # the reference lab: its namespace and 11 objects
    await edit_service_label(client, sandbox)
    edited = await read_lab(client, config, USER)
    assert edited is not None
    assert edited.fingerprint() != first.fingerprint()


async def test_a_lab_without_pod_and_env_is_rebuilt_from_its_record(
    labs: LabService, config: Config, client: KubernetesClient, sandbox: Sandbox
) -> None:
    """The record's lab state gives the user, size and options the lost objects held."""
    spec = reference_spec()
    spec = spec.model_copy(
        update={"options": spec.options.model_copy(update={"enable_debug": True})}
    )
    await labs.create(reference_user(), TOKEN, spec)
    async with asyncio.timeout(10):
        async for _ in await labs.events(USER):
            pass
    env = sandbox.get("ConfigMap", "rachel-nb-env", LAB_NS)
    assert env is not None
    sandbox.delete("ConfigMap", "rachel-nb-env", LAB_NS)
    sandbox.delete("Pod", "rachel-nb", LAB_NS)
    record = OperationRecord.from_lease(await client.get("Lease", "lab-rachel", NAMESPACE))
    drift = await drift_of(config, client, record=record)
    assert [(d.title, d.missing, d.remedy) for d in drift] == [
        ("ConfigMap/userlabs-rachel/rachel-nb-env", True, Remedy.CREATE),
        ("Pod/userlabs-rachel/rachel-nb", True, Remedy.REPORT),
    ]
    rebuilt = drift[0].manifest["data"]
    assert rebuilt == env["data"]
    assert rebuilt["DEBUG"] == "TRUE"


# Secrets the lab record never holds


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("JUPYTERHUB_API_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("db-password", True),
        ("API_KEYS", True),
        ("KEYCLOAK_URL", False),
        ("TOKENIZER", False),
        ("JUPYTERHUB_SERVICE_PREFIX", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_record_writes_secret_env_keys_without_values_and_keeps_them_across_rewrites() -> None:
    """The Lease holds a secret's key (null), never its value; a record read back and
    written again (a takeover) still knows which keys it withheld."""
    record = OperationRecord(
        username="rachel", spawn_env={"JUPYTERHUB_API_TOKEN": "hub-secret", "A": "1"}
    )
    lease = record.to_lease("nublado")
    written = lease["metadata"]["annotations"]["nublado.lsst.io/spawn-env"]
    assert json.loads(written) == {"JUPYTERHUB_API_TOKEN": None, "A": "1"}
    read = OperationRecord.from_lease(lease)
    assert (read.spawn_env, read.withheld_env) == ({"A": "1"}, ["JUPYTERHUB_API_TOKEN"])
    again = OperationRecord(
        username="rachel", spawn_env=read.spawn_env, withheld_env=read.withheld_env
    ).to_lease("nublado")
    assert again["metadata"]["annotations"]["nublado.lsst.io/spawn-env"] == written
