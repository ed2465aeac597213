"""The lab routes over HTTP (api.md 3-4): status codes, bodies, headers and check order.

The controller is the real one (`build_controller`, as ``nublado serve``
builds it) with the real lab service on the sandbox; Gafaelfawr is mocked at
its HTTP boundary (respx, upstream's rachel and users made from her), the
registry is the reference fake. Each error is provoked as it happens in
production: a user-info answer, a request, a lab in a given state, or a
Kubernetes fault injected into the sandbox. Two tests stream events through
a real uvicorn server (pings, a client that leaves).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
import uvicorn
from lab_api_support import (
    CONTROLLER_NAMESPACE,
    GAFAELFAWR,
    LABS,
    RACHEL,
    RACHEL_TOKEN,
    SPEC,
    collect_sse,
    controller_namespace,
    lab_controller,
    mock_gafaelfawr,
    run_pod,
    serve_reference_labs,
    served,
    user_for,
    wait_until,
)
from reference_cases import EXPECTED
from starlette.applications import Starlette

from nublado.api.app import create_app
from nublado.api.labs import event_frames, lab_routes
from nublado.config import Config
from nublado.config.daemon import DEFAULT_LEASE_NAME
from nublado.gafaelfawr import GafaelfawrClient
from nublado.httpwire import CoalescingHTTPProtocol
from nublado.kube.client import KubernetesClient
from nublado.models.lab import LabSpecification
from nublado.models.user import UserInfo
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.images import ImageService
from nublado.services.labs import LabService

STATUS = json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
HEADERS = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": RACHEL_TOKEN}
USER = {"X-Auth-Request-User": "rachel"}
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{CONTROLLER_NAMESPACE}/leases/*"
SPAWN_BODY = (
    "event: info\r\n"
    'data: {"message": "Starting lab creation for rachel", "progress": 1}\r\n'
    "\r\n"
    "event: info\r\n"
    'data: {"message": "Created Kubernetes objects for user lab", "progress": 30}\r\n'
    "\r\n"
    "event: complete\r\n"
    'data: {"message": "Lab Kubernetes pod started for rachel"}\r\n'
    "\r\n"
)
DELETE_BODY = (
    "event: info\r\n"
    'data: {"message": "Shutting down Kubernetes pod", "progress": 25}\r\n\r\n'
    "event: info\r\n"
    'data: {"message": "Deleting user namespace", "progress": 62}\r\n\r\n'
    "event: info\r\n"
    'data: {"message": "Lab for rachel deleted", "progress": 100}\r\n\r\n'
)
PERMISSION_DENIED = {"detail": [{"msg": "Permission denied", "type": "permission_denied"}]}
INVALID_TOKEN = {"detail": [{"msg": "User token is invalid", "type": "invalid_token"}]}
UNKNOWN_RACHEL = {
    "detail": [{"loc": ["path", "username"], "msg": "Unknown user rachel", "type": "unknown_user"}]
}
IN_PROGRESS = {
    "detail": [
        {
            "msg": "Conflicting operation for rachel already in progress",
            "type": "operation_in_progress",
        }
    ]
}
MISSING_USER = {
    "type": "missing",
    "loc": ["header", "x-auth-request-user"],
    "msg": "Field required",
    "input": None,
}
MISSING_TOKEN = {**MISSING_USER, "loc": ["header", "x-auth-request-token"]}
MISSING_OPTIONS = {"type": "missing", "loc": ["body", "options"], "msg": "Field required"}
PENDING = SandboxSettings(pod_grace_scale=0.0, schedule_delay=60.0)
"""Pods stay Pending (unscheduled, no Events) until a test runs them (`run_pod`)."""


@pytest.fixture
def sandbox_settings(request: pytest.FixtureRequest) -> SandboxSettings:
    """Pods start and go at once, unless a test asks otherwise (indirect parameter)."""
    settings: SandboxSettings = getattr(request, "param", SandboxSettings(pod_grace_scale=0.0))
    return settings


@pytest.fixture
def gafaelfawr(router: respx.MockRouter) -> respx.Route:
    return mock_gafaelfawr(router)


@pytest.fixture
async def app(
    config: Config,
    client: KubernetesClient,
    admin: KubernetesClient,
    http: httpx.AsyncClient,
    registry: Any,
    gafaelfawr: respx.Route,
) -> Starlette:
    await controller_namespace(admin)
    return lab_controller(config, client, http, "replica-a")


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with served(app) as api:
        yield api


def leases(sandbox: Sandbox) -> list[str]:
    """Names of the operation records in the sandbox (none after a refused create).

    The daemon's leader Lease is not an operation record.
    """
    return [
        lease["metadata"]["name"]
        for lease in sandbox.objects(CONTROLLER_NAMESPACE, "Lease")
        if lease["metadata"]["name"] != DEFAULT_LEASE_NAME
    ]


async def reference_spawn(api: httpx.AsyncClient, sandbox: Sandbox) -> httpx.Response:
    """Create rachel's reference lab and wait for ``complete``.

    The record write after the objects is held back a little so that the pod
    is Running by the time the spawn looks at it: a pod that starts at once,
    as in upstream's fixture (no pod Events between 30 % and ``complete``).
    """
    sandbox.add_latency(0.1, "PUT", LEASES, count=1)
    created = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)
    assert created.status_code == 201
    events = await collect_sse(api, "rachel")
    assert events[-1][0] == "complete"
    return created


def with_input(*items: dict[str, Any], body: Any) -> list[dict[str, Any]]:
    """Entries as FastAPI reports them, body entries carrying the offending input."""
    return [item if item["loc"][0] == "header" else {**item, "input": body} for item in items]


# GET labs and GET labs/{username}


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_lab_list_names_only_running_labs(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    empty = await api.get(LABS)
    someone = {"X-Auth-Request-User": "someone", "X-Auth-Request-Token": "gt-someone.token"}
    spec = {**SPEC, "env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/user/someone/"}}
    for headers, body in ((HEADERS, SPEC), (someone, spec)):
        user = headers["X-Auth-Request-User"]
        created = await api.post(f"{LABS}/{user}/create", json=body, headers=headers)
        assert created.status_code == 201
    await wait_until(lambda: sandbox.get("Pod", "rachel-nb", "userlabs-rachel"))
    run_pod(sandbox, "rachel")
    assert (await collect_sse(api, "rachel"))[-1][0] == "complete"

    response = await api.get(LABS)
    pending = await api.get(f"{LABS}/someone")

    assert (empty.status_code, empty.json()) == (200, [])
    assert (response.status_code, response.json()) == (200, ["rachel"])
    assert response.headers["content-type"] == "application/json"
    assert pending.json()["status"] == "pending"


async def test_lab_status_is_upstreams_reference_state(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await reference_spawn(api, sandbox)

    response = await api.get(f"{LABS}/rachel")

    assert response.status_code == 200
    assert response.json() == STATUS
    assert list(response.json()) == [
        "user",
        "options",
        "status",
        "internal_url",
        "resources",
        "quota",
    ]


async def test_lab_status_needs_no_auth_headers_and_is_404_without_a_lab(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(f"{LABS}/rachel")

    assert response.status_code == 404
    assert response.json() == UNKNOWN_RACHEL


async def test_head_on_lab_status_is_405_as_upstream(api: httpx.AsyncClient) -> None:
    response = await api.head(f"{LABS}/rachel")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


# POST labs/{username}/create


async def test_create_answers_201_null_with_the_absolute_status_url(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)
    status = await api.get(f"{LABS}/rachel")
    events = await collect_sse(api, "rachel")

    assert response.status_code == 201
    assert response.content == b"null"
    assert response.headers["location"] == "http://nublado.test/nublado/spawner/v1/labs/rachel"
    # The spawn runs in the background for Gafaelfawr's user, with the request's token.
    assert status.json()["status"] == "pending"
    assert status.json()["user"] == STATUS["user"]
    assert events[-1] == ("complete", {"message": "Lab Kubernetes pod started for rachel"})
    secret = sandbox.get("Secret", "rachel-nb", "userlabs-rachel")
    assert secret is not None
    assert secret["data"]["token"] == "Z3QtcmFjaGVsLnRva2Vu"  # base64 of gt-rachel.token


async def test_create_location_takes_the_forwarded_scheme(api: httpx.AsyncClient) -> None:
    forwarded = {**HEADERS, "X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"}

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=forwarded)

    assert response.status_code == 201
    assert response.headers["location"] == "https://nublado.test/nublado/spawner/v1/labs/rachel"


async def test_create_with_unparsable_json_is_json_invalid_before_anything_else(
    api: httpx.AsyncClient, gafaelfawr: respx.Route, sandbox: Sandbox
) -> None:
    response = await api.post(
        f"{LABS}/someone/create",
        content=b'{"options": ',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "json_invalid",
                "loc": ["body", 12],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting value"},
            }
        ]
    }
    assert not gafaelfawr.called
    assert leases(sandbox) == []


async def test_create_with_a_body_that_is_not_utf8_is_fastapis_400(
    api: httpx.AsyncClient, gafaelfawr: respx.Route
) -> None:
    response = await api.post(
        f"{LABS}/rachel/create",
        content=b'{"options": "\xff"}',
        headers={**HEADERS, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}
    assert not gafaelfawr.called


async def test_create_without_auth_headers_reports_them_with_the_body_errors(
    api: httpx.AsyncClient, gafaelfawr: respx.Route
) -> None:
    body = {"env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/"}}

    response = await api.post(f"{LABS}/rachel/create", json=body)

    assert response.status_code == 422
    assert response.json() == {
        "detail": with_input(MISSING_USER, MISSING_TOKEN, MISSING_OPTIONS, body=body)
    }
    assert not gafaelfawr.called


async def test_create_without_a_token_and_with_a_valid_body_names_the_token(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=USER)

    assert response.status_code == 422
    assert response.json() == {"detail": [MISSING_TOKEN]}
    assert leases(sandbox) == []


async def test_create_with_a_rejected_token_is_401_even_with_an_invalid_body(
    api: httpx.AsyncClient, gafaelfawr: respx.Route
) -> None:
    headers = {**HEADERS, "X-Auth-Request-Token": "not-a-token"}

    response = await api.post(f"{LABS}/rachel/create", json={}, headers=headers)

    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    assert gafaelfawr.called


async def test_create_with_someone_elses_token_is_403(api: httpx.AsyncClient) -> None:
    headers = {**HEADERS, "X-Auth-Request-User": "someone"}

    response = await api.post(f"{LABS}/someone/create", json={}, headers=headers)

    assert response.status_code == 403
    assert response.json() == PERMISSION_DENIED


async def test_create_with_a_valid_token_and_an_invalid_body_is_the_model_422(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = {"options": {"size": "enormous", "image_class": "recommended"}, "env": {}}

    response = await api.post(f"{LABS}/rachel/create", json=body, headers=HEADERS)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(item["type"], item["loc"]) for item in detail] == [
        ("enum", ["body", "options", "size"]),
        ("value_error", ["body", "env"]),
    ]
    assert detail[1]["msg"] == "Value error, JUPYTERHUB_SERVICE_PREFIX must be set"
    assert detail[1]["input"] == {}
    assert leases(sandbox) == []


async def test_create_for_another_path_user_checks_the_body_first(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    invalid = await api.post(f"{LABS}/someone/create", json={"env": {}}, headers=HEADERS)
    valid = await api.post(f"{LABS}/someone/create", json=SPEC, headers=HEADERS)

    assert invalid.status_code == 422
    assert [item["loc"] for item in invalid.json()["detail"]] == [
        ["body", "options"],
        ["body", "env"],
    ]
    assert valid.status_code == 403
    assert valid.json() == PERMISSION_DENIED
    assert leases(sandbox) == []


@pytest.mark.parametrize(
    ("user", "options", "status", "item"),
    [
        (
            {"quota": {"notebook": {"cpu": 9.0, "memory": 27, "spawn": False}}},
            {},
            403,
            {"msg": "Spawning a notebook is not permitted", "type": "permission_denied"},
        ),
        (
            {"uid": None},
            {},
            403,
            {"msg": "Must have a UID to spawn labs", "type": "permission_denied"},
        ),
        (
            {"gid": None},
            {},
            403,
            {"msg": "Must have a GID to spawn labs", "type": "permission_denied"},
        ),
        (
            {"quota": {"notebook": {"cpu": 0.5, "memory": 27}}},
            {},
            403,
            {
                "msg": "Insufficient quota to spawn requested lab",
                "type": "insufficient_quota",
                "loc": ["body", "options", "size"],
            },
        ),
        (
            {},
            {"size": "colossal"},
            422,
            {
                "msg": 'Invalid lab size "colossal"',
                "type": "invalid_lab_size",
                "loc": ["body", "options", "size"],
            },
        ),
        (
            {},
            {"image_list": "lighthouse.ceres/library/sketchbook"},
            422,
            {
                "msg": 'Docker reference "lighthouse.ceres/library/sketchbook" has no tag',
                "type": "invalid_docker_reference",
                "loc": ["body", "options", "image_list"],
            },
        ),
        (
            {},
            {"image_list": None, "image_tag": "nope"},
            400,
            {
                "msg": 'Docker tag "nope" not found',
                "type": "unknown_image",
                "loc": ["body", "options", "image_tag"],
            },
        ),
    ],
)
async def test_create_answers_the_services_errors_in_upstreams_body(
    api: httpx.AsyncClient,
    router: respx.MockRouter,
    sandbox: Sandbox,
    user: dict[str, Any],
    options: dict[str, Any],
    status: int,
    item: dict[str, Any],
) -> None:
    mock_gafaelfawr(router, {RACHEL_TOKEN: user_for("rachel", **user)})
    body = {"options": {**SPEC["options"], **options}, "env": SPEC["env"]}

    response = await api.post(f"{LABS}/rachel/create", json=body, headers=HEADERS)

    assert response.status_code == status
    assert response.json() == {"detail": [item]}
    assert leases(sandbox) == []
    assert (await api.get(f"{LABS}/rachel")).status_code == 404


async def test_create_of_a_running_lab_is_409_lab_exists(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await reference_spawn(api, sandbox)

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    assert response.status_code == 409
    assert response.json() == {
        "detail": [{"msg": "Lab already exists for rachel", "type": "lab_exists"}]
    }
    assert (await api.get(f"{LABS}/rachel")).json() == STATUS


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_create_during_a_spawn_is_409_operation_in_progress(
    api: httpx.AsyncClient,
) -> None:
    first = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    assert first.status_code == 201
    assert response.status_code == 409
    assert response.json() == IN_PROGRESS


async def test_create_when_gafaelfawr_fails_is_a_plain_500(
    api: httpx.AsyncClient, gafaelfawr: respx.Route, sandbox: Sandbox
) -> None:
    gafaelfawr.side_effect = None
    gafaelfawr.respond(503)

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert leases(sandbox) == []


async def test_create_location_ignores_the_forwarded_host(api: httpx.AsyncClient) -> None:
    forwarded = {**HEADERS, "X-Forwarded-Host": "evil.example.com"}

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=forwarded)

    assert response.headers["location"] == "http://nublado.test/nublado/spawner/v1/labs/rachel"


async def test_create_answers_only_post(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{LABS}/rachel/create", headers=HEADERS)

    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert response.headers["allow"] == "POST"


# DELETE labs/{username}


async def test_delete_is_204_with_an_empty_body_and_needs_no_auth_headers(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await reference_spawn(api, sandbox)

    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 204
    assert response.content == b""
    assert sandbox.get("Namespace", "userlabs-rachel") is None
    assert (await api.get(f"{LABS}/rachel")).status_code == 404


async def test_delete_without_a_lab_is_404_at_the_path(api: httpx.AsyncClient) -> None:
    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 404
    assert response.json() == UNKNOWN_RACHEL


async def test_a_failed_delete_is_500_delete_failed(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await reference_spawn(api, sandbox)
    sandbox.inject_fault("DELETE", "/api/v1/namespaces/userlabs-rachel", status=500, count=None)

    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 500
    assert response.json() == {"detail": [{"msg": "Failed to delete lab", "type": "delete_failed"}]}
    assert (await api.get(f"{LABS}/rachel")).json()["status"] == "failed"


async def test_a_delete_conflict_is_409(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await reference_spawn(api, sandbox)
    # Another replica wins the record both times the delete tries to claim it.
    sandbox.inject_fault("PUT", f"{LEASES[:-1]}lab-rachel", status=409, count=2)

    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 409
    assert response.json() == IN_PROGRESS


# GET labs/{username}/events


async def test_events_are_the_sse_frames_of_the_operation(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await reference_spawn(api, sandbox)

    response = await api.get(f"{LABS}/rachel/events", headers=USER)

    assert response.status_code == 200
    assert response.text == SPAWN_BODY
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["connection"] == "keep-alive"
    assert response.headers["x-accel-buffering"] == "no"


async def test_events_of_an_unknown_user_are_404_before_any_stream(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(f"{LABS}/rachel/events", headers=USER)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == UNKNOWN_RACHEL


async def test_events_of_another_user_are_403(
    api: httpx.AsyncClient, gafaelfawr: respx.Route, sandbox: Sandbox
) -> None:
    await reference_spawn(api, sandbox)
    calls = gafaelfawr.call_count

    response = await api.get(f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "someone"})

    assert response.status_code == 403
    assert response.json() == PERMISSION_DENIED
    assert gafaelfawr.call_count == calls


async def test_events_without_the_user_header_are_422(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{LABS}/rachel/events")

    assert response.status_code == 422
    assert response.json() == {"detail": [MISSING_USER]}


# Streaming through a real server: the app with a short ping and the real lab service


@pytest.fixture
async def lab_service(
    config: Config,
    client: KubernetesClient,
    admin: KubernetesClient,
    images: ImageService,
    registry: Any,
) -> AsyncIterator[LabService]:
    labs = await serve_reference_labs(config, images, client, admin=admin)
    yield labs
    await labs.stop()


async def uvicorn_app(
    config: Config, images: ImageService, labs: LabService, http: httpx.AsyncClient, ping: float
) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    routes = lab_routes(config, labs, GafaelfawrClient(http, GAFAELFAWR), ping=ping)
    app = create_app(config, images=images, routes=routes, refresh_images=False)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_level="critical",
            http=CoalescingHTTPProtocol,  # as `nublado serve` runs it
        )
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, serving, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_events_stream_live_with_ping_comments_through_uvicorn(
    config: Config,
    images: ImageService,
    http: httpx.AsyncClient,
    router: respx.MockRouter,
    lab_service: LabService,
    gafaelfawr: respx.Route,
    sandbox: Sandbox,
) -> None:
    router.route(host="127.0.0.1").pass_through()
    server, serving, url = await uvicorn_app(config, images, lab_service, http, ping=0.05)
    lines: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=url) as web:
            created = await web.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)
            assert created.status_code == 201
            await wait_until(lambda: sandbox.get("Pod", "rachel-nb", "userlabs-rachel"))
            async with (
                web.stream("GET", f"{LABS}/rachel/events", headers=USER) as response,
                asyncio.timeout(10),
            ):
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                async for line in response.aiter_lines():
                    lines.append(line)
                    # Events arrived while the spawn still waits for its pod, and a
                    # ping followed them: now the pod starts.
                    if line.startswith(": ping - "):
                        run_pod(sandbox, "rachel")
    finally:
        server.should_exit = True
        await serving

    assert lines[:3] == ["event: info", lines[1], ""]
    assert lines[1] == 'data: {"message": "Starting lab creation for rachel", "progress": 1}'
    pings = [line for line in lines if line.startswith(":")]
    assert pings
    assert all(line.startswith(": ping - 20") and line.endswith("+00:00") for line in pings)
    events = [line for line in lines if line and not line.startswith(":")]
    assert events == [line for line in SPAWN_BODY.split("\r\n") if line]


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_closing_the_frames_closes_the_services_iterator_at_once(
    lab_service: LabService, sandbox: Sandbox
) -> None:
    user = UserInfo.model_validate(RACHEL)
    await lab_service.create(user, RACHEL_TOKEN, LabSpecification.model_validate(SPEC))
    events = await lab_service.events("rachel")
    frames = event_frames(events)

    first = await anext(frames)
    await frames.aclose()  # type: ignore[attr-defined]  # an async generator

    assert first.encode() == SPAWN_BODY.split("\r\n\r\n")[0].encode() + b"\r\n\r\n"
    assert events.ag_frame is None  # type: ignore[attr-defined]  # closed, not left waiting


@pytest.mark.parametrize("sandbox_settings", [PENDING], indirect=True)
async def test_a_client_leaving_the_stream_closes_the_services_iterator(
    config: Config,
    images: ImageService,
    http: httpx.AsyncClient,
    router: respx.MockRouter,
    lab_service: LabService,
    gafaelfawr: respx.Route,
    sandbox: Sandbox,
) -> None:
    router.route(host="127.0.0.1").pass_through()
    opened: list[Any] = []
    original = lab_service.events

    async def spied(username: str) -> Any:
        iterator = await original(username)
        opened.append(iterator)
        return iterator

    lab_service.events = spied  # type: ignore[method-assign]
    server, serving, url = await uvicorn_app(config, images, lab_service, http, ping=15)
    try:
        async with asyncio.timeout(10):
            async with httpx.AsyncClient(base_url=url) as web:
                created = await web.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)
                assert created.status_code == 201
                async with web.stream("GET", f"{LABS}/rachel/events", headers=USER) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            break  # leave while the spawn still waits for its pod
            await wait_until(lambda: opened and opened[0].ag_frame is None)
    finally:
        server.should_exit = True
        await serving

    assert len(opened) == 1
    state = lab_service.state("rachel")
    assert state is not None
    assert state.status == "pending"  # the spawn still runs: only the stream went


# GET user-status


async def test_user_status_is_the_callers_lab(api: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await reference_spawn(api, sandbox)

    response = await api.get("/nublado/spawner/v1/user-status", headers=USER)

    assert response.status_code == 200
    assert response.json() == STATUS


async def test_user_status_without_a_lab_is_404_without_loc(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/spawner/v1/user-status", headers=USER)

    assert response.status_code == 404
    assert response.json() == {"detail": [{"msg": "Unknown user rachel", "type": "unknown_user"}]}


async def test_user_status_without_the_user_header_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/spawner/v1/user-status")

    assert response.status_code == 422
    assert response.json() == {"detail": [MISSING_USER]}


# A whole life through the routes (upstream's test_lab_start_stop)

FORM_SPEC = {
    "options": {
        "image_list": ["use_image_from_dropdown"],
        "image_dropdown": ["lighthouse.ceres/library/sketchbook:latest_daily@sha256:1234"],
        "size": ["small"],
    },
    "env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/user/rachel/"},
}


async def test_lab_start_stop(app: Starlette, sandbox: Sandbox) -> None:
    async with served(app, "https://rsp.example.com") as api:
        assert (await api.get(LABS)).json() == []
        for response in (
            await api.get(f"{LABS}/rachel"),
            await api.get(f"{LABS}/rachel/events", headers=USER),
            await api.delete(f"{LABS}/rachel"),
        ):
            assert (response.status_code, response.json()) == (404, UNKNOWN_RACHEL)
        # The pod is Running before the spawn looks at it, as in upstream's fixture.
        sandbox.add_latency(0.1, "PUT", LEASES, count=1)

        created = await api.post(f"{LABS}/rachel/create", json=FORM_SPEC, headers=HEADERS)
        pending = await api.get(f"{LABS}/rachel")
        async with asyncio.timeout(10):
            events = await api.get(f"{LABS}/rachel/events", headers=USER)
        listed = await api.get(LABS)
        status = await api.get(f"{LABS}/rachel")
        again = await api.post(f"{LABS}/rachel/create", json=FORM_SPEC, headers=HEADERS)
        deleted = await api.delete(f"{LABS}/rachel")
        after = [await api.get(LABS), await api.get(f"{LABS}/rachel")]
        delete_events = await api.get(f"{LABS}/rachel/events", headers=USER)

    assert (created.status_code, created.content) == (201, b"null")
    assert created.headers["location"] == "https://rsp.example.com/nublado/spawner/v1/labs/rachel"
    assert pending.json()["status"] == "pending"
    assert pending.json()["internal_url"] is None
    assert events.status_code == 200
    assert events.text == SPAWN_BODY
    assert listed.json() == ["rachel"]
    assert status.json() == STATUS
    assert (again.status_code, again.json()) == (
        409,
        {"detail": [{"msg": "Lab already exists for rachel", "type": "lab_exists"}]},
    )
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert after[0].json() == []
    assert (after[1].status_code, after[1].json()) == (404, UNKNOWN_RACHEL)
    assert delete_events.status_code == 200
    assert delete_events.text == DELETE_BODY
    assert sandbox.get("Namespace", "userlabs-rachel") is None
