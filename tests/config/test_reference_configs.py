"""The four reference configurations load with upstream's values."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from nublado.config import (
    DockerSourceConfig,
    LabSize,
    NFSVolumeSource,
    PullPolicy,
    PVCVolumeSource,
    load_config,
)

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = DATA / "reference"
CONFIGS = REFERENCE / "inputs" / "config"
OBJECTS = REFERENCE / "expected" / "objects"


def _objects(name: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads((OBJECTS / name).read_text())
    return objects


def _pod_spec(objects: list[dict[str, Any]], kind: str = "Pod") -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind]
    spec: dict[str, Any] = obj["spec"]
    return spec


@pytest.mark.parametrize("name", ["standard", "fileserver", "fsadmin", "prepuller"])
def test_reference_config_loads(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml", environ={})

    assert config.log_level == "DEBUG"
    assert config.log_profile == "development"
    assert config.base_url == "http://127.0.0.1:8080"
    assert config.lab.namespace_prefix == "userlabs"
    assert config.images.source == DockerSourceConfig(
        type="docker", registry="lighthouse.ceres", repository="library/sketchbook"
    )


def test_standard_lab_values() -> None:
    lab = load_config(CONFIGS / "standard.yaml", environ={}).lab

    assert lab.activity_interval == timedelta(hours=2)
    assert lab.spawn_timeout == timedelta(seconds=10)
    assert lab.delete_timeout == timedelta(minutes=1)
    assert lab.reconcile_interval == timedelta(minutes=5)
    assert lab.application == "nublado-users"
    assert lab.env["CULL_KERNEL_CONNECTED"] == "True"
    assert lab.env["API_ROUTE"] == "/api"
    assert list(lab.files) == [
        "/opt/lsst/software/jupyterlab/lsst_dask.yml",
        "/opt/lsst/software/jupyterlab/panda",
    ]
    assert lab.pull_secret == "pull-secret"
    assert lab.nss.base_group.startswith("root:x:0:\nbin:x:1:\n")
    assert [s.secret_key for s in lab.secrets] == ["butler-secret", "db-password"]
    assert lab.secrets[0].env == "BUTLER_SECRET"
    assert lab.secrets[1].path is None
    assert lab.home_volume_name == "home"
    assert lab.homedir_schema == "username"
    assert lab.empty_dir_source == "memory"
    assert lab.runtime_mounts_dir == "/etc/nublado"
    assert lab.lab_start_command == ["/opt/lsst/software/jupyterlab/runlab.sh"]
    assert lab.jupyterlab_config_dir == "/opt/lsst/software/jupyterlab"
    assert lab.default_size is None
    assert lab.standard_inithome is False


def test_standard_init_containers() -> None:
    inithome, setup = load_config(CONFIGS / "standard.yaml", environ={}).lab.init_containers

    assert inithome.name == "inithome"
    assert inithome.command == ["nublado", "inithome"]
    assert inithome.image.reference == "ghcr.io/lsst-sqre/nublado:10.0.0"
    assert inithome.image.pull_policy == PullPolicy.IF_NOT_PRESENT
    assert inithome.privileged is True
    assert [m.volume_name for m in inithome.volume_mounts] == ["home", "scratch"]
    assert setup.command is None
    assert setup.privileged is False


def test_standard_sizes_and_labels() -> None:
    sizes = load_config(CONFIGS / "standard.yaml", environ={}).lab.sizes

    assert [s.label for s in sizes] == [
        "Small (1.0 CPU, 3Gi RAM)",
        "Medium (2.0 CPU, 6Gi RAM)",
        "Large (9.0 CPU, 27Gi RAM)",
        "Huge (12.0 CPU, 32Gi RAM)",
    ]
    assert str(sizes[0]) == "Small (1.0 CPU, 3Gi RAM)"
    assert sizes[2].resources.requests.memory == 7194070220  # 6.7Gi
    assert sizes[3].resources.requests.cpu == 3.0
    assert sizes[0].size is LabSize.SMALL


def test_standard_size_resources_match_the_lab_pod() -> None:
    config = load_config(CONFIGS / "standard.yaml", environ={})
    (notebook,) = _pod_spec(_objects("lab.json"))["containers"]

    assert (
        config.lab.get_size_definition("small").resources.to_kubernetes() == (notebook["resources"])
    )


def test_standard_scheduling_matches_the_lab_pod() -> None:
    lab = load_config(CONFIGS / "standard.yaml", environ={}).lab
    spec = _pod_spec(_objects("lab.json"))

    assert lab.affinity is not None
    assert lab.affinity.to_kubernetes() == spec["affinity"]
    # Fixed: tolerationSeconds only with effect NoExecute, as Kubernetes requires.
    upstream = spec["tolerations"]
    assert upstream[0].pop("tolerationSeconds") == 60
    assert [t.to_kubernetes() for t in lab.tolerations] == upstream
    assert lab.node_selector == spec["nodeSelector"]


def test_standard_volumes() -> None:
    lab = load_config(CONFIGS / "standard.yaml", environ={}).lab

    assert [v.name for v in lab.volumes] == ["home", "project", "scratch", "temporary"]
    home = lab.volumes[0].source
    assert isinstance(home, NFSVolumeSource)
    assert (home.server, home.server_path, home.read_only) == (
        "10.13.105.122",
        "/share1/home",
        False,
    )
    scratch = lab.volumes[2].source
    assert isinstance(scratch, PVCVolumeSource)
    assert scratch.access_modes == ["ReadWriteMany"]
    assert scratch.resources.requests == {"storage": "1Gi"}
    assert [(m.container_path, m.sub_path, m.read_only) for m in lab.volume_mounts] == [
        ("/home", None, False),
        ("/PROJECT", None, True),
        ("/ScRaTcH", None, False),
        ("/scratch", None, False),
        ("/temporary", "temporary", False),
    ]


def test_standard_fsadmin_and_fileserver_defaults() -> None:
    config = load_config(CONFIGS / "standard.yaml", environ={})

    assert config.fileserver.enabled is False
    assert config.fileserver.path_prefix == "/files"
    assert config.fsadmin.pod_name == "fsadmin"
    assert config.fsadmin.timeout == timedelta(minutes=2)
    assert config.fsadmin.mount_prefix is None
    assert config.path_prefix == "/nublado"
    assert config.name == "Nublado"
    assert config.metadata_path == Path("/etc/podinfo")
    assert config.watch_reconnect_timeout == timedelta(minutes=3)
    assert config.slack_webhook is None
    assert config.template_dirs == []


def test_images_dump_is_the_prepuller_status_config() -> None:
    images = load_config(CONFIGS / "standard.yaml", environ={}).images

    prepulls = json.loads((DATA / "prepuller" / "prepulls.json").read_text())
    assert images.model_dump(mode="json") == prepulls["config"]
    assert images.docker_credentials_path == Path("/etc/secrets/.dockerconfigjson")


def test_fileserver_values_match_the_fileserver_objects() -> None:
    config = load_config(CONFIGS / "fileserver.yaml", environ={})
    fileserver = config.fileserver
    spec = _pod_spec(_objects("fileserver.json"))

    assert fileserver.enabled is True
    assert fileserver.namespace == "fileservers"
    assert fileserver.application == "fileservers"
    assert fileserver.creation_timeout == timedelta(seconds=1)
    assert fileserver.reconcile_interval == timedelta(seconds=0.1)
    assert fileserver.idle_timeout == timedelta(hours=1)
    assert fileserver.extra_annotations == {"some-annotation": "some-value"}
    assert fileserver.resources is None
    assert [m.volume_name for m in fileserver.volume_mounts] == ["home", "project", "scratch"]
    assert fileserver.affinity is not None
    assert fileserver.affinity.to_kubernetes() == spec["affinity"]
    assert [t.to_kubernetes() for t in fileserver.tolerations] == spec["tolerations"]
    assert fileserver.node_selector == spec["nodeSelector"]


def test_fsadmin_values() -> None:
    fsadmin = load_config(CONFIGS / "fsadmin.yaml", environ={}).fsadmin

    assert fsadmin.mount_prefix == "/user-filesystems"
    assert [v.name for v in fsadmin.extra_volumes] == ["firefly"]
    assert [m.container_path for m in fsadmin.extra_volume_mounts] == ["/firefly"]
    assert fsadmin.tolerations == []


def test_prepuller_scheduling() -> None:
    lab = load_config(CONFIGS / "prepuller.yaml", environ={}).lab

    assert lab.node_selector == {"status": "online", "nublado": "eligible"}
    assert [t.to_kubernetes() for t in lab.tolerations] == [
        {"key": "some-taint", "operator": "Equal", "value": "some-value"}
    ]


def test_reference_controller_image_from_environment() -> None:
    environ = {
        "NUBLADO_CONTROLLER_REPOSITORY": "ghcr.io/lsst-sqre/nublado",
        "NUBLADO_CONTROLLER_TAG": "11.1.1",
    }

    config = load_config(CONFIGS / "standard.yaml", environ=environ)

    assert config.controller_image.reference == "ghcr.io/lsst-sqre/nublado:11.1.1"
    assert config.controller_image.pull_policy == PullPolicy.IF_NOT_PRESENT
