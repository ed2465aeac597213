"""Key spellings: camelCase and snake_case, upstream's special keys, and ignored keys."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from nublado.config import Config, find_ignored_keys
from nublado.config.loader import warn_on_stderr

Loader = Callable[..., Config]
Problems = Callable[..., list[str]]

MINIMAL_SNAKE: dict[str, Any] = {
    "log_level": "warning",
    "log_profile": "development",
    "path_prefix": "/nb",
    "metadata_path": "/var/podinfo",
    "watch_reconnect_timeout": "2m",
    "dropdown_menu": {"release_candidate": {"number": 2, "cutoff_build": 3}},
    "images": {
        "source": {
            "type": "google",
            "location": "us-central1",
            "project_id": "rubin",
            "repository": "sciplat",
            "image": "sciplat-lab",
        },
        "num_releases": 0,
        "alias_tags": ["latest"],
        "refresh_interval": 60,
    },
    "fsadmin": {"mount_prefix": "/mnt", "pod_name": "admin"},
    "lab": {
        "namespace_prefix": "nb",
        "jupyterlab_config_dir": "/usr/local/jupyterlab",
        "lab_start_command": ["/usr/local/bin/runlab"],
        "runtime_mounts_dir": "/usr/local/nublado",
        "home_volume_name": "homes",
        "empty_dir_source": "disk",
        "volumes": [
            {
                "name": "homes",
                "source": {"type": "nfs", "server": "nfs", "server_path": "/h", "read_only": True},
            }
        ],
        "volume_mounts": [{"container_path": "/home", "volume_name": "homes", "sub_path": "u"}],
        "sizes": [
            {
                "size": "tiny",
                "resources": {
                    "limits": {"cpu": "500m", "memory": "1Gi"},
                    "requests": {"cpu": 0.25, "memory": 536870912},
                },
            }
        ],
        "default_size": "tiny",
        "nss": {"base_passwd": "root:x:0:0::/:/bin/sh\n"},
        "init_containers": [
            {
                "name": "setup",
                "image": {"repository": "r", "tag": "t", "pull_policy": "Always"},
                "volume_mounts": [{"container_path": "/home", "volume_name": "homes"}],
            }
        ],
        "secrets": [{"secret_name": "s", "secret_key": "k"}],
        "homedir_prefix": "/u/home/",
        "homedir_suffix": "/jhome/",
        "homedir_schema": "initialThenUsername",
    },
}


def test_snake_case_keys_are_accepted(load: Loader) -> None:
    config = load(MINIMAL_SNAKE)

    assert config.log_level == "WARNING"
    assert config.path_prefix == "/nb"
    assert str(config.metadata_path) == "/var/podinfo"
    assert config.watch_reconnect_timeout.total_seconds() == 120
    assert config.dropdown_menu.release_candidate.number == 2
    assert config.images.source.type == "google"
    assert config.images.num_releases == 0
    assert config.images.alias_tags == ["latest"]
    assert config.fsadmin.pod_name == "admin"
    lab = config.lab
    assert lab.jupyterlab_config_dir == "/usr/local/jupyterlab"
    assert lab.lab_start_command == ["/usr/local/bin/runlab"]
    assert lab.runtime_mounts_dir == "/usr/local/nublado"
    assert lab.volume_mounts[0].sub_path == "u"
    assert lab.sizes[0].label == "Tiny (0.5 CPU, 1Gi RAM)"
    assert lab.init_containers[0].image.pull_policy == "Always"
    assert lab.secrets[0].secret_key == "k"


def test_home_directory_slashes_are_stripped(load: Loader) -> None:
    lab = load(MINIMAL_SNAKE).lab

    assert lab.homedir_prefix == "/u/home"
    assert lab.homedir_suffix == "jhome"
    assert lab.homedir_schema == "initialThenUsername"


def test_camel_and_snake_case_give_the_same_configuration(
    load: Loader, standard: dict[str, Any]
) -> None:
    camel = load(standard)
    lab = standard["lab"]
    lab["activity_interval"] = lab.pop("activityInterval")
    lab["namespace_prefix"] = lab.pop("namespacePrefix")
    lab["volume_mounts"] = lab.pop("volumeMounts")
    lab["init_containers"] = lab.pop("initContainers")
    standard["log_level"] = standard.pop("logLevel")

    assert load(standard) == camel


def test_base_url_and_slack_keys(load: Loader, standard: dict[str, Any]) -> None:
    standard["EXTERNAL_INSTANCE_URL"] = "https://data.example.org"
    standard["NUBLADO_SLACK_WEBHOOK"] = "https://hooks.slack.com/x"

    config = load(standard)

    assert config.base_url == "https://data.example.org"
    assert config.slack_webhook is not None
    assert config.slack_webhook.get_secret_value() == "https://hooks.slack.com/x"
    assert "hooks" not in repr(config)


def test_base_url_and_slack_snake_case_keys(load: Loader, standard: dict[str, Any]) -> None:
    standard["base_url"] = "https://data.example.org"
    standard["slack_webhook"] = "https://hooks.slack.com/x"

    config = load(standard)

    assert config.base_url == "https://data.example.org"
    assert config.slack_webhook is not None


def test_affinity_short_keys_equal_long_keys(load: Loader, standard: dict[str, Any]) -> None:
    long = load(standard).lab.affinity
    node = standard["lab"]["affinity"]["nodeAffinity"]
    node["required"] = node.pop("requiredDuringSchedulingIgnoredDuringExecution")
    node["preferred"] = node.pop("preferredDuringSchedulingIgnoredDuringExecution")

    short = load(standard).lab.affinity

    assert short is not None
    assert long is not None
    assert short.to_kubernetes() == long.to_kubernetes()


@pytest.mark.parametrize(("given", "kept"), [("/files/", "/files"), ("/", ""), ("/a//", "/a")])
def test_fileserver_path_prefix_is_normalised(
    load: Loader, standard: dict[str, Any], given: str, kept: str
) -> None:
    standard["fileserver"] = {"pathPrefix": given}

    assert load(standard).fileserver.path_prefix == kept


def test_models_are_frozen(load: Loader, standard: dict[str, Any]) -> None:
    config = load(standard)

    with pytest.raises(ValueError, match="frozen"):
        config.lab.volume_mounts[1].read_only = False  # type: ignore[misc]


def test_ignored_keys_are_logged_one_by_one(
    load: Loader, standard: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    standard["fsadmin"]["resources"] = {
        "limits": {"cpu": 1, "memory": "1Gi", "ephemeral-storage": "1Gi"},
        "requests": {"cpu": 1, "memory": "1Gi"},
        "claims": [],
    }
    standard["lab"]["sizes"][1]["resources"]["requests"]["gpu"] = 1

    with caplog.at_level(logging.WARNING, logger="nublado.config"):
        config = load(standard)

    assert [r.getMessage() for r in caplog.records] == [
        "Ignoring configuration key lab.sizes[1].resources.requests.gpu",
        "Ignoring configuration key fsadmin.command",
        "Ignoring configuration key fsadmin.image",
        "Ignoring configuration key fsadmin.resources.limits.ephemeral-storage",
        "Ignoring configuration key fsadmin.resources.claims",
        # A fixed upstream bug: Kubernetes refuses the pod otherwise.
        "Ignoring configuration key lab.tolerations[0].tolerationSeconds:"
        " Kubernetes allows it only with effect NoExecute",
    ]
    assert config.fsadmin.resources is not None
    assert config.fsadmin.resources.limits.memory == 2**30


def test_an_ignored_key_is_warned_once_per_process(
    load: Loader, standard: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nublado.config"):
        load(standard)
        load(standard)

    assert [r.getMessage() for r in caplog.records] == [
        "Ignoring configuration key fsadmin.command",
        "Ignoring configuration key fsadmin.image",
        "Ignoring configuration key lab.tolerations[0].tolerationSeconds:"
        " Kubernetes allows it only with effect NoExecute",
    ]


@pytest.mark.parametrize(
    ("section", "key", "suggestion"),
    [
        ("fsadmin", "podname", " (did you mean podName?)"),
        ("fsadmin", "pod_nam", " (did you mean podName?)"),
        ("fsadmin", "extraVolume", " (did you mean extraVolumes?)"),
        ("fsadmin", "nodeselector", " (did you mean nodeSelector?)"),
        ("fsadmin", "command", ""),
    ],
)
def test_an_ignored_key_close_to_a_known_one_gets_a_suggestion(
    load: Loader,
    standard: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    section: str,
    key: str,
    suggestion: str,
) -> None:
    standard[section] = {key: "x"}

    with caplog.at_level(logging.WARNING, logger="nublado.config"):
        load(standard)

    assert f"Ignoring configuration key {section}.{key}{suggestion}" in [
        r.getMessage() for r in caplog.records
    ]


def test_warnings_go_to_stderr_with_the_prefix_when_logging_is_not_configured(
    load: Loader, standard: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handlers = root.handlers[:]
    root.handlers.clear()
    try:
        warn_on_stderr()
        warn_on_stderr()
        load(standard)
    finally:
        root.handlers[:] = handlers
        logging.getLogger("nublado.config").handlers.clear()

    assert capsys.readouterr().err.splitlines() == [
        "nublado: warning: Ignoring configuration key fsadmin.command",
        "nublado: warning: Ignoring configuration key fsadmin.image",
        "nublado: warning: Ignoring configuration key lab.tolerations[0].tolerationSeconds:"
        " Kubernetes allows it only with effect NoExecute",
    ]


def test_disabled_fileserver_ignores_everything_but_path_prefix(
    load: Loader, standard: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    standard["fileserver"] = {
        "enabled": False,
        "pathPrefix": "/webdav/",
        "namespace": "fileservers",
        "idleTimeout": "not a duration",
        "image": {"repository": "x"},
    }

    with caplog.at_level(logging.WARNING, logger="nublado.config"):
        fileserver = load(standard).fileserver

    assert fileserver.enabled is False
    assert fileserver.path_prefix == "/webdav"
    assert fileserver.namespace == ""
    assert fileserver.idle_timeout.total_seconds() == 3600
    assert [r.getMessage() for r in caplog.records if "fileserver" in r.getMessage()] == [
        "Ignoring configuration key fileserver.namespace (the file server is disabled)",
        "Ignoring configuration key fileserver.idleTimeout (the file server is disabled)",
        "Ignoring configuration key fileserver.image (the file server is disabled)",
    ]


def test_enabled_fileserver_has_no_ignored_keys(standard: dict[str, Any]) -> None:
    standard["fileserver"] = {"enabled": "true", "namespace": "fs", "bogus": 1}

    assert find_ignored_keys(standard) == ["fsadmin.command", "fsadmin.image"]


def test_strict_sections_report_unknown_keys_rather_than_ignore_them(
    standard: dict[str, Any],
) -> None:
    standard["lab"]["bogus"] = 1
    standard["images"]["bogus"] = 1

    assert "lab.bogus" not in find_ignored_keys(standard)
    assert "images.bogus" not in find_ignored_keys(standard)


@pytest.mark.parametrize("prefix", ["nublado", "/", ""])
def test_path_prefix_must_be_an_absolute_path_below_the_root(
    problems: Problems, standard: dict[str, Any], prefix: str
) -> None:
    standard["pathPrefix"] = prefix

    (line,) = problems(standard)

    assert line.startswith("pathPrefix: must be an absolute URL path below the root")


def test_path_prefix_loses_its_trailing_slash(load: Loader, standard: dict[str, Any]) -> None:
    standard["pathPrefix"] = "/lab-api/"

    assert load(standard).path_prefix == "/lab-api"
