"""The controller runs as its rendered ServiceAccount in the API and daemon tests; the audit.

In tests/api and tests/daemon (their conftests import `controller_identity`'s
fixtures) the sandbox runs in RBAC mode: the controller's RBAC
(templates/controller/rbac.yaml) is rendered and applied as admin with its
ServiceAccount, and the ``client`` every controller component is built on
carries that ServiceAccount's token. A request the rendered RBAC does not
allow fails with the sandbox's 403, so it fails a test. Test setup
(namespaces, source Secrets, nodes, objects a test plants) uses ``admin``
(system:masters).

Every request RBAC allowed the controller is recorded in one session-wide
`UsageLog`. `test_every_granted_verb_was_used` (tests/api/test_least_privilege.py)
compares it with the rendered rules; this plugin moves that test to the end
of the run, whatever order pytest-randomly chose, and tells it whether the
run was whole (every test of tests/api and tests/daemon collected, none
deselected, all finished, none failed): only then can an unused grant be
told from a test that did not run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from nublado.cli import main
from nublado.sandbox.kinds import KINDS
from nublado.sandbox.rbac import UsageLog, Use
from nublado.sandbox.server import Sandbox

__all__ = [
    "AUDIT_TEST",
    "CONTROLLER_ACCOUNT",
    "CONTROLLER_NAMESPACE",
    "CONTROLLER_USER",
    "USAGE",
    "Grant",
    "controller_rbac",
    "grant_controller",
    "rendered_grants",
    "run_state",
    "unused_grants",
]

TESTS = Path(__file__).resolve().parent
AUDITED = ("api", "daemon")
"""The suites that run the controller as its ServiceAccount (folders under tests/)."""
AUDIT_TEST = "test_least_privilege.py::test_every_granted_verb_was_used"

CONTROLLER_ACCOUNT = "nublado-controller"
CONTROLLER_NAMESPACE = "nublado"
CONTROLLER_USER = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{CONTROLLER_ACCOUNT}"

USAGE = UsageLog()
"""What RBAC allowed each user in this test session, across every RBAC-mode sandbox."""

_CLUSTER_SCOPED = frozenset(k.plural for k in KINDS if not k.namespaced)


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
"""The controller's identity among the objects of ``nublado render controller``."""

EXAMPLE_CONFIG = TESTS.parent / "examples" / "config.yaml"


def controller_rbac(namespace: str = CONTROLLER_NAMESPACE) -> list[dict[str, Any]]:
    """The ServiceAccount and RBAC of ``nublado render controller`` for ``namespace``.

    Rendered through the command a site runs, so what the suites prove is
    what a site deploys.
    """
    args = ["render", "controller", "--config", str(EXAMPLE_CONFIG), "--output", "json"]
    args += ["--base-url", "https://rsp.example.com", "--namespace", namespace]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    assert code == 0, f"nublado {' '.join(args)} exited {code}"
    return [item for item in json.loads(out.getvalue())["items"] if item["kind"] in RBAC_KINDS]


def grant_controller(sandbox: Sandbox, namespace: str = CONTROLLER_NAMESPACE) -> str:
    """Deploy the controller's identity as admin (namespace, ServiceAccount, RBAC); its token.

    The namespace is there before the controller, as when it is deployed.
    """
    sandbox.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for manifest in controller_rbac(namespace):
        sandbox.apply(manifest, field_manager="admin")
    return sandbox.request_token(namespace, CONTROLLER_ACCOUNT)


# The audit


@dataclasses.dataclass(frozen=True, order=True)
class Grant:
    """One verb on one resource that the rendered RBAC grants, where it grants it."""

    verb: str
    api_group: str
    resource: str
    namespace: str = ""  # a Role's namespace; empty for the ClusterRole (everywhere)

    def __str__(self) -> str:
        where = f"in {self.namespace} (Role)" if self.namespace else "cluster-wide (ClusterRole)"
        return f"{self.verb} {self.resource} ({self.api_group or 'core'}) {where}"


def rendered_grants(manifests: list[dict[str, Any]]) -> list[Grant]:
    """Every (verb, group, resource) the roles grant; a wildcard is a grant of its own."""
    grants: set[Grant] = set()
    for manifest in manifests:
        if manifest["kind"] not in ("Role", "ClusterRole"):
            continue
        namespace = manifest["metadata"].get("namespace", "")
        for rule in manifest.get("rules", []):
            for verb in rule.get("verbs", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        grants.add(Grant(verb, group, resource, namespace))
    return sorted(grants)


def _serves(grant: Grant, use: Use) -> bool:
    return (
        grant.verb == use.verb
        and grant.api_group == use.api_group
        and grant.resource == use.resource
        and (not grant.namespace or grant.namespace == use.namespace)
    )


def unused_grants(
    grants: list[Grant], uses: set[Use], home: str = CONTROLLER_NAMESPACE
) -> list[str]:
    """What the rules grant beyond the uses, one line each.

    A grant no use needed; a wildcard; a ClusterRole grant on a namespaced
    resource that was used only in the controller's own namespace (it
    belongs in the Role); and a Role grant the ClusterRole makes anyway.
    """
    problems: list[str] = []
    everywhere = {(g.verb, g.api_group, g.resource) for g in grants if not g.namespace}
    for grant in grants:
        if "*" in (grant.verb, grant.api_group, grant.resource):
            problems.append(f"{grant}: a wildcard grants more than any test can use")
            continue
        if grant.namespace and (grant.verb, grant.api_group, grant.resource) in everywhere:
            problems.append(f"{grant}: the ClusterRole grants it already")
            continue
        served = [u for u in uses if _serves(grant, u)]
        if not served:
            problems.append(f"{grant}: no test used it")
            continue
        base = grant.resource.split("/", 1)[0]
        namespaced = not grant.namespace and base not in _CLUSTER_SCOPED
        if namespaced and all(u.namespace == home for u in served):
            problems.append(f"{grant}: used only in {home}, belongs in the Role")
    return problems


@dataclasses.dataclass
class _RunState:
    """What this session collected and ran of the audited suites."""

    collected: set[str] = dataclasses.field(default_factory=set)
    deselected: bool = False
    finished: set[str] = dataclasses.field(default_factory=set)
    failed: bool = False
    narrowed: bool = False  # node ids named on the command line
    touched: bool = False  # a test of tests/api or tests/daemon (the audit included) collected

    def whole(self) -> str:
        """Why the run is not whole, or ``""`` when the audit may judge it."""
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return "each xdist worker sees only its share of the requests"
        if self.narrowed:
            return "the command line names single tests"
        if self.deselected:
            return "tests of tests/api or tests/daemon were deselected"
        files = {p for suite in AUDITED for p in (TESTS / suite).glob("test_*.py")}
        ran = {TESTS.parent / nodeid.split("::", 1)[0] for nodeid in self.collected}
        missing = sorted(str(f.relative_to(TESTS)) for f in files - ran)
        if len(missing) > 3:
            return f"{len(missing)} of {len(files)} test files not collected ({missing[0]}, ...)"
        if missing:
            return f"not collected: {', '.join(missing)}"
        pending = self.collected - self.finished
        if pending:
            return f"{len(pending)} audited tests did not run to the end"
        if self.failed:
            return "an audited test failed"
        return ""


run_state = _RunState()


def _audited(nodeid: str) -> bool:
    return nodeid.startswith(tuple(f"tests/{suite}/" for suite in AUDITED)) and not nodeid.endswith(
        AUDIT_TEST
    )


def pytest_configure(config: pytest.Config) -> None:
    run_state.narrowed = any("::" in str(arg) for arg in config.args)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(_audited(item.nodeid) for item in items):
        run_state.deselected = True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the audit last, after whatever order another plugin gave the tests."""
    audit = [item for item in items if item.nodeid.endswith(AUDIT_TEST)]
    for item in audit:
        items.remove(item)
        items.append(item)


def pytest_collection_finish(session: pytest.Session) -> None:
    run_state.collected = {item.nodeid for item in session.items if _audited(item.nodeid)}
    suites = tuple(f"tests/{suite}/" for suite in AUDITED)
    run_state.touched = any(item.nodeid.startswith(suites) for item in session.items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _audited(report.nodeid):
        return
    if report.failed:
        run_state.failed = True
    if report.when == "teardown":
        run_state.finished.add(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say so when a run of audited tests was not judged: a skip alone is easily missed."""
    if not run_state.touched:
        return
    reason = run_state.whole()
    if reason:
        terminalreporter.write_line(
            f"least-privilege audit not judged (it judges only a whole run of tests/api "
            f"and tests/daemon): {reason}",
            yellow=True,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With ``NUBLADO_RBAC_USAGE=FILE``, write what the controller was allowed, one use a line.

    For whoever tightens or widens templates/controller/rbac.yaml.
    """
    target = os.environ.get("NUBLADO_RBAC_USAGE")
    if target:
        lines = [str(use) for use in sorted(USAGE.uses(CONTROLLER_USER))]
        Path(target).write_text("".join(f"{line}\n" for line in lines))
