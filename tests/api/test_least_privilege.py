"""Least privilege, proven: the controller's rendered RBAC grants what the tests use, no more.

Every API and daemon test runs the controller as its ServiceAccount
(`controller_identity`), so a request the RBAC does not allow fails that
test. `test_every_granted_verb_was_used` is the other half: run last by the
`least_privilege` plugin, it fails when a rendered grant was never used by
a whole run of tests/api and tests/daemon (and skips a partial run, where
an unused grant may only mean a test did not run).
"""

from __future__ import annotations

import pytest
from least_privilege import (
    CONTROLLER_NAMESPACE,
    CONTROLLER_USER,
    USAGE,
    Grant,
    controller_rbac,
    rendered_grants,
    run_state,
    unused_grants,
)

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import ForbiddenError
from nublado.sandbox.rbac import Use
from nublado.sandbox.server import Sandbox


def test_every_granted_verb_was_used() -> None:
    reason = run_state.whole()
    if reason:
        pytest.skip(f"the audit judges only a whole run of tests/api and tests/daemon: {reason}")
    uses = USAGE.uses(CONTROLLER_USER)
    problems = unused_grants(rendered_grants(controller_rbac()), uses)

    assert not problems, (
        "templates/controller/rbac.yaml grants more than the API and daemon tests used:\n  "
        + "\n  ".join(problems)
        + "\n(NUBLADO_RBAC_USAGE=FILE pytest tests/api tests/daemon writes what they used)"
    )


def test_the_rendered_rbac_binds_the_rendered_service_account() -> None:
    manifests = {(m["kind"], m["metadata"].get("namespace", "")): m for m in controller_rbac()}

    assert sorted(manifests) == [
        ("ClusterRole", ""),
        ("ClusterRoleBinding", ""),
        ("Role", CONTROLLER_NAMESPACE),
        ("RoleBinding", CONTROLLER_NAMESPACE),
        ("ServiceAccount", CONTROLLER_NAMESPACE),
    ]
    account = {"kind": "ServiceAccount", "name": "nublado-controller", "namespace": "nublado"}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        binding = manifests[(kind, "" if kind == "ClusterRoleBinding" else CONTROLLER_NAMESPACE)]
        assert binding["subjects"] == [account]
        assert binding["roleRef"]["name"] == "nublado-controller"


async def test_a_request_the_rbac_does_not_allow_fails(client: KubernetesClient) -> None:
    # The controller never writes Nodes: the sandbox refuses as kube-apiserver does.
    with pytest.raises(ForbiddenError) as caught:
        await client.delete("Node", "node1")

    assert caught.value.args[0] == (
        'nodes "node1" is forbidden: User "system:serviceaccount:nublado:nublado-controller"'
        ' cannot delete resource "nodes" in API group "" at the cluster scope'
    )
    assert caught.value.details == {"name": "node1", "kind": "nodes"}


async def test_setup_as_admin_is_not_counted_as_the_controllers_use(
    sandbox: Sandbox, admin: KubernetesClient
) -> None:
    before = USAGE.uses(CONTROLLER_USER)
    await admin.list("Node")

    assert USAGE.uses(CONTROLLER_USER) == before
    assert Use("list", "", "nodes") in USAGE.uses("sandbox-admin")


@pytest.mark.parametrize(
    ("grants", "uses", "expected"),
    [
        (
            [Grant("get", "", "pods")],
            {Use("get", "", "pods", "userlabs-a")},
            [],
        ),
        (
            [Grant("delete", "", "pods")],
            {Use("get", "", "pods", "userlabs-a")},
            ["delete pods (core) cluster-wide (ClusterRole): no test used it"],
        ),
        (
            [Grant("*", "batch", "jobs")],
            {Use("get", "batch", "jobs", "userlabs-a")},
            [
                "* jobs (batch) cluster-wide (ClusterRole):"
                " a wildcard grants more than any test can use"
            ],
        ),
        (
            [Grant("get", "", "secrets")],
            {Use("get", "", "secrets", "nublado")},
            [
                "get secrets (core) cluster-wide (ClusterRole):"
                " used only in nublado, belongs in the Role"
            ],
        ),
        (
            [Grant("get", "", "secrets", "nublado")],
            {Use("get", "", "secrets", "userlabs-a")},
            ["get secrets (core) in nublado (Role): no test used it"],
        ),
        (
            [Grant("list", "", "nodes")],
            {Use("list", "", "nodes")},
            [],
        ),
        (
            [Grant("list", "", "pods"), Grant("list", "", "pods", "nublado")],
            {Use("list", "", "pods", "nublado"), Use("list", "", "pods", "userlabs-a")},
            ["list pods (core) in nublado (Role): the ClusterRole grants it already"],
        ),
    ],
)
def test_the_audit_names_each_grant_beyond_the_uses(
    grants: list[Grant], uses: set[Use], expected: list[str]
) -> None:
    assert unused_grants(grants, uses) == expected
