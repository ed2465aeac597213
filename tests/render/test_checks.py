"""Rendered manifests that kube-apiserver would refuse never leave the renderer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from reference_cases import (
    REFERENCE_IMAGE,
    TOKEN,
    reference_config,
    reference_discovery,
    reference_secrets,
    reference_spec,
    reference_user,
)

from nublado.render.cli import find_size
from nublado.render.engine import InvalidManifestError, Manifest, Renderer
from nublado.render.lab import LabContextBuilder

POD: Manifest = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "rachel-nb", "namespace": "userlabs-rachel", "labels": {"app": "lab"}},
    "spec": {
        "securityContext": {"runAsUser": 1101, "supplementalGroups": [1101]},
        "initContainers": [{"name": "inithome", "image": "ghcr.io/lsst-sqre/nublado:10.0.0"}],
        "containers": [
            {
                "name": "notebook",
                "image": "lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:1234",
                "resources": {"limits": {"cpu": "1", "memory": "3Gi"}},
            }
        ],
        "volumes": [{"name": "home"}],
    },
}
PVC: Manifest = {
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "rachel-nb-pvc-scratch"},
    "spec": {"resources": {"requests": {"storage": "1Gi"}}},
}
LONG = "a" * 64


def _changed(manifest: Manifest, path: str, value: Any) -> Manifest:
    """A copy of ``manifest`` with the value at a dotted path (numbers index lists) replaced."""
    result = copy.deepcopy(manifest)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return result


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            _changed(POD, "metadata.namespace", f"userlabs-{LONG}"),
            f"Pod rachel-nb: metadata.namespace: 'userlabs-{'a' * 41}...{'a' * 12}' is 73"
            " characters, Kubernetes allows at most 63",
        ),
        (
            {"kind": "Namespace", "metadata": {"name": "Userlabs"}},
            "Namespace Userlabs: metadata.name: 'Userlabs' is not a DNS-1123 label: lower-case"
            " letters, digits and '-', starting and ending alphanumeric",
        ),
        (
            {"kind": "Service", "metadata": {"name": "1lab"}},
            "Service 1lab: metadata.name: '1lab' is not a DNS-1035 label: lower-case letters,"
            " digits and '-', starting with a letter",
        ),
        (
            {"kind": "ConfigMap", "metadata": {"name": "x" * 254}},
            f"ConfigMap {'x' * 50}...{'x' * 12}: metadata.name: '{'x' * 50}...{'x' * 12}' is 254"
            " characters, Kubernetes allows at most 253",
        ),
        (
            _changed(POD, "metadata.labels", {"nublado.lsst.io/user": LONG}),
            "Pod rachel-nb: metadata.labels[nublado.lsst.io/user]:"
            f" '{LONG}' is 64 characters, Kubernetes allows at most 63",
        ),
        (
            _changed(POD, "metadata.labels", {"app": "a b"}),
            "Pod rachel-nb: metadata.labels[app]: 'a b' is not a label value (letters, digits,"
            " '-', '_' and '.', starting and ending alphanumeric)",
        ),
        (
            _changed(POD, "metadata.labels", {"bad key!": "x"}),
            "Pod rachel-nb: metadata.labels: label key 'bad key!' is not a qualified name (at"
            " most 63 letters, digits, '-', '_' and '.', starting and ending alphanumeric)",
        ),
        (
            _changed(POD, "spec.containers.0.image", "UPPER/Repo:tag"),
            "Pod rachel-nb: spec.containers[0].image: invalid image reference 'UPPER/Repo:tag':"
            " not a Docker image name (an optional registry host, then lower-case letters and"
            " digits separated by '.', '_', '__' or '-', in components joined by '/')",
        ),
        (
            _changed(POD, "spec.initContainers.0.image", "a/b:c@sha256:5678;rm"),
            "Pod rachel-nb: spec.initContainers[0].image: invalid image reference"
            " 'a/b:c@sha256:5678;rm': the digest is not algorithm:hex (like sha256:0123abcd)",
        ),
        (
            _changed(POD, "spec.containers.0.name", "Notebook"),
            "Pod rachel-nb: spec.containers[0].name: 'Notebook' is not a DNS-1123 label:"
            " lower-case letters, digits and '-', starting and ending alphanumeric",
        ),
        (
            _changed(POD, "spec.volumes.0.name", "home.dir"),
            "Pod rachel-nb: spec.volumes[0].name: 'home.dir' is not a DNS-1123 label:"
            " lower-case letters, digits and '-', starting and ending alphanumeric",
        ),
        (
            _changed(POD, "spec.containers.0.resources.limits.memory", "lots"),
            "Pod rachel-nb: spec.containers[0].resources.limits[memory]: 'lots' is not a"
            " Kubernetes quantity (like 1Gi or 500m)",
        ),
        (
            _changed(POD, "spec.containers.0.resources.limits.cpu", "-1"),
            "Pod rachel-nb: spec.containers[0].resources.limits[cpu]: must be zero or more,"
            " got '-1'",
        ),
        (
            _changed(POD, "spec.securityContext.runAsUser", -1),
            "Pod rachel-nb: spec.securityContext.runAsUser: must be between 0 and 2147483647,"
            " inclusive, got -1",
        ),
        (
            _changed(POD, "spec.securityContext.runAsUser", 2147483648),
            "Pod rachel-nb: spec.securityContext.runAsUser: must be between 0 and 2147483647,"
            " inclusive, got 2147483648",
        ),
        (
            _changed(POD, "spec.securityContext.runAsUser", True),
            "Pod rachel-nb: spec.securityContext.runAsUser: must be a whole number, got True",
        ),
        (
            _changed(POD, "spec.securityContext.supplementalGroups", [1101, -2]),
            "Pod rachel-nb: spec.securityContext.supplementalGroups[1]: must be between 0 and"
            " 2147483647, inclusive, got -2",
        ),
        (
            _changed(POD, "spec.securityContext.fsGroup", 4294967295),
            "Pod rachel-nb: spec.securityContext.fsGroup: must be between 0 and 2147483647,"
            " inclusive, got 4294967295",
        ),
        (
            {"kind": "ConfigMap", "metadata": {"name": "env"}, "data": {"API ROUTE": "/api"}},
            "ConfigMap env: data: 'API ROUTE' is not a valid config key: at most 253 letters,"
            " digits, '-', '_' and '.'",
        ),
        (
            {"kind": "Secret", "metadata": {"name": "s"}, "data": {"..token": ""}},
            "Secret s: data: '..token' is not a valid config key (it must not be '.' or start"
            " with '..')",
        ),
        (
            {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k" * 254: ""}},
            f"Secret s: stringData: '{'k' * 50}...{'k' * 12}' is 254 characters, Kubernetes"
            " allows at most 253",
        ),
        (
            _changed(POD, "spec.containers.0.env", [{"name": "A=B", "value": "x"}]),
            "Pod rachel-nb: spec.containers[0].env[0].name: 'A=B' is not a valid environment"
            " variable name: printable ASCII characters other than '='",
        ),
        (
            _changed(POD, "spec.initContainers.0.env", [{"name": "", "value": "x"}]),
            "Pod rachel-nb: spec.initContainers[0].env[0].name: '' is not a valid environment"
            " variable name: printable ASCII characters other than '='",
        ),
        (
            _changed(PVC, "spec.resources.requests.storage", "0"),
            "PersistentVolumeClaim rachel-nb-pvc-scratch: spec.resources.requests[storage]:"
            " must be greater than zero, got '0'",
        ),
        (
            _changed(PVC, "spec.resources.requests.storage", "-1Gi"),
            "PersistentVolumeClaim rachel-nb-pvc-scratch: spec.resources.requests[storage]:"
            " must be greater than zero, got '-1Gi'",
        ),
        (
            {"kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"cpu": "x"}}},
            "ResourceQuota q: spec.hard[cpu]: 'x' is not a Kubernetes quantity (like 1Gi or 500m)",
        ),
        (
            {
                "kind": "Job",
                "metadata": {"name": "fs"},
                "spec": {"template": {"metadata": {"labels": {"user": LONG}}, "spec": {}}},
            },
            f"Job fs: spec.template.metadata.labels[user]: '{LONG}' is 64 characters,"
            " Kubernetes allows at most 63",
        ),
    ],
)
def test_what_kubernetes_refuses_is_one_clear_error(manifest: Manifest, message: str) -> None:
    from nublado.render.checks import check_manifests

    with pytest.raises(InvalidManifestError) as caught:
        check_manifests([POD, PVC, manifest])

    assert str(caught.value) == message


def test_valid_manifests_pass_unchanged() -> None:
    from nublado.render.checks import check_manifests

    # Since Kubernetes 1.32 an environment variable name may hold any printable
    # ASCII but '=': a space, a leading digit.
    pod = _changed(POD, "spec.containers.0.env", [{"name": "BUTLER SECRET 1", "value": "x"}])
    config_map = {"kind": "ConfigMap", "metadata": {"name": "env"}, "data": {"A.b-C_9": ""}}
    manifests = [pod, PVC, config_map]

    assert check_manifests(manifests) is manifests
    assert manifests == [pod, PVC, config_map]


def test_the_renderer_refuses_an_invalid_object_an_operator_template_makes(
    tmp_path: Path,
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "set.yaml").write_text("- cm.yaml\n")
    (tmp_path / "t" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ name | q }}\n"
    )

    with pytest.raises(InvalidManifestError, match="ConfigMap Rachel: metadata.name: "):
        Renderer([tmp_path]).render("t", {"name": "Rachel"})
    with pytest.raises(InvalidManifestError, match="ConfigMap Rachel: metadata.name: "):
        Renderer([tmp_path]).render_template("t/cm.yaml", {"name": "Rachel"})


def test_a_username_too_long_for_a_lab_is_refused_naming_the_limit() -> None:
    config = reference_config("standard")
    spec = reference_spec()
    context = LabContextBuilder(config).build(
        user=reference_user(username="r" * 80),
        spec=spec,
        image=REFERENCE_IMAGE,
        size=find_size(config, spec),
        secrets=reference_secrets(),
        token=TOKEN,
        discovery=reference_discovery(),
    )

    with pytest.raises(InvalidManifestError) as caught:
        Renderer().render("lab", context)

    assert (caught.value.kind, caught.value.field) == ("Namespace", "metadata.name")
    assert str(caught.value).endswith("is 89 characters, Kubernetes allows at most 63")
