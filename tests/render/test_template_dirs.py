"""Operators extend or replace built-in templates through ``templateDirs``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from reference_cases import INPUTS, load
from reference_cases import render_lab as lab

from nublado.config import ConfigError
from nublado.render.engine import BUILTIN_TEMPLATES, RenderError

SERVICE_ACCOUNT = """\
{# A site's own object in every lab: a service account for its tooling. #}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: lab-tools
  namespace: {{ lab.namespace | q }}
  labels: {{ lab.labels | q }}
  annotations: {{ lab.annotations | q }}
automountServiceAccountToken: false
"""

SIDECAR = """\
  containers:
    - name: metrics-sidecar
      image: example.org/metrics:1.0
      args: [--user, {{ lab.names.username | q }}]
      resources:
        limits: {cpu: 100m, memory: 64Mi}
"""


def _site_templates(tmp_path: Path) -> Path:
    """A site folder that adds a ServiceAccount and a sidecar to the built-in pod."""
    site = tmp_path / "site-templates"
    (site / "lab").mkdir(parents=True)
    order = (BUILTIN_TEMPLATES / "lab" / "set.yaml").read_text()
    (site / "lab" / "set.yaml").write_text(
        order.replace("- pod.yaml", "- serviceaccount.yaml\n- pod.yaml")
    )
    (site / "lab" / "serviceaccount.yaml").write_text(SERVICE_ACCOUNT)
    pod = (BUILTIN_TEMPLATES / "lab" / "pod.yaml").read_text()
    assert "  containers:\n" in pod
    (site / "lab" / "pod.yaml").write_text(pod.replace("  containers:\n", SIDECAR, 1))
    return site


def _config_with(tmp_path: Path, folder: str) -> Path:
    text = (INPUTS / "config" / "standard.yaml").read_text()
    path = tmp_path / "config.yaml"
    path.write_text(f"templateDirs: [{folder}]\n{text}")
    return path


def test_site_adds_an_object_and_a_sidecar(tmp_path: Path, validate: Any) -> None:
    _site_templates(tmp_path)
    config = load(_config_with(tmp_path, "site-templates"))

    manifests = lab(config)

    validate(manifests)
    kinds = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert kinds[-2:] == [("ServiceAccount", "lab-tools"), ("Pod", "rachel-nb")]
    containers = manifests[-1]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["metrics-sidecar", "notebook"]
    assert containers[0]["args"] == ["--user", "rachel"]


def test_built_in_templates_are_used_for_what_a_site_does_not_override(
    tmp_path: Path,
) -> None:
    _site_templates(tmp_path)
    config = load(_config_with(tmp_path, "site-templates"))

    manifests = lab(config)

    builtin = lab(load(INPUTS / "config" / "standard.yaml"))
    assert manifests[:-2] == builtin[:-1]


def test_site_template_must_quote_values(tmp_path: Path) -> None:
    site = _site_templates(tmp_path)
    (site / "lab" / "serviceaccount.yaml").write_text(
        SERVICE_ACCOUNT + "secrets: [{name: {{ lab.names.username }}}]\n"
    )
    config = load(_config_with(tmp_path, "site-templates"))

    with pytest.raises(RenderError, match="unquoted str value"):
        lab(config)


def test_missing_template_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="templateDirs"):
        load(_config_with(tmp_path, "nowhere"))


@pytest.mark.parametrize(
    ("annotation", "reason"),
    [
        ("{{ username }}", "'username' is undefined"),
        ("{{ uid", "unexpected end of template"),
        ("{{ uid.__class__ }}", "access to attribute '__class__' of 'int' object is unsafe"),
    ],
)
def test_bad_namespace_annotation_template_is_a_config_error(
    tmp_path: Path, annotation: str, reason: str
) -> None:
    annotations = f"  namespaceAnnotations:\n    example.org/a: '{annotation}'\n"
    text = (INPUTS / "config" / "standard.yaml").read_text()
    text = text.replace(
        "  namespacePrefix: userlabs\n", f"  namespacePrefix: userlabs\n{annotations}"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)

    expected = 'lab.namespaceAnnotations["example.org/a"]: not a template over uid and gid: '
    with pytest.raises(ConfigError, match=re.escape(expected + reason)):
        load(path)
