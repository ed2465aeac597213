"""SelfSubjectAccessReview in the sandbox: RBAC's answer for the asker, kube's validation."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox, SandboxSettings

RBAC = "rbac.authorization.k8s.io"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
ROBOT = {"kind": "ServiceAccount", "name": "robot", "namespace": "a"}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(rbac=True)


def _client(sandbox: Sandbox, token: str) -> httpx.Client:
    assert sandbox.url is not None
    return httpx.Client(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture
def robot(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """The ServiceAccount a/robot: may list pods everywhere and create Leases in ``a``."""
    sandbox.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
    sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "robot", "namespace": "a"},
        }
    )
    rules = {
        "ClusterRole": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        "Role": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}
        ],
    }
    for kind, namespace in (("ClusterRole", ""), ("Role", "a")):
        metadata: dict[str, Any] = {"name": "robot-role"}
        if namespace:
            metadata["namespace"] = namespace
        sandbox.apply(
            {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": metadata, "rules": rules[kind]}
        )
        binding = {**metadata, "name": "robot-binding"}
        sandbox.apply(
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": f"{kind}Binding",
                "metadata": binding,
                "roleRef": {"apiGroup": RBAC, "kind": kind, "name": "robot-role"},
                "subjects": [ROBOT],
            }
        )
    with _client(sandbox, sandbox.request_token("a", "robot")) as client:
        yield client


def review(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("attributes", "status"),
    [
        (
            {"resourceAttributes": {"verb": "list", "resource": "pods"}},
            {
                "allowed": True,
                "reason": 'RBAC: allowed by ClusterRoleBinding "robot-binding" of ClusterRole'
                ' "robot-role" to ServiceAccount "robot/a"',
            },
        ),
        (
            {
                "resourceAttributes": {
                    "verb": "create",
                    "group": "coordination.k8s.io",
                    "resource": "leases",
                    "namespace": "a",
                }
            },
            {
                "allowed": True,
                "reason": 'RBAC: allowed by RoleBinding "robot-binding/a" of Role "robot-role"'
                ' to ServiceAccount "robot/a"',
            },
        ),
        (
            {"resourceAttributes": {"verb": "patch", "resource": "pods", "namespace": "a"}},
            {"allowed": False},
        ),
        (
            # The Role grants Leases in a only: asked cluster-wide, the answer is no.
            {
                "resourceAttributes": {
                    "verb": "create",
                    "group": "coordination.k8s.io",
                    "resource": "leases",
                }
            },
            {"allowed": False},
        ),
        (
            {"nonResourceAttributes": {"verb": "get", "path": "/healthz"}},
            {
                "allowed": True,
                "reason": 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole'
                ' "system:discovery" to Group "system:authenticated"',
            },
        ),
        (
            {"nonResourceAttributes": {"verb": "get", "path": "/metrics"}},
            {"allowed": False},
        ),
    ],
)
def test_the_review_is_rbacs_answer_for_the_asker(
    robot: httpx.Client, attributes: dict[str, Any], status: dict[str, Any]
) -> None:
    answer = robot.post(REVIEWS, json=review(**attributes))

    assert answer.status_code == 201, answer.text
    assert answer.json() == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": attributes,
        "status": status,
    }


def test_asking_needs_only_the_bootstrap_policys_basic_user_role(sandbox: Sandbox) -> None:
    """A ServiceAccount no binding names may still ask (system:basic-user), and is told no."""
    sandbox.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
    sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "nobody", "namespace": "a"},
        }
    )
    with _client(sandbox, sandbox.request_token("a", "nobody")) as client:
        answer = client.post(
            REVIEWS, json=review(resourceAttributes={"verb": "get", "resource": "pods"})
        )
        rules = client.post(
            REVIEWS,
            json=review(resourceAttributes={
                "verb": "create", "group": "authorization.k8s.io",
                "resource": "selfsubjectaccessreviews",
            }),
        )  # fmt: skip

    assert answer.status_code == 201
    assert answer.json()["status"] == {"allowed": False}
    assert rules.json()["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole'
        ' "system:basic-user" to Group "system:authenticated"',
    }
    basic = sandbox.get("ClusterRoleBinding", "system:basic-user")
    assert basic is not None
    assert basic["subjects"] == [
        {"apiGroup": RBAC, "kind": "Group", "name": "system:authenticated"}
    ]


def test_the_admin_is_allowed_without_a_reason(sandbox: Sandbox) -> None:
    """system:masters bypasses RBAC; kube's privileged-group authorizer gives no reason."""
    with _client(sandbox, sandbox.admin_token) as admin:
        answer = admin.post(
            REVIEWS, json=review(resourceAttributes={"verb": "delete", "resource": "nodes"})
        )

    assert answer.json()["status"] == {"allowed": True}


def test_anonymous_review_is_unauthorized(sandbox: Sandbox) -> None:
    assert sandbox.url is not None
    answer = httpx.post(sandbox.url + REVIEWS, json=review(resourceAttributes={"verb": "get"}))

    assert answer.status_code == 401


INVALID = 'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            review(),
            "spec.resourceAttributes",
            'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes'
            " must be specified",
        ),
        (
            review(
                resourceAttributes={"verb": "get", "resource": "pods"},
                nonResourceAttributes={"verb": "get", "path": "/healthz"},
            ),
            "spec.nonResourceAttributes",
            'Invalid value: authorization.NonResourceAttributes{Path:"/healthz", Verb:"get"}:'
            " cannot be specified in combination with resourceAttributes",
        ),
        (
            {**review(resourceAttributes={"verb": "get"}), "metadata": {"name": "x"}},
            "metadata",
            'Invalid value: {"name":"x"}: must be empty',
        ),
    ],
)
def test_an_invalid_review_is_refused_as_kube_refuses_it(
    robot: httpx.Client, body: dict[str, Any], field: str, message: str
) -> None:
    answer = robot.post(REVIEWS, json=body)

    assert answer.status_code == 422
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{INVALID}{field}: {message}",
        "reason": "Invalid",
        "details": {
            "group": "authorization.k8s.io",
            "kind": "SelfSubjectAccessReview",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
        "code": 422,
    }


def test_reviews_are_only_created(robot: httpx.Client, sandbox: Sandbox) -> None:
    with _client(sandbox, sandbox.admin_token) as admin:
        listed = admin.get(REVIEWS)
    denied = robot.get(REVIEWS)

    assert (listed.status_code, listed.json()["reason"]) == (405, "MethodNotAllowed")
    assert denied.status_code == 403  # RBAC answers first: nobody is granted list


def test_discovery_serves_the_authorization_group(robot: httpx.Client) -> None:
    groups = robot.get("/apis").json()["groups"]
    group = robot.get("/apis/authorization.k8s.io").json()
    resources = robot.get("/apis/authorization.k8s.io/v1").json()

    version = {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}
    authorization = next(g for g in groups if g["name"] == "authorization.k8s.io")
    assert authorization["versions"] == [version]
    assert group["preferredVersion"] == {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}
    assert resources["resources"] == [
        {
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
        }
    ]


def test_without_rbac_mode_everything_is_allowed(sandbox: Sandbox) -> None:
    sandbox.reset(dataclasses.replace(sandbox.cluster.settings, rbac=False))
    assert sandbox.url is not None

    answer = httpx.post(
        sandbox.url + REVIEWS,
        json=review(resourceAttributes={"verb": "delete", "resource": "nodes"}),
    )

    assert answer.status_code == 201
    assert answer.json()["status"] == {"allowed": True}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_auth_can_i_asks_the_sandbox(tmp_path: Path) -> None:
    """kubectl sends the review as protobuf and answers with its exit status (https: kubectl
    sends a token only over TLS, so this runs ``nublado sandbox --rbac``)."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "nublado", "sandbox", "--rbac", "--port", "0",
         "--kubeconfig", str(kubeconfig), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c"),
             *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("sandbox listening on https://")
        kubectl("create", "serviceaccount", "robot")
        roles = tmp_path / "roles.yaml"
        roles.write_text(
            f"apiVersion: {RBAC}/v1\nkind: ClusterRole\nmetadata: {{name: pod-reader}}\n"
            "rules: [{apiGroups: [''], resources: [pods], verbs: [list]}]\n---\n"
            f"apiVersion: {RBAC}/v1\nkind: ClusterRoleBinding\nmetadata: {{name: pod-reader}}\n"
            f"roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: pod-reader}}\n"
            "subjects: [{kind: ServiceAccount, name: robot, namespace: default}]\n"
        )
        assert kubectl("create", "-f", str(roles)).returncode == 0
        token = kubectl("create", "token", "robot").stdout.strip()
        answers = [
            kubectl("--token", token, "auth", "can-i", *question).stdout.strip()
            for question in (("list", "pods", "-A"), ("patch", "pods"), ("get", "/healthz"))
        ]
    finally:
        process.terminate()
        process.communicate(timeout=10)

    assert answers == ["yes", "no", "yes"]
