"""The OpenAPI document: served anonymously, committed, complete, and true of the app.

The last test lets schemathesis generate requests for every documented
operation and checks each answer against the document (no 5xx, documented
status, content type, headers and body schema).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema
import pytest
import respx
import schemathesis
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from lab_api_support import CONTROLLER_NAMESPACE, serve_reference_labs
from reference_cases import EXPECTED, INPUTS, TOKEN, reference_config, reference_metadata
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Route

from nublado.api.app import create_app
from nublado.api.files import fileserver_routes
from nublado.api.forms import form_routes
from nublado.api.fsadmin import fsadmin_routes
from nublado.api.labs import lab_routes
from nublado.api.openapi import TAGS, openapi_text
from nublado.config import Config
from nublado.gafaelfawr import GafaelfawrClient
from nublado.kube.client import KubernetesClient
from nublado.render.engine import Renderer
from nublado.services.fsadmin import FSAdminService
from nublado.services.images import ImageService
from nublado.services.labs import LabService

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "openapi.json"
GAFAELFAWR = "https://gafaelfawr.test/auth/api/v1"
RACHEL = json.loads((INPUTS / "users" / "rachel.json").read_text())
STATUS = json.loads((EXPECTED / "spawn" / "lab-status.json").read_text())
SPEC = json.loads((INPUTS / "lab-specification.json").read_text())
HEADERS = {"x-auth-request-user": "rachel", "x-auth-request-token": TOKEN}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25
HTTPX_ARGS = {"method", "url", "headers", "params", "json", "content", "data"}


@pytest.fixture
async def labs(
    config: Config, images: ImageService, client: KubernetesClient, admin: KubernetesClient
) -> AsyncIterator[LabService]:
    """The real lab service on the sandbox, with the reference Secrets."""
    labs = await serve_reference_labs(config, images, client, admin=admin)
    yield labs
    await labs.stop()


@pytest.fixture
def app(
    config: Config,
    images: ImageService,
    http: httpx.AsyncClient,
    router: respx.MockRouter,
    labs: LabService,
    client: KubernetesClient,
) -> Starlette:
    """The controller's route table: images refreshed, labs and fsadmin on the sandbox,
    Gafaelfawr mocked."""
    router.get(f"{GAFAELFAWR}/user-info").respond(json=RACHEL)
    users = GafaelfawrClient(http, GAFAELFAWR)
    renderer = Renderer(config.template_dirs)
    fsadmin = FSAdminService(
        config, client, renderer, reference_metadata(), namespace=CONTROLLER_NAMESPACE
    )
    routes = [
        *form_routes(config, images, users, renderer),
        *lab_routes(config, labs, users),
        *fileserver_routes(config, cast(Any, None), users),
        *fsadmin_routes(config, fsadmin),
    ]
    return create_app(config, images=images, routes=routes, refresh_images=False)


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nublado.test") as api:
            yield api


def test_the_committed_document_is_current() -> None:
    current = openapi_text(reference_config("standard"))

    assert COMMITTED.read_text() == current, "run: python -m nublado.api.openapi CONFIG"


async def test_the_served_document_is_the_committed_one_and_anonymous(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/nublado/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(COMMITTED.read_text())


def test_every_api_route_is_documented_with_its_methods_and_a_tag(app: Starlette) -> None:
    document = json.loads(COMMITTED.read_text())
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/nublado")
        for method in route.methods or ()
        if route.name not in ("openapi", "docs", "redoc")
    }

    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}

    assert documented == served
    tags = {tag["name"] for tag in TAGS}
    assert tags == {"hub", "user", "admin", "internal"}
    for ops in document["paths"].values():
        for op in ops.values():
            assert len(op["tags"]) == 1
            assert op["tags"][0] in tags


def test_the_document_is_openapi_3_1_with_every_reference_resolved() -> None:
    document = json.loads(COMMITTED.read_text())
    text = COMMITTED.read_text()
    schemas = document["components"]["schemas"]

    assert document["openapi"] == "3.1.0"
    for name in {ref.split('"')[0] for ref in text.split('"#/components/schemas/')[1:]}:
        assert name in schemas, name
    create = document["paths"]["/nublado/spawner/v1/labs/{username}/create"]["post"]
    assert [(p["in"], p["name"]) for p in create["parameters"]] == [
        ("path", "username"),
        ("header", "x-auth-request-user"),
        ("header", "x-auth-request-token"),
    ]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LabSpecification"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {"type": "null"}
    events = document["paths"]["/nublado/spawner/v1/labs/{username}/events"]["get"]
    assert list(events["responses"]["200"]["content"]) == ["text/event-stream"]
    form = document["paths"]["/nublado/spawner/v1/lab-form/{username}"]["get"]
    assert list(form["responses"]["200"]["content"]) == ["text/html"]
    delete = document["paths"]["/nublado/spawner/v1/labs/{username}"]["delete"]
    assert "content" not in delete["responses"]["204"]


def test_the_reference_lab_state_matches_its_schema_and_the_owner_is_exact() -> None:
    document = json.loads(COMMITTED.read_text())
    schema = {"$ref": "#/components/schemas/LabState", **document}
    lab_user = document["components"]["schemas"]["LabUser"]

    jsonschema.validate(STATUS, schema)
    assert sorted(lab_user["required"]) == sorted(STATUS["user"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**STATUS, "internal_url": 8888}, schema)


@pytest.mark.parametrize("page", ["docs", "redoc"])
async def test_documentation_pages_read_the_served_document(
    api: httpx.AsyncClient, page: str
) -> None:
    response = await api.get(f"/nublado/{page}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '"/nublado/openapi.json"' in response.text


def generated_cases(document: dict[str, Any]) -> list[Any]:
    """Requests schemathesis generates from the document, a bounded number per operation.

    Each operation gets valid and invalid requests from anyone, and valid
    requests from rachel for her own lab (so that create's body reaches the
    lab service: images, sizes, conflicts).
    """
    schema = schemathesis.openapi.from_dict(document)
    cases: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        if "{username}" in operation.path:
            names = {p["name"] for p in operation.definition.raw.get("parameters", [])}
            headers = {k: v for k, v in HEADERS.items() if k in names}
            strategies.append(
                operation.as_strategy(
                    GenerationMode.POSITIVE,
                    path_parameters={"username": "rachel"},
                    headers=headers or None,
                )
            )
        for strategy in strategies:

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                database=None,
                derandomize=True,  # the same requests every run: no flaky failures
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def collect(case: Any) -> None:
                cases.append(case)

            with contextlib.suppress(Unsatisfiable):  # nothing to get wrong (no inputs)
                collect()
    return cases


def reference_cases(document: dict[str, Any]) -> list[Any]:
    """Requests that succeed: rachel's form, create, events, status, then delete twice."""
    schema = schemathesis.openapi.from_dict(document)
    labs = "/nublado/spawner/v1/labs/{username}"
    rachel = {"username": "rachel"}
    user = {"x-auth-request-user": "rachel"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("/nublado", "GET", {}),
        ("/nublado/spawner/v1/images", "GET", {}),
        ("/nublado/spawner/v1/prepulls", "GET", {}),
        ("/nublado/spawner/v1/labs", "GET", {}),
        ("/nublado/spawner/v1/lab-form/{username}", "GET", {"headers": HEADERS}),
        (labs, "GET", {}),
        (f"{labs}/create", "POST", {"headers": HEADERS, "body": SPEC}),
        (labs, "GET", {}),
        (f"{labs}/events", "GET", {"headers": user}),
        ("/nublado/spawner/v1/user-status", "GET", {"headers": user}),
        (f"{labs}/create", "POST", {"headers": HEADERS, "body": SPEC}),
        (labs, "DELETE", {}),
        (labs, "GET", {}),
        (labs, "DELETE", {}),
        ("/nublado/fsadmin/v1/service", "GET", {}),
        ("/nublado/fsadmin/v1/service", "POST", {"body": {"start": True}}),
        ("/nublado/fsadmin/v1/service", "GET", {}),
        ("/nublado/fsadmin/v1/service", "DELETE", {}),
    ]
    cases = []
    for path, method, parts in calls:
        operation = schema[path][method]
        if "{username}" in path:
            parts = {**parts, "path_parameters": rachel}
        cases.append(operation.Case(**parts))
    return cases


async def test_every_answer_matches_the_document(api: httpx.AsyncClient) -> None:
    document = (await api.get("/nublado/openapi.json")).json()
    cases = [*generated_cases(document), *reference_cases(document)]
    failures: list[str] = []
    statuses: set[tuple[str, int]] = set()

    for case in cases:
        request = case.as_transport_kwargs(base_url="http://nublado.test")
        arguments = {k: v for k, v in request.items() if k in HTTPX_ARGS}
        if isinstance(arguments.get("data"), str | bytes):  # raw bodies of invalid requests
            arguments["content"] = arguments.pop("data")
        response = await api.request(**arguments)
        statuses.add((case.operation.label, response.status_code))
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:
            failures.append(f"{case.operation.label} {request['url']}: {exc}")

    assert failures == []
    create = "POST /nublado/spawner/v1/labs/{username}/create"
    expected = {
        ("GET /nublado/spawner/v1/labs/{username}", 200),
        ("GET /nublado/spawner/v1/labs/{username}", 404),
        *((create, status) for status in (201, 400, 401, 403, 409, 422)),
        ("GET /nublado/spawner/v1/labs/{username}/events", 200),
        ("GET /nublado/spawner/v1/labs/{username}/events", 404),
        ("GET /nublado/spawner/v1/user-status", 200),
        ("DELETE /nublado/spawner/v1/labs/{username}", 204),
        ("DELETE /nublado/spawner/v1/labs/{username}", 404),
        ("GET /nublado/spawner/v1/lab-form/{username}", 200),
        ("GET /nublado/fsadmin/v1/service", 200),
        ("GET /nublado/fsadmin/v1/service", 404),
        *(("POST /nublado/fsadmin/v1/service", status) for status in (200, 422)),
        ("DELETE /nublado/fsadmin/v1/service", 204),
    }
    assert expected <= statuses
