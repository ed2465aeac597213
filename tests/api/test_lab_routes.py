"""The lab routes over HTTP (api.md 3-4): status codes, bodies, headers and check order.

Gafaelfawr is mocked at its HTTP boundary (respx, upstream's rachel); the
lab service is a double answering from fixed states and events, so each
test pins what the route does with what the service says. One test streams
events through a real uvicorn server.
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
from asgi_lifespan import LifespanManager
from lab_api_support import (
    CONTROLLER_NAMESPACE,
    LabServiceDouble,
    rachel_state,
    serve_reference_labs,
)
from reference_cases import EXPECTED, INPUTS, TOKEN

from nublado.api.app import create_app
from nublado.api.errors import (
    DeleteFailedError,
    InsufficientQuotaError,
    InvalidDockerReferenceRequestError,
    InvalidLabSizeError,
    LabExistsError,
    OperationInProgressError,
    PermissionDeniedError,
    UnknownImageRequestError,
)
from nublado.api.labs import event_frames, lab_routes
from nublado.config import Config
from nublado.gafaelfawr import GafaelfawrClient
from nublado.kube.client import KubernetesClient
from nublado.models.lab import LabSpecification
from nublado.models.user import UserInfo
from nublado.sandbox.server import Sandbox, SandboxSettings
from nublado.services.images import ImageService
from nublado.services.labs import SpawnEvent

GAFAELFAWR = "https://gafaelfawr.test/auth/api/v1"
RACHEL = json.loads((INPUTS / "users" / "rachel.json").read_text())
STATUS = json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
EVENTS = json.loads((EXPECTED / "spawn" / "events.json").read_text())
SPEC = json.loads((INPUTS / "lab-specification.json").read_text())
LABS = "/nublado/spawner/v1/labs"
HEADERS = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "gt-rachel.token"}
SPAWN = [SpawnEvent(e["event"], **json.loads(e["data"])) for e in EVENTS]
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
PERMISSION_DENIED = {"detail": [{"msg": "Permission denied", "type": "permission_denied"}]}
INVALID_TOKEN = {"detail": [{"msg": "User token is invalid", "type": "invalid_token"}]}
UNKNOWN_RACHEL = {
    "detail": [{"loc": ["path", "username"], "msg": "Unknown user rachel", "type": "unknown_user"}]
}
MISSING_USER = {
    "type": "missing",
    "loc": ["header", "x-auth-request-user"],
    "msg": "Field required",
    "input": None,
}
MISSING_TOKEN = {**MISSING_USER, "loc": ["header", "x-auth-request-token"]}
MISSING_OPTIONS = {"type": "missing", "loc": ["body", "options"], "msg": "Field required"}


@pytest.fixture
def labs() -> LabServiceDouble:
    return LabServiceDouble()


@pytest.fixture
def user_info(router: respx.MockRouter) -> respx.Route:
    return router.get(f"{GAFAELFAWR}/user-info").respond(json=RACHEL)


@pytest.fixture
async def api(
    config: Config,
    images: ImageService,
    http: httpx.AsyncClient,
    labs: LabServiceDouble,
    user_info: respx.Route,
) -> AsyncIterator[httpx.AsyncClient]:
    routes = lab_routes(config, labs, GafaelfawrClient(http, GAFAELFAWR))  # type: ignore[arg-type]
    app = create_app(config, images=images, routes=routes, refresh_images=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as api:
            yield api


def with_input(*items: dict[str, Any], body: Any) -> list[dict[str, Any]]:
    """Entries as FastAPI reports them, body entries carrying the offending input."""
    return [item if item["loc"][0] == "header" else {**item, "input": body} for item in items]


# GET labs and GET labs/{username}


async def test_lab_list_names_only_running_labs(
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    empty = await api.get(LABS)
    labs.states["rachel"] = rachel_state(STATUS, RACHEL)
    labs.states["pending"] = rachel_state({**STATUS, "status": "pending"}, RACHEL)

    response = await api.get(LABS)

    assert (empty.status_code, empty.json()) == (200, [])
    assert (response.status_code, response.json()) == (200, ["rachel"])
    assert response.headers["content-type"] == "application/json"


async def test_lab_status_is_upstreams_reference_state(
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    labs.states["rachel"] = rachel_state(STATUS, RACHEL)

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
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    assert response.status_code == 201
    assert response.content == b"null"
    assert response.headers["location"] == "http://nublado.test/nublado/spawner/v1/labs/rachel"
    assert labs.created == [
        (UserInfo.model_validate(RACHEL), "gt-rachel.token", LabSpecification.model_validate(SPEC))
    ]


async def test_create_location_takes_the_forwarded_scheme(api: httpx.AsyncClient) -> None:
    forwarded = {**HEADERS, "X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"}

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=forwarded)

    assert response.status_code == 201
    assert response.headers["location"] == "https://nublado.test/nublado/spawner/v1/labs/rachel"


async def test_create_with_unparsable_json_is_json_invalid_before_anything_else(
    api: httpx.AsyncClient, user_info: respx.Route
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
    assert not user_info.called


async def test_create_with_a_body_that_is_not_utf8_is_fastapis_400(
    api: httpx.AsyncClient, user_info: respx.Route
) -> None:
    response = await api.post(
        f"{LABS}/rachel/create",
        content=b'{"options": "\xff"}',
        headers={**HEADERS, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}
    assert not user_info.called


async def test_create_without_auth_headers_reports_them_with_the_body_errors(
    api: httpx.AsyncClient, user_info: respx.Route
) -> None:
    body = {"env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/"}}

    response = await api.post(f"{LABS}/rachel/create", json=body)

    assert response.status_code == 422
    assert response.json() == {
        "detail": with_input(MISSING_USER, MISSING_TOKEN, MISSING_OPTIONS, body=body)
    }
    assert not user_info.called


async def test_create_without_a_token_and_with_a_valid_body_names_the_token(
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    response = await api.post(
        f"{LABS}/rachel/create", json=SPEC, headers={"X-Auth-Request-User": "rachel"}
    )

    assert response.status_code == 422
    assert response.json() == {"detail": [MISSING_TOKEN]}
    assert labs.created == []


async def test_create_with_a_rejected_token_is_401_even_with_an_invalid_body(
    api: httpx.AsyncClient, user_info: respx.Route
) -> None:
    user_info.respond(401)

    response = await api.post(f"{LABS}/rachel/create", json={}, headers=HEADERS)

    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


async def test_create_with_someone_elses_token_is_403(api: httpx.AsyncClient) -> None:
    headers = {**HEADERS, "X-Auth-Request-User": "someone"}

    response = await api.post(f"{LABS}/someone/create", json={}, headers=headers)

    assert response.status_code == 403
    assert response.json() == PERMISSION_DENIED


async def test_create_with_a_valid_token_and_an_invalid_body_is_the_model_422(
    api: httpx.AsyncClient, labs: LabServiceDouble
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
    assert labs.created == []


async def test_create_for_another_path_user_checks_the_body_first(
    api: httpx.AsyncClient,
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


@pytest.mark.parametrize(
    ("error", "status", "item"),
    [
        (
            LabExistsError("rachel"),
            409,
            {"msg": "Lab already exists for rachel", "type": "lab_exists"},
        ),
        (
            OperationInProgressError("rachel"),
            409,
            {
                "msg": "Conflicting operation for rachel already in progress",
                "type": "operation_in_progress",
            },
        ),
        (
            InsufficientQuotaError(),
            403,
            {
                "msg": "Insufficient quota to spawn requested lab",
                "type": "insufficient_quota",
                "loc": ["body", "options", "size"],
            },
        ),
        (
            PermissionDeniedError("Spawning a notebook is not permitted"),
            403,
            {"msg": "Spawning a notebook is not permitted", "type": "permission_denied"},
        ),
        (
            InvalidLabSizeError("huge"),
            422,
            {
                "msg": 'Invalid lab size "huge"',
                "type": "invalid_lab_size",
                "loc": ["body", "options", "size"],
            },
        ),
        (
            InvalidDockerReferenceRequestError(
                'Docker reference "lighthouse.ceres/library/sketchbook" has no tag',
                location=("body", "options", "image_list"),
            ),
            422,
            {
                "msg": 'Docker reference "lighthouse.ceres/library/sketchbook" has no tag',
                "type": "invalid_docker_reference",
                "loc": ["body", "options", "image_list"],
            },
        ),
        (
            UnknownImageRequestError(
                'Docker tag "nope" not found', location=("body", "options", "image_tag")
            ),
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
    labs: LabServiceDouble,
    error: Exception,
    status: int,
    item: dict[str, Any],
) -> None:
    labs.fail_with = error

    response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    assert response.status_code == status
    assert response.json() == {"detail": [item]}


async def test_create_when_gafaelfawr_fails_is_a_plain_500(
    config: Config,
    images: ImageService,
    http: httpx.AsyncClient,
    labs: LabServiceDouble,
    user_info: respx.Route,
) -> None:
    user_info.respond(503)
    routes = lab_routes(config, labs, GafaelfawrClient(http, GAFAELFAWR))  # type: ignore[arg-type]
    app = create_app(config, images=images, routes=routes, refresh_images=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as api:
        response = await api.post(f"{LABS}/rachel/create", json=SPEC, headers=HEADERS)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert labs.created == []


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
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    labs.states["rachel"] = rachel_state(STATUS, RACHEL)

    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 204
    assert response.content == b""
    assert labs.deleted == ["rachel"]


async def test_delete_without_a_lab_is_404_at_the_path(api: httpx.AsyncClient) -> None:
    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 404
    assert response.json() == UNKNOWN_RACHEL


async def test_a_failed_delete_is_500_delete_failed(
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    labs.fail_with = DeleteFailedError()

    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 500
    assert response.json() == {"detail": [{"msg": "Failed to delete lab", "type": "delete_failed"}]}


async def test_a_delete_conflict_is_409(api: httpx.AsyncClient, labs: LabServiceDouble) -> None:
    labs.fail_with = OperationInProgressError("rachel")

    response = await api.delete(f"{LABS}/rachel")

    assert response.status_code == 409
    assert response.json()["detail"][0]["type"] == "operation_in_progress"


# GET labs/{username}/events


async def test_events_are_the_sse_frames_of_the_operation(
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    labs.streams["rachel"] = SPAWN

    response = await api.get(f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "rachel"})

    assert response.status_code == 200
    assert response.text == SPAWN_BODY
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["connection"] == "keep-alive"
    assert response.headers["x-accel-buffering"] == "no"


async def test_events_of_an_unknown_user_are_404_before_any_stream(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "rachel"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == UNKNOWN_RACHEL


async def test_events_of_another_user_are_403(
    api: httpx.AsyncClient, labs: LabServiceDouble, user_info: respx.Route
) -> None:
    labs.streams["rachel"] = SPAWN

    response = await api.get(f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "someone"})

    assert response.status_code == 403
    assert response.json() == PERMISSION_DENIED
    assert not user_info.called


async def test_events_without_the_user_header_are_422(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{LABS}/rachel/events")

    assert response.status_code == 422
    assert response.json() == {"detail": [MISSING_USER]}


async def test_events_stream_live_with_ping_comments_through_uvicorn(
    config: Config, images: ImageService, http: httpx.AsyncClient, router: respx.MockRouter
) -> None:
    router.route(host="127.0.0.1").pass_through()
    labs = LabServiceDouble(streams={"rachel": SPAWN}, hold=asyncio.Event())
    routes = lab_routes(config, labs, GafaelfawrClient(http, GAFAELFAWR), ping=0.05)  # type: ignore[arg-type]
    app = create_app(config, images=images, routes=routes, refresh_images=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="critical")
    )
    serving = asyncio.create_task(server.serve())
    lines: list[str] = []
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web,
            web.stream(
                "GET", f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "rachel"}
            ) as response,
            asyncio.timeout(10),
        ):
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            async for line in response.aiter_lines():
                lines.append(line)
                # The first event arrived while the operation is still running,
                # and a ping followed it: release the rest.
                if line.startswith(": ping - "):
                    labs.hold.set()
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


async def test_closing_the_frames_closes_the_services_iterator_at_once() -> None:
    labs = LabServiceDouble(streams={"rachel": SPAWN})
    frames = event_frames(await labs.events("rachel"))

    first = await anext(frames)
    await frames.aclose()

    assert first.encode() == SPAWN_BODY.split("\r\n\r\n")[0].encode() + b"\r\n\r\n"
    assert labs.closed == 1


async def test_a_client_leaving_the_stream_closes_the_services_iterator(
    config: Config, images: ImageService, http: httpx.AsyncClient, router: respx.MockRouter
) -> None:
    router.route(host="127.0.0.1").pass_through()
    labs = LabServiceDouble(streams={"rachel": SPAWN}, hold=asyncio.Event())
    routes = lab_routes(config, labs, GafaelfawrClient(http, GAFAELFAWR))  # type: ignore[arg-type]
    app = create_app(config, images=images, routes=routes, refresh_images=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="critical")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web,
                web.stream(
                    "GET", f"{LABS}/rachel/events", headers={"X-Auth-Request-User": "rachel"}
                ) as response,
            ):
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        break  # leave while the operation still runs
            while labs.closed == 0:
                await asyncio.sleep(0.01)
    finally:
        server.should_exit = True
        await serving

    assert labs.closed == 1
    assert not labs.hold.is_set()


# GET user-status


async def test_user_status_is_the_callers_lab(
    api: httpx.AsyncClient, labs: LabServiceDouble
) -> None:
    labs.states["rachel"] = rachel_state(STATUS, RACHEL)

    response = await api.get(
        "/nublado/spawner/v1/user-status", headers={"X-Auth-Request-User": "rachel"}
    )

    assert response.status_code == 200
    assert response.json() == STATUS


async def test_user_status_without_a_lab_is_404_without_loc(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/nublado/spawner/v1/user-status", headers={"X-Auth-Request-User": "rachel"}
    )

    assert response.status_code == 404
    assert response.json() == {"detail": [{"msg": "Unknown user rachel", "type": "unknown_user"}]}


async def test_user_status_without_the_user_header_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/spawner/v1/user-status")

    assert response.status_code == 422
    assert response.json() == {"detail": [MISSING_USER]}


# The routes with the real lab service on the sandbox (upstream's test_lab_start_stop)

FORM_SPEC = {
    "options": {
        "image_list": ["use_image_from_dropdown"],
        "image_dropdown": ["lighthouse.ceres/library/sketchbook:latest_daily@sha256:1234"],
        "size": ["small"],
    },
    "env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/user/rachel/"},
}


@pytest.fixture
async def served(
    config: Config,
    images: ImageService,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    user_info: respx.Route,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the real lab service; rachel's token is the reference token."""
    labs = await serve_reference_labs(config, images, client)
    routes = lab_routes(config, labs, GafaelfawrClient(http, GAFAELFAWR))
    app = create_app(config, images=images, routes=routes, refresh_images=False)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="https://rsp.example.com"
            ) as api:
                yield api
    finally:
        await labs.stop()


@pytest.mark.parametrize("sandbox_settings", [SandboxSettings(pod_grace_scale=0.0)])
async def test_lab_start_stop_with_the_lab_service(
    served: httpx.AsyncClient, sandbox: Sandbox, sandbox_settings: SandboxSettings
) -> None:
    user = {"X-Auth-Request-User": "rachel"}
    headers = {**user, "X-Auth-Request-Token": TOKEN}
    assert (await served.get(LABS)).json() == []
    for response in (
        await served.get(f"{LABS}/rachel"),
        await served.get(f"{LABS}/rachel/events", headers=user),
        await served.delete(f"{LABS}/rachel"),
    ):
        assert (response.status_code, response.json()) == (404, UNKNOWN_RACHEL)
    # The pod is Running before the spawn looks at it, as in upstream's fixture.
    sandbox.add_latency(
        0.1, "PUT", f"/apis/coordination.k8s.io/v1/namespaces/{CONTROLLER_NAMESPACE}/leases/*"
    )

    created = await served.post(f"{LABS}/rachel/create", json=FORM_SPEC, headers=headers)
    pending = await served.get(f"{LABS}/rachel")
    async with asyncio.timeout(10):
        events = await served.get(f"{LABS}/rachel/events", headers=user)
    listed = await served.get(LABS)
    status = await served.get(f"{LABS}/rachel")
    again = await served.post(f"{LABS}/rachel/create", json=FORM_SPEC, headers=headers)
    deleted = await served.delete(f"{LABS}/rachel")
    after = [await served.get(LABS), await served.get(f"{LABS}/rachel")]
    delete_events = await served.get(f"{LABS}/rachel/events", headers=user)

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
    assert delete_events.text == (
        "event: info\r\n"
        'data: {"message": "Shutting down Kubernetes pod", "progress": 25}\r\n\r\n'
        "event: info\r\n"
        'data: {"message": "Deleting user namespace", "progress": 62}\r\n\r\n'
        "event: info\r\n"
        'data: {"message": "Lab for rachel deleted", "progress": 100}\r\n\r\n'
    )
    assert sandbox.get("Namespace", "userlabs-rachel") is None
