"""User file servers over HTTP (issue #10 items 1, 2, 4): the real controller on the sandbox.

Each test drives the controller app (`build_controller`, as ``nublado
serve`` builds it) through its routes; Kubernetes is the sandbox's API
server over HTTP, which also plays the Job controller, the Gafaelfawr
operator and the ingress controller; Gafaelfawr is mocked at its HTTP
boundary with respx. Outcomes are read back from the sandbox and through
the admin routes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from fileserver_support import (
    FS_NAMESPACE,
    fileserver_config,
    fileserver_objects,
    reference_fileserver_differences,
)
from lab_api_support import (
    CONTROLLER_NAMESPACE,
    controller_namespace,
    lab_controller,
    mock_gafaelfawr,
    on_uvicorn,
    served,
    token_for,
    wait_until,
)
from reference_cases import reference_config
from starlette.applications import Starlette

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox, SandboxSettings

ADMIN = "/nublado/fileserver/v1"
NOT_SUPPORTED = {
    "detail": [{"msg": "Fileserver is disabled in configuration", "type": "not_supported"}]
}
NOT_RUNNING = {"detail": [{"msg": "No file server running", "type": "unknown_user"}]}
RUNNING = {"running": True}


def headers(user: str) -> dict[str, str]:
    return {"X-Auth-Request-User": user, "X-Auth-Request-Token": token_for(user)}


def unknown(msg: str) -> dict[str, Any]:
    return {"detail": [{"msg": msg, "type": "unknown_user"}]}


def pods(sandbox: Sandbox, user: str) -> list[dict[str, Any]]:
    return sandbox.objects(FS_NAMESPACE, "Pod", label_selector=f"job-name={user}-fs")


Controller = Callable[[Config, str], Starlette]


@pytest.fixture
def sandbox_settings(request: pytest.FixtureRequest) -> SandboxSettings:
    """Pods start and go at once, unless a test asks otherwise (indirect parameter)."""
    settings: SandboxSettings = getattr(request, "param", SandboxSettings(pod_grace_scale=0.0))
    return settings


@pytest.fixture
async def controller(
    client: KubernetesClient, admin: KubernetesClient, registry: Any, router: respx.MockRouter
) -> Controller:
    """Builds controller apps on one sandbox, for a configuration and a replica identity."""
    mock_gafaelfawr(router)
    await controller_namespace(admin)

    def build(config: Config, identity: str) -> Starlette:
        return lab_controller(config, client, httpx.AsyncClient(), identity)

    return build


@pytest.fixture
async def api(controller: Controller) -> AsyncIterator[httpx.AsyncClient]:
    async with served(controller(fileserver_config(), "replica-a")) as api:
        yield api


async def test_reference_file_server(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    response = await api.get("/files", headers=headers("rachel"))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "<title>User Fileserver Created</title>" in page
    url = "https://data.example.com/files/rachel"
    assert f'<a href="{url}">{url}</a>' in page
    assert "<code>write:files</code>" in page
    assert "https://rsp.lsst.io/guides/webdav/index.html" in page
    assert reference_fileserver_differences(sandbox) == []
    assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]
    assert (await api.get(f"{ADMIN}/users/rachel")).json() == RUNNING
    status = await api.get(f"{ADMIN}/user-status", headers={"X-Auth-Request-User": "rachel"})
    assert status.json() == RUNNING


async def test_second_request_finds_it_running(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
    job = sandbox.get("Job", "rachel-fs", FS_NAMESPACE)
    before = len(sandbox.requests)

    again = await api.get("/files", headers=headers("rachel"))

    assert again.status_code == 200
    assert sandbox.get("Job", "rachel-fs", FS_NAMESPACE) == job
    writes = [r for r in sandbox.requests[before:] if r.method in ("POST", "PATCH", "PUT")]
    assert writes == []


async def test_routes_and_their_errors(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    assert (await api.get("/files/rachel", headers=headers("rachel"))).status_code == 404
    assert (await api.get("/files")).status_code == 422
    bad = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "nope"}
    assert (await api.get("/files", headers=bad)).status_code == 401
    assert fileserver_objects(sandbox, "rachel") == []
    assert (await api.get(f"{ADMIN}/users")).json() == []
    missing = await api.get(f"{ADMIN}/users/rachel")
    assert (missing.status_code, missing.json()) == (404, NOT_RUNNING)
    no_header = await api.get(f"{ADMIN}/user-status")
    assert no_header.status_code == 422
    never = await api.delete(f"{ADMIN}/users/rachel")
    assert (never.status_code, never.json()) == (404, unknown("Unknown user rachel"))

    assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
    deleted = await api.delete(f"{ADMIN}/users/rachel")

    assert (deleted.status_code, deleted.content) == (204, b"")
    # PVCs are deleted without waiting (objects.md 7.4): the rest is gone at once.
    left = {k for k, _ in fileserver_objects(sandbox, "rachel")}
    assert left <= {"PersistentVolumeClaim", "Pod"}
    await wait_until(lambda: fileserver_objects(sandbox, "rachel") == [])
    assert (await api.get(f"{ADMIN}/users")).json() == []
    again = await api.delete(f"{ADMIN}/users/rachel")
    assert (again.status_code, again.json()) == (
        404,
        unknown("File server for rachel not running"),
    )


async def test_disabled(controller: Controller, sandbox: Sandbox) -> None:
    config = reference_config("standard")
    from image_fixtures import CREDENTIALS

    images = config.images.model_copy(update={"docker_credentials_path": CREDENTIALS})
    config = config.model_copy(update={"images": images})
    assert not config.fileserver.enabled
    async with served(controller(config, "replica-a")) as api:
        files = await api.get("/files", headers=headers("rachel"))
        unauthenticated = await api.get("/files")
        answers = [
            await api.get(f"{ADMIN}/users"),
            await api.get(f"{ADMIN}/users/rachel"),
            await api.delete(f"{ADMIN}/users/rachel"),
            await api.get(f"{ADMIN}/user-status", headers={"X-Auth-Request-User": "rachel"}),
        ]

    assert (files.status_code, files.json()) == (404, NOT_SUPPORTED)
    assert unauthenticated.status_code == 422
    assert [(r.status_code, r.json()) for r in answers] == [(404, NOT_SUPPORTED)] * 4
    assert sandbox.get("Namespace", FS_NAMESPACE) is None


@pytest.mark.parametrize(
    "sandbox_settings",
    [SandboxSettings(pod_grace_scale=0.0, ingress_address_delay=None)],
    indirect=True,
)
async def test_creation_timeout(controller: Controller, sandbox: Sandbox) -> None:
    async with served(controller(fileserver_config(creation=0.5), "replica-a")) as api:
        response = await api.get("/files", headers=headers("rachel"))
        users = await api.get(f"{ADMIN}/users")

    assert response.status_code == 500
    assert response.json() == {
        "detail": [
            {
                "msg": "Failed to create file server: File server creation timed out after 0.5",
                "type": "file_server_create_failed",
            }
        ]
    }
    assert users.json() == []
    await wait_until(lambda: fileserver_objects(sandbox, "rachel") == [])


async def test_pod_failing_at_start_fails_the_creation(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.set_pod_failure("Failed", name="rachel-fs-*", namespace=FS_NAMESPACE)

    response = await api.get("/files", headers=headers("rachel"))

    assert response.status_code == 500
    detail = response.json()["detail"][0]
    assert detail["type"] == "file_server_create_failed"
    assert detail["msg"].startswith("Failed to create file server: File server pod rachel-fs-")
    assert detail["msg"].endswith(" ended in phase Failed")
    await wait_until(lambda: fileserver_objects(sandbox, "rachel") == [])


async def test_deletion_timeout(controller: Controller, sandbox: Sandbox) -> None:
    async with served(controller(fileserver_config(delete=0.5), "replica-a")) as api:
        assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
        stuck: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "rachel-fs",
                "namespace": FS_NAMESPACE,
                "finalizers": ["test.nublado.lsst.io/never"],
            },
        }
        sandbox.apply(stuck, field_manager="test")

        response = await api.delete(f"{ADMIN}/users/rachel")

        assert response.status_code == 500
        assert response.json() == {
            "detail": [
                {
                    "msg": "Failed to delete file server: File server deletion timed out after 0.5",
                    "type": "file_server_delete_failed",
                }
            ]
        }
        assert (await api.get(f"{ADMIN}/users")).json() == []
        # Once the finalizer goes, a new request cleans up and creates the server again.
        sandbox.apply(
            {**stuck, "metadata": {**stuck["metadata"], "finalizers": []}}, field_manager="test"
        )
        assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
        assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]


async def test_an_object_the_cluster_refuses_leaves_nothing(
    controller: Controller, sandbox: Sandbox
) -> None:
    # The GafaelfawrIngress CRD requires an https base URL: the PVC is made, the
    # GafaelfawrIngress refused, and the PVC removed again.
    config = fileserver_config().model_copy(update={"base_url": "http://127.0.0.1:8080"})
    async with served(controller(config, "replica-a")) as api:
        response = await api.get("/files", headers=headers("rachel"))
        users = await api.get(f"{ADMIN}/users")

    assert response.status_code == 500
    detail = response.json()["detail"][0]
    assert detail["type"] == "file_server_create_failed"
    assert detail["msg"].startswith(
        'Failed to create file server: GafaelfawrIngress.gafaelfawr.lsst.io "rachel-fs" is invalid'
    )
    assert "config.baseUrl" in detail["msg"]
    assert users.json() == []
    pvc_writes = [
        r
        for r in sandbox.requests
        if r.method == "PATCH" and "/persistentvolumeclaims/" in r.target
    ]
    assert len(pvc_writes) == 1
    await wait_until(lambda: fileserver_objects(sandbox, "rachel") == [])
    lease = sandbox.get("Lease", "fs-rachel", CONTROLLER_NAMESPACE)
    assert lease is not None
    assert lease["metadata"]["annotations"]["nublado.lsst.io/result"] == "failed"


async def test_ten_concurrent_requests_make_one_file_server(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    responses = await asyncio.gather(
        *(api.get("/files", headers=headers("rachel")) for _ in range(10))
    )

    assert [r.status_code for r in responses] == [200] * 10
    job_writes = [
        r for r in sandbox.requests if r.method in ("POST", "PATCH", "PUT") and "/jobs" in r.target
    ]
    assert len(job_writes) == 1
    assert len(pods(sandbox, "rachel")) == 1
    assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]


async def test_concurrent_requests_across_replicas(
    controller: Controller, sandbox: Sandbox
) -> None:
    config = fileserver_config()
    async with (
        served(controller(config, "replica-a")) as a,
        served(controller(config, "replica-b")) as b,
    ):
        responses = await asyncio.gather(
            *(api.get("/files", headers=headers("rachel")) for api in (a, b, a, b))
        )
        assert [r.status_code for r in responses] == [200] * 4
        assert (await b.get(f"{ADMIN}/users")).json() == ["rachel"]
    job_writes = [
        r for r in sandbox.requests if r.method in ("POST", "PATCH", "PUT") and "/jobs" in r.target
    ]
    assert len(job_writes) == 1
    lease = sandbox.get("Lease", "fs-rachel", CONTROLLER_NAMESPACE)
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
async def test_finished_file_server_is_cleaned_up(
    api: httpx.AsyncClient, sandbox: Sandbox, phase: str
) -> None:
    assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
    assert (await api.get("/files", headers=headers("wanda"))).status_code == 200
    (pod,) = pods(sandbox, "rachel")

    assert sandbox.finish_pod(FS_NAMESPACE, pod["metadata"]["name"], phase)

    await wait_until(lambda: fileserver_objects(sandbox, "rachel") == [])
    assert (await api.get(f"{ADMIN}/users")).json() == ["wanda"]
    missing = await api.get(f"{ADMIN}/users/rachel")
    assert (missing.status_code, missing.json()) == (404, NOT_RUNNING)
    # The user may start a new one.
    assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
    assert (await api.get(f"{ADMIN}/users")).json() == ["rachel", "wanda"]


async def test_restart_with_file_servers_running(controller: Controller, sandbox: Sandbox) -> None:
    config = fileserver_config()
    async with served(controller(config, "replica-a")) as api:
        for user in ("rachel", "wanda"):
            assert (await api.get("/files", headers=headers(user))).status_code == 200
    jobs = {u: sandbox.get("Job", f"{u}-fs", FS_NAMESPACE) for u in ("rachel", "wanda")}

    async with served(controller(config, "replica-b")) as api:
        assert (await api.get(f"{ADMIN}/users")).json() == ["rachel", "wanda"]
        assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
        (pod,) = pods(sandbox, "wanda")
        sandbox.finish_pod(FS_NAMESPACE, pod["metadata"]["name"])
        await wait_until(lambda: fileserver_objects(sandbox, "wanda") == [])
        assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]

    assert sandbox.get("Job", "rachel-fs", FS_NAMESPACE) == jobs["rachel"]


async def test_restart_removes_a_broken_file_server(
    controller: Controller, sandbox: Sandbox, client: KubernetesClient
) -> None:
    config = fileserver_config()
    async with served(controller(config, "replica-a")) as api:
        assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
    # While no controller runs, the server's pod exits.
    (pod,) = pods(sandbox, "rachel")
    sandbox.finish_pod(FS_NAMESPACE, pod["metadata"]["name"])

    async with served(controller(config, "replica-b")) as api:
        await wait_until(lambda: fileserver_objects(sandbox, "rachel") == [])
        assert (await api.get(f"{ADMIN}/users")).json() == []


async def test_namespace_created_when_missing(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    namespace = sandbox.get("Namespace", FS_NAMESPACE)

    assert namespace is not None
    assert (await api.get("/files", headers=headers("rachel"))).status_code == 200


async def test_files_through_a_real_uvicorn_server(
    controller: Controller, sandbox: Sandbox, router: respx.MockRouter
) -> None:
    router.route(host="127.0.0.1").pass_through()
    app = controller(fileserver_config(), "replica-a")
    await app.state.images.refresh()
    async with (
        on_uvicorn(app, lifespan="on") as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as web,
    ):
        created = await web.get("/files", headers=headers("rachel"))
        slash = await web.get("/files/", headers=headers("rachel"))
        users = await web.get(f"{ADMIN}/users")
        deleted = await web.delete(f"{ADMIN}/users/rachel")

    assert created.status_code == 200
    assert "User Fileserver Created" in created.text
    assert slash.status_code == 307
    assert users.json() == ["rachel"]
    assert deleted.status_code == 204


async def test_user_without_uid_is_refused_before_any_object(
    controller: Controller, sandbox: Sandbox, router: respx.MockRouter
) -> None:
    from lab_api_support import user_for

    mock_gafaelfawr(router, {"gt-nouid.token": user_for("nouid", uid=None)})
    async with served(controller(fileserver_config(), "replica-a")) as api:
        response = await api.get("/files", headers=headers("nouid"))

    assert response.status_code == 500
    detail = response.json()["detail"][0]
    assert detail["type"] == "file_server_create_failed"
    assert "no uid or gid" in detail["msg"]
    assert fileserver_objects(sandbox, "nouid") == []
    assert sandbox.get("Lease", "fs-nouid", CONTROLLER_NAMESPACE) is None


async def test_a_record_left_by_a_dead_replica_is_taken_over(
    controller: Controller, sandbox: Sandbox, admin: KubernetesClient
) -> None:
    # A replica died while creating rachel's file server: its record is held,
    # renewed a moment ago for 1 s, and a Service is all it made.
    await admin.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": FS_NAMESPACE},
        }
    )
    renewed = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await admin.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "fs-rachel",
                "namespace": CONTROLLER_NAMESPACE,
                "labels": {
                    "nublado.lsst.io/category": "fileserver-operation",
                    "nublado.lsst.io/user": "rachel",
                },
            },
            "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 1, "renewTime": renewed},
        }
    )
    old = await admin.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "rachel-fs",
                "namespace": FS_NAMESPACE,
                "labels": {
                    "nublado.lsst.io/category": "fileserver",
                    "nublado.lsst.io/user": "rachel",
                },
            },
            "spec": {"ports": [{"port": 8000}]},
        }
    )
    async with served(controller(fileserver_config(), "replica-a")) as api:
        start = time.monotonic()
        responses = await asyncio.gather(
            api.get("/files", headers=headers("rachel")),
            api.get("/files", headers=headers("rachel")),
        )
        waited = time.monotonic() - start

        assert [r.status_code for r in responses] == [200, 200]
        assert waited >= 0.5  # the ghost's record had to expire first
        assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]
    service = sandbox.get("Service", "rachel-fs", FS_NAMESPACE)
    assert service is not None
    assert service["metadata"]["uid"] != old["metadata"]["uid"]
    assert reference_fileserver_differences(sandbox) == []
    lease = sandbox.get("Lease", "fs-rachel", CONTROLLER_NAMESPACE)
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]
    assert lease["metadata"]["annotations"]["nublado.lsst.io/result"] == "complete"


async def test_revisit_waits_for_the_old_claims_to_go(
    controller: Controller, sandbox: Sandbox
) -> None:
    # objects.md 7.4: a create replaces; an old claim still being deleted is waited
    # out, never patched just before it vanishes under the new pod.
    async with served(controller(fileserver_config(creation=6), "replica-a")) as api:
        assert (await api.get("/files", headers=headers("rachel"))).status_code == 200
        (pvc,) = sandbox.objects(FS_NAMESPACE, "PersistentVolumeClaim")
        name = pvc["metadata"]["name"]
        slow = {"name": name, "namespace": FS_NAMESPACE, "finalizers": ["test/slow"]}
        sandbox.apply(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": slow},
            field_manager="test",
        )
        (pod,) = pods(sandbox, "rachel")
        assert sandbox.finish_pod(FS_NAMESPACE, pod["metadata"]["name"])

        def only_the_claim_left() -> bool:
            left = sandbox.get("PersistentVolumeClaim", name, FS_NAMESPACE)
            kinds = [kind for kind, _ in fileserver_objects(sandbox, "rachel")]
            return kinds == ["PersistentVolumeClaim"] and bool(
                left and left["metadata"].get("deletionTimestamp")
            )

        await wait_until(only_the_claim_left)

        async def release() -> None:
            await asyncio.sleep(1.0)
            slow["finalizers"] = []
            sandbox.apply(
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": slow},
                field_manager="test",
            )

        releasing = asyncio.create_task(release())
        response = await api.get("/files", headers=headers("rachel"))
        await releasing

        assert response.status_code == 200, response.text
        claim = sandbox.get("PersistentVolumeClaim", name, FS_NAMESPACE)
        assert claim is not None
        assert claim["metadata"]["uid"] != pvc["metadata"]["uid"]
        assert not claim["metadata"].get("deletionTimestamp")
        assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]


class _LaggingIngressWatch:
    """A client whose Ingress watch runs 300 ms behind the cluster (and the Lease watch)."""

    def __init__(self, kube: KubernetesClient) -> None:
        self._kube = kube

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)

    async def watch(self, kind: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for event in self._kube.watch(kind, *args, **kwargs):
            if kind == "Ingress":
                await asyncio.sleep(0.3)
            yield event


async def test_a_replica_with_a_lagging_cache_keeps_the_other_s_server(
    controller: Controller, sandbox: Sandbox
) -> None:
    # b claims the record as soon as a released it, before b's Ingress cache has
    # seen the address: it must read the objects afresh, not remove a's server.
    config = fileserver_config()
    a_app, b_app = controller(config, "replica-a"), controller(config, "replica-b")
    fileservers = b_app.state.fileservers
    fileservers._kube = _LaggingIngressWatch(fileservers._kube)
    async with served(a_app) as a, served(b_app) as b:
        first = asyncio.create_task(a.get("/files", headers=headers("rachel")))
        await asyncio.sleep(0.05)
        second = await b.get("/files", headers=headers("rachel"))
        assert [(await first).status_code, second.status_code] == [200, 200]
        assert (await a.get(f"{ADMIN}/users")).json() == ["rachel"]

    job_writes = [r for r in sandbox.requests if r.method == "PATCH" and "/jobs/" in r.target]
    job_deletes = [r for r in sandbox.requests if r.method == "DELETE" and "/jobs/" in r.target]
    assert (len(job_writes), job_deletes) == (1, [])


async def test_a_failing_record_write_answers_the_wrapped_errors(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    # api.md 2.4: a Kubernetes error while claiming the record is a failed
    # creation or deletion too, never a plain-text Internal Server Error.
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{CONTROLLER_NAMESPACE}/leases"
    injected = "injected fault: {0} {1} ({0} {1})"
    sandbox.inject_fault("POST", f"{leases}*", status=403, count=None)
    response = await api.get("/files", headers=headers("rachel"))
    message = "Failed to create file server: " + injected.format(403, "Forbidden")
    assert (response.status_code, response.json()) == (
        500,
        {"detail": [{"msg": message, "type": "file_server_create_failed"}]},
    )
    assert fileserver_objects(sandbox, "rachel") == []
    sandbox.clear_faults()
    assert (await api.get("/files", headers=headers("rachel"))).status_code == 200

    deleted = "Failed to delete file server: " + injected.format(500, "InternalError")
    failed = {"detail": [{"msg": deleted, "type": "file_server_delete_failed"}]}
    sandbox.inject_fault("PUT", f"{leases}/fs-rachel*", status=500, count=None)
    response = await api.delete(f"{ADMIN}/users/rachel")
    assert (response.status_code, response.json()) == (500, failed)
    sandbox.clear_faults()
    sandbox.inject_fault("PUT", f"{leases}/fs-rachel*", status=409, count=None)
    sandbox.inject_fault("GET", f"{leases}/fs-rachel*", status=500, count=None)
    response = await api.delete(f"{ADMIN}/users/rachel")
    assert (response.status_code, response.json()) == (500, failed)
    sandbox.clear_faults()
    assert (await api.get(f"{ADMIN}/users")).json() == ["rachel"]
