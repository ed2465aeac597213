"""Whole rendered sets, reviewed as YAML files under snapshots/test_snapshots/.

One case per reference configuration and per variant in tests/data/configs.
Each rendered set is also validated against the Kubernetes schemas. Run
``pytest --snapshot-update`` after an intended change and review the diff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from reference_cases import (
    Config,
    reference_config,
    reference_spec,
    reference_user,
    render_fileserver,
    render_fsadmin,
    render_lab,
    render_prepull,
    variant_config,
)

from nublado.models.lab import LabSpecification
from nublado.models.user import UserInfo
from nublado.render.engine import Manifest


def lab(
    config: Config, user: UserInfo | None = None, spec: LabSpecification | None = None
) -> list[Manifest]:
    return render_lab(config, user, spec)


def fileserver(config: Config) -> list[Manifest]:
    # As deployed: the GafaelfawrIngress CRD requires an https base URL.
    return render_fileserver(config.model_copy(update={"base_url": "https://data.example.com"}))


def fsadmin(config: Config) -> list[Manifest]:
    return render_fsadmin(config)


def prepuller(config: Config) -> list[Manifest]:
    return render_prepull(config)


def _spec(size: str) -> LabSpecification:
    data = reference_spec().model_dump(mode="json")
    data["options"]["size"] = size
    return LabSpecification.model_validate(data)


def _many_groups() -> UserInfo:
    groups = [{"name": "rachel", "id": 1101}]
    groups.extend({"name": f"project-{i:03d}", "id": 30000 + i} for i in range(80))
    return reference_user(groups=groups)


CASES: dict[str, Callable[[], list[Manifest]]] = {
    "lab-standard": lambda: lab(reference_config("standard")),
    "lab-fileserver-config": lambda: lab(reference_config("fileserver")),
    "lab-fsadmin-config": lambda: lab(reference_config("fsadmin")),
    "lab-prepuller-config": lambda: lab(reference_config("prepuller")),
    "fileserver-reference": lambda: fileserver(reference_config("fileserver")),
    "fsadmin-reference": lambda: fsadmin(reference_config("fsadmin")),
    "prepuller-standard": lambda: prepuller(reference_config("standard")),
    "prepuller-prepuller-config": lambda: prepuller(reference_config("prepuller")),
    "lab-homedir-schema": lambda: lab(variant_config("homedir-schema")),
    "lab-tmp-disk": lambda: lab(variant_config("tmp-disk")),
    "lab-init-containers": lambda: lab(variant_config("init-containers")),
    "lab-extra-annotations": lambda: lab(variant_config("extra-annotations")),
    "lab-sizes-large": lambda: lab(variant_config("sizes"), spec=_spec("large")),
    "lab-no-home-mount": lambda: lab(variant_config("no-home-mount")),
    "lab-volumes": lambda: lab(variant_config("volumes")),
    "fileserver-volumes": lambda: fileserver(variant_config("fileserver-volumes")),
    "fsadmin-extra-volumes": lambda: fsadmin(variant_config("fileserver-volumes")),
    "lab-user-without-name": lambda: lab(reference_config("standard"), reference_user(name=None)),
    "lab-user-many-groups": lambda: lab(reference_config("standard"), _many_groups()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_set(case: str, snapshot_yaml: Any, validate: Any) -> None:
    manifests = CASES[case]()

    validate(manifests)
    assert manifests == snapshot_yaml
