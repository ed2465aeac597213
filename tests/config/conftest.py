"""Fixtures for configuration tests: the reference configurations and a loader for variants."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from nublado.config import Config, ConfigError, load_config
from nublado.config.loader import forget_warnings

TESTS = Path(__file__).resolve().parents[1]
REFERENCE = TESTS / "data" / "reference"
REFERENCE_CONFIGS = REFERENCE / "inputs" / "config"

_STANDARD = yaml.safe_load((REFERENCE_CONFIGS / "standard.yaml").read_text())

Loader = Callable[..., Config]
Problems = Callable[..., list[str]]


@pytest.fixture
def standard() -> dict[str, Any]:
    """A fresh copy of the parsed standard.yaml, to change one thing in."""
    return copy.deepcopy(_STANDARD)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[Mapping[str, Any]], Path]:
    """Write a configuration mapping as YAML and return the file's path."""

    def write(data: Mapping[str, Any]) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
        return path

    return write


@pytest.fixture
def load(write_config: Callable[[Mapping[str, Any]], Path]) -> Loader:
    """Load a configuration mapping (with an empty environment unless given one)."""

    def load_(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
        return load_config(write_config(data), environ=environ or {})

    return load_


@pytest.fixture
def problems(load: Loader) -> Problems:
    """The lines of the ConfigError a configuration mapping raises."""

    def problems_(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[str]:
        with pytest.raises(ConfigError) as exc:
            load(data, environ)
        return str(exc.value).splitlines()

    return problems_


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    """Each test sees its configuration's warnings, though the loader warns once per process."""
    forget_warnings()
