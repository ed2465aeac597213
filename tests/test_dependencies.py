"""Every dependency pyproject.toml declares is one the code uses, in the right list.

A dependency nothing imports costs every install (the production image
included) and hides what the code really needs; one only the tests import
belongs in the ``dev`` extra, not in the package's own dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Used without an import statement of ours, each for the reason given.
USED_WITHOUT_IMPORT = {
    "httptools": "uvicorn's HTTP parser: its 'auto' HTTP implementation picks it when installed",
    "apscheduler": "the daemon's scheduler (nublado/daemon.py)",
    "mypy": "a tool run on the code (CI)",
    "ruff": "a tool run on the code (CI)",
    "pytest-asyncio": "a pytest plugin (asyncio_mode = auto)",
    "types-pyyaml": "type stubs read by mypy",
    "hatchling": "the build backend tests/deploy/test_image.py builds the wheel with, offline",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normalize(match.group())


def _imported_distributions(*folders: str) -> set[str]:
    """Distributions whose top-level modules some file under ``folders`` imports."""
    modules: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    by_module = importlib.metadata.packages_distributions()
    return {_normalize(dist) for module in modules for dist in by_module.get(module, [])}


@pytest.mark.parametrize(
    ("requirements", "folders"),
    [
        pytest.param(PROJECT["dependencies"], ("nublado",), id="dependencies"),
        pytest.param(
            [r for r in PROJECT["optional-dependencies"]["dev"] if not r.startswith("nublado[")],
            ("tests", "benchmarks"),
            id="dev",
        ),
    ],
)
def test_every_declared_dependency_is_imported_where_it_is_declared(
    requirements: list[str], folders: tuple[str, ...]
) -> None:
    imported = _imported_distributions(*folders)

    installed = {_normalize(dist.metadata["Name"]) for dist in importlib.metadata.distributions()}

    unused = sorted(
        name if name in installed else f"{name} (not installed: pip install -e '.[dev]')"
        for name in map(_requirement_name, requirements)
        if name not in imported and name not in USED_WITHOUT_IMPORT
    )

    assert unused == [], f"declared but imported nowhere under {', '.join(folders)}"
