"""Purger configuration and policy files (spec/images-tools.md 5.1, 5.2)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from nublado.errors import InputError
from nublado.purger.config import (
    POLICY_FILE,
    LogProfile,
    PurgerConfig,
    PurgerConfigError,
    load_policy,
)


def test_defaults() -> None:
    config = PurgerConfig.from_values({}, {})

    assert config.policy_file == POLICY_FILE
    assert (config.debug, config.dry_run, config.future_duration) == (False, False, None)
    assert (config.log_profile, config.log_level) == (LogProfile.production, "INFO")


@pytest.mark.parametrize("key", ["dryRun", "dry_run", "NUBLADO_DRY_RUN"])
def test_yaml_key_forms(key: str) -> None:
    assert PurgerConfig.from_values({key: True}, {}).dry_run is True


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(PurgerConfigError, match="unknown key 'dryrun'"):
        PurgerConfig.from_values({"dryrun": True}, {})


@pytest.mark.parametrize(
    "environ",
    [{"NUBLADO_DRY_RUN": "true"}, {"nublado_dry_run": "1"}, {"DRYRUN": "yes"}],
)
def test_environment_beats_yaml(environ: dict[str, str]) -> None:
    assert PurgerConfig.from_values({"dryRun": False}, environ).dry_run is True


def test_plain_debug_variable_turns_debug_on() -> None:
    config = PurgerConfig.from_values({}, {"DEBUG": "true"})
    assert config.debug is True


def test_unprefixed_snake_case_is_not_read() -> None:
    assert PurgerConfig.from_values({}, {"DRY_RUN": "true"}).dry_run is False


def test_values_are_validated() -> None:
    with pytest.raises(PurgerConfigError, match="logProfile"):
        PurgerConfig.from_values({"logProfile": "Production"}, {})
    with pytest.raises(PurgerConfigError, match="logLevel"):
        PurgerConfig.from_values({"logLevel": "chatty"}, {})
    with pytest.raises(PurgerConfigError, match="not a boolean"):
        PurgerConfig.from_values({"dryRun": "maybe"}, {})
    with pytest.raises(PurgerConfigError, match="futureDuration"):
        PurgerConfig.from_values({"futureDuration": "soon"}, {})


def test_durations_accept_numbers_and_units() -> None:
    assert PurgerConfig.from_values({"futureDuration": 60}, {}).future_duration == timedelta(
        minutes=1
    )
    assert PurgerConfig.from_values({"futureDuration": "5w4d"}, {}).future_duration == timedelta(
        days=39
    )
    assert PurgerConfig.from_values({"logLevel": "debug"}, {}).log_level == "DEBUG"


def test_missing_config_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        PurgerConfig.load(tmp_path / "nope.yaml", environ={})


def _policy(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_policy_parses_sizes_durations_and_both_key_styles(tmp_path: Path) -> None:
    path = _policy(
        tmp_path,
        {
            "directories": [
                {
                    "path": "/scratch",
                    "threshold": "1.5Mi",
                    "intervals": {
                        "large": {"accessInterval": "1h", "modification_interval": 0},
                        "small": {"creation_interval": "4h 3minutes"},
                    },
                    "ignored": "yes",
                },
                {"path": "/scratch/x", "threshold": 10, "intervals": {}},
            ]
        },
    )

    policy = load_policy(path)

    assert policy.get_directories() == [Path("/scratch"), Path("/scratch/x")]
    assert policy.to_dict()["directories"][0] == {
        "path": "/scratch",
        "threshold": 1572864,
        "intervals": {
            "large": {
                "access_interval": 3600.0,
                "creation_interval": 0,
                "modification_interval": 0,
            },
            "small": {
                "access_interval": 0,
                "creation_interval": 14580.0,
                "modification_interval": 0,
            },
        },
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"threshold": 1, "intervals": {}}, "path is required"),
        ({"path": "/s", "intervals": {}}, "threshold is required"),
        ({"path": "/s", "threshold": 1}, "intervals is required"),
        ({"path": "/s", "threshold": "-5", "intervals": {}}, "threshold"),
        ({"path": "/s", "threshold": True, "intervals": {}}, "threshold"),
        ({"path": "/s", "threshold": "1m", "intervals": {}}, "threshold"),
        ({"path": "scratch", "threshold": 1, "intervals": {}}, "must be an absolute path"),
        (
            {
                "path": "/s",
                "threshold": 1,
                "intervals": {"small": {"access_interval": "999999999999w"}},
            },
            "duration too long",
        ),
        (
            {"path": "/s", "threshold": 1, "intervals": {"large": {"access_interval": -5}}},
            "negative",
        ),
    ],
)
def test_bad_policy_entries_are_input_errors(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    path = _policy(tmp_path, {"directories": [entry]})

    with pytest.raises(PurgerConfigError, match=message):
        load_policy(path)


def test_policy_without_directories_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PurgerConfigError, match="directories"):
        load_policy(_policy(tmp_path, {"dirs": []}))
    with pytest.raises(PurgerConfigError, match="not found"):
        load_policy(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("document", "warning"),
    [
        (
            {"intervals": {"small": {"acces_interval": "1d"}}},
            "directories[0].intervals.small.acces_interval: unknown policy key, ignored"
            " (did you mean access_interval?)",
        ),
        (
            {"intervals": {"large": {"modificationIntreval": "1d"}}},
            "directories[0].intervals.large.modificationIntreval: unknown policy key, ignored"
            " (did you mean modification_interval?)",
        ),
        (
            {"intervals": {"smal": {"access_interval": "1d"}}},
            "directories[0].intervals.smal: unknown policy key, ignored (did you mean small?)",
        ),
        (
            {"treshold": "1Gi"},
            "directories[0].treshold: unknown policy key, ignored (did you mean threshold?)",
        ),
        ({"owner": "ops"}, "directories[0].owner: unknown policy key, ignored"),
    ],
    ids=["class", "class-camel", "intervals", "directory", "no-close-key"],
)
def test_unknown_policy_keys_are_listed_with_a_suggestion(
    tmp_path: Path, document: dict[str, Any], warning: str
) -> None:
    entry: dict[str, Any] = {"path": "/s", "threshold": 1, "intervals": {}, **document}
    path = _policy(tmp_path, {"directories": [entry]})

    assert load_policy(path).ignored == (f"{path}: {warning}",)


def test_known_keys_in_either_spelling_are_not_warned(tmp_path: Path) -> None:
    entry = {
        "path": "/s",
        "threshold": 1,
        "intervals": {"large": {"accessInterval": "1d"}, "small": {"creation_interval": "1d"}},
    }
    path = _policy(tmp_path, {"directories": [entry]})

    assert load_policy(path).ignored == ()
