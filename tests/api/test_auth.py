"""Authentication modes A-D (api.md 1.4) over a small Starlette app, Gafaelfawr in respx.

The app below stands in for the real routes: each handler calls the helpers
the way nublado/api/auth.py documents, and maps the errors to the bodies of
api.md section 2 the way the API's error handler will.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import uvicorn
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nublado.api.auth import (
    USER_AUTH_HEADERS,
    AuthenticatedUser,
    authenticate_user,
    check_path_user,
    missing_header_errors,
    require_path_user,
    require_username,
)
from nublado.api.errors import RequestValidationError, exception_handlers
from nublado.gafaelfawr import GafaelfawrClient, TrustedUsers, UserInfoSource

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "inputs"
RACHEL: dict[str, Any] = json.loads((REFERENCE / "users" / "rachel.json").read_text())
BASE = "https://gafaelfawr.example.com/auth/api/v1"
USER_INFO = f"{BASE}/user-info"

INVALID_TOKEN = {"detail": [{"msg": "User token is invalid", "type": "invalid_token"}]}
PERMISSION_DENIED = {"detail": [{"msg": "Permission denied", "type": "permission_denied"}]}
MISSING_USER = {
    "type": "missing",
    "loc": ["header", "x-auth-request-user"],
    "msg": "Field required",
    "input": None,
}
MISSING_TOKEN = {
    "type": "missing",
    "loc": ["header", "x-auth-request-token"],
    "msg": "Field required",
    "input": None,
}
HEADERS = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "gt-rachel"}


class Body(BaseModel):
    """A stand-in for the create route's LabSpecification."""

    a: int


def _body_errors(data: Any) -> list[dict[str, Any]]:
    try:
        Body.model_validate(data)
    except ValidationError as exc:
        return [
            {**error, "loc": ["body", *error["loc"]]}
            for error in exc.errors(include_url=False, include_context=False)
        ]
    return []


def _user_json(user: AuthenticatedUser) -> JSONResponse:
    return JSONResponse({"username": user.username, "uid": user.info.uid, "token": user.token})


def make_app(source: UserInfoSource) -> Starlette:
    """Routes of each mode, wired as the real ones are to be, with the app's error handlers."""

    async def lab_form(request: Request) -> Response:  # mode A, no body
        user = await authenticate_user(request, source)
        check_path_user(user, request.path_params["username"])
        return _user_json(user)

    async def create(request: Request) -> Response:  # mode A with a body: the ordering of 1.4
        try:
            data = json.loads(await request.body())
        except ValueError:
            raise RequestValidationError([{"type": "json_invalid", "loc": ["body", 0]}]) from None
        header_errors = missing_header_errors(request, *USER_AUTH_HEADERS)
        if header_errors:
            raise RequestValidationError(header_errors + _body_errors(data))
        user = await authenticate_user(request, source)
        body_errors = _body_errors(data)
        if body_errors:
            raise RequestValidationError(body_errors)
        check_path_user(user, request.path_params["username"])
        return _user_json(user)

    async def events(request: Request) -> Response:  # mode B
        username = require_path_user(request, request.path_params["username"])
        return JSONResponse({"username": username})

    async def user_status(request: Request) -> Response:  # mode C
        return JSONResponse({"username": require_username(request)})

    async def labs(_request: Request) -> Response:  # mode D
        return JSONResponse([])

    prefix = "/nublado/spawner/v1"
    return Starlette(
        routes=[
            Route(f"{prefix}/lab-form/{{username}}", lab_form),
            Route(f"{prefix}/labs/{{username}}/create", create, methods=["POST"]),
            Route(f"{prefix}/labs/{{username}}/events", events),
            Route(f"{prefix}/user-status", user_status),
            Route(f"{prefix}/labs", labs),
        ],
        exception_handlers=exception_handlers(),
    )


@pytest.fixture
def gafaelfawr_mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.route(host="127.0.0.1").pass_through()  # the uvicorn test's own requests
        yield router


@pytest.fixture
async def client(gafaelfawr_mock: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        app = make_app(GafaelfawrClient(http, BASE))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as test:
            yield test


# -- mode A ----------------------------------------------------------------------


async def test_mode_a_authenticates_through_gafaelfawr(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    response = await client.get("/nublado/spawner/v1/lab-form/rachel", headers=HEADERS)
    assert response.status_code == 200
    assert response.json() == {"username": "rachel", "uid": 1101, "token": "gt-rachel"}
    assert route.calls.last.request.headers["Authorization"] == "Bearer gt-rachel"


async def test_mode_a_caches_per_token(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    for _ in range(2):
        response = await client.get("/nublado/spawner/v1/lab-form/rachel", headers=HEADERS)
        assert response.status_code == 200
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, [MISSING_USER, MISSING_TOKEN]),
        ({"X-Auth-Request-Token": "t"}, [MISSING_USER]),
        ({"X-Auth-Request-User": "rachel"}, [MISSING_TOKEN]),
    ],
    ids=["none", "no-user", "no-token"],
)
async def test_mode_a_missing_headers_is_422_without_calling_gafaelfawr(
    gafaelfawr_mock: respx.MockRouter,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    detail: list[dict[str, Any]],
) -> None:
    route = gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    response = await client.get("/nublado/spawner/v1/lab-form/rachel", headers=headers)
    assert response.status_code == 422
    assert response.json() == {"detail": detail}
    assert route.call_count == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_mode_a_rejected_token_is_401(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient, status: int
) -> None:
    gafaelfawr_mock.get(USER_INFO).respond(status)
    response = await client.get("/nublado/spawner/v1/lab-form/rachel", headers=HEADERS)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == INVALID_TOKEN


async def test_mode_a_token_of_another_user_is_403(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    gafaelfawr_mock.get(USER_INFO).respond(200, json={**RACHEL, "username": "wendy"})
    response = await client.get("/nublado/spawner/v1/lab-form/rachel", headers=HEADERS)
    assert response.status_code == 403
    assert response.json() == PERMISSION_DENIED


async def test_mode_a_path_of_another_user_is_403(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    response = await client.get("/nublado/spawner/v1/lab-form/wendy", headers=HEADERS)
    assert response.status_code == 403
    assert response.json() == PERMISSION_DENIED


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500),
        httpx.Response(404),
        httpx.Response(200, text="<html>login</html>", headers={"Content-Type": "text/html"}),
        httpx.Response(200, content=b'{"username":'),
        httpx.ReadTimeout("slow"),
    ],
    ids=["500", "404", "html", "malformed-json", "timeout"],
)
async def test_mode_a_gafaelfawr_failure_is_plain_500(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient, reply: Any
) -> None:
    gafaelfawr_mock.get(USER_INFO).mock(side_effect=[reply])
    response = await client.get("/nublado/spawner/v1/lab-form/rachel", headers=HEADERS)
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


# -- mode A with a body: the ordering of 1.4 -------------------------------------------


CREATE = "/nublado/spawner/v1/labs/{}/create"


@pytest.mark.parametrize(
    ("path_user", "headers", "gafaelfawr_status", "content", "status", "detail"),
    [
        # Not JSON at all: rejected first, even before the missing headers.
        ("rachel", {}, 200, b"{", 422, [{"type": "json_invalid", "loc": ["body", 0]}]),
        # Missing headers and an invalid body: one 422 with both, headers first.
        (
            "rachel",
            {"X-Auth-Request-Token": "t"},
            200,
            b"{}",
            422,
            [
                MISSING_USER,
                {"type": "missing", "loc": ["body", "a"], "msg": "Field required", "input": {}},
            ],
        ),
        # Invalid token and invalid body: the token first.
        ("rachel", HEADERS, 401, b"{}", 401, INVALID_TOKEN["detail"]),
        # Valid token, invalid body: 422.
        ("rachel", HEADERS, 200, b'{"a": "x"}', 422, None),
        # Another user's path, valid token, invalid body: 422, not 403.
        ("wendy", HEADERS, 200, b"{}", 422, None),
        # Another user's path, valid token, valid body: 403.
        ("wendy", HEADERS, 200, b'{"a": 1}', 403, PERMISSION_DENIED["detail"]),
        ("rachel", HEADERS, 200, b'{"a": 1}', 200, None),
    ],
    ids=[
        "json-invalid-first",
        "headers-with-body",
        "token-before-body",
        "body-after-token",
        "body-before-path",
        "path",
        "ok",
    ],
)
async def test_create_ordering(
    gafaelfawr_mock: respx.MockRouter,
    client: httpx.AsyncClient,
    path_user: str,
    headers: dict[str, str],
    gafaelfawr_status: int,
    content: bytes,
    status: int,
    detail: list[dict[str, Any]] | None,
) -> None:
    gafaelfawr_mock.get(USER_INFO).respond(gafaelfawr_status, json=RACHEL)
    response = await client.post(CREATE.format(path_user), headers=headers, content=content)
    assert response.status_code == status
    if detail is not None:
        assert response.json() == {"detail": detail}
    elif status == 422:
        assert [error["loc"] for error in response.json()["detail"]] == [["body", "a"]]


# -- modes B, C, D ----------------------------------------------------------------------


async def test_mode_b_checks_the_header_against_the_path(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    events = "/nublado/spawner/v1/labs/{}/events"
    ok = await client.get(events.format("rachel"), headers={"X-Auth-Request-User": "rachel"})
    assert ok.status_code == 200
    assert ok.json() == {"username": "rachel"}
    other = await client.get(events.format("wendy"), headers={"X-Auth-Request-User": "rachel"})
    assert other.status_code == 403
    assert other.json() == PERMISSION_DENIED
    missing = await client.get(events.format("rachel"))
    assert missing.status_code == 422
    assert missing.json() == {"detail": [MISSING_USER]}
    assert route.call_count == 0  # the token is never looked at


async def test_mode_c_uses_the_header_username(
    gafaelfawr_mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    response = await client.get(
        "/nublado/spawner/v1/user-status", headers={"X-Auth-Request-User": "wendy"}
    )
    assert response.status_code == 200
    assert response.json() == {"username": "wendy"}
    missing = await client.get("/nublado/spawner/v1/user-status")
    assert missing.status_code == 422
    assert missing.json() == {"detail": [MISSING_USER]}
    assert route.call_count == 0


async def test_mode_d_needs_no_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/nublado/spawner/v1/labs")
    assert response.status_code == 200
    assert response.json() == []


# -- sandbox ------------------------------------------------------------------------------


async def test_sandbox_trusts_the_header_for_known_users(
    gafaelfawr_mock: respx.MockRouter,
) -> None:
    route = gafaelfawr_mock.get(USER_INFO).respond(500)
    app = make_app(TrustedUsers.from_file(REFERENCE / "users" / "rachel.json"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as test:
        headers = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "anything"}
        ok = await test.get("/nublado/spawner/v1/lab-form/rachel", headers=headers)
        assert ok.status_code == 200
        assert ok.json() == {"username": "rachel", "uid": 1101, "token": "anything"}
        headers["X-Auth-Request-User"] = "wendy"
        unknown = await test.get("/nublado/spawner/v1/lab-form/wendy", headers=headers)
        assert unknown.status_code == 401
        assert unknown.json() == INVALID_TOKEN
        missing = await test.get("/nublado/spawner/v1/lab-form/rachel")
        assert missing.json() == {"detail": [MISSING_USER, MISSING_TOKEN]}
    assert route.call_count == 0


# -- through a real server ---------------------------------------------------------------


async def test_modes_through_uvicorn(gafaelfawr_mock: respx.MockRouter) -> None:
    """The same answers over a real socket, Gafaelfawr still in respx."""
    gafaelfawr_mock.get(USER_INFO).respond(200, json=RACHEL)
    async with httpx.AsyncClient() as http:
        app = make_app(GafaelfawrClient(http, BASE))
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                assert not task.done()
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            base = f"http://127.0.0.1:{port}/nublado/spawner/v1"
            ok = await http.get(f"{base}/lab-form/rachel", headers=HEADERS)
            assert ok.status_code == 200
            assert ok.json() == {"username": "rachel", "uid": 1101, "token": "gt-rachel"}
            denied = await http.get(f"{base}/lab-form/wendy", headers=HEADERS)
            assert (denied.status_code, denied.json()) == (403, PERMISSION_DENIED)
            missing = await http.get(f"{base}/lab-form/rachel")
            assert missing.status_code == 422
            assert missing.json() == {"detail": [MISSING_USER, MISSING_TOKEN]}
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=10)
