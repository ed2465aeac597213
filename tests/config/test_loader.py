"""Files that cannot be read as a configuration, and folders the configuration names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nublado.config import Config, ConfigError, load_config
from nublado.errors import InputError

Loader = Callable[..., Config]


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    return str(exc.value)


def test_config_error_is_an_input_error() -> None:
    assert issubclass(ConfigError, InputError)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    assert _error(path) == f"{path}: configuration file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert _error(tmp_path) == f"{tmp_path}: is a directory, not a configuration file"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("lab:\n  namespacePrefix: userlabs\n  sizes: [\n    - small\n")

    message = _error(path)

    assert message.startswith(f"{path}: invalid YAML at line 4, column 5: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('logLevel: "a\x01b"\n', "line 1, column 13"),
        ("a: 1\nlogLevel: a\x01b\n", "line 2, column 12"),
    ],
)
def test_a_control_character_is_one_line_naming_its_place(
    tmp_path: Path, text: str, where: str
) -> None:
    # PyYAML's reader error spans two lines (reason, then a character position).
    path = tmp_path / "config.yaml"
    path.write_text(text)

    assert _error(path) == (
        f"{path}: invalid YAML at {where}: unacceptable character #x0001: control characters"
        " are not allowed"
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [("", "nothing (the file is empty)"), ("- lab\n", "a list"), ("lab\n", "a str")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)

    assert _error(path) == (
        f"{path}: the top level of the configuration must be a mapping, not {found}"
    )


def test_error_keeps_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("lab: {}\n")

    with pytest.raises(ConfigError) as exc:
        load_config(str(path), environ={})

    assert exc.value.path == path
    assert exc.value.problems == [
        "fsadmin: required but missing",
        "images: required but missing",
        "lab.namespacePrefix: required but missing",
    ]


def test_template_dirs_are_relative_to_the_file(
    tmp_path: Path, write_config: Callable[[dict[str, Any]], Path], standard: dict[str, Any]
) -> None:
    (tmp_path / "site-templates").mkdir()
    absolute = tmp_path / "more"
    absolute.mkdir()
    standard["templateDirs"] = ["site-templates", str(absolute)]

    config = load_config(write_config(standard), environ={})

    assert config.template_dirs == [tmp_path / "site-templates", absolute]


def test_template_dirs_must_exist(
    tmp_path: Path, write_config: Callable[[dict[str, Any]], Path], standard: dict[str, Any]
) -> None:
    standard["templateDirs"] = ["missing"]

    with pytest.raises(ConfigError) as exc:
        load_config(write_config(standard), environ={})

    assert str(exc.value) == f"templateDirs[0]: not a directory: {tmp_path / 'missing'}"


def test_cli_prints_one_line_per_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nublado.cli import main

    path = tmp_path / "config.yaml"
    path.write_text("- not a mapping\n")

    with pytest.raises(SystemExit) as exc:
        main(["render", "fsadmin", "--config", str(path)])

    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        f"nublado: error: {path}: the top level of the configuration must be a mapping,"
        " not a list\n"
    )


def test_loading_imports_no_kubernetes_or_web_stack(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = Path(__file__).resolve().parents[1] / "data/reference/inputs/config/standard.yaml"
    code = (
        "import sys; from nublado.config import load_config;"
        f" load_config({str(config)!r}, environ={{}});"
        " print(sorted(m for m in ('kubernetes', 'starlette', 'httpx', 'pydantic_settings')"
        " if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )

    assert result.stdout.strip() == "[]"


def test_relative_metadata_path_is_relative_to_the_file(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "data" / "reference" / "inputs"
    text = (source / "config" / "fsadmin.yaml").read_text()
    (tmp_path / "config.yaml").write_text(f"metadataPath: podinfo\n{text}")

    config = load_config(tmp_path / "config.yaml")

    assert config.metadata_path == tmp_path / "podinfo"
