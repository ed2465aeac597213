"""The start-up permission check: the controller refuses to start without its RBAC.

The controller runs as its ServiceAccount against the sandbox in RBAC mode
(tests/controller_identity.py): with the RBAC ``nublado render controller``
prints it starts; with the RBAC of Phalanx's nublado chart
(tests/data/phalanx/controller-rbac.yaml, copied from Phalanx as test data)
``nublado serve`` and ``nublado daemon`` exit 2 with one line naming each
missing grant, having sent nothing but SelfSubjectAccessReviews.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from least_privilege import (
    CONTROLLER_ACCOUNT,
    CONTROLLER_NAMESPACE,
    CONTROLLER_USER,
    USAGE,
    controller_rbac,
)

from nublado.cli import main
from nublado.kube.client import KubernetesClient
from nublado.models.metadata import ControllerMetadata
from nublado.permissions import (
    Grant,
    MissingPermissionsError,
    check_permissions,
    grants_of,
    rendered_grants,
)
from nublado.sandbox.rbac import Use
from nublado.sandbox.server import Sandbox

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHALANX_RBAC = DATA / "phalanx" / "controller-rbac.yaml"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
ROOT = Path(__file__).resolve().parents[2]

PHALANX_LACKS = [
    "create leases.coordination.k8s.io in namespace nublado",
    "get nodes cluster-wide",
    "get secrets cluster-wide",
    "get leases.coordination.k8s.io in namespace nublado",
    "list secrets cluster-wide",
    "list leases.coordination.k8s.io in namespace nublado",
    "patch configmaps cluster-wide",
    "patch namespaces cluster-wide",
    "patch persistentvolumeclaims cluster-wide",
    "patch pods cluster-wide",
    "patch resourcequotas cluster-wide",
    "patch secrets cluster-wide",
    "patch services cluster-wide",
    "patch jobs.batch cluster-wide",
    "patch gafaelfawringresses.gafaelfawr.lsst.io cluster-wide",
    "patch networkpolicies.networking.k8s.io cluster-wide",
    "update namespaces cluster-wide",
    "update leases.coordination.k8s.io in namespace nublado",
    "watch secrets in namespace nublado",
    "watch leases.coordination.k8s.io in namespace nublado",
]
"""What the controller needs and Phalanx's chart does not grant (README, "Least privilege")."""

PHALANX_LINE = (
    "nublado: error: the controller's Kubernetes identity lacks 20 of the grants it needs: "
    + ", ".join(PHALANX_LACKS)
    + "; grant them with the RBAC that 'nublado render controller' prints"
    ' (README, "Least privilege")'
)


def phalanx_rbac(sandbox: Sandbox) -> None:
    """Swap the rendered roles and bindings for those of Phalanx's chart (same names)."""
    for manifest in controller_rbac():
        if manifest["kind"] != "ServiceAccount":
            namespace = manifest["metadata"].get("namespace")
            assert sandbox.delete(manifest["kind"], manifest["metadata"]["name"], namespace)
    for manifest in yaml.safe_load_all(PHALANX_RBAC.read_text()):
        if manifest["kind"] != "ServiceAccount":
            sandbox.apply(manifest, field_manager="admin")


# The grants asked about


def test_the_check_asks_about_every_grant_of_the_rendered_rbac() -> None:
    """One source: the grants are those of rbac.yaml as `nublado render controller` prints it."""
    assert rendered_grants([], CONTROLLER_NAMESPACE) == grants_of(controller_rbac())
    assert len(rendered_grants([], CONTROLLER_NAMESPACE)) == 70


@pytest.mark.parametrize(
    ("grant", "text", "spec"),
    [
        (
            Grant("patch", "", "pods"),
            "patch pods cluster-wide",
            {"resourceAttributes": {"verb": "patch", "resource": "pods"}},
        ),
        (
            Grant("create", "coordination.k8s.io", "leases", "nublado"),
            "create leases.coordination.k8s.io in namespace nublado",
            {
                "resourceAttributes": {
                    "verb": "create",
                    "group": "coordination.k8s.io",
                    "resource": "leases",
                    "namespace": "nublado",
                }
            },
        ),
        (
            Grant("get", "", "pods/log", "nublado", "one"),
            "get pods/log one in namespace nublado",
            {
                "resourceAttributes": {
                    "verb": "get",
                    "resource": "pods",
                    "subresource": "log",
                    "namespace": "nublado",
                    "name": "one",
                }
            },
        ),
        (
            Grant("get", "", "", url="/metrics"),
            "get /metrics",
            {"nonResourceAttributes": {"verb": "get", "path": "/metrics"}},
        ),
    ],
)
def test_each_grant_is_one_review(grant: Grant, text: str, spec: dict[str, Any]) -> None:
    assert (str(grant), grant.review_spec()) == (text, spec)


# The check itself


async def test_the_rendered_rbac_passes(
    client: KubernetesClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    mark = len(sandbox.requests)
    with caplog.at_level(logging.INFO, logger="nublado.permissions"):
        await check_permissions(client, [], CONTROLLER_NAMESPACE)

    assert [r.message for r in caplog.records] == [
        "Permissions checked: all 70 grants of the controller's RBAC are held"
    ]
    sent = sandbox.requests[mark:]
    assert len(sent) == 70
    assert {(r.method, r.target) for r in sent} == {("POST", REVIEWS)}


async def test_phalanx_rbac_lacks_these_grants(
    client: KubernetesClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    phalanx_rbac(sandbox)

    with pytest.raises(MissingPermissionsError) as caught:
        await check_permissions(client, [], CONTROLLER_NAMESPACE)

    assert [str(g) for g in caught.value.missing] == PHALANX_LACKS
    assert f"nublado: error: {caught.value}" == PHALANX_LINE
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("ERROR", "Missing Kubernetes permissions: " + ", ".join(PHALANX_LACKS))
    ]


@pytest.mark.parametrize(
    ("status", "warning"),
    [
        (404, "Permissions not checked: the API server does not serve SelfSubjectAccessReview"),
        (403, "Permissions not checked: injected fault: 403 Forbidden (403 Forbidden)"),
    ],
)
async def test_a_check_that_cannot_be_made_is_warned_about_once(
    client: KubernetesClient,
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    status: int,
    warning: str,
) -> None:
    phalanx_rbac(sandbox)  # it would fail: the warning is all that stands
    sandbox.inject_fault("POST", REVIEWS, status=status, count=None)

    await check_permissions(client, [], CONTROLLER_NAMESPACE)

    assert [(r.levelname, r.message) for r in caplog.records] == [("WARNING", warning)]


# nublado serve and nublado daemon


@pytest.fixture
def site(
    sandbox: Sandbox, controller_token: str, controller_metadata: ControllerMetadata, tmp_path: Path
) -> tuple[Path, Path]:
    """The production configuration and a kubeconfig of the controller's ServiceAccount."""
    metadata = tmp_path / "podinfo"
    metadata.mkdir()
    for field in ("name", "namespace", "uid"):
        (metadata / field).write_text(getattr(controller_metadata, field) + "\n")
    config = yaml.safe_load((EXAMPLES / "config.yaml").read_text())
    config.update(logProfile="production", logLevel="INFO", metadataPath=str(metadata))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "cluster.yaml", token=controller_token)
    return path, kubeconfig


def environment() -> dict[str, str]:
    """This checkout importable, and no KUBECONFIG or NUBLADO_ setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "NUBLADO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nublado(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nublado", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment(), **(env or {})},
    )


async def test_serve_under_phalanx_rbac_exits_2_naming_what_is_missing(
    site: tuple[Path, Path], sandbox: Sandbox
) -> None:
    config, kubeconfig = site
    phalanx_rbac(sandbox)
    mark = len(sandbox.requests)

    result = await asyncio.to_thread(
        nublado, "serve", "--config", str(config), "--kubeconfig", str(kubeconfig),
        "--host", "127.0.0.1", "--port", str(free_port()),
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == PHALANX_LINE
    logged = [json.loads(line) for line in lines[:-1]]
    assert [(e["level"], e["event"]) for e in logged if e["level"] == "error"] == [
        ("error", "Missing Kubernetes permissions: " + ", ".join(PHALANX_LACKS))
    ]
    assert "Traceback" not in result.stderr
    # Nothing was read or applied: the reviews were the only requests.
    assert {(r.method, r.target) for r in sandbox.requests[mark:]} == {("POST", REVIEWS)}


async def test_the_daemon_under_phalanx_rbac_exits_2_and_the_check_can_be_skipped(
    site: tuple[Path, Path], sandbox: Sandbox
) -> None:
    config, kubeconfig = site
    phalanx_rbac(sandbox)
    args = ("daemon", "--config", str(config), "--kubeconfig", str(kubeconfig))

    checked = await asyncio.to_thread(nublado, *args, "--once", "lab-reconcile")
    skipped = await asyncio.to_thread(
        nublado,
        *args,
        "--once",
        "lab-reconcile",
        env={"NUBLADO_SKIP_PERMISSION_CHECK": "true"},
    )

    assert (checked.returncode, checked.stderr.splitlines()[-1]) == (2, PHALANX_LINE)
    # Skipped, it starts, and meets the first 403 of Phalanx's RBAC instead.
    assert skipped.stderr.splitlines()[-1].startswith("nublado: error: cannot read the labs: ")
    assert "is forbidden" in skipped.stderr.splitlines()[-1]


async def test_asking_is_granted_by_kubes_bootstrap_policy_not_by_our_rbac(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    """The audit's view: the reviews are the controller's uses, but of system:basic-user's grant.

    tests/api/test_least_privilege.py judges the grants of rbac.yaml; asking
    is granted to every authenticated user by kube's bootstrap policy, so
    rbac.yaml must not grant it (it would be a grant of ours no test needs).
    """
    await check_permissions(client, [], CONTROLLER_NAMESPACE)
    status = await client.review_access(
        {
            "resourceAttributes": {
                "verb": "create",
                "group": "authorization.k8s.io",
                "resource": "selfsubjectaccessreviews",
            }
        }
    )

    assert not [g for g in rendered_grants([], CONTROLLER_NAMESPACE) if "authorization" in g.group]
    assert USAGE.uses(CONTROLLER_USER) >= {
        Use("create", "authorization.k8s.io", "selfsubjectaccessreviews")
    }
    assert status == {
        "allowed": True,
        "reason": 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole'
        ' "system:basic-user" to Group "system:authenticated"',
    }


def render_rbac_only(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["render", "controller", "--config", str(EXAMPLES / "config.yaml"),
                     "--rbac-only", "-o", "json", *args])  # fmt: skip
    assert code == 0
    items: list[dict[str, Any]] = json.loads(out.getvalue())["items"]
    return items


async def test_rbac_only_under_another_name_adds_what_phalanx_lacks(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    """Applied beside the chart's RBAC, the extra roles make the check pass; the chart's stay."""
    phalanx_rbac(sandbox)
    extra = render_rbac_only("--name", "nublado-controller-extra")
    for manifest in extra:
        sandbox.apply(manifest, field_manager="admin")

    await check_permissions(client, [], CONTROLLER_NAMESPACE)

    account = {"kind": "ServiceAccount", "name": CONTROLLER_ACCOUNT, "namespace": "nublado"}
    assert [(m["kind"], m["metadata"]["name"]) for m in extra] == [
        ("ClusterRole", "nublado-controller-extra"),
        ("ClusterRoleBinding", "nublado-controller-extra"),
        ("Role", "nublado-controller-extra"),
        ("RoleBinding", "nublado-controller-extra"),
    ]
    assert all(m["subjects"] == [account] for m in extra if m["kind"].endswith("Binding"))
    assert all(m["roleRef"]["name"] == "nublado-controller-extra" for m in extra if "roleRef" in m)
    assert grants_of(extra) == rendered_grants([], CONTROLLER_NAMESPACE)
    chart = sandbox.get("ClusterRole", "nublado-controller")
    assert chart is not None and "patch" not in str(chart["rules"])


def test_rbac_only_without_a_name_is_the_controller_sets_rbac() -> None:
    rbac = [m for m in controller_rbac() if m["kind"] != "ServiceAccount"]

    assert render_rbac_only() == rbac


def test_the_fixture_is_phalanxs_chart_for_the_controllers_account() -> None:
    manifests = list(yaml.safe_load_all(PHALANX_RBAC.read_text()))

    assert [m["kind"] for m in manifests] == [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ]
    assert manifests[0]["metadata"] == {"name": CONTROLLER_ACCOUNT, "namespace": "nublado"}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("lab", "--rbac-only"), "nublado: error: --rbac-only: only with the controller set"),
        (("controller", "--name", "extra"), "nublado: error: --name: only with --rbac-only"),
        (
            ("controller", "--rbac-only", "--name", "Extra"),
            "nublado: error: --name Extra: must consist of lower case alphanumeric characters,"
            " '-' or '.', and must start and end with an alphanumeric character",
        ),
    ],
)
def test_rbac_only_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], line: str) -> None:
    result = nublado("render", *args, "--config", str(EXAMPLES / "config.yaml"))

    assert (result.returncode, result.stderr, result.stdout) == (2, line + "\n", "")


def test_the_readme_table_is_what_phalanx_lacks() -> None:
    """README's table of Phalanx's missing grants (Least privilege) says what the check finds."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- phalanx-lacks:", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines()[3:]]
    listed = set()
    for where, resources, verbs in rows:
        scope = "cluster-wide" if where.strip() == "cluster" else "in namespace nublado"
        for resource in resources.split(","):
            for verb in verbs.split(","):
                listed.add(f"{verb.strip()} {resource.strip()} {scope}")

    assert listed == set(PHALANX_LACKS)
    assert PHALANX_LINE in text
