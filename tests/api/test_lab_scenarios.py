"""Whole lab scenarios over HTTP (issue #9 item 7): the real controller on the sandbox.

Each test drives one or more real controller apps (`build_controller`, as
``nublado serve`` builds them) through their routes, with Kubernetes the
sandbox's API server over HTTP and Gafaelfawr mocked at its HTTP boundary
with respx (also for the 100- and 200-request tests: one side-effect answers
every ``gt-<user>.token``, which costs nothing next to a spawn). Outcomes
are read back from the sandbox (objects, operation records) and through the
routes (status, list, events). Every event stream is read with a timeout, so
a stream that never ends fails the test instead of hanging it.

Sandbox delays are used only where a test needs a pod held Pending.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from lab_api_support import (
    CONTROLLER_NAMESPACE,
    LABS,
    RACHEL_TOKEN,
    SPEC,
    collect_sse,
    controller_namespace,
    lab_controller,
    mock_gafaelfawr,
    reference_lab_differences,
    run_pod,
    served,
    spec_for,
    token_for,
    wait_until,
)
from reference_cases import EXPECTED
from sandbox_fixtures import NODES
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox, SandboxSettings

STATUS = json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
REFERENCE_EVENTS = json.loads((EXPECTED / "spawn" / "events.json").read_text())
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{CONTROLLER_NAMESPACE}/leases/*"
LAB_NS = "userlabs-rachel"
PENDING = SandboxSettings(pod_grace_scale=0.0, schedule_delay=60.0)
"""Pods stay Pending (unscheduled, no Events) until a test runs them (`run_pod`)."""
PERMISSION_DENIED = {"detail": [{"msg": "Permission denied", "type": "permission_denied"}]}
DELETE_FAILED = {"detail": [{"msg": "Failed to delete lab", "type": "delete_failed"}]}


def in_progress(user: str) -> dict[str, Any]:
    msg = f"Conflicting operation for {user} already in progress"
    return {"detail": [{"msg": msg, "type": "operation_in_progress"}]}


def lab_exists(user: str) -> dict[str, Any]:
    return {"detail": [{"msg": f"Lab already exists for {user}", "type": "lab_exists"}]}


def started(user: str) -> tuple[str, dict[str, Any]]:
    return ("info", {"message": f"Starting lab creation for {user}", "progress": 1})


def complete(user: str) -> tuple[str, dict[str, Any]]:
    return ("complete", {"message": f"Lab Kubernetes pod started for {user}"})


CREATED = ("info", {"message": "Created Kubernetes objects for user lab", "progress": 30})
SPAWN_FAILED = ("failed", {"message": "Lab spawn failed"})
CANCELLED = ("failed", {"message": "Operation cancelled"})
INTERRUPTED = ("error", {"message": "Lab spawn interrupted: the controller running it stopped"})


def error(message: str) -> tuple[str, dict[str, Any]]:
    return ("error", {"message": message})


def deleted(user: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("info", {"message": "Shutting down Kubernetes pod", "progress": 25}),
        ("info", {"message": "Deleting user namespace", "progress": 62}),
        ("info", {"message": f"Lab for {user} deleted", "progress": 100}),
    ]


# A sandbox that can also drop connections


class ConnectionDropper:
    """ASGI wrapper of the sandbox: a matching request gets half an answer, then the
    connection is cut (uvicorn closes it when the app fails after starting a response),
    as a restarting API server or a broken proxy does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rules: list[list[Any]] = []  # [method, path, remaining (None: all)]

    def drop(self, method: str, path: str, count: int | None = 1) -> None:
        self.rules.append([method, path, count])

    def _take(self, method: str, path: str) -> bool:
        for rule in self.rules:
            if rule[0] == method and rule[1] == path and rule[2] != 0:
                if rule[2] is not None:
                    rule[2] -= 1
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._take(scope["method"], scope["path"]):
            headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"kind": ', "more_body": True})
            raise ConnectionAbortedError("the test drops this connection")
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served_sandbox() -> Iterator[Sandbox]:
    """The module's sandbox server, its app wrapped in a `ConnectionDropper`."""
    box = Sandbox()
    box.app = ConnectionDropper(box.app)  # type: ignore[assignment]
    with box.serve():
        yield box


@pytest.fixture
def dropper(sandbox: Sandbox) -> Iterator[ConnectionDropper]:
    wrapper = sandbox.app
    assert isinstance(wrapper, ConnectionDropper)
    wrapper.rules.clear()
    yield wrapper
    wrapper.rules.clear()


# Controllers

Controller = Callable[..., Starlette]
"""``controller(identity, daemon=True)``: a replica's app (`lab_controller`)."""


@pytest.fixture
def sandbox_settings(request: pytest.FixtureRequest) -> SandboxSettings:
    """Pods start and go at once, unless a test asks otherwise (indirect parameter)."""
    settings: SandboxSettings = getattr(request, "param", SandboxSettings(pod_grace_scale=0.0))
    return settings


@pytest.fixture
def gafaelfawr(router: respx.MockRouter) -> respx.Route:
    return mock_gafaelfawr(router)


@pytest.fixture
async def controller(
    request: pytest.FixtureRequest,
    config: Config,
    client: KubernetesClient,
    admin: KubernetesClient,
    http: httpx.AsyncClient,
    registry: Any,
    gafaelfawr: respx.Route,
) -> Controller:
    """Builds controller apps (replicas, or one controller restarted) on one sandbox.

    An indirect parameter sets the spawn timeout in seconds (standard.yaml's is 10).
    """
    await controller_namespace(admin)
    timeout = getattr(request, "param", None)
    if timeout is not None:
        lab = config.lab.model_copy(update={"spawn_timeout": timedelta(seconds=timeout)})
        config = config.model_copy(update={"lab": lab})
    return lambda identity, **kwargs: lab_controller(config, client, http, identity, **kwargs)


@pytest.fixture
async def api(controller: Controller) -> AsyncIterator[httpx.AsyncClient]:
    async with served(controller("replica-a")) as api:
        yield api


def more_nodes(sandbox: Sandbox, copies: int) -> None:
    """Copies of the example nodes (8 CPUs, 32 GiB each), so that a hundred labs fit."""
    nodes = json.loads(NODES.read_text())
    sandbox.load_nodes({f"{name}-{i}": spec for i in range(copies) for name, spec in nodes.items()})


def headers(user: str) -> dict[str, str]:
    return {"X-Auth-Request-User": user, "X-Auth-Request-Token": token_for(user)}


async def create(api: httpx.AsyncClient, user: str) -> httpx.Response:
    return await api.post(f"{LABS}/{user}/create", json=spec_for(user), headers=headers(user))


def lab_namespaces(sandbox: Sandbox) -> list[str]:
    names = [ns["metadata"]["name"] for ns in sandbox.objects(None, "Namespace")]
    return sorted(n for n in names if n.startswith("userlabs-"))


def record(sandbox: Sandbox, user: str) -> dict[str, str]:
    """The annotations of the user's operation record (Lease), with its holder."""
    lease = sandbox.get("Lease", f"lab-{user}", CONTROLLER_NAMESPACE)
    assert lease is not None
    annotations: dict[str, str] = lease["metadata"]["annotations"]
    return {**annotations, "holder": lease["spec"].get("holderIdentity", "")}


def starts(sandbox: Sandbox, user: str) -> int:
    """How many spawns the user's record saw begin (a duplicated spawn shows twice)."""
    events = json.loads(record(sandbox, user)["nublado.lsst.io/events"])
    return sum(1 for _, message, _ in events if message.startswith("Starting lab creation"))


# The reference lab


async def test_reference_lab_through_the_api(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    # The record write after the objects is held back so that the pod is Running by
    # the time the spawn looks at it, as in upstream's fixture (no pod Events).
    sandbox.add_latency(0.1, "PUT", LEASES, count=1)

    created = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=headers("rachel"))
    async with asyncio.timeout(10):
        events = await api.get(f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "rachel"})
    status = await api.get(f"{LABS}/rachel")

    assert created.status_code == 201
    assert events.text == "".join(
        f"event: {e['event']}\r\ndata: {e['data']}\r\n\r\n" for e in REFERENCE_EVENTS
    )
    assert status.json() == STATUS
    problems = reference_lab_differences(sandbox, LAB_NS)
    assert problems == [], "\n".join(problems)


# Many users, duplicates


@pytest.mark.parametrize("controller", [120], indirect=True)
async def test_100_users_create_concurrently(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    more_nodes(sandbox, 2)
    users = [f"user{i:03d}" for i in range(100)]

    responses = await asyncio.gather(*(create(api, user) for user in users))
    streams = await asyncio.gather(*(collect_sse(api, user, timeout=30) for user in users))
    listed = await api.get(LABS)

    assert [r.status_code for r in responses] == [201] * 100
    assert [events[-1] for events in streams] == [complete(user) for user in users]
    assert sorted(listed.json()) == users
    assert lab_namespaces(sandbox) == [f"userlabs-{user}" for user in users]
    pods = [sandbox.get("Pod", f"{user}-nb", f"userlabs-{user}") for user in users]
    assert [(pod or {}).get("status", {}).get("phase") for pod in pods] == ["Running"] * 100
    assert all(starts(sandbox, user) == 1 for user in users)


async def test_duplicate_creates_of_one_user(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    responses = await asyncio.gather(*(create(api, "rachel") for _ in range(10)))
    events = await collect_sse(api, "rachel")

    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    conflicts = [r.json() for r in responses if r.status_code == 409]
    # All ten arrive while the first spawn runs: none can see its lab yet.
    assert conflicts == [in_progress("rachel")] * 9
    assert events[-1] == complete("rachel")
    assert starts(sandbox, "rachel") == 1
    assert (await api.get(LABS)).json() == ["rachel"]


# Delete during a spawn


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_delete_during_a_spawn(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    created = await create(api, "rachel")
    await wait_until(lambda: sandbox.get("Pod", "rachel-nb", LAB_NS))
    listener = asyncio.create_task(collect_sse(api, "rachel"))
    await wait_until(lambda: "Created" in record(sandbox, "rachel")["nublado.lsst.io/events"])
    await asyncio.sleep(0.05)  # the listener is waiting for the next event

    response = await api.delete(f"{LABS}/rachel")
    events = await listener
    status = await api.get(f"{LABS}/rachel")
    after = await collect_sse(api, "rachel")

    assert created.status_code == 201
    assert (response.status_code, response.content) == (204, b"")
    assert events == [started("rachel"), CREATED, CANCELLED]
    assert sandbox.get("Namespace", LAB_NS) is None
    assert status.status_code == 404
    assert after == deleted("rachel")


# A controller restarted in the middle of 20 spawns


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_controller_restarted_in_the_middle_of_20_spawns(
    controller: Controller, sandbox: Sandbox
) -> None:
    """Stop the controller with 5 labs running, 10 pods Pending and 5 spawns still applying.

    What each ends as, and why (PLAN-LABS "Takeover"):
    - running before the restart: stays running, read from the cluster by the new controller;
    - pod created (Pending): the stopping controller hands the record over, the new one
      monitors the pod and completes the spawn: running, same pod;
    - no pod yet (its create held back 2 s by the sandbox): the stopping controller
      cannot hand over a half-made lab, so it fails the spawn ("interrupted") and deletes
      what it made: failed, no namespace left; a DELETE then clears the record.
    """
    users = [f"user{i:02d}" for i in range(20)]
    ran, waiting, applying = users[:5], users[5:15], users[15:]
    for user in applying:
        sandbox.add_latency(2.0, "PATCH", f"/api/v1/namespaces/userlabs-{user}/pods/{user}-nb")
    first = controller("replica-a")
    first.state.labs.handoff_wait = 0.3
    async with served(first) as api:
        assert [
            r.status_code for r in await asyncio.gather(*map(lambda u: create(api, u), users))
        ] == [201] * 20
        await wait_until(
            lambda: all(sandbox.get("Pod", f"{u}-nb", f"userlabs-{u}") for u in ran + waiting)
        )
        for user in ran:
            run_pod(sandbox, user)
        for user in ran:
            assert (await collect_sse(api, user))[-1] == complete(user)
        uids = {
            u: (sandbox.get("Pod", f"{u}-nb", f"userlabs-{u}") or {})["metadata"]["uid"]
            for u in ran + waiting
        }
        stopping = time.monotonic()
    stopped = time.monotonic() - stopping
    # The old controller is gone; a new one (a new pod: a new identity) starts. Without
    # its daemon: the start-up lab reconcile would delete the failed labs (api.md 7.7)
    # while this test reads them; tests/services/test_reconcile.py covers that.
    async with served(controller("replica-b", daemon=False)) as api:
        for user in waiting:
            run_pod(sandbox, user)
        streams = await asyncio.gather(*(collect_sse(api, u) for u in users))
        states = [(await api.get(f"{LABS}/{u}")).json() for u in users]
        await asyncio.sleep(max(0.0, stopping + 2.0 - time.monotonic()))  # held pod creates
        listed = await api.get(LABS)
        namespaces = lab_namespaces(sandbox)
        pods = {
            u: (sandbox.get("Pod", f"{u}-nb", f"userlabs-{u}") or {}).get("metadata", {})
            for u in users
        }
        records = {u: record(sandbox, u) for u in users}
        cleared = [await api.delete(f"{LABS}/{u}") for u in applying]
        gone = [(await api.get(f"{LABS}/{u}")).status_code for u in applying]

    # The five spawns still applying share one grace period (0.3 s), not one each.
    assert stopped < 1.0
    for user, events in zip(ran, streams[:5], strict=True):
        assert events == [started(user), CREATED, complete(user)]
    for user, events in zip(waiting, streams[5:15], strict=True):
        monitoring = f"Monitoring in-progress lab creation for {user}"
        assert events == [("info", {"message": monitoring, "progress": 1}), complete(user)]
    for user, events in zip(applying, streams[15:], strict=True):
        assert events == [started(user), INTERRUPTED, SPAWN_FAILED]
    assert [s["status"] for s in states] == ["running"] * 15 + ["failed"] * 5
    assert sorted(listed.json()) == ran + waiting
    # Nothing orphaned, nothing duplicated: the labs that run are the pods created once.
    assert namespaces == [f"userlabs-{u}" for u in ran + waiting]
    assert {u: pods[u].get("uid") for u in ran + waiting} == uids
    assert all(pods[u] == {} for u in applying)
    # Each user's record agrees with its lab: one operation, its result, its holder.
    results = {
        u: (r["nublado.lsst.io/operation"], r["nublado.lsst.io/result"]) for u, r in records.items()
    }
    assert results == {
        **{u: ("spawn", "complete") for u in ran},
        **{u: ("monitor", "complete") for u in waiting},
        **{u: ("spawn", "failed") for u in applying},
    }
    assert {records[u]["holder"] for u in waiting} == {"replica-b"}
    for user in users:
        events = json.loads(records[user]["nublado.lsst.io/events"])
        assert [e[0] for e in events] == [e for e, _ in streams[users.index(user)]]
    assert [r.status_code for r in cleared] == [204] * 5
    assert gone == [404] * 5


# Two replicas


@pytest.mark.parametrize("controller", [120], indirect=True)
async def test_two_replicas_receive_200_creates_for_100_users(
    controller: Controller, sandbox: Sandbox
) -> None:
    more_nodes(sandbox, 2)
    users = [f"user{i:03d}" for i in range(100)]
    async with AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(served(controller(name)))
            for name in ("replica-a", "replica-b")
        ]
        # Each user twice, once on each replica, all at once (the order alternates).
        calls: list[Awaitable[httpx.Response]] = []
        for i, user in enumerate(users):
            pair = (replicas[i % 2], replicas[1 - i % 2])
            calls.extend(create(replica, user) for replica in pair)
        responses = await asyncio.gather(*calls)
        winners: dict[str, int] = {}
        for i, response in enumerate(responses):
            user, replica = users[i // 2], (i // 2 + i) % 2
            if response.status_code == 201:
                assert user not in winners
                winners[user] = replica
        # Each lab's events from the replica that did not spawn it.
        streams = await asyncio.gather(
            *(collect_sse(replicas[1 - winners[user]], user, timeout=30) for user in users)
        )
        listed = [await replica.get(LABS) for replica in replicas]

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 100 + [409] * 100
    for i, response in enumerate(responses):
        if response.status_code == 409:
            user = users[i // 2]
            assert response.json() in (in_progress(user), lab_exists(user))
    assert sorted(winners) == users
    assert sorted(set(winners.values())) == [0, 1]  # both replicas spawned labs
    assert [events[-1] for events in streams] == [complete(user) for user in users]
    assert [sorted(r.json()) for r in listed] == [users, users]
    assert lab_namespaces(sandbox) == [f"userlabs-{user}" for user in users]
    assert all(starts(sandbox, user) == 1 for user in users)


# Kubernetes faults


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        (
            "PATCH",
            f"/api/v1/namespaces/{LAB_NS}/configmaps/rachel-nb-env",
            500,
            "Error creating object (ConfigMap userlabs-rachel/rachel-nb-env, status 500):"
            " injected fault: 500 InternalError",
        ),
        (
            "PATCH",
            f"/api/v1/namespaces/{LAB_NS}/resourcequotas/rachel-nb",
            409,
            "Error creating object (ResourceQuota userlabs-rachel/rachel-nb, status 409):"
            " injected fault: 409 Conflict",
        ),
        (
            "PATCH",
            f"/api/v1/namespaces/{LAB_NS}/pods/rachel-nb",
            None,  # the connection drops, on every retry
            "Error creating object (Pod userlabs-rachel/rachel-nb, no answer):"
            " PATCH /api/v1/namespaces/userlabs-rachel/pods/rachel-nb failed: ",
        ),
    ],
)
async def test_a_kubernetes_fault_during_a_spawn_fails_it_clearly(
    api: httpx.AsyncClient,
    sandbox: Sandbox,
    dropper: ConnectionDropper,
    method: str,
    path: str,
    status: int | None,
    message: str,
) -> None:
    if status is None:
        dropper.drop(method, path, count=None)
    else:
        sandbox.inject_fault(method, path, status=status, count=None)

    created = await create(api, "rachel")
    events = await collect_sse(api, "rachel")
    state = await api.get(f"{LABS}/rachel")
    dropper.rules.clear()
    sandbox.clear_faults()
    response = await api.delete(f"{LABS}/rachel")
    after = await api.get(f"{LABS}/rachel")

    assert created.status_code == 201
    assert events[0] == started("rachel")
    assert [e for e, _ in events[1:]] == ["error", "failed"]
    assert events[1][1]["message"].startswith(message)
    assert events[2] == SPAWN_FAILED
    assert state.json()["status"] == "failed"
    assert (response.status_code, after.status_code) == (204, 404)
    assert lab_namespaces(sandbox) == []


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_a_spawn_survives_dropped_watches_and_a_lost_record_write(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    # The record write after the objects meets a Conflict once (another replica asked
    # for nothing: the spawn re-reads its record and goes on).
    sandbox.inject_fault("PUT", f"{LEASES[:-1]}lab-rachel", status=409, count=1)
    created = await create(api, "rachel")
    await wait_until(lambda: "Created" in record(sandbox, "rachel")["nublado.lsst.io/events"])
    listener = asyncio.create_task(collect_sse(api, "rachel"))
    await asyncio.sleep(0.05)
    cut = sandbox.cut_watches()  # the pod watch and the caches' watches drop mid-stream
    await asyncio.sleep(0.2)
    run_pod(sandbox, "rachel")
    events = await listener

    assert created.status_code == 201
    assert cut >= 5
    assert events == [started("rachel"), CREATED, complete("rachel")]
    assert (await api.get(LABS)).json() == ["rachel"]


@pytest.mark.parametrize("drop", [False, True], ids=["status-500", "dropped-connection"])
async def test_a_kubernetes_fault_during_a_delete_is_500_delete_failed(
    api: httpx.AsyncClient, sandbox: Sandbox, dropper: ConnectionDropper, drop: bool
) -> None:
    assert (await create(api, "rachel")).status_code == 201
    assert (await collect_sse(api, "rachel"))[-1] == complete("rachel")
    if drop:
        dropper.drop("DELETE", f"/api/v1/namespaces/{LAB_NS}", count=None)
    else:
        sandbox.inject_fault("DELETE", f"/api/v1/namespaces/{LAB_NS}", status=500, count=None)

    failed = await api.delete(f"{LABS}/rachel")
    events = await collect_sse(api, "rachel")
    state = await api.get(f"{LABS}/rachel")
    dropper.rules.clear()
    sandbox.clear_faults()
    retried = await api.delete(f"{LABS}/rachel")
    after = await api.get(f"{LABS}/rachel")

    assert (failed.status_code, failed.json()) == (500, DELETE_FAILED)
    assert events[:2] == deleted("rachel")[:2]
    assert events[2][0] == "error"
    assert events[2][1]["message"].startswith(
        "Error deleting namespace (Namespace userlabs-rachel, no answer):"
        " DELETE /api/v1/namespaces/userlabs-rachel failed: "
        if drop
        else "Error deleting namespace (Namespace userlabs-rachel, status 500):"
        " injected fault: 500 InternalError"
    )
    assert events[3:] == [("failed", {"message": "Lab delete failed"})]
    assert (state.json()["status"], state.json()["internal_url"]) == ("failed", None)
    assert (retried.status_code, after.status_code) == (204, 404)
    assert lab_namespaces(sandbox) == []


# Another user's lab


async def test_a_user_touching_another_users_lab_is_403(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    assert (await create(api, "rachel")).status_code == 201
    before = await collect_sse(api, "rachel")
    mallory = headers("mallory")  # a valid token, for mallory

    created = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=mallory)
    events = await api.get(f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "mallory"})
    # The token is rachel's but the caller says mallory: Gafaelfawr decides who it is.
    posing = await api.post(
        f"{LABS}/rachel/create",
        json=SPEC,
        headers={"X-Auth-Request-User": "mallory", "X-Auth-Request-Token": RACHEL_TOKEN},
    )

    assert (created.status_code, created.json()) == (403, PERMISSION_DENIED)
    assert (events.status_code, events.json()) == (403, PERMISSION_DENIED)
    assert (posing.status_code, posing.json()) == (403, PERMISSION_DENIED)
    assert (await api.get(f"{LABS}/rachel")).json()["status"] == "running"
    assert await collect_sse(api, "rachel") == before
    assert lab_namespaces(sandbox) == [LAB_NS]
    assert starts(sandbox, "rachel") == 1
