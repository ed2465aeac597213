"""Shared test configuration: hypothesis profiles and the YAML snapshot extension."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
REFERENCE = DATA / "reference"
SNAPSHOTS = TESTS.parent / "snapshots"

pytest_plugins = ["sandbox_fixtures", "image_fixtures", "least_privilege"]

settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


class YamlSnapshotExtension(SingleFileSnapshotExtension):
    """One reviewable YAML file per snapshot, under the top-level snapshots/ folder."""

    file_extension = "yaml"
    _write_mode = WriteMode.TEXT

    def serialize(self, data: Any, **kwargs: Any) -> str:
        documents = data if isinstance(data, list) else [data]
        return yaml.safe_dump_all(
            documents, sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
        )

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(SNAPSHOTS / test_location.basename)


@pytest.fixture
def snapshot_yaml(snapshot: Any) -> Any:
    """Snapshot fixture writing snapshots/<test module>/<test name>.yaml."""
    return snapshot.use_extension(YamlSnapshotExtension)
