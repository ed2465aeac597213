"""Fixtures of the render tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def validate() -> Any:
    """Validate manifests against the Kubernetes 1.32 strict schemas (and the CRD)."""
    from kubeschema import validate_manifests

    return validate_manifests
