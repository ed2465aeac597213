"""build_controller: the services wired into one app (metrics, alerts, users, discovery)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.applications import Starlette

from nublado.alerts import NoAlerts, SlackAlerts
from nublado.api.controller import build_controller, file_discovery, repertoire_discovery
from nublado.config import Config
from nublado.config.loader import load_config
from nublado.gafaelfawr import GafaelfawrClient, TrustedUsers
from nublado.kube.client import KubernetesClient
from nublado.models.metadata import ControllerMetadata
from nublado.sandbox.server import Sandbox
from nublado.services.images import ImageService

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEBHOOK = "https://hooks.slack.test/services/T0/B0/secret"
GAFAELFAWR = "https://gafaelfawr.test/auth/api/v1"
REPERTOIRE = "https://repertoire.test"
RACHEL = {"X-Auth-Request-User": "rachel", "X-Auth-Request-Token": "gt-rachel.token"}


@pytest.fixture
def config() -> Config:
    """The example configuration (static image source: no registry to mock)."""
    return load_config(EXAMPLES / "config.yaml", environ={})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def serve(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as api:
            yield api


@pytest.fixture
async def app(
    config: Config,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    controller_metadata: ControllerMetadata,
) -> Starlette:
    users = TrustedUsers.from_file(EXAMPLES / "users.json")
    return build_controller(
        config, kube=client, http=http, users=users, metadata=controller_metadata
    )


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async for api in serve(app):
        yield api


async def test_index_images_and_form_are_served_from_the_sandbox(api: httpx.AsyncClient) -> None:
    index = await api.get("/nublado")
    images = await api.get("/nublado/spawner/v1/images")
    form = await api.get("/nublado/spawner/v1/lab-form/rachel", headers=RACHEL)

    assert index.status_code == 200
    assert index.json()["metadata"]["name"] == "Nublado"
    assert images.status_code == 200
    assert images.json()["recommended"]["digest"] == "sha256:5678"
    assert images.json()["recommended"]["prepulled"] is True  # both example nodes hold it
    assert form.status_code == 200
    assert 'name="image_list"' in form.text


async def test_trusted_users_answer_only_for_users_of_the_file(api: httpx.AsyncClient) -> None:
    stranger = {"X-Auth-Request-User": "mallory", "X-Auth-Request-Token": "t"}

    response = await api.get("/nublado/spawner/v1/lab-form/mallory", headers=stranger)

    assert response.status_code == 401
    assert response.json() == {
        "detail": [{"msg": "User token is invalid", "type": "invalid_token"}]
    }


async def test_metrics_is_prometheus_text_at_exactly_slash_metrics(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    for name in (
        "nublado_active_labs",
        "nublado_spawns_total",
        "nublado_spawn_duration_seconds_bucket",
        "nublado_kubernetes_errors_total",
    ):
        assert f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')}" in response.text
    assert 'nublado_spawns_total{outcome="failure"} 0.0' in response.text
    assert "nublado_active_labs 0.0" in response.text


async def test_metrics_counts_what_the_services_record(
    app: Starlette, api: httpx.AsyncClient
) -> None:
    app.state.metrics.spawns.labels(outcome="success").inc()
    app.state.metrics.active_labs.set(3)

    text = (await api.get("/metrics")).text

    assert 'nublado_spawns_total{outcome="success"} 1.0' in text
    assert "nublado_active_labs 3.0" in text


async def test_failed_kubernetes_calls_are_counted_by_reason(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    """A spawn whose read of the source Secrets the API server refuses counts one BadRequest."""
    sandbox.inject_fault("GET", "/api/v1/namespaces/nublado/secrets*", status=400)
    body = json.loads((EXAMPLES / "lab-specification.json").read_text())
    created = await api.post("/nublado/spawner/v1/labs/rachel/create", json=body, headers=RACHEL)
    events = await api.get("/nublado/spawner/v1/labs/rachel/events", headers=RACHEL)

    text = (await api.get("/metrics")).text

    assert created.status_code == 201
    assert events.text.rstrip().endswith('data: {"message": "Lab spawn failed"}')
    assert 'nublado_kubernetes_errors_total{reason="BadRequest"} 1.0' in text
    assert 'nublado_spawns_total{outcome="failure"} 1.0' in text


async def test_each_app_has_its_own_registry(
    config: Config,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    controller_metadata: ControllerMetadata,
) -> None:
    users = TrustedUsers([])
    first = build_controller(
        config, kube=client, http=http, users=users, metadata=controller_metadata
    )
    second = build_controller(
        config, kube=client, http=http, users=users, metadata=controller_metadata
    )

    assert first.state.metrics.registry is not second.state.metrics.registry


async def test_the_state_holds_the_built_services(
    app: Starlette, controller_metadata: ControllerMetadata
) -> None:
    assert isinstance(app.state.images, ImageService)
    assert isinstance(app.state.users, TrustedUsers)
    assert isinstance(app.state.alerts, NoAlerts)  # no slackWebhook in the example
    assert app.state.metadata == controller_metadata


async def test_without_a_users_source_gafaelfawr_is_asked(
    config: Config,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    controller_metadata: ControllerMetadata,
) -> None:
    config = config.model_copy(update={"gafaelfawr_url": GAFAELFAWR})

    app = build_controller(config, kube=client, http=http, metadata=controller_metadata)

    assert isinstance(app.state.users, GafaelfawrClient)


async def test_an_uncaught_route_error_is_500_and_one_slack_message(
    config: Config,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    controller_metadata: ControllerMetadata,
    router: respx.MockRouter,
) -> None:
    """A Gafaelfawr outage is a server failure (api.md 2.5): plain 500, reported to Slack."""
    config = config.model_copy(
        update={"gafaelfawr_url": GAFAELFAWR, "slack_webhook": SecretStr(WEBHOOK)}
    )
    router.get(f"{GAFAELFAWR}/user-info").respond(503)
    slack = router.post(WEBHOOK).respond(200)
    app = build_controller(config, kube=client, http=http, metadata=controller_metadata)
    assert isinstance(app.state.alerts, SlackAlerts)

    async for api in serve(app):
        response = await api.get("/nublado/spawner/v1/lab-form/rachel", headers=RACHEL)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert slack.call_count == 1
    blocks = json.loads(slack.calls[0].request.content)["blocks"]
    assert blocks[0]["text"]["text"] == (
        "Error in Nublado: Uncaught exception in GET /nublado/spawner/v1/lab-form/rachel"
    )
    assert blocks[1]["fields"][0]["text"] == "*Exception type*\nGafaelfawrError"
    assert blocks[1]["fields"][2]["text"] == "*User*\nrachel"


async def test_client_errors_are_not_reported(
    config: Config,
    client: KubernetesClient,
    http: httpx.AsyncClient,
    controller_metadata: ControllerMetadata,
    router: respx.MockRouter,
) -> None:
    config = config.model_copy(update={"slack_webhook": SecretStr(WEBHOOK)})
    slack = router.post(WEBHOOK).respond(200)
    users = TrustedUsers.from_file(EXAMPLES / "users.json")
    app = build_controller(
        config, kube=client, http=http, users=users, metadata=controller_metadata
    )

    async for api in serve(app):
        forbidden = await api.get("/nublado/spawner/v1/lab-form/ada", headers=RACHEL)
        missing = await api.get("/nublado/nothing-here")

    assert (forbidden.status_code, missing.status_code) == (403, 404)
    assert slack.call_count == 0


async def test_the_lab_routes_are_served_when_the_lab_service_exists(app: Starlette) -> None:
    paths = {getattr(route, "path", None) for route in app.routes}

    assert "/nublado/spawner/v1/labs/{username}/create" in paths
    assert "/nublado/spawner/v1/user-status" in paths


async def test_repertoire_discovery_is_fetched_once_per_ttl_and_survives_outages(
    http: httpx.AsyncClient, router: respx.MockRouter
) -> None:
    document = json.loads((EXAMPLES / "discovery.json").read_text())
    route = router.get(f"{REPERTOIRE}/discovery")
    route.side_effect = [
        httpx.Response(200, json=document),
        httpx.Response(503),
        httpx.Response(200, text="not json"),
    ]
    cached = repertoire_discovery(http, REPERTOIRE + "/", ttl=3600)
    refetched = repertoire_discovery(http, REPERTOIRE, ttl=0)

    assert await cached() == document
    assert await cached() == document
    assert route.call_count == 1
    assert await refetched() is None  # 503 before any good answer
    assert await refetched() is None  # not JSON
    assert route.call_count == 3


async def test_repertoire_discovery_keeps_the_last_good_document(
    http: httpx.AsyncClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{REPERTOIRE}/discovery")
    route.side_effect = [httpx.Response(200, json={"services": {}}), httpx.ConnectError("down")]
    discovery = repertoire_discovery(http, REPERTOIRE, ttl=0)

    assert await discovery() == {"services": {}}
    assert await discovery() == {"services": {}}


async def test_file_discovery_answers_the_file() -> None:
    discovery = file_discovery(EXAMPLES / "discovery.json")

    assert await discovery() == json.loads((EXAMPLES / "discovery.json").read_text())
