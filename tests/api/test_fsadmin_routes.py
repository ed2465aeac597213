"""``PREFIX/fsadmin/v1/service`` over HTTP: the whole controller on the sandbox (api.md 4.14).

The app is `build_controller`'s, as ``nublado serve`` builds it, with
upstream's fsadmin.yaml; requests carry no authentication headers (mode D:
the admin ingress is the only check), as upstream's tests call them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fsadmin_support import FSADMIN, fsadmin_config, pod_posts, reference_fsadmin_differences
from lab_api_support import CONTROLLER_NAMESPACE, wait_until
from reference_cases import reference_metadata
from sandbox_fixtures import EXAMPLES, ensure_namespace
from starlette.applications import Starlette

from nublado.api.controller import build_controller
from nublado.config import Config
from nublado.gafaelfawr import TrustedUsers
from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox

NS = CONTROLLER_NAMESPACE
NOT_FOUND = {"detail": [{"msg": "nublado/fsadmin", "type": "not_found"}]}
START = {"start": True}
Z_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def controller(config: Config, client: KubernetesClient, http: httpx.AsyncClient) -> Starlette:
    """The controller app for ``config`` on the sandbox, its namespace ``nublado``."""
    return build_controller(
        config,
        kube=client,
        http=http,
        users=TrustedUsers.from_file(EXAMPLES / "users.json"),
        metadata=reference_metadata(),
        namespace=NS,
        refresh_images=False,
    )


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (lifespan included) and an ASGI client on it."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as api:
            yield api


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def namespace(admin: KubernetesClient) -> str:
    await ensure_namespace(admin, NS)
    return NS


@pytest.fixture
async def api(
    namespace: str, client: KubernetesClient, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(controller(fsadmin_config(), client, http)) as api:
        yield api


def start_time(sandbox: Sandbox) -> str:
    pod = sandbox.get("Pod", "fsadmin", NS)
    assert pod is not None
    return str(pod["status"]["startTime"])


async def test_post_creates_the_reference_objects_and_answers_the_start_time(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await api.post(FSADMIN, json=START)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"start_time": start_time(sandbox)}
    assert Z_TIME.match(response.json()["start_time"])
    assert reference_fsadmin_differences(sandbox) == []


async def test_get_post_get_delete_get_and_delete_again(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    absent = await api.get(FSADMIN)
    started = await api.post(FSADMIN, json=START)
    running = await api.get(FSADMIN)
    again = await api.post(FSADMIN, json=START)
    deleted = await api.delete(FSADMIN)
    gone = await api.get(FSADMIN)
    deleted_again = await api.delete(FSADMIN)

    assert (absent.status_code, absent.json()) == (404, NOT_FOUND)
    assert started.status_code == 200
    assert (running.status_code, running.json()) == (200, started.json())
    assert (again.status_code, again.json()) == (200, started.json())
    assert pod_posts(sandbox) == 1
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert sandbox.objects(NS, "Pod") == []
    assert sandbox.objects(NS, "PersistentVolumeClaim") == []
    assert (gone.status_code, gone.json()) == (404, NOT_FOUND)
    assert (deleted_again.status_code, deleted_again.content) == (204, b"")


async def test_extra_keys_in_the_command_are_ignored(api: httpx.AsyncClient) -> None:
    response = await api.post(FSADMIN, json={"start": True, "stop": True, "x": 1})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (None, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]),
        (
            {},
            [{"type": "missing", "loc": ["body", "start"], "msg": "Field required", "input": {}}],
        ),
        (
            {"start": False},
            [
                {
                    "type": "literal_error",
                    "loc": ["body", "start"],
                    "msg": "Input should be True",
                    "input": False,
                    "ctx": {"expected": "True"},
                }
            ],
        ),
        (
            {"stop": True},
            [
                {
                    "type": "missing",
                    "loc": ["body", "start"],
                    "msg": "Field required",
                    "input": {"stop": True},
                }
            ],
        ),
    ],
    ids=["no-body", "empty", "start-false", "stop"],
)
async def test_anything_but_start_true_is_422_and_creates_nothing(
    api: httpx.AsyncClient, sandbox: Sandbox, body: Any, errors: list[dict[str, Any]]
) -> None:
    if body is None:
        response = await api.post(FSADMIN)
    else:
        response = await api.post(FSADMIN, json=body)

    assert (response.status_code, response.json()) == (422, {"detail": errors})
    assert pod_posts(sandbox) == 0
    assert sandbox.objects(NS, "PersistentVolumeClaim") == []


async def test_invalid_json_is_422_json_invalid(api: httpx.AsyncClient) -> None:
    response = await api.post(
        FSADMIN, content=b"{start", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_a_pod_that_fails_at_once_is_404_invalid_phase(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.set_pod_failure("Failed", "fsadmin", NS)
    invalid = {"detail": [{"msg": "Failed", "type": "invalid_phase"}]}

    started = await api.post(FSADMIN, json=START)
    status = await api.get(FSADMIN)

    assert (started.status_code, started.json()) == (404, invalid)
    assert (status.status_code, status.json()) == (404, invalid)


async def test_a_post_during_a_pending_post_waits_and_sees_the_same_pod(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.settings.pull_delay = 0.5

    first, second = await asyncio.gather(
        api.post(FSADMIN, json=START), api.post(FSADMIN, json=START)
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json() == {"start_time": start_time(sandbox)}
    assert pod_posts(sandbox) == 1


async def test_a_delete_during_a_pending_post_waits_for_it_then_deletes(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.settings.start_delay = 0.5
    done: list[str] = []

    async def post() -> httpx.Response:
        response = await api.post(FSADMIN, json=START)
        done.append("post")
        return response

    async def delete() -> httpx.Response:
        await wait_until(lambda: sandbox.get("Pod", "fsadmin", NS) is not None)
        response = await api.delete(FSADMIN)
        done.append("delete")
        return response

    started, deleted = await asyncio.gather(post(), delete())

    assert started.status_code == 200
    assert Z_TIME.match(started.json()["start_time"])
    assert deleted.status_code == 204
    assert done == ["post", "delete"]
    assert (await api.get(FSADMIN)).json() == NOT_FOUND
    assert sandbox.objects(NS, "PersistentVolumeClaim") == []


async def test_a_start_timeout_is_the_plain_500(
    namespace: str, client: KubernetesClient, http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.settings.pull_delay = 30.0
    async with serving(controller(fsadmin_config(timeout=0.3), client, http)) as api:
        response = await api.post(FSADMIN, json=START)

    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "Internal Server Error"


async def test_a_kubernetes_failure_reading_the_pod_is_the_plain_500(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.inject_fault("GET", f"/api/v1/namespaces/{NS}/pods/fsadmin", status=403, count=None)

    response = await api.get(FSADMIN)

    assert (response.status_code, response.text) == (500, "Internal Server Error")


async def test_a_restarted_controller_finds_the_running_pod(
    api: httpx.AsyncClient, client: KubernetesClient, http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    started = await api.post(FSADMIN, json=START)

    async with serving(controller(fsadmin_config(), client, http)) as restarted:
        status = await restarted.get(FSADMIN)
        again = await restarted.post(FSADMIN, json=START)

    assert (status.status_code, status.json()) == (200, started.json())
    assert (again.status_code, again.json()) == (200, started.json())
    assert pod_posts(sandbox) == 1


async def test_the_routes_through_uvicorn(
    namespace: str, client: KubernetesClient, http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    app = controller(fsadmin_config(), client, http)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done())
        assert not task.done()
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}{FSADMIN}"
        started = await http.post(url, json=START)
        status = await http.get(url)
        deleted = await http.delete(url)
        gone = await http.get(url)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)

    assert started.status_code == 200
    assert started.json() == status.json() == {"start_time": start_time_of(started)}
    assert (deleted.status_code, gone.status_code, gone.json()) == (204, 404, NOT_FOUND)


def start_time_of(response: httpx.Response) -> str:
    value = str(response.json()["start_time"])
    assert Z_TIME.match(value)
    return value
