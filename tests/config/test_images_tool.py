"""The ``nublado images`` tool configuration: keys, environment overrides (which win), errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nublado.config.errors import ConfigError
from nublado.config.images import DockerSourceConfig, GARSourceConfig
from nublado.config.images_tool import ImagesToolConfig, load_images_tool_config

DOCKER = "source: {type: docker, registry: lighthouse.ceres, repository: library/sketchbook}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_images_tool_config(write(tmp_path, DOCKER), environ={})

    assert config == ImagesToolConfig(
        source=DockerSourceConfig(
            type="docker", registry="lighthouse.ceres", repository="library/sketchbook"
        ),
        prune=None,
        log_level="INFO",
        log_profile="production",
        docker_credentials_path=None,
    )


@pytest.mark.parametrize(
    "spelling",
    ["logLevel", "log_level", "NUBLADO_LOG_LEVEL", "nublado_log_level"],
)
def test_key_spellings(tmp_path: Path, spelling: str) -> None:
    config = load_images_tool_config(write(tmp_path, DOCKER + f"{spelling}: debug\n"), environ={})

    assert config.log_level == "DEBUG"


def test_gar_source_and_prune_policy(tmp_path: Path) -> None:
    text = (
        "prune: {weekly: {cutoffDate: '2077-10-25'}}\n"
        "source: {type: google, location: us-central1, projectId: p, repository: r, image: i}\n"
        "dockerCredentialsPath: /etc/creds.json\n"
    )
    config = load_images_tool_config(write(tmp_path, text), environ={})

    assert isinstance(config.source, GARSourceConfig)
    assert config.prune is not None
    assert config.prune.weekly.cutoff_date is not None
    assert config.docker_credentials_path == Path("/etc/creds.json")


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, DOCKER + "logLevel: ERROR\nlogProfile: production\n")
    environ = {
        "NUBLADO_LOG_LEVEL": "debug",
        "nublado_log_profile": "development",
        "NUBLADO_PRUNE": '{"daily": {"number": 3}}',
        "NUBLADO_SOURCE": '{"type": "docker", "repository": "other/repo"}',
        "LOG_LEVEL": "CRITICAL",  # no prefix: not ours
    }

    config = load_images_tool_config(path, environ=environ)

    assert (config.log_level, config.log_profile) == ("DEBUG", "development")
    assert config.prune is not None and config.prune.daily.number == 3
    assert config.source == DockerSourceConfig(type="docker", repository="other/repo")


@pytest.mark.parametrize(
    ("text", "environ", "problems"),
    [
        (DOCKER + "bogus: 1\n", {}, ["bogus: unknown key"]),
        (DOCKER + "prune: {weekly: {cutof: 1}}\n", {}, ["prune.weekly.cutof: unknown key"]),
        ("logLevel: INFO\n", {}, ["source: required but missing"]),
        (
            DOCKER,
            {"NUBLADO_LOG_LEVEL": "loud"},
            [
                "logLevel (from environment variable NUBLADO_LOG_LEVEL): Input should be"
                " 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL', got 'LOUD'"
            ],
        ),
    ],
    ids=["unknown-key", "unknown-nested-key", "no-source", "bad-env-value"],
)
def test_problems_name_the_file_and_place(
    tmp_path: Path, text: str, environ: dict[str, str], problems: list[str]
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_images_tool_config(path, environ=environ)
    assert info.value.problems == [f"{path}: {problem}" for problem in problems]


def test_bad_json_in_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_images_tool_config(write(tmp_path, DOCKER), environ={"NUBLADO_PRUNE": "{weekly"})
    assert str(info.value).startswith("environment variable NUBLADO_PRUNE: not valid JSON: ")
