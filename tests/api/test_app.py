"""The app's own routes and wiring: index metadata, the prefix, X-Forwarded rules, lifespans."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from asgi_lifespan import LifespanManager
from reference_cases import reference_config
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import nublado
from nublado.api.app import create_app, prefixed
from nublado.config import Config
from nublado.images.source import ImageSource
from nublado.kube.client import KubernetesClient
from nublado.services.images import ImageService

CONFIG = reference_config("standard")


def stub_images(config: Config) -> ImageService:
    """An image service never refreshed: these routes do not touch images."""
    return ImageService(config, cast(ImageSource, None), cast(KubernetesClient, None))


async def _origin(request: Request) -> Response:
    """What the app believes about where the request came from."""
    assert request.client is not None
    return JSONResponse(
        {
            "scheme": request.url.scheme,
            "client": request.client.host,
            "forwarded_host": request.state.forwarded_host,
            "url": str(request.url_for("origin")),
        }
    )


def _client(config: Config, **kwargs: Any) -> httpx.AsyncClient:
    routes = [Route(prefixed(config, "/origin"), _origin, name="origin")]
    app = create_app(
        config, images=stub_images(config), routes=routes, refresh_images=False, **kwargs
    )
    transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://nublado.test")


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(CONFIG) as client:
        yield client


# Index routes (4.1, 4.2)

METADATA = {
    "name": "Nublado",
    "version": nublado.__version__,
    "description": "Nublado Jupyter service for the Rubin Science Platform.",
    "repository_url": "https://github.com/lsst-sqre/nublado",
    "documentation_url": "https://nublado.lsst.io",
}


async def test_internal_index_is_the_service_metadata(api: httpx.AsyncClient) -> None:
    response = await api.get("/")

    assert response.status_code == 200
    assert response.json() == METADATA


async def test_external_index_wraps_the_metadata(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado")

    assert response.status_code == 200
    assert response.json() == {"metadata": METADATA}


async def test_index_names_the_configured_service_under_the_configured_prefix() -> None:
    config = CONFIG.model_copy(update={"name": "Ceres", "path_prefix": "/lab-control"})

    async with _client(config) as client:
        internal = await client.get("/")
        external = await client.get("/lab-control")
        old = await client.get("/nublado")
        origin = await client.get("/lab-control/origin")

    assert internal.json()["name"] == "Ceres"
    assert external.json()["metadata"]["name"] == "Ceres"
    assert old.status_code == 404
    assert origin.status_code == 200


def test_prefixed_joins_without_doubled_slashes() -> None:
    config = CONFIG.model_copy(update={"path_prefix": "/nublado/"})

    assert prefixed(config, "/spawner/v1/images") == "/nublado/spawner/v1/images"
    assert prefixed(config) == "/nublado"


# X-Forwarded (1.3)


async def _origin_of(api: httpx.AsyncClient, headers: list[tuple[str, str]]) -> dict[str, Any]:
    response = await api.get("/nublado/origin", headers=headers)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


async def test_without_forwarding_headers_the_connection_is_used(api: httpx.AsyncClient) -> None:
    assert await _origin_of(api, []) == {
        "scheme": "http",
        "client": "10.0.0.9",
        "forwarded_host": None,
        "url": "http://nublado.test/nublado/origin",
    }


async def test_forwarded_proto_with_forwarded_for_sets_the_scheme(api: httpx.AsyncClient) -> None:
    origin = await _origin_of(
        api,
        [
            ("X-Forwarded-For", "192.0.2.1, 198.51.100.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "rsp.example.com"),
        ],
    )

    assert origin == {
        "scheme": "https",
        "client": "198.51.100.7",
        "forwarded_host": "rsp.example.com",
        "url": "https://nublado.test/nublado/origin",
    }


async def test_forwarded_proto_alone_is_ignored(api: httpx.AsyncClient) -> None:
    origin = await _origin_of(api, [("X-Forwarded-Proto", "https")])

    assert origin["scheme"] == "http"


async def test_forwarded_for_without_a_parseable_address_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    origin = await _origin_of(
        api,
        [
            ("X-Forwarded-For", "unknown, not-an-ip"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "rsp.example.com"),
        ],
    )

    assert origin["scheme"] == "http"
    assert origin["client"] == "10.0.0.9"
    assert origin["forwarded_host"] is None


async def test_unparseable_entries_are_skipped_for_the_rightmost_address(
    api: httpx.AsyncClient,
) -> None:
    origin = await _origin_of(
        api, [("X-Forwarded-For", "192.0.2.1, garbage"), ("X-Forwarded-Proto", "https")]
    )

    assert origin["client"] == "192.0.2.1"
    assert origin["scheme"] == "https"


async def test_repeated_forwarded_for_headers_are_not_trusted(api: httpx.AsyncClient) -> None:
    origin = await _origin_of(
        api,
        [
            ("X-Forwarded-For", "192.0.2.1"),
            ("X-Forwarded-For", "192.0.2.2"),
            ("X-Forwarded-Proto", "https"),
        ],
    )

    assert origin["client"] == "10.0.0.9"
    assert origin["scheme"] == "http"


async def test_repeated_forwarded_proto_headers_leave_the_scheme(api: httpx.AsyncClient) -> None:
    origin = await _origin_of(
        api,
        [
            ("X-Forwarded-For", "192.0.2.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Proto", "https"),
        ],
    )

    assert origin["client"] == "192.0.2.1"
    assert origin["scheme"] == "http"


async def test_the_nearest_proxys_proto_entry_wins(api: httpx.AsyncClient) -> None:
    origin = await _origin_of(
        api,
        [("X-Forwarded-For", "192.0.2.1, 192.0.2.2"), ("X-Forwarded-Proto", "http, https")],
    )

    assert origin["scheme"] == "https"


async def test_forwarded_host_never_changes_generated_urls(api: httpx.AsyncClient) -> None:
    origin = await _origin_of(
        api, [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Host", "evil.example.com")]
    )

    assert origin["forwarded_host"] == "evil.example.com"
    assert origin["url"] == "http://nublado.test/nublado/origin"


# Lifespans


async def test_extra_lifespans_run_in_order_and_unwind_in_reverse() -> None:
    events: list[str] = []

    def tracker(name: str) -> Any:
        @contextlib.asynccontextmanager
        async def lifespan() -> AsyncIterator[None]:
            events.append(f"enter {name}")
            yield
            events.append(f"exit {name}")

        return lifespan

    app = create_app(
        CONFIG,
        images=stub_images(CONFIG),
        lifespans=[tracker("labs"), tracker("fileservers")],
        refresh_images=False,
    )
    async with LifespanManager(app):
        assert events == ["enter labs", "enter fileservers"]

    assert events == ["enter labs", "enter fileservers", "exit fileservers", "exit labs"]


@pytest.mark.parametrize("proto", ["javascript", "ftp", "data"])
async def test_forwarded_proto_other_than_http_is_ignored(
    api: httpx.AsyncClient, proto: str
) -> None:
    origin = await _origin_of(api, [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", proto)])

    assert origin["scheme"] == "http"
