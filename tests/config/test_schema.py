"""The committed JSON Schema is current, and describes the reference configurations."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from nublado.config.cli import schema
from nublado.config.schema import config_schema, config_schema_text
from nublado.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "config.schema.json"
CONFIGS = ROOT / "tests" / "data" / "reference" / "inputs" / "config"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == config_schema_text(), (
        "schema/config.schema.json is stale: run `nublado schema` and commit it"
    )


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_reference_configs_match_the_schema(path: Path) -> None:
    jsonschema.Draft202012Validator(config_schema()).validate(yaml.safe_load(path.read_text()))


def test_schema_rejects_an_unknown_lab_key() -> None:
    config = yaml.safe_load((CONFIGS / "standard.yaml").read_text())
    config["lab"]["sizez"] = []

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(config_schema()).validate(config)


def test_schema_uses_file_keys_and_seconds() -> None:
    document = config_schema()

    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "namespacePrefix" in document["$defs"]["LabConfig"]["required"]
    assert document["$defs"]["LabConfig"]["properties"]["spawnTimeout"]["default"] == 600.0
    assert "EXTERNAL_INSTANCE_URL" in document["properties"]
    assert "baseUrl" not in document["properties"]


def test_schema_command_writes_the_file(tmp_path: Path) -> None:
    output = tmp_path / "out" / "config.schema.json"

    result = CliRunner().invoke(schema, ["--output", str(output)])

    assert result.exit_code == 0
    assert json.loads(output.read_text()) == config_schema()


def test_schema_command_writes_the_default_path_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(schema, [])

    assert result.exit_code == 0
    assert (tmp_path / "schema" / "config.schema.json").read_text() == config_schema_text()


def test_schema_check_exit_status(tmp_path: Path) -> None:
    output = tmp_path / "config.schema.json"
    runner = CliRunner()

    missing = runner.invoke(schema, ["--check", "--output", str(output)])
    runner.invoke(schema, ["--output", str(output)])
    current = runner.invoke(schema, ["--check", "--output", str(output)])
    output.write_text(output.read_text() + " ")
    stale = runner.invoke(schema, ["--check", "--output", str(output)])

    assert (missing.exit_code, current.exit_code, stale.exit_code) == (1, 0, 1)
    assert "out of date" in stale.output


def test_schema_to_standard_output() -> None:
    result = CliRunner().invoke(schema, ["--output", "-"])

    assert result.exit_code == 0
    assert result.output == config_schema_text()


def test_schema_command_does_not_create_a_directory_tree(tmp_path: Path) -> None:
    output = tmp_path / "a" / "b" / "config.schema.json"

    with pytest.raises(InputError, match="No such file or directory"):
        CliRunner().invoke(schema, ["--output", str(output)], catch_exceptions=False)
    assert not (tmp_path / "a").exists()


def test_schema_check_says_when_the_file_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(schema, ["--check", "--output", str(tmp_path / "none.json")])

    assert result.exit_code == 1
    assert "not found" in result.output


def test_schema_id_is_this_projects() -> None:
    # The $id names this project's schema: under one of pyproject's project URLs
    # if it declares any, else a `urn:nublado:` name (never upstream's URL, which
    # names a different schema).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    urls = list(project.get("urls", {}).values())
    schema_id = json.loads(COMMITTED.read_text())["$id"]

    if urls:
        assert any(schema_id.startswith(url.rstrip("/") + "/") for url in urls), schema_id
    else:
        assert schema_id.startswith("urn:nublado:"), schema_id
    assert schema_id == config_schema()["$id"]
