"""Fixtures for the lab-side tools: real files in temporary directories."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from nublado.purger.config import PurgerConfig

# Policies of upstream's purger tests (spec/images-tools.md 5.7), with {root}
# standing for the temporary tree.
POLICY: dict[str, Any] = {
    "directories": [
        {
            "path": "{root}/scratch",
            "threshold": "10B",
            "intervals": {
                "large": {
                    "access_interval": "1h",
                    "creation_interval": "24h",
                    "modification_interval": "4h",
                },
                "small": {
                    "access_interval": "30d",
                    "creation_interval": "365d",
                    "modification_interval": "90d",
                },
            },
        },
        {
            "path": "{root}/scratch/foo/bar",
            "threshold": "20B",
            "intervals": {
                "large": {
                    "access_interval": "3s",
                    "creation_interval": "1w",
                    "modification_interval": "1w",
                }
            },
        },
    ]
}

FILES = {"small": b"hi", "medium": b"Hello, world!", "large": b"x" * 45}

PolicyWriter = Callable[..., PurgerConfig]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables a developer's shell may set that these tools read."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("NUBLADO_", "RSP_SCRATCHPURGER_", "CST_LANDING_PAGE_")) or upper in {
            "DEBUG",
            "DRYRUN",
            "POLICYFILE",
            "LOGLEVEL",
            "LOGPROFILE",
            "FUTUREDURATION",
            "ADDTIMESTAMP",
            "ALERTHOOK",
            "TMPDIR_UNUSED",
        }:
            monkeypatch.delenv(name)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``scratch/{small,medium,large}`` and the same three in ``scratch/foo/bar``."""
    for directory in (tmp_path / "scratch", tmp_path / "scratch" / "foo" / "bar"):
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in FILES.items():
            (directory / name).write_bytes(content)
    return tmp_path


def render_policy(root: Path, policy: object) -> object:
    """Substitute the tree's root into a policy document."""
    text = yaml.safe_dump(policy).replace("{root}", str(root))
    return yaml.safe_load(text)


@pytest.fixture
def write_policy(tree: Path) -> Iterator[PolicyWriter]:
    """Write a policy (default: POLICY) and a configuration naming it; return the config."""

    def write(policy: object = POLICY, **config: object) -> PurgerConfig:
        policy_file = tree / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(render_policy(tree, policy)))
        document = {"policyFile": str(policy_file), "logLevel": "debug", **config}
        config_file = tree / "config.yaml"
        config_file.write_text(yaml.safe_dump(document))
        return PurgerConfig.load(config_file, environ={})

    yield write


def _age(path: Path, *, atime: float | None = None, mtime: float | None = None) -> None:
    info = path.stat()
    now = datetime.now(tz=UTC).timestamp()
    new_atime = now - atime if atime is not None else info.st_atime
    new_mtime = now - mtime if mtime is not None else info.st_mtime
    os.utime(path, (new_atime, new_mtime), follow_symlinks=False)


@pytest.fixture
def age() -> Callable[..., None]:
    """Set a file's access and/or modification time back by the given seconds."""
    return _age


@pytest.fixture
def policy() -> dict[str, Any]:
    """A fresh copy of upstream's test policy, safe to modify."""
    return copy.deepcopy(POLICY)


ROOT = Path(__file__).resolve().parents[2]

NubladoProcess = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_nublado(tmp_path: Path) -> NubladoProcess:
    """Run the real ``nublado`` command in a child process, in ``tmp_path``.

    The child sees only ``env`` (plus ``PATH`` and this checkout on
    ``PYTHONPATH``), so nothing from the developer's shell leaks in, and its
    stderr is exactly what a pod's log would show: logging configured by the
    command itself, not captured by pytest.
    """

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        environ = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}
        return subprocess.run(
            [sys.executable, "-m", "nublado", *args],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
