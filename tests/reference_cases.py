"""Inputs of the upstream reference cases (tests/data/reference) as our models."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from nublado.config import Config, load_config
from nublado.models.image import ResolvedImage
from nublado.models.lab import LabSpecification
from nublado.models.metadata import ControllerMetadata
from nublado.models.user import UserInfo
from nublado.render.cli import find_size
from nublado.render.engine import Manifest, Renderer
from nublado.render.fileserver import build_fileserver_context
from nublado.render.fsadmin import build_fsadmin_context
from nublado.render.lab import LabContextBuilder, SourceSecret
from nublado.render.prepuller import build_prepull_context

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
INPUTS = DATA / "reference" / "inputs"
EXPECTED = DATA / "reference" / "expected"
VARIANTS = DATA / "configs"

REFERENCE_ENVIRON = {
    "NUBLADO_CONTROLLER_REPOSITORY": "ghcr.io/lsst-sqre/nublado",
    "NUBLADO_CONTROLLER_TAG": "11.1.1",
    "NUBLADO_CONTROLLER_PULL_POLICY": "IfNotPresent",
    "REPERTOIRE_BASE_URL": "https://example.com/repertoire",
}
"""The environment upstream's test harness runs with (reference README)."""

REFERENCE_IMAGE = ResolvedImage(
    registry="lighthouse.ceres",
    repository="library/sketchbook",
    tag="d_2077_10_23",
    digest="sha256:1234",
    display_name="Daily 2077_10_23",
)
TOKEN = "gt-rachel-token.secret"


def load(path: Path) -> Config:
    """Load a configuration with the reference environment."""
    return load_config(path, environ=REFERENCE_ENVIRON)


def reference_config(name: str) -> Config:
    return load(INPUTS / "config" / f"{name}.yaml")


def variant_config(name: str) -> Config:
    return load(VARIANTS / f"{name}.yaml")


def reference_user(**changes: Any) -> UserInfo:
    data = json.loads((INPUTS / "users" / "rachel.json").read_text())
    data.update(changes)
    return UserInfo.model_validate(data)


def reference_spec() -> LabSpecification:
    return LabSpecification.model_validate_json((INPUTS / "lab-specification.json").read_text())


def reference_secrets() -> dict[str, SourceSecret]:
    plain = json.loads((INPUTS / "secrets.json").read_text())
    result = {}
    for name, values in plain.items():
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        secret_type = "kubernetes.io/dockerconfigjson" if ".dockerconfigjson" in values else None
        result[name] = SourceSecret(data=data, type=secret_type)
    return result


def reference_discovery() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((INPUTS / "discovery.json").read_text())
    return data


def reference_metadata() -> ControllerMetadata:
    return ControllerMetadata.from_directory(INPUTS / "metadata")


def render_lab(
    config: Config, user: UserInfo | None = None, spec: LabSpecification | None = None
) -> list[Manifest]:
    """The lab set for the reference user, request, image, secrets and discovery."""
    spec = spec or reference_spec()
    context = LabContextBuilder(config).build(
        user=user or reference_user(),
        spec=spec,
        image=REFERENCE_IMAGE,
        size=find_size(config, spec),
        secrets=reference_secrets(),
        token=TOKEN,
        discovery=reference_discovery(),
    )
    return Renderer(config.template_dirs).render("lab", context)


def render_fileserver(config: Config, user: UserInfo | None = None) -> list[Manifest]:
    """The file-server set for the reference user."""
    context = build_fileserver_context(config, user or reference_user())
    return Renderer(config.template_dirs).render("fileserver", context)


def render_fsadmin(config: Config) -> list[Manifest]:
    """The fsadmin set with the reference controller metadata."""
    context = build_fsadmin_context(config, reference_metadata())
    return Renderer(config.template_dirs).render("fsadmin", context)


def render_prepull(config: Config, node: str = "node2") -> list[Manifest]:
    """The prepull pod of the reference image on ``node``."""
    context = build_prepull_context(config, reference_metadata(), REFERENCE_IMAGE, node)
    return Renderer(config.template_dirs).render("prepuller", context)
