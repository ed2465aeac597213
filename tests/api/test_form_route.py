"""``GET PREFIX/spawner/v1/lab-form/{username}`` over HTTP: upstream's form, mode A auth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from reference_cases import EXPECTED, INPUTS

from nublado.api.app import create_app
from nublado.api.forms import form_routes
from nublado.config import Config
from nublado.gafaelfawr import GafaelfawrClient
from nublado.render.engine import Renderer
from nublado.services.images import ImageService

GAFAELFAWR = "https://gafaelfawr.test/auth/api/v1"
RACHEL = json.loads((INPUTS / "users" / "rachel.json").read_text())
FORM = (EXPECTED / "html" / "lab-form.html").read_text()
URL = "/nublado/spawner/v1/lab-form"
HEADERS = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "gt-rachel.token"}


@pytest.fixture
async def api(
    config: Config, images: ImageService, http: httpx.AsyncClient, router: respx.MockRouter
) -> AsyncIterator[httpx.AsyncClient]:
    router.get(f"{GAFAELFAWR}/user-info").respond(json=RACHEL)
    users = GafaelfawrClient(http, GAFAELFAWR)
    routes = form_routes(config, images, users, Renderer(config.template_dirs))
    async with LifespanManager(create_app(config, images=images, routes=routes)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as api:
            yield api


async def test_lab_form_is_upstreams_reference_page(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{URL}/rachel", headers=HEADERS)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == FORM


async def test_lab_form_of_another_user_is_forbidden(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{URL}/someone", headers=HEADERS)

    assert response.status_code == 403
    assert response.json() == {
        "detail": [{"msg": "Permission denied", "type": "permission_denied"}]
    }


async def test_lab_form_with_a_rejected_token_is_401(
    api: httpx.AsyncClient, router: respx.MockRouter
) -> None:
    router.get(f"{GAFAELFAWR}/user-info").respond(401)

    response = await api.get(f"{URL}/rachel", headers=HEADERS)

    assert response.status_code == 401
    assert response.json() == {
        "detail": [{"msg": "User token is invalid", "type": "invalid_token"}]
    }


async def test_lab_form_without_a_token_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{URL}/rachel", headers={"X-Auth-Request-User": "rachel"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["header", "x-auth-request-token"],
                "msg": "Field required",
                "input": None,
            }
        ]
    }
