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
                "logLevel (from environment variable NUBLADO_LOG_LEVEL): must be"
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


# ------------------------------------------------ source names (registry URLs are built from them)

REGISTRY_HINT = (
    "not a registry host (a host name or IP address, optionally with :port from 1 to 65535,"
    " such as localhost:5000)"
)
REPOSITORY_HINT = (
    "not a Docker repository (lower-case letters and digits, separated by '.', '_', '__' or"
    " dashes, in components joined by '/')"
)


@pytest.mark.parametrize(
    ("registry", "repository"),
    [
        ("docker.io", "library/sketchbook"),
        ("localhost:5000", "sketchbook"),
        ("localhost", "a__b/c--d/e.f_g"),
        ("10.0.0.1:443", "lsst-sqre/sciplat-lab"),
        ("[::1]:5000", "x/y/z"),
        ("Registry-1.Example.COM:65535", "a0/0b"),
    ],
)
@pytest.mark.parametrize("source_type", ["docker", "static"])
def test_registry_and_repository_grammar_accepted(
    tmp_path: Path, source_type: str, registry: str, repository: str
) -> None:
    tags = ", tags: {}" if source_type == "static" else ""
    text = (
        f"source: {{type: {source_type}, registry: '{registry}',"
        f" repository: '{repository}'{tags}}}\n"
    )

    config = load_images_tool_config(write(tmp_path, text), environ={})

    assert (config.source.registry, config.source.repository) == (registry, repository)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (
            "registry",
            "user:pw@evil.example:99999",
            "not a registry host: '***@evil.example:99999' (credentials go in the Docker"
            " credentials file, not in the registry name)",
        ),
        ("registry", "ex ample", f"{REGISTRY_HINT}: 'ex ample'"),
        ("registry", "evil.example:99999", f"{REGISTRY_HINT}: 'evil.example:99999'"),
        ("registry", "host:0", f"{REGISTRY_HINT}: 'host:0'"),
        ("registry", "https://host", f"{REGISTRY_HINT}: 'https://host'"),
        ("registry", "host/path", f"{REGISTRY_HINT}: 'host/path'"),
        ("registry", "-host", f"{REGISTRY_HINT}: '-host'"),
        ("registry", "a..b", f"{REGISTRY_HINT}: 'a..b'"),
        ("registry", "[zz::1]", f"{REGISTRY_HINT}: '[zz::1]'"),
        ("registry", "", f"{REGISTRY_HINT}: ''"),
        (
            "repository",
            "x/../../../v2/other?n=1#",
            f"{REPOSITORY_HINT}: 'x/../../../v2/other?n=1#'",
        ),
        ("repository", "Library/Sketchbook", f"{REPOSITORY_HINT}: 'Library/Sketchbook'"),
        ("repository", "a//b", f"{REPOSITORY_HINT}: 'a//b'"),
        ("repository", "/a", f"{REPOSITORY_HINT}: '/a'"),
        ("repository", "a___b", f"{REPOSITORY_HINT}: 'a___b'"),
        ("repository", "a:tag", f"{REPOSITORY_HINT}: 'a:tag'"),
        ("repository", "", f"{REPOSITORY_HINT}: ''"),
    ],
)
@pytest.mark.parametrize("source_type", ["docker", "static"])
def test_registry_and_repository_grammar_refused(
    tmp_path: Path, source_type: str, key: str, value: str, problem: str
) -> None:
    fields = {"registry": "docker.io", "repository": "library/sketchbook", key: value}
    tags = "  tags: {}\n" if source_type == "static" else ""
    text = (
        f"source:\n  type: {source_type}\n  registry: '{fields['registry']}'\n"
        f"  repository: '{fields['repository']}'\n{tags}"
    )
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_images_tool_config(path, environ={})
    assert info.value.problems == [f"{path}: source.{key}: {problem}"]


GOOGLE_NAME_HINT = (
    "not a Google location or repository name (at most 63 lower-case letters, digits and '-',"
    " starting with a letter, not ending with '-')"
)
PROJECT_HINT = (
    "not a Google Cloud project ID (at most 30 lower-case letters, digits and '-', starting"
    " with a letter, not ending with '-')"
)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("location", "us-central1/../x", f"{GOOGLE_NAME_HINT}: 'us-central1/../x'"),
        ("location", "US", f"{GOOGLE_NAME_HINT}: 'US'"),
        ("projectId", "my_project", f"{PROJECT_HINT}: 'my_project'"),
        ("projectId", "p" * 31, f"{PROJECT_HINT}: '{'p' * 31}'"),
        ("repository", "sciplat-", f"{GOOGLE_NAME_HINT}: 'sciplat-'"),
        ("repository", "a/b", f"{GOOGLE_NAME_HINT}: 'a/b'"),
        ("image", "Sciplat-Lab", f"{REPOSITORY_HINT}: 'Sciplat-Lab'"),
        ("image", "lab@sha256:1", f"{REPOSITORY_HINT}: 'lab@sha256:1'"),
    ],
)
def test_gar_source_names_refused(tmp_path: Path, key: str, value: str, problem: str) -> None:
    fields = {
        "location": "us-central1",
        "projectId": "rubin-shared-services-71ec",
        "repository": "sciplat",
        "image": "sciplat-lab",
        key: value,
    }
    text = "source:\n  type: google\n" + "".join(f"  {k}: '{v}'\n" for k, v in fields.items())
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_images_tool_config(path, environ={})
    assert info.value.problems == [f"{path}: source.{key}: {problem}"]
