"""Environment overrides (spec/objects.md sections 1 and 2): the file wins over them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from nublado.config import Config, ConfigError, PullPolicy

Loader = Callable[..., Config]
Problems = Callable[..., list[str]]


@pytest.mark.parametrize("variable", ["EXTERNAL_INSTANCE_URL", "BASE_URL", "external_instance_url"])
def test_base_url_from_environment(load: Loader, standard: dict[str, Any], variable: str) -> None:
    config = load(standard, {variable: "https://data.example.org"})

    assert config.base_url == "https://data.example.org"


def test_file_wins_over_environment(load: Loader, standard: dict[str, Any]) -> None:
    standard["base_url"] = "https://from-file.example.org"
    environ = {"EXTERNAL_INSTANCE_URL": "https://from-env.example.org", "LOGLEVEL": "ERROR"}

    config = load(standard, environ)

    assert config.base_url == "https://from-file.example.org"
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize("variable", ["NUBLADO_SLACK_WEBHOOK", "SLACK_WEBHOOK"])
def test_slack_webhook_from_environment(
    load: Loader, standard: dict[str, Any], variable: str
) -> None:
    config = load(standard, {variable: "https://hooks.slack.com/x"})

    assert config.slack_webhook is not None
    assert config.slack_webhook.get_secret_value() == "https://hooks.slack.com/x"


@pytest.mark.parametrize(
    ("variable", "field", "value", "expected"),
    [
        ("PATHPREFIX", "path_prefix", "/api", "/api"),
        ("PATH_PREFIX", "path_prefix", "/api", "/api"),
        ("pathPrefix", "path_prefix", "/api", "/api"),
        ("NAME", "name", "Nublado at SLAC", "Nublado at SLAC"),
        ("LOGPROFILE", "log_profile", "development", "development"),
        ("REPERTOIRE_BASE_URL", "repertoire_base_url", "https://r.example", "https://r.example"),
    ],
)
def test_top_level_fields_from_environment(
    load: Loader, standard: dict[str, Any], variable: str, field: str, value: str, expected: str
) -> None:
    standard.pop("logProfile")

    assert getattr(load(standard, {variable: value}), field) == expected


def test_log_level_from_environment_is_case_insensitive(
    load: Loader, standard: dict[str, Any]
) -> None:
    del standard["logLevel"]

    assert load(standard, {"LOG_LEVEL": "warning"}).log_level == "WARNING"


def test_duration_from_environment(load: Loader, standard: dict[str, Any]) -> None:
    config = load(standard, {"WATCHRECONNECTTIMEOUT": "90"})

    assert config.watch_reconnect_timeout.total_seconds() == 90


def test_section_from_environment_as_json(load: Loader, standard: dict[str, Any]) -> None:
    dropdown = {"weekly": {"number": 4}}

    config = load(standard, {"DROPDOWN_MENU": json.dumps(dropdown)})

    assert config.dropdown_menu.weekly.number == 4


def test_section_from_environment_must_be_json(load: Loader, standard: dict[str, Any]) -> None:
    del standard["lab"]

    with pytest.raises(ConfigError, match=r"^environment variable LAB: not valid JSON: "):
        load(standard, {"LAB": "namespacePrefix: x"})


def test_bad_value_from_environment_names_the_variable(
    problems: Problems, standard: dict[str, Any]
) -> None:
    del standard["logLevel"]

    assert problems(standard, {"LOGLEVEL": "loud"}) == [
        "logLevel (from environment variable LOGLEVEL): must be 'DEBUG', 'INFO',"
        " 'WARNING', 'ERROR' or 'CRITICAL', got 'LOUD'"
    ]


def test_controller_image_defaults(load: Loader, standard: dict[str, Any]) -> None:
    image = load(standard).controller_image

    assert image.reference == "ghcr.io/lsst-sqre/nublado:11.0.0"
    assert image.pull_policy is PullPolicy.IF_NOT_PRESENT


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("always", PullPolicy.ALWAYS),
        ("ALWAYS", PullPolicy.ALWAYS),
        ("Never", PullPolicy.NEVER),
        ("IfNotPresent", PullPolicy.IF_NOT_PRESENT),
        ("sometimes", PullPolicy.IF_NOT_PRESENT),
        ("", PullPolicy.IF_NOT_PRESENT),
    ],
)
def test_controller_image_from_environment(
    load: Loader, standard: dict[str, Any], policy: str, expected: PullPolicy
) -> None:
    environ = {
        "NUBLADO_CONTROLLER_REPOSITORY": "registry.example.org/nublado",
        "NUBLADO_CONTROLLER_TAG": "12.0.0",
        "NUBLADO_CONTROLLER_PULL_POLICY": policy,
    }

    image = load(standard, environ).controller_image

    assert image.reference == "registry.example.org/nublado:12.0.0"
    assert image.pull_policy is expected


def test_controller_image_in_file_wins(load: Loader, standard: dict[str, Any]) -> None:
    standard["controllerImage"] = {"repository": "local/nublado", "tag": "dev"}

    image = load(standard, {"NUBLADO_CONTROLLER_TAG": "12.0.0"}).controller_image

    assert image.reference == "local/nublado:dev"


def test_process_environment_is_the_default(
    write_config: Callable[[dict[str, Any]], Any],
    standard: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nublado.config import load_config

    monkeypatch.setenv("EXTERNAL_INSTANCE_URL", "https://env.example.org")
    monkeypatch.setenv("NUBLADO_CONTROLLER_TAG", "11.1.1")

    config = load_config(write_config(standard))

    assert config.base_url == "https://env.example.org"
    assert config.controller_image.tag == "11.1.1"
