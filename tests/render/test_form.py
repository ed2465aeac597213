"""The lab form (api.md 4.3): upstream's bytes, the quota and default rules, escaping.

The parity case builds the menus the way the route will, from an image
service over the sandbox and a respx registry; the rules are checked with
hand-made menus through the pure context builder and the real templates.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fake_registry import FakeRegistry
from reference_cases import EXPECTED, INPUTS, reference_config, reference_user

from nublado.config import Config, LabSize
from nublado.kube.client import KubernetesClient
from nublado.models.images import MenuImage
from nublado.models.lab import DROPDOWN_SENTINEL_VALUE, LabRequestOptions
from nublado.models.metadata import ControllerMetadata
from nublado.models.user import UserInfo
from nublado.render.engine import Renderer, RenderError
from nublado.render.form import (
    LAB_FORM_TEMPLATE,
    FormSize,
    allowed_sizes,
    build_lab_form_context,
    render_lab_form,
)
from nublado.services.images import ImageService, build_image_source
from nublado.services.prepuller import Prepuller

REPOSITORY = "lighthouse.ceres/library/sketchbook"
EXPECTED_FORM = (EXPECTED / "html" / "lab-form.html").read_text()

UNAVAILABLE = (
    "<h2>Notebooks unavailable</h2>\n"
    "<p>Creating a new Nublado notebook is currently unavailable.</p>"
)
"""Upstream's tests/data/controller/standard/output/lab-unavailable.html, byte for byte."""

RECOMMENDED = MenuImage(
    reference=f"{REPOSITORY}:recommended@sha256:5678", name="Recommended (Weekly 2077_43)"
)
MENU = [RECOMMENDED]
DROPDOWN = [
    RECOMMENDED,
    MenuImage(reference=f"{REPOSITORY}:w_2077_43@sha256:5678", name="Weekly 2077_43"),
    MenuImage(reference=f"{REPOSITORY}:d_2077_10_23@sha256:1234", name="Daily 2077_10_23"),
    MenuImage(reference=f"{REPOSITORY}:latest_weekly", name="latest_weekly"),
    MenuImage(reference=f"{REPOSITORY}:latest_daily", name="latest_daily"),
]
"""What the image service offers for the reference case (tests/services/test_images.py)."""


class _Page(HTMLParser):
    """The elements of a rendered page: start tags with attributes, and text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())

    def inputs(self, name: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == "input" and a.get("name") == name]

    def options(self) -> list[str | None]:
        return [a.get("value") for t, a in self.tags if t == "option"]


@pytest.fixture
def config() -> Config:
    return reference_config("standard")


@pytest.fixture
def renderer(config: Config) -> Renderer:
    return Renderer(config.template_dirs)


def _with_lab(config: Config, **changes: Any) -> Config:
    return config.model_copy(update={"lab": config.lab.model_copy(update=changes)})


def _user(quota: dict[str, Any] | None) -> UserInfo:
    return reference_user(quota={"notebook": quota} if quota is not None else {})


def _sizes(config: Config, user: UserInfo) -> list[FormSize]:
    context = build_lab_form_context(config, user, MENU, DROPDOWN)
    assert context is not None
    return list(context.sizes)


# The reference case.


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def service(
    config: Config,
    router: respx.MockRouter,
    client: KubernetesClient,
    controller_metadata: ControllerMetadata,
) -> AsyncIterator[ImageService]:
    tags = json.loads((INPUTS / "registry" / "docker.json").read_text())
    FakeRegistry(router, tags)
    credentials = INPUTS / "registry" / "docker-creds.json"
    images = config.images.model_copy(update={"docker_credentials_path": credentials})
    config = config.model_copy(update={"images": images})
    async with httpx.AsyncClient() as http:
        source = build_image_source(config.images, http)
        prepuller = Prepuller(client, config, controller_metadata, timeout=20.0)
        yield ImageService(config, source, client, prepuller)


async def test_form_from_the_image_service_is_upstreams_reference_form(
    service: ImageService, config: Config, renderer: Renderer
) -> None:
    assert await service.refresh()

    html = render_lab_form(renderer, config, reference_user(), service.menu(), service.dropdown())

    assert html == EXPECTED_FORM


def test_form_from_hand_made_menus_is_upstreams_reference_form(
    config: Config, renderer: Renderer
) -> None:
    assert render_lab_form(renderer, config, reference_user(), MENU, DROPDOWN) == EXPECTED_FORM


def test_every_choice_the_form_submits_is_accepted_by_the_create_request(
    config: Config, renderer: Renderer
) -> None:
    page = _Page(render_lab_form(renderer, config, reference_user(), MENU, DROPDOWN))
    in_dropdown = page.options()[-1]

    images = []
    for radio in page.inputs("image_list"):
        form = {"image_list": [radio["value"]], "image_dropdown": [in_dropdown], "size": ["small"]}
        images.append(LabRequestOptions.model_validate(form).image_reference)
    sizes = []
    for radio in page.inputs("size"):
        form = {"size": [radio["value"]], "image_class": ["recommended"]}
        sizes.append(LabRequestOptions.model_validate(form).size)

    assert images == [RECOMMENDED.reference, in_dropdown]
    assert sizes == [LabSize.SMALL, LabSize.MEDIUM, LabSize.LARGE]


# Sizes: the quota filters them, the default is checked.


def test_quota_hides_the_sizes_beyond_it_and_the_first_size_is_checked(config: Config) -> None:
    assert _sizes(config, reference_user()) == [
        FormSize("small", "Small (1.0 CPU, 3Gi RAM)", checked=True),
        FormSize("medium", "Medium (2.0 CPU, 6Gi RAM)", checked=False),
        FormSize("large", "Large (9.0 CPU, 27Gi RAM)", checked=False),
    ]


def test_without_a_notebook_quota_every_size_is_offered(config: Config) -> None:
    assert [s.value for s in _sizes(config, _user(None))] == ["small", "medium", "large", "huge"]
    assert [s.value for s in _sizes(config, reference_user(quota=None))] == [
        "small",
        "medium",
        "large",
        "huge",
    ]


@pytest.mark.parametrize(
    ("quota", "sizes"),
    [
        ({"cpu": 9.0, "memory": 27}, ["small", "medium", "large"]),  # equal limits fit
        ({"cpu": 8.999, "memory": 27}, ["small", "medium"]),  # CPU alone excludes
        ({"cpu": 12.0, "memory": 26.9999}, ["small", "medium"]),  # memory alone excludes
        ({"cpu": 100.0, "memory": 1000}, ["small", "medium", "large", "huge"]),
    ],
)
def test_a_size_is_offered_only_within_both_cpu_and_memory_quota(
    config: Config, quota: dict[str, Any], sizes: list[str]
) -> None:
    assert [s.value for s in _sizes(config, _user(quota))] == sizes


def test_configured_default_size_is_checked(config: Config) -> None:
    config = _with_lab(config, default_size=LabSize.MEDIUM)

    checked = [s.value for s in _sizes(config, reference_user()) if s.checked]

    assert checked == ["medium"]


def test_default_size_beyond_the_quota_falls_back_to_the_first_allowed(config: Config) -> None:
    config = _with_lab(config, default_size=LabSize.HUGE)

    sizes = _sizes(config, reference_user())

    assert [s.value for s in sizes if s.checked] == ["small"]
    assert "huge" not in [s.value for s in sizes]


@pytest.mark.parametrize(
    "quota",
    [
        {"cpu": 9.0, "memory": 27, "spawn": False},  # spawning forbidden
        {"cpu": 0.5, "memory": 27},  # no size within the CPU quota
        {"cpu": 9.0, "memory": 2},  # no size within the memory quota
    ],
)
def test_user_who_cannot_spawn_gets_upstreams_unavailable_page(
    config: Config, renderer: Renderer, quota: dict[str, Any]
) -> None:
    user = _user(quota)

    assert allowed_sizes(config, user) == []
    assert build_lab_form_context(config, user, MENU, DROPDOWN) is None
    assert render_lab_form(renderer, config, user, MENU, DROPDOWN) == UNAVAILABLE


# Images.


def test_only_the_first_menu_image_is_checked_and_ids_count_from_one(
    config: Config, renderer: Renderer
) -> None:
    weekly = DROPDOWN[1]
    page = _Page(render_lab_form(renderer, config, reference_user(), [RECOMMENDED, weekly], []))

    radios = [(r["id"], r["value"], "checked" in r) for r in page.inputs("image_list")]
    assert radios == [
        ("image1", RECOMMENDED.reference, True),
        ("image2", weekly.reference, False),
        (DROPDOWN_SENTINEL_VALUE, DROPDOWN_SENTINEL_VALUE, False),
    ]
    labels = [a["for"] for t, a in page.tags if t == "label"][:2]
    assert labels == ["image1", "image2"]


def test_empty_menu_checks_the_dropdown_sentinel(config: Config, renderer: Renderer) -> None:
    page = _Page(render_lab_form(renderer, config, reference_user(), [], DROPDOWN))

    radios = [(r["value"], "checked" in r) for r in page.inputs("image_list")]
    assert radios == [(DROPDOWN_SENTINEL_VALUE, True)]
    assert page.options() == [image.reference for image in DROPDOWN]


# Escaping: registry and configuration strings never become markup.


HOSTILE_NAME = "<script>alert(\"name\")</script> & 'quoted'"
HOSTILE_REFERENCE = f"{REPOSITORY}:x\"><img src=x onerror='alert(1)'>"


def test_hostile_names_and_references_stay_inert_text(config: Config, renderer: Renderer) -> None:
    hostile = MenuImage(reference=HOSTILE_REFERENCE, name=HOSTILE_NAME)
    benign = _Page(render_lab_form(renderer, config, reference_user(), MENU, DROPDOWN))

    html = render_lab_form(renderer, config, reference_user(), [hostile], [hostile])
    page = _Page(html)

    # The same elements as the benign form (one option instead of five), no script but
    # ours, no image.
    assert [t for t, _ in page.tags if t != "option"] == [
        t for t, _ in benign.tags if t != "option"
    ]
    assert html.count("<script>") == 1
    assert "<img" not in html
    # The values survive escaping exactly, as attribute values and as text.
    assert page.inputs("image_list")[0]["value"] == HOSTILE_REFERENCE
    assert page.options() == [HOSTILE_REFERENCE]
    assert page.text.count(HOSTILE_NAME) == 2
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt; &amp; &#39;quoted&#39;" in html


def test_a_hostile_size_label_is_escaped(config: Config, renderer: Renderer) -> None:
    form = build_lab_form_context(config, reference_user(), MENU, DROPDOWN)
    assert form is not None
    hostile = FormSize(value='small" onclick="x', label="<b>Small</b>", checked=True)
    form = dataclasses.replace(form, sizes=(hostile,))

    html = renderer.render_html(LAB_FORM_TEMPLATE, {"form": form})

    assert _Page(html).inputs("size") == [
        {
            "type": "radio",
            "name": "size",
            "id": 'small" onclick="x',
            "value": 'small" onclick="x',
            "checked": None,
        }
    ]
    assert "&lt;b&gt;Small&lt;/b&gt;" in html


# Operator templates and engine errors.


def test_operator_template_folder_replaces_the_form_and_still_escapes(
    tmp_path: Path, config: Config
) -> None:
    (tmp_path / "forms").mkdir()
    (tmp_path / "forms" / "lab-form.html").write_text(
        "<p>Site form</p>\n{% for image in form.menu %}<b>{{ image.name }}</b>{% endfor %}\n"
    )
    hostile = MenuImage(reference=HOSTILE_REFERENCE, name="<i>x</i>")

    html = render_lab_form(Renderer([tmp_path]), config, reference_user(), [hostile], [])

    assert html == "<p>Site form</p>\n<b>&lt;i&gt;x&lt;/i&gt;</b>"
    # The unavailable page, not overridden, still comes from the built-in folder.
    user = _user({"cpu": 9.0, "memory": 27, "spawn": False})
    assert render_lab_form(Renderer([tmp_path]), config, user, [], []) == UNAVAILABLE


def test_missing_html_template_is_a_render_error(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="template forms/none.html not found in"):
        Renderer([tmp_path]).render_html("forms/none.html", {})


def test_undefined_html_value_is_a_render_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "forms").mkdir()
    (tmp_path / "forms" / "page.html").write_text("<p>\n{{ missing }}\n</p>\n")

    expected = r"template forms/page.html line 2: 'missing' is undefined"
    with pytest.raises(RenderError, match=expected):
        Renderer([tmp_path]).render_html("forms/page.html", {})


def test_html_template_syntax_error_is_a_render_error(tmp_path: Path) -> None:
    (tmp_path / "forms").mkdir()
    (tmp_path / "forms" / "page.html").write_text("<p>\n{% if %}\n")

    with pytest.raises(RenderError, match=r"template forms/page.html line 2"):
        Renderer([tmp_path]).render_html("forms/page.html", {})
