"""Every error shape of api.md section 2, over HTTP through the real app.

A small route set raises each error the later routes will raise, and a
create-like route reads its input with `RequestInput` in FastAPI's order;
the bodies are compared whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from reference_cases import reference_config
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nublado.api.app import create_app, prefixed
from nublado.api.auth import require_username
from nublado.api.errors import (
    ClientRequestError,
    DeleteFailedError,
    FileServerCreateFailedError,
    FileServerDeleteFailedError,
    InsufficientQuotaError,
    InvalidLabSizeError,
    InvalidPhaseError,
    InvalidTokenError,
    LabExistsError,
    NotFoundError,
    NotSupportedError,
    OperationInProgressError,
    PermissionDeniedError,
    UnknownUserError,
    client_error,
)
from nublado.api.validation import RequestInput, parse_body
from nublado.images.reference import InvalidDockerReferenceError
from nublado.images.source import ImageSource, UnknownImageError
from nublado.kube.client import KubernetesClient
from nublado.models.lab import LabSpecification
from nublado.services.images import ImageService

CONFIG = reference_config("standard")
GOOD_TOKEN = "gt-good"
VALID_SPEC = {
    "options": {"size": "small", "image_class": "recommended"},
    "env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/user/rachel/"},
}

RAISED: dict[str, Exception] = {
    "invalid-token": InvalidTokenError(),
    "permission-denied": PermissionDeniedError(),
    "no-uid": PermissionDeniedError("Must have a UID to spawn labs"),
    "quota": InsufficientQuotaError(),
    "size": InvalidLabSizeError("huge"),
    "lab-exists": LabExistsError("rachel"),
    "in-progress": OperationInProgressError("rachel"),
    "unknown-user-path": UnknownUserError.for_path("rachel"),
    "unknown-user": UnknownUserError("Unknown user rachel"),
    "not-supported": NotSupportedError(),
    "not-found": NotFoundError("nublado/fsadmin"),
    "invalid-phase": InvalidPhaseError("Pending"),
    "delete-failed": DeleteFailedError(),
    "fileserver-create": FileServerCreateFailedError("timed out"),
    "fileserver-delete": FileServerDeleteFailedError("boom"),
    "unknown-image": UnknownImageError('Docker tag "w_1999_01" not found'),
    "bad-reference": InvalidDockerReferenceError("nonsense"),
    "uncaught": RuntimeError("something broke"),
}


async def _raise(request: Request) -> Response:
    raise RAISED[request.path_params["name"]]


async def _raise_located(request: Request) -> Response:
    """What the create route does with an image error: tie it to the option that named it."""
    try:
        raise UnknownImageError('Docker reference "x" not found')
    except (UnknownImageError, InvalidDockerReferenceError) as exc:
        raise client_error(exc, location=("body", "options", "image_list")) from exc


async def _create(request: Request) -> Response:
    """Headers, then authentication if they are present, then the body: FastAPI's order."""
    data = await RequestInput.read(request)
    user = data.header("X-Auth-Request-User")
    token = data.header("X-Auth-Request-Token")
    if user is not None and token is not None and token != GOOD_TOKEN:
        raise InvalidTokenError()
    spec = data.body(LabSpecification)
    data.check()
    assert spec is not None
    if user != request.path_params["username"]:
        raise PermissionDeniedError()
    return JSONResponse({"size": spec.options.size.value}, status_code=201)


async def _parse(request: Request) -> Response:
    spec = await parse_body(request, LabSpecification)
    return JSONResponse({"size": spec.options.size.value})


async def _whoami(request: Request) -> Response:
    return JSONResponse({"user": require_username(request)})


def _routes() -> list[BaseRoute]:
    return [
        Route(prefixed(CONFIG, "/raise/located"), _raise_located),
        Route(prefixed(CONFIG, "/raise/{name}"), _raise),
        Route(prefixed(CONFIG, "/labs/{username}/create"), _create, methods=["POST"]),
        Route(prefixed(CONFIG, "/parse"), _parse, methods=["POST"]),
        Route(prefixed(CONFIG, "/whoami"), _whoami),
    ]


def stub_images() -> ImageService:
    """An image service never refreshed: these routes do not touch images."""
    return ImageService(CONFIG, cast(ImageSource, None), cast(KubernetesClient, None))


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(CONFIG, images=stub_images(), routes=_routes(), refresh_images=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as client:
        yield client


def _detail(msg: str, type_: str, loc: list[Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"msg": msg, "type": type_}
    if loc is not None:
        item["loc"] = loc
    return {"detail": [item]}


@pytest.mark.parametrize(
    ("name", "status", "body"),
    [
        ("invalid-token", 401, _detail("User token is invalid", "invalid_token")),
        ("permission-denied", 403, _detail("Permission denied", "permission_denied")),
        ("no-uid", 403, _detail("Must have a UID to spawn labs", "permission_denied")),
        (
            "quota",
            403,
            _detail(
                "Insufficient quota to spawn requested lab",
                "insufficient_quota",
                ["body", "options", "size"],
            ),
        ),
        (
            "size",
            422,
            _detail('Invalid lab size "huge"', "invalid_lab_size", ["body", "options", "size"]),
        ),
        ("lab-exists", 409, _detail("Lab already exists for rachel", "lab_exists")),
        (
            "in-progress",
            409,
            _detail(
                "Conflicting operation for rachel already in progress", "operation_in_progress"
            ),
        ),
        (
            "unknown-user-path",
            404,
            _detail("Unknown user rachel", "unknown_user", ["path", "username"]),
        ),
        ("unknown-user", 404, _detail("Unknown user rachel", "unknown_user")),
        ("not-supported", 404, _detail("Fileserver is disabled in configuration", "not_supported")),
        ("not-found", 404, _detail("nublado/fsadmin", "not_found")),
        ("invalid-phase", 404, _detail("Pending", "invalid_phase")),
        ("delete-failed", 500, _detail("Failed to delete lab", "delete_failed")),
        (
            "fileserver-create",
            500,
            _detail("Failed to create file server: timed out", "file_server_create_failed"),
        ),
        (
            "fileserver-delete",
            500,
            _detail("Failed to delete file server: boom", "file_server_delete_failed"),
        ),
    ],
)
async def test_catalogue_error_renders_the_client_request_error_body(
    api: httpx.AsyncClient, name: str, status: int, body: dict[str, Any]
) -> None:
    response = await api.get(f"/nublado/raise/{name}")

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


async def test_client_request_error_body_is_compact_with_upstream_key_order(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/nublado/raise/size")

    assert response.text == (
        '{"detail":[{"msg":"Invalid lab size \\"huge\\"","type":"invalid_lab_size",'
        '"loc":["body","options","size"]}]}'
    )


async def test_unknown_image_from_the_image_layer_is_400_unknown_image(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/nublado/raise/unknown-image")

    assert response.status_code == 400
    assert response.json() == _detail('Docker tag "w_1999_01" not found', "unknown_image")


async def test_invalid_reference_from_the_image_layer_is_422_invalid_docker_reference(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/nublado/raise/bad-reference")

    assert response.status_code == 422
    assert response.json() == _detail(
        'Invalid Docker reference "nonsense" (expected registry/repository[:tag][@digest])',
        "invalid_docker_reference",
    )


async def test_image_error_tied_to_its_option_carries_the_location(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/nublado/raise/located")

    assert response.status_code == 400
    assert response.json() == _detail(
        'Docker reference "x" not found', "unknown_image", ["body", "options", "image_list"]
    )


def test_client_error_refuses_an_exception_with_no_mapping() -> None:
    with pytest.raises(TypeError):
        client_error(RuntimeError("no"))


def test_client_error_keeps_our_own_errors_and_sets_the_location() -> None:
    error = PermissionDeniedError()

    assert client_error(error, location=("path", "username")) is error
    assert error.detail() == {
        "msg": "Permission denied",
        "type": "permission_denied",
        "loc": ["path", "username"],
    }
    assert isinstance(error, ClientRequestError)


async def test_uncaught_error_is_a_logged_plain_text_500(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nublado.api.errors"):
        response = await api.get("/nublado/raise/uncaught")

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Internal Server Error"
    [record] = [r for r in caplog.records if r.name == "nublado.api.errors"]
    assert record.exc_info is not None
    assert "GET /nublado/raise/uncaught" in record.getMessage()


async def test_uncaught_error_is_alerted_and_a_failing_alert_changes_nothing() -> None:
    alerts: list[tuple[str, str]] = []

    async def alert(request: Request, exc: Exception) -> None:
        alerts.append((request.url.path, str(exc)))
        raise RuntimeError("Slack is down")

    app = create_app(
        CONFIG, images=stub_images(), routes=_routes(), refresh_images=False, alert=alert
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as client:
        response = await client.get("/nublado/raise/uncaught")
        handled = await client.get("/nublado/raise/lab-exists")

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert handled.status_code == 409
    assert alerts == [("/nublado/raise/uncaught", "something broke")]


async def test_wrapped_server_error_is_logged(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nublado.api.errors"):
        await api.get("/nublado/raise/delete-failed")

    assert any("Failed to delete lab" in r.getMessage() for r in caplog.records)


# Routing errors (2.6)


async def test_unknown_path_is_fastapis_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/spawner/v1/nothing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.text == '{"detail":"Not Found"}'


async def test_wrong_method_is_fastapis_json_405_with_allow(api: httpx.AsyncClient) -> None:
    response = await api.post("/nublado/spawner/v1/images")

    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert response.headers["allow"] == "GET"


async def test_head_is_not_answered_for_a_get_route(api: httpx.AsyncClient) -> None:
    response = await api.head("/nublado/spawner/v1/images")

    assert response.status_code == 405


async def test_trailing_slash_redirects_to_the_route_without_it(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/")

    assert response.status_code == 307
    assert response.headers["location"] == "http://nublado.test/nublado"


# Request validation (2.3, 1.3, 1.4 ordering)

HEADERS = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": GOOD_TOKEN}


async def test_valid_request_passes_validation(api: httpx.AsyncClient) -> None:
    response = await api.post("/nublado/labs/rachel/create", json=VALID_SPEC, headers=HEADERS)

    assert response.status_code == 201
    assert response.json() == {"size": "small"}


async def test_missing_header_is_fastapis_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/whoami")

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["header", "x-auth-request-user"],
                "msg": "Field required",
                "input": None,
            }
        ]
    }


async def test_present_header_is_read(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/whoami", headers={"X-Auth-Request-User": "rachel"})

    assert response.json() == {"user": "rachel"}


async def test_non_json_body_fails_first_with_json_invalid(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/nublado/labs/rachel/create",
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


async def test_body_without_content_type_is_parsed_as_json(api: httpx.AsyncClient) -> None:
    response = await api.post("/nublado/labs/rachel/create", content=b"nope", headers=HEADERS)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_body_of_another_content_type_fails_model_validation(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/nublado/parse", content=b"size=small", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": "size=small",
            }
        ]
    }


async def test_json_body_that_is_not_an_object_fails_model_validation(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/nublado/parse", json=["small"])

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "model_attributes_type"


@pytest.mark.parametrize("content", [b"\xff\xfe\xfa", b"[" * 200_000], ids=["bytes", "deep"])
async def test_unparseable_body_is_fastapis_400(api: httpx.AsyncClient, content: bytes) -> None:
    response = await api.post(
        "/nublado/parse", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}


async def test_model_value_error_is_reported_as_fastapi_does(api: httpx.AsyncClient) -> None:
    body = {"options": {"size": "small"}, "env": VALID_SPEC["env"]}

    response = await api.post("/nublado/parse", json=body)

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "options"],
                "msg": "Value error, No image to spawn specified",
                "input": {"size": "small"},
                "ctx": {"error": {}},
            }
        ]
    }


@pytest.mark.parametrize("content", [b"", b"null"])
async def test_missing_body_is_field_required(api: httpx.AsyncClient, content: bytes) -> None:
    response = await api.post(
        "/nublado/parse", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    }


async def test_missing_headers_and_body_errors_come_together(api: httpx.AsyncClient) -> None:
    response = await api.post("/nublado/labs/rachel/create", json={"env": VALID_SPEC["env"]})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["header", "x-auth-request-user"],
                "msg": "Field required",
                "input": None,
            },
            {
                "type": "missing",
                "loc": ["header", "x-auth-request-token"],
                "msg": "Field required",
                "input": None,
            },
            {
                "type": "missing",
                "loc": ["body", "options"],
                "msg": "Field required",
                "input": {"env": VALID_SPEC["env"]},
            },
        ]
    }


async def test_invalid_token_wins_over_an_invalid_body(api: httpx.AsyncClient) -> None:
    headers = {**HEADERS, "X-Auth-Request-Token": "gt-bad"}

    response = await api.post("/nublado/labs/rachel/create", json={}, headers=headers)

    assert response.status_code == 401


async def test_invalid_body_wins_over_the_path_user_check(api: httpx.AsyncClient) -> None:
    response = await api.post("/nublado/labs/someone/create", json={}, headers=HEADERS)

    assert response.status_code == 422


async def test_path_user_check_runs_after_a_valid_body(api: httpx.AsyncClient) -> None:
    response = await api.post("/nublado/labs/someone/create", json=VALID_SPEC, headers=HEADERS)

    assert response.status_code == 403
    assert response.json() == _detail("Permission denied", "permission_denied")


async def test_a_client_gone_mid_body_is_a_400_not_a_server_error() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "headers": [], "path": "/", "query_string": b""}

    with pytest.raises(HTTPException) as caught:
        await RequestInput.read(Request(scope, receive))

    assert (caught.value.status_code, caught.value.detail) == (
        400,
        "There was an error parsing the body",
    )
