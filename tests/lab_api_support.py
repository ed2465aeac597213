"""The real controller on the sandbox for the API tests, and what they check it against.

Every lab API test runs the real `LabService` on the sandbox: Kubernetes is
the sandbox's API server over HTTP, Gafaelfawr is mocked at its HTTP boundary
(respx), the registry is the reference fake. This module builds such a
controller (`build_controller`, as ``nublado serve`` does), prepares the
controller namespace with the reference source Secrets, answers Gafaelfawr
for any number of users, moves pods on as a kubelet would, and compares a
lab read back from the sandbox with upstream's reference objects under the
full reference normalisation (tests/data/reference README 3).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import respx
import uvicorn
from asgi_lifespan import LifespanManager
from reference_cases import EXPECTED, INPUTS, reference_discovery, reference_metadata
from sandbox_fixtures import drop_refused_toleration_seconds, ensure_namespace
from starlette.applications import Starlette

from nublado.api.controller import build_controller
from nublado.config import Config
from nublado.gafaelfawr import GafaelfawrClient
from nublado.kube.client import KubernetesClient
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox
from nublado.services.images import ImageService
from nublado.services.labs import LabService
from nublado.units import cpu_to_cores

__all__ = [
    "CONTROLLER_NAMESPACE",
    "GAFAELFAWR",
    "LABS",
    "RACHEL",
    "RACHEL_TOKEN",
    "SPEC",
    "RecordingAlerts",
    "collect_sse",
    "controller_namespace",
    "lab_controller",
    "mock_gafaelfawr",
    "object_list_differences",
    "reference_lab_differences",
    "run_pod",
    "serve_reference_labs",
    "served",
    "spec_for",
    "token_for",
    "user_for",
    "wait_until",
]

CONTROLLER_NAMESPACE = "nublado"
GAFAELFAWR = "https://gafaelfawr.test/auth/api/v1"
LABS = "/nublado/spawner/v1/labs"
RACHEL: dict[str, Any] = json.loads((INPUTS / "users" / "rachel.json").read_text())
SPEC: dict[str, Any] = json.loads((INPUTS / "lab-specification.json").read_text())
RACHEL_TOKEN = "gt-rachel.token"


# Gafaelfawr at its HTTP boundary


def token_for(username: str) -> str:
    """The token Gafaelfawr (mocked) knows as ``username``'s."""
    return RACHEL_TOKEN if username == "rachel" else f"gt-{username}.token"


def user_for(username: str, **changes: Any) -> dict[str, Any]:
    """Gafaelfawr's user-info for ``username``: upstream's rachel, renamed, own uid and group."""
    if username == "rachel":
        return {**RACHEL, **changes}
    uid = 20000 + sum(ord(c) * 31**i for i, c in enumerate(username)) % 100000
    groups = [{"name": username, "id": uid}, *RACHEL["groups"][1:]]
    return {**RACHEL, "username": username, "uid": uid, "gid": uid, "groups": groups, **changes}


def spec_for(username: str, **options: Any) -> dict[str, Any]:
    """The reference lab specification for ``username`` (its service prefix names the user)."""
    env = {**SPEC["env"], "JUPYTERHUB_SERVICE_PREFIX": f"/nb/user/{username}/"}
    return {"options": {**SPEC["options"], **options}, "env": env}


def mock_gafaelfawr(
    router: respx.MockRouter, users: dict[str, dict[str, Any]] | None = None
) -> respx.Route:
    """Gafaelfawr's user-info answering by token: ``users`` (token -> user-info), or
    `user_for` the name inside a ``gt-<name>.token``; 401 for any other token."""
    known = dict(users or {})

    def answer(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token in known:
            return httpx.Response(200, json=known[token])
        if token == RACHEL_TOKEN:
            return httpx.Response(200, json=RACHEL)
        if token.startswith("gt-") and token.endswith(".token"):
            return httpx.Response(200, json=user_for(token[3:-6]))
        return httpx.Response(401, json={"detail": [{"msg": "Invalid token"}]})

    return router.get(f"{GAFAELFAWR}/user-info").mock(side_effect=answer)


# The controller


async def controller_namespace(client: KubernetesClient) -> None:
    """The controller's namespace with the reference source Secrets (secrets.json).

    Test setup: give it the ``admin`` client where the controller runs as its
    ServiceAccount (the namespace then exists already, with its RBAC).
    """
    await ensure_namespace(client, CONTROLLER_NAMESPACE)
    for name, values in json.loads((INPUTS / "secrets.json").read_text()).items():
        secret: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        if ".dockerconfigjson" in values:
            secret["type"] = "kubernetes.io/dockerconfigjson"
        await client.create(secret)


def lab_controller(
    config: Config,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    identity: str,
    *,
    daemon: bool = True,
) -> Starlette:
    """The whole controller app as ``nublado serve`` builds it, Gafaelfawr at ``GAFAELFAWR``.

    Its images are refreshed by `served` (no refresh loop: nothing changes behind a test).
    ``daemon=False`` leaves out the daemon, whose start-up lab reconcile would
    race a test that looks at failed labs right after a restart.
    """

    async def discovery() -> dict[str, Any]:
        return reference_discovery()

    return build_controller(
        config,
        kube=client,
        http=http,
        users=GafaelfawrClient(http, GAFAELFAWR),
        metadata=reference_metadata(),
        namespace=CONTROLLER_NAMESPACE,
        identity=identity,
        discovery=discovery,
        refresh_images=False,
        daemon=daemon,
    )


@asynccontextmanager
async def on_uvicorn(app: Any, **options: Any) -> AsyncIterator[int]:
    """``app`` served by a real uvicorn on a free loopback port: its port, stopped on leaving.

    ``options``: more of `uvicorn.Config` (``lifespan``, ``http``...).
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", **options)
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    await serving  # a server that could not start: its error
                await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def served(
    app: Starlette, base_url: str = "http://nublado.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan: the lab service's LIST+WATCH) and a client on it.

    Leaving stops it as a shutting-down replica stops (hand-over of running spawns).
    """
    await app.state.images.refresh()
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as api:
            yield api


async def serve_reference_labs(
    config: Config,
    images: ImageService,
    client: KubernetesClient,
    *,
    admin: KubernetesClient | None = None,
) -> LabService:
    """A started LabService on the sandbox, with the reference source Secrets in place.

    ``admin`` sets them up where ``client`` is the controller's ServiceAccount.
    """
    await controller_namespace(admin or client)

    async def discovery() -> dict[str, Any]:
        return reference_discovery()

    await images.refresh()
    labs = LabService(
        config,
        client,
        images,
        Renderer(config.template_dirs),
        namespace=CONTROLLER_NAMESPACE,
        identity="replica-a",
        discovery=discovery,
    )
    await labs.start()
    return labs


async def collect_sse(
    api: httpx.AsyncClient, username: str, timeout: float = 10.0
) -> list[tuple[str, dict[str, Any]]]:
    """A user's whole event stream as (event, data), read to its end within ``timeout``.

    A stream that does not end in time fails the test (TimeoutError): no hang.
    """
    events: list[tuple[str, dict[str, Any]]] = []
    event = ""
    headers = {"X-Auth-Request-User": username}
    async with (
        asyncio.timeout(timeout),
        api.stream("GET", f"{LABS}/{username}/events", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
    return events


# The cluster


def run_pod(sandbox: Sandbox, username: str) -> bool:
    """Mark the user's lab pod Running, as the kubelet would; False when there is no pod."""

    def mutate(pod: dict[str, Any]) -> None:
        status = pod.setdefault("status", {})
        status["phase"] = "Running"
        status["conditions"] = [{"type": "PodScheduled", "status": "True"}]

    namespace = f"userlabs-{username}"
    with sandbox.cluster.store.lock:
        return bool(
            sandbox.cluster.update_internal("Pod", namespace, f"{username}-nb", mutate, "kubelet")
        )


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
    cpu = isinstance(expected, str) and isinstance(actual, str) and path.endswith("cpu")
    if cpu and cpu_to_cores(expected) == cpu_to_cores(actual):
        return []
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]


class RecordingAlerts:
    """Alerts that remember what they were told."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str | None, str]] = []

    async def report(
        self, summary: str, *, user: str | None = None, error: BaseException | None = None
    ) -> None:
        self.reports.append((summary, user, str(error)))


def object_list_differences(
    expected: list[dict[str, Any]],
    actual: list[dict[str, Any]],
    adjust: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
) -> list[str]:
    """How normalised objects differ from the reference's, as ``Kind/name.path: ...`` lines.

    The kinds and names, in order, must be exactly the reference's. ``adjust``
    may change an expected object given its actual one before the comparison.
    """
    names = [(o["kind"], o["metadata"]["name"]) for o in actual]
    wanted = [(o["kind"], o["metadata"]["name"]) for o in expected]
    if names != wanted:
        return [f"objects {names} != {wanted}"]
    problems: list[str] = []
    for e, a in zip(expected, actual, strict=True):
        if adjust is not None:
            e = adjust(e, a)
        problems.extend(f"{a['kind']}/{a['metadata']['name']}{p}" for p in _differences(e, a))
    return problems


def reference_lab_differences(sandbox: Sandbox, namespace: str = "userlabs-rachel") -> list[str]:
    """How the lab in ``namespace`` differs from upstream's expected/objects/lab.json.

    Empty when equal under the full reference normalisation; the kinds and
    names of the objects must be exactly the reference's.
    """
    expected = json.loads((EXPECTED / "objects" / "lab.json").read_text())
    drop_refused_toleration_seconds(expected)
    expected = sorted(
        (_drop_nulls(o) for o in expected), key=lambda o: (o["kind"], o["metadata"]["name"])
    )
    found = sandbox.get("Namespace", namespace)
    if found is None:
        return [f"Namespace {namespace}: missing"]
    actual = _drop_nulls(_normalise_cluster([found, *sandbox.objects(namespace)]))
    return object_list_differences(expected, actual)


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it is truthy (TimeoutError after ``timeout``) and return it."""
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
    return value
