"""Rules of the lab context builder, one reason to fail each.

Each DECISIONS.md fix to upstream's objects has its own test here, next to
the snapshots that show whole sets.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from reference_cases import (
    INPUTS,
    REFERENCE_IMAGE,
    TOKEN,
    Config,
    load,
    reference_config,
    reference_discovery,
    reference_metadata,
    reference_secrets,
    reference_spec,
    reference_user,
    render_fsadmin,
    render_lab,
    variant_config,
)

from nublado.errors import InputError
from nublado.models.lab import LabSpecification
from nublado.models.metadata import ControllerMetadata
from nublado.models.user import UserInfo
from nublado.render.cli import find_size
from nublado.render.engine import Manifest
from nublado.render.fileserver import build_fileserver_context
from nublado.render.lab import LabContextBuilder, LabSecretError, SourceSecret
from nublado.render.prepuller import prepull_pod_name

STANDARD = reference_config("standard")


def build(
    config: Config = STANDARD,
    *,
    user: UserInfo | None = None,
    spec: LabSpecification | None = None,
    secrets: dict[str, SourceSecret] | None = None,
) -> Any:
    spec = spec or reference_spec()
    context = LabContextBuilder(config).build(
        user=user or reference_user(),
        spec=spec,
        image=REFERENCE_IMAGE,
        size=find_size(config, spec),
        secrets=reference_secrets() if secrets is None else secrets,
        token=TOKEN,
        discovery=reference_discovery(),
    )
    return context["lab"]


def by_name(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def test_user_without_display_name_gets_empty_gecos() -> None:
    lab = build(user=reference_user(name=None))

    assert lab.nss["passwd"].endswith("\nrachel:x:1101:1101::/home/rachel:/bin/bash\n")
    assert "nublado.lsst.io/user-name" not in lab.pod.annotations


def test_display_name_cannot_add_a_passwd_entry() -> None:
    lab = build(user=reference_user(name="Eve:x:0:0::/root:/bin/bash\nroot2"))

    user_line = lab.nss["passwd"].splitlines()[-1]
    assert user_line == "rachel:x:1101:1101:Eve x 0 0  /root /bin/bash root2:/home/rachel:/bin/bash"


def test_group_names_a_group_file_cannot_hold_stay_out_of_it() -> None:
    groups = [{"name": "rachel", "id": 1101}, {"name": "wheel\nroot", "id": 10}]
    lab = build(user=reference_user(groups=groups))

    assert lab.nss["group"].endswith(
        "users:x:100:\nsystemd-journal:x:190:\nsystemd-network:x:192:\ncgred:x:997:\nssh_keys:x:998:\ninput:x:999:\nrachel:x:1101:\n"
    )
    assert lab.pod.supplemental_groups == [1101, 10]


def test_only_mounted_volumes_become_pod_volumes_and_each_mounted_claim_exists() -> None:
    manifests = render_lab(variant_config("volumes"))

    pod = by_name(manifests, "Pod", "rachel-nb")
    claims = {m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"}
    volume_names = [v["name"] for v in pod["spec"]["volumes"]]
    assert "unused" not in volume_names
    assert claims == {"rachel-nb-pvc-scratch", "rachel-nb-pvc-archive"}
    referenced = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert referenced == claims


def test_volume_mounted_only_by_an_init_container_gets_volume_and_claim(tmp_path: Path) -> None:
    text = (INPUTS / "config" / "standard.yaml").read_text()
    text = text.replace(
        "        - containerPath: /scratch\n          volumeName: scratch\n",
        "        - containerPath: /scratch\n          volumeName: scratch\n"
        "        - containerPath: /tmp-claim\n          volumeName: initonly\n",
    )
    text = text.replace(
        "  volumeMounts:\n    - containerPath: /home\n",
        "    - name: initonly\n      source:\n        type: persistentVolumeClaim\n"
        "        storageClassName: fast\n        accessModes: [ReadWriteMany]\n"
        "        resources: {requests: {storage: 1Gi}}\n"
        "  volumeMounts:\n    - containerPath: /home\n",
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)

    manifests = render_lab(load(path))

    pod = by_name(manifests, "Pod", "rachel-nb")
    assert "initonly" in [v["name"] for v in pod["spec"]["volumes"]]
    assert by_name(manifests, "PersistentVolumeClaim", "rachel-nb-pvc-initonly")


def test_rendering_fsadmin_leaves_lab_mounts_read_only() -> None:
    config = reference_config("fsadmin")
    before = render_lab(config)

    fsadmin = render_fsadmin(config)
    after = render_lab(config)

    fsadmin_mounts = fsadmin[-1]["spec"]["containers"][0]["volumeMounts"]
    assert all(m["readOnly"] is False for m in fsadmin_mounts)
    assert after == before
    project = next(
        m
        for m in by_name(after, "Pod", "rachel-nb")["spec"]["containers"][0]["volumeMounts"]
        if m["name"] == "project"
    )
    assert project["readOnly"] is True


@pytest.mark.parametrize(
    ("tag", "node", "name"),
    [
        ("d_2077_10_23", "node2", "prepull-d-2077-10-23-node2"),
        ("exp_Weekly_2077_43", "Node-A", "prepull-exp-weekly-2077-43-node-a"),
        ("exp_a..b", "n", "prepull-exp-a-b-n"),
        ("exp_x.", "n", "prepull-exp-x-n"),
        ("r29.0.0", "n", "prepull-r29.0.0-n"),
        ("exp_" + "x" * 300, "n", "prepull-exp-" + "x" * 241),
    ],
)
def test_prepull_pod_names_are_valid_dns_names(tag: str, node: str, name: str) -> None:
    assert prepull_pod_name(tag, node) == name


def test_spawner_options_and_controller_values_in_env() -> None:
    spec = LabSpecification.model_validate(
        {
            "options": {
                "image_class": "recommended",
                "size": "small",
                "enable_debug": "true",
                "reset_user_env": True,
            },
            "env": {"JUPYTERHUB_SERVICE_PREFIX": "/nb/user/rachel/", "CONTAINER_SIZE": "Huge"},
        }
    )
    env = build(spec=spec).env

    assert (env["DEBUG"], env["RESET_USER_ENV"]) == ("TRUE", "TRUE")
    assert env["CONTAINER_SIZE"] == "Small (1.0 CPU, 3Gi RAM)"
    assert env["JUPYTERHUB_ACTIVITY_INTERVAL"] == "7200"
    assert env["JUPYTERLAB_START_COMMAND"] == "/opt/lsst/software/jupyterlab/runlab.sh"
    assert env["REPERTOIRE_BASE_URL"] == "https://example.com/repertoire"


def test_options_off_write_no_keys() -> None:
    env = build().env

    assert "DEBUG" not in env
    assert "RESET_USER_ENV" not in env


def test_configured_env_overrides_controller_values(tmp_path: Path) -> None:
    text = (
        (INPUTS / "config" / "standard.yaml")
        .read_text()
        .replace(
            "    API_ROUTE: /api\n", "    API_ROUTE: /api\n    JUPYTERLAB_CONFIG_DIR: /custom\n"
        )
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)

    assert build(load(path)).env["JUPYTERLAB_CONFIG_DIR"] == "/custom"


def test_no_repertoire_url_no_repertoire_env() -> None:
    config = STANDARD.model_copy(update={"repertoire_base_url": None})

    assert "REPERTOIRE_BASE_URL" not in build(config).env


def test_missing_source_secret_is_an_error_naming_it() -> None:
    secrets = reference_secrets()
    del secrets["extra-secret"]

    with pytest.raises(LabSecretError, match="secret extra-secret not found"):
        build(secrets=secrets)


def test_missing_secret_key_is_an_error_naming_it() -> None:
    secrets = reference_secrets()
    secrets["nublado-secret"] = SourceSecret(data={"other-key": "eA=="})

    with pytest.raises(LabSecretError, match="secret nublado-secret has no key butler-secret"):
        build(secrets=secrets)


def test_missing_pull_secret_is_an_error() -> None:
    secrets = reference_secrets()
    del secrets["pull-secret"]

    with pytest.raises(LabSecretError, match="lab.pullSecret: secret pull-secret not found"):
        build(secrets=secrets)


def test_secret_values_are_copied_and_token_encoded() -> None:
    lab = build()

    assert lab.secret_data["butler-secret"] == base64.b64encode(b"some butler secret").decode()
    assert base64.b64decode(lab.secret_data["token"]).decode() == TOKEN
    assert lab.pull_secret.type == "kubernetes.io/dockerconfigjson"


@pytest.mark.parametrize(
    "ids", [{"uid": 0}, {"gid": 0}, {"uid": None}, {"gid": None}, {"uid": -1}, {"gid": -5}]
)
def test_user_without_uid_or_gid_cannot_have_a_lab_or_file_server(ids: dict[str, Any]) -> None:
    user = reference_user(**ids)

    with pytest.raises(InputError, match="has no uid or gid"):
        build(user=user)
    with pytest.raises(InputError, match="has no uid or gid"):
        build_fileserver_context(reference_config("fileserver"), user)


def test_disabled_file_servers_render_nothing() -> None:
    with pytest.raises(InputError, match="file servers are not enabled"):
        build_fileserver_context(STANDARD, reference_user())


def test_missing_controller_metadata_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "name").write_text("nublado-controller\n")

    with pytest.raises(InputError, match=r"namespace: cannot read controller metadata"):
        ControllerMetadata.from_directory(tmp_path)
    assert reference_metadata().namespace == "nublado"


def test_username_must_be_a_gafaelfawr_username() -> None:
    with pytest.raises(ValueError, match="invalid username 'Rachel X'"):
        reference_user(username="Rachel X")
