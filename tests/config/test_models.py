"""Model behaviour beyond loading: Kubernetes forms, derived names, image filters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from nublado.config import (
    Affinity,
    ContainerImage,
    GARSourceConfig,
    ImageFilter,
    ImagesConfig,
    LabelSelector,
    LabResources,
    LabSizeDefinition,
    PodAffinityTerm,
    Toleration,
    file_volume_name,
    is_reserved_env,
)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/opt/lsst/software/jupyterlab/lsst_dask.yml", "lsst-dask-yml"),
        ("/etc/foo_bar.conf", "foo-bar-conf"),
        ("/opt/a.b_c/d_e.f.txt", "d-e-f-txt"),
        ("/opt/lsst/software/jupyterlab/panda", "panda"),
    ],
)
def test_file_volume_name(path: str, name: str) -> None:
    assert file_volume_name(path) == name


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("MEM_LIMIT", True),
        ("JUPYTERHUB_USER", True),
        ("JUPYTERHUB_", True),
        ("NUBLADO_TOKEN", False),
        ("jupyterhub_user", False),
    ],
)
def test_reserved_env(name: str, reserved: bool) -> None:
    assert is_reserved_env(name) is reserved


def test_container_image_reference() -> None:
    image = ContainerImage.model_validate({"repository": "example/setup", "tag": "0.0.1"})

    assert image.reference == "example/setup:0.0.1"
    assert str(image.pull_policy) == "IfNotPresent"


def test_size_label_uses_binary_prefixes_and_float_cpu() -> None:
    size = LabSizeDefinition.model_validate(
        {
            "size": "large",
            "resources": {
                "limits": {"cpu": "4500m", "memory": "3G"},
                "requests": {"cpu": 1, "memory": "1G"},
            },
        }
    )

    assert size.label == "Large (4.5 CPU, 2.79397Gi RAM)"


def test_resources_kubernetes_form() -> None:
    resources = LabResources.model_validate(
        {"limits": {"cpu": 2, "memory": "6Gi"}, "requests": {"cpu": "500m", "memory": "1.5Gi"}}
    )

    assert resources.to_kubernetes() == {
        "limits": {"cpu": "2.0", "memory": "6442450944"},
        "requests": {"cpu": "0.5", "memory": "1610612736"},
    }


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "", "operator": "Exists"}, {"key": "", "operator": "Exists"}),
        ({"operator": "Exists"}, {"operator": "Exists"}),
        (
            {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 5},
            {
                "effect": "NoExecute",
                "key": "k",
                "operator": "Equal",
                "tolerationSeconds": 5,
                "value": "v",
            },
        ),
    ],
)
def test_toleration_kubernetes_form(toleration: dict[str, Any], expected: dict[str, Any]) -> None:
    assert Toleration.model_validate(toleration).to_kubernetes() == expected


@pytest.mark.parametrize(
    "toleration",
    [{"key": "k"}, {"value": "v"}, {"key": "", "value": "v"}, {"operator": "Exists", "value": "v"}],
)
def test_invalid_tolerations(toleration: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Toleration.model_validate(toleration)


def test_empty_affinity_stays_empty() -> None:
    assert Affinity.model_validate({}).to_kubernetes() == {}


def test_affinity_omits_empty_parts_but_keeps_values() -> None:
    affinity = Affinity.model_validate(
        {
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                        {},
                    ]
                },
                "preferred": [],
            },
            "podAffinity": {},
            "podAntiAffinity": {
                "required": [{"labelSelector": {}, "topologyKey": "zone", "namespaces": []}]
            },
        }
    )

    assert affinity.to_kubernetes() == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "Exists", "values": []}]},
                    {},
                ]
            }
        },
        "podAffinity": {},
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {}, "topologyKey": "zone"}
            ]
        },
    }


def test_empty_node_selector_terms_are_emitted() -> None:
    affinity = Affinity.model_validate({"nodeAffinity": {"required": {"nodeSelectorTerms": []}}})

    assert affinity.to_kubernetes() == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}
        }
    }


def test_label_selector_requirement_values() -> None:
    selector = LabelSelector.model_validate(
        {
            "matchLabels": {"app": "lab"},
            "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
        }
    )

    assert selector.to_kubernetes() == {
        "matchExpressions": [{"key": "tier", "operator": "DoesNotExist", "values": []}],
        "matchLabels": {"app": "lab"},
    }


def test_pod_affinity_term_needs_topology_key() -> None:
    with pytest.raises(ValidationError, match="topologyKey"):
        PodAffinityTerm.model_validate({"namespaces": ["a"]})


def test_gar_source_derived_names() -> None:
    source = GARSourceConfig.model_validate(
        {
            "type": "google",
            "location": "us-central1",
            "projectId": "rubin-shared",
            "repository": "sciplat",
            "image": "sciplat-lab",
        }
    )

    assert source.registry == "us-central1-docker.pkg.dev"
    assert source.parent == "projects/rubin-shared/locations/us-central1/repositories/sciplat"
    assert source.path == "rubin-shared/sciplat/sciplat-lab"


def test_gar_images_dump_uses_field_names() -> None:
    images = ImagesConfig.model_validate(
        {
            "source": {
                "type": "google",
                "location": "us-central1",
                "project_id": "p",
                "repository": "r",
                "image": "i",
            },
            "cycle": 50,
            "prepullTimeout": "1h",
        }
    )

    dumped = images.model_dump(mode="json")

    assert dumped["source"] == {
        "type": "google",
        "location": "us-central1",
        "project_id": "p",
        "repository": "r",
        "image": "i",
    }
    assert dumped["cycle"] == 50
    assert dumped["prepull_timeout"] == 3600.0
    assert "docker_credentials_path" not in dumped


def test_image_filter_dates_are_utc() -> None:
    from_date = ImageFilter.model_validate({"cutoffDate": date(2077, 10, 1)})
    from_text = ImageFilter.model_validate({"cutoffDate": "2077-10-01"})
    from_naive = ImageFilter.model_validate({"cutoffDate": datetime(2077, 10, 1, 12)})

    assert from_date.cutoff_date == datetime(2077, 10, 1, tzinfo=UTC)
    assert from_text.cutoff_date == datetime(2077, 10, 1, tzinfo=UTC)
    assert from_naive.cutoff_date == datetime(2077, 10, 1, 12, tzinfo=UTC)


def test_image_filter_fields() -> None:
    image_filter = ImageFilter.model_validate(
        {"number": 0, "age": "30d", "cutoffBuild": 4, "cutoffVersion": "28.0.2-rc1"}
    )

    assert image_filter.number == 0
    assert image_filter.age == timedelta(days=30)
    assert image_filter.cutoff_build == 4
    assert image_filter.cutoff_version == "28.0.2-rc1"
    assert ImageFilter().model_dump() == {
        "number": None,
        "age": None,
        "cutoff_build": None,
        "cutoff_date": None,
        "cutoff_version": None,
    }
