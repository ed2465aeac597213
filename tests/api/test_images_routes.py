"""``GET PREFIX/spawner/v1/images`` and ``.../prepulls`` over HTTP, and the image lifespan.

The reference case (standard.yaml, the reference registry through respx,
the sandbox's reference nodes) must give upstream's payloads byte for byte
in content; the app refreshes images at start-up, keeps refreshing in the
background and stops doing so at shutdown. One test goes through a real
uvicorn server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fake_registry import FakeRegistry
from lab_api_support import on_uvicorn
from reference_cases import DATA, EXPECTED
from starlette.types import ASGIApp

from nublado.api.app import create_app
from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.models.metadata import ControllerMetadata
from nublado.services.images import ImageService, build_image_source
from nublado.services.prepuller import Prepuller

IMAGES = json.loads((EXPECTED / "images" / "standard.json").read_text())
PREPULLS = json.loads((DATA / "prepuller" / "prepulls.json").read_text())


@pytest.fixture
async def app(config: Config, images: ImageService) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan entered: images refreshed, the loop running."""
    async with LifespanManager(create_app(config, images=images)) as manager:
        yield manager.app


@pytest.fixture
async def api(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as client:
        yield client


async def test_images_route_answers_upstreams_reference_payload(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/spawner/v1/images")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == IMAGES


async def test_images_route_omits_nulls(api: httpx.AsyncClient) -> None:
    body = (await api.get("/nublado/spawner/v1/images")).json()

    assert "latest_release" not in body
    untagged = next(image for image in body["all"] if image["tag"] == "latest_daily")
    assert "digest" not in untagged


async def test_prepulls_route_answers_the_api_example(api: httpx.AsyncClient) -> None:
    response = await api.get("/nublado/spawner/v1/prepulls")

    assert response.status_code == 200
    assert response.json() == PREPULLS


async def test_prepulls_route_keeps_nulls(api: httpx.AsyncClient) -> None:
    body = (await api.get("/nublado/spawner/v1/prepulls")).json()

    assert body["config"]["cycle"] is None
    assert body["nodes"][0]["comment"] is None


async def test_start_up_refreshes_before_serving(app: ASGIApp, images: ImageService) -> None:
    assert images.refresh_count == 1


async def test_without_the_start_up_refresh_the_images_are_empty(
    config: Config, images: ImageService
) -> None:
    app = create_app(config, images=images, refresh_images=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/nublado/spawner/v1/images")

    assert response.json() == {"all": []}


@pytest.mark.parametrize("config", [{"refresh_interval": timedelta(seconds=0.05)}], indirect=True)
async def test_images_keep_refreshing_until_shutdown(config: Config, images: ImageService) -> None:
    app = create_app(config, images=images)
    async with LifespanManager(app):
        async with asyncio.timeout(10):
            while images.refresh_count < 3:
                await asyncio.sleep(0.01)

    stopped = images.refresh_count
    await asyncio.sleep(0.2)
    assert images.refresh_count == stopped
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "image-refresh"]


@pytest.mark.parametrize("config", [{"refresh_interval": timedelta(seconds=0.05)}], indirect=True)
async def test_a_failed_start_up_refresh_serves_empty_images_until_the_loop_succeeds(
    config: Config, images: ImageService, registry: FakeRegistry
) -> None:
    registry.require_auth = "Basic nobody"
    app = create_app(config, images=images)

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = (await client.get("/nublado/spawner/v1/images")).json()
            registry.require_auth = None
            async with asyncio.timeout(10):
                while images.refresh_count == 0:
                    await asyncio.sleep(0.01)
            after = (await client.get("/nublado/spawner/v1/images")).json()

    assert images.refresh_failures >= 1
    assert before == {"all": []}
    assert after == IMAGES


async def test_prepuller_runs_right_after_the_start_up_refresh(
    config: Config,
    registry: FakeRegistry,
    http: httpx.AsyncClient,
    client: KubernetesClient,
    controller_metadata: ControllerMetadata,
) -> None:
    prepuller = Prepuller(client, config, controller_metadata, timeout=20.0)
    images = ImageService(config, build_image_source(config.images, http), client, prepuller)
    app = create_app(config, images=images)

    async with LifespanManager(app):
        async with asyncio.timeout(20):
            while images.prepuller_status().images.pending:
                await asyncio.sleep(0.05)

    # The refresh interval is five minutes: only the start-up prepull can have run.
    assert images.refresh_count == 1
    assert [i.tag for i in images.prepuller_status().images.prepulled] == [
        "w_2077_43",
        "d_2077_10_23",
    ]


async def test_images_through_a_real_uvicorn_server(
    config: Config, images: ImageService, router: respx.MockRouter
) -> None:
    router.route(host="127.0.0.1").pass_through()
    app = create_app(config, images=images)
    async with (
        on_uvicorn(app, lifespan="on") as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web,
    ):
        response = await web.get("/nublado/spawner/v1/images")
        missing = await web.get("/nublado/spawner/v1/nothing")

    assert response.status_code == 200
    assert response.json() == IMAGES
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
