"""The sandbox's RBAC mode: bearer tokens, TokenRequest, the RBAC authorizer, kube's answers."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import ForbiddenError
from nublado.sandbox.rbac import RequestAttributes, request_attributes
from nublado.sandbox.server import Sandbox, SandboxSettings, write_kubeconfig

RBAC = "rbac.authorization.k8s.io"
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(rbac=True)


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[httpx.Client]:
    assert sandbox.url is not None
    headers = {"Authorization": f"Bearer {sandbox.admin_token}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=30) as client:
        for name in ("a", "b"):
            client.post("/api/v1/namespaces", json={"metadata": {"name": name}})
        yield client


def account(admin: httpx.Client, namespace: str, name: str) -> httpx.Client:
    """A client with a new ServiceAccount's token (from the TokenRequest subresource)."""
    created = admin.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", json={"metadata": {"name": name}}
    )
    assert created.status_code == 201, created.text
    answer = admin.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    assert answer.status_code == 201, answer.text
    token = answer.json()["status"]["token"]
    return httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": metadata, "rules": rules}


def binding(
    kind: str, name: str, role_kind: str, subjects: list[dict[str, Any]], namespace: str = ""
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": name},
        "subjects": subjects,
    }


def post(client: httpx.Client, manifest: dict[str, Any]) -> httpx.Response:
    namespace = manifest["metadata"].get("namespace")
    plural = {"Role": "roles", "ClusterRole": "clusterroles"}.get(manifest["kind"])
    plural = plural or manifest["kind"].lower() + "s"
    where = f"namespaces/{namespace}/" if namespace else ""
    return client.post(f"/apis/{RBAC}/v1/{where}{plural}", json=manifest)


@pytest.fixture
def robot(admin: httpx.Client) -> Iterator[httpx.Client]:
    """A client as the ServiceAccount a/robot, which no role names yet."""
    with account(admin, "a", "robot") as client:
        yield client


SA_A = {"kind": "ServiceAccount", "name": "robot", "namespace": "a"}
ROBOT = "system:serviceaccount:a:robot"


# Request attributes, as kube-apiserver's RequestInfoFactory derives them


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/pods", {}, ("list", "", "a", "pods", "", "")),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            {"watch": "true"},
            ("watch", "", "a", "pods", "", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            {"watch": "false"},
            ("list", "", "a", "pods", "", ""),
        ),
        ("GET", "/api/v1/pods", {"watch": "1"}, ("watch", "", "", "pods", "", "")),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            {"fieldSelector": "metadata.name=x"},
            ("list", "", "a", "pods", "", "x"),
        ),
        ("GET", "/api/v1/namespaces/a/pods/x", {}, ("get", "", "a", "pods", "", "x")),
        ("GET", "/api/v1/namespaces/a/pods/x/log", {}, ("get", "", "a", "pods", "log", "x")),
        (
            "PATCH",
            "/api/v1/namespaces/a/pods/x/status",
            {},
            ("patch", "", "a", "pods", "status", "x"),
        ),
        (
            "PATCH",
            "/apis/batch/v1/namespaces/a/jobs/j",
            {"dryRun": "All"},
            ("patch", "batch", "a", "jobs", "", "j"),
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
            {},
            ("update", "coordination.k8s.io", "a", "leases", "", "l"),
        ),
        ("POST", "/api/v1/namespaces/a/configmaps", {}, ("create", "", "a", "configmaps", "", "")),
        (
            "DELETE",
            "/api/v1/namespaces/a/configmaps/c",
            {},
            ("delete", "", "a", "configmaps", "", "c"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/configmaps",
            {},
            ("deletecollection", "", "a", "configmaps", "", ""),
        ),
        (
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/s/token",
            {},
            ("create", "", "a", "serviceaccounts", "token", "s"),
        ),
        # A namespace is in itself; its status and finalize are its subresources.
        ("GET", "/api/v1/namespaces/a", {}, ("get", "", "a", "namespaces", "", "a")),
        (
            "PUT",
            "/api/v1/namespaces/a/finalize",
            {},
            ("update", "", "a", "namespaces", "finalize", "a"),
        ),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "", "namespaces", "", "")),
        ("GET", "/api/v1/nodes/n", {}, ("get", "", "", "nodes", "", "n")),
    ],
)
def test_request_attributes_are_derived_as_kube_derives_them(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    found = request_attributes(method, path, query)

    assert found.resource_request
    assert (
        found.verb,
        found.api_group,
        found.namespace,
        found.resource,
        found.subresource,
        found.name,
    ) == expected


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis/batch/v1", "get"),
        ("GET", "/healthz", "get"),
        ("POST", "/version", "post"),
        ("GET", "/openapi/v3/api/v1", "get"),
    ],
)
def test_discovery_and_health_are_non_resource_urls(method: str, path: str, verb: str) -> None:
    assert request_attributes(method, path) == RequestAttributes(verb, path, False)


# Authentication


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/livez", 200),
        ("/readyz", 200),
        ("/version", 401),
        ("/api", 401),
        ("/api/v1/namespaces/a/pods", 401),
        ("/openapi/v3", 401),
    ],
)
def test_anonymous_requests_reach_only_the_health_checks(
    sandbox: Sandbox, path: str, status: int
) -> None:
    assert sandbox.url is not None
    response = httpx.get(sandbox.url + path)

    assert response.status_code == status
    if status == 401:
        assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize(
    "authorization", ["Bearer nope", "bearer nope", "Basic dXNlcjpwYXNz", "Bearer"]
)
def test_a_token_the_sandbox_did_not_issue_is_unauthorized(
    sandbox: Sandbox, authorization: str
) -> None:
    assert sandbox.url is not None
    response = httpx.get(f"{sandbox.url}/healthz", headers={"Authorization": authorization})

    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_without_rbac_mode_no_token_is_needed(served_sandbox: Sandbox) -> None:
    served_sandbox.reset()
    assert served_sandbox.url is not None

    assert httpx.get(f"{served_sandbox.url}/api/v1/namespaces").status_code == 200
    assert httpx.get(f"{served_sandbox.url}/api").status_code == 200


def test_token_request_answers_a_token_for_the_service_account(admin: httpx.Client) -> None:
    admin.post("/api/v1/namespaces/a/serviceaccounts", json={"metadata": {"name": "robot"}})

    answer = admin.post(
        "/api/v1/namespaces/a/serviceaccounts/robot/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"audiences": ["nublado"], "expirationSeconds": 600}},
    )  # fmt: skip

    assert answer.status_code == 201
    body = answer.json()
    assert (body["kind"], body["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
    assert body["metadata"] == {"name": "robot", "namespace": "a", "creationTimestamp": None}
    assert body["spec"]["audiences"] == ["nublado"]
    assert body["spec"]["expirationSeconds"] == 600
    assert body["status"]["token"]
    assert body["status"]["expirationTimestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("path", "spec", "status", "message"),
    [
        (
            "/api/v1/namespaces/a/serviceaccounts/ghost/token",
            {},
            404,
            'serviceaccounts "ghost" not found',
        ),
        (
            "/api/v1/namespaces/a/serviceaccounts/robot/token",
            {"expirationSeconds": 60},
            422,
            'TokenRequest.authentication.k8s.io "robot" is invalid: spec.expirationSeconds:'
            " Invalid value: 60: may not specify a duration less than 10 minutes",
        ),
    ],
)
def test_token_request_refusals(
    admin: httpx.Client, path: str, spec: dict[str, Any], status: int, message: str
) -> None:
    admin.post("/api/v1/namespaces/a/serviceaccounts", json={"metadata": {"name": "robot"}})

    answer = admin.post(path, json={"spec": spec})

    assert (answer.status_code, answer.json()["message"]) == (status, message)


def test_a_token_dies_with_its_service_account(admin: httpx.Client, robot: httpx.Client) -> None:
    assert robot.get("/api").status_code == 200  # discovery: every authenticated user

    admin.delete("/api/v1/namespaces/a/serviceaccounts/robot")
    admin.post("/api/v1/namespaces/a/serviceaccounts", json={"metadata": {"name": "robot"}})

    assert (robot.get("/api").status_code, robot.get("/api").json()) == (401, UNAUTHORIZED)


# Authorization


def test_a_service_account_without_roles_gets_kubes_403(
    admin: httpx.Client, robot: httpx.Client
) -> None:

    cases = {
        "/api/v1/namespaces/b/pods/x": (
            f'pods "x" is forbidden: User "{ROBOT}" cannot get resource "pods" in API group ""'
            ' in the namespace "b"',
            {"name": "x", "kind": "pods"},
        ),
        "/api/v1/namespaces/b/pods": (
            f'pods is forbidden: User "{ROBOT}" cannot list resource "pods" in API group ""'
            ' in the namespace "b"',
            {"kind": "pods"},
        ),
        "/api/v1/nodes": (
            f'nodes is forbidden: User "{ROBOT}" cannot list resource "nodes" in API group ""'
            " at the cluster scope",
            {"kind": "nodes"},
        ),
        "/apis/batch/v1/namespaces/b/jobs/j": (
            f'jobs.batch "j" is forbidden: User "{ROBOT}" cannot get resource "jobs" in API'
            ' group "batch" in the namespace "b"',
            {"name": "j", "group": "batch", "kind": "jobs"},
        ),
        "/api/v1/namespaces/b/pods/x/log": (
            f'pods "x" is forbidden: User "{ROBOT}" cannot get resource "pods/log" in API'
            ' group "" in the namespace "b"',
            {"name": "x", "kind": "pods"},
        ),
        "/metrics": (f'forbidden: User "{ROBOT}" cannot get path "/metrics"', {}),
    }
    for path, (message, details) in cases.items():
        answer = robot.get(path)
        assert answer.status_code == 403, path
        assert answer.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "Forbidden",
            "details": details,
            "code": 403,
        }


def test_a_role_binding_grants_only_in_its_namespace(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create"]}]
    assert post(admin, role("ClusterRole", "cm", rules)).status_code == 201
    # A RoleBinding in b may name a ClusterRole: it grants its rules in b only.
    assert post(admin, binding("RoleBinding", "cm", "ClusterRole", [SA_A], "b")).status_code == 201

    assert robot.get("/api/v1/namespaces/b/configmaps").status_code == 200
    assert robot.get("/api/v1/namespaces/a/configmaps").status_code == 403
    assert robot.get("/api/v1/configmaps").status_code == 403
    assert robot.get("/api/v1/namespaces/b/configmaps?watch=true").status_code == 403
    made = robot.post("/api/v1/namespaces/b/configmaps", json={"metadata": {"name": "c"}})
    assert made.status_code == 201


def test_a_role_binding_names_its_service_account_by_namespace(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]
    post(admin, role("Role", "s", rules, "a"))
    # No namespace in the subject: the binding's own (a).
    subject = {"kind": "ServiceAccount", "name": "robot"}
    post(admin, binding("RoleBinding", "s", "Role", [subject], "a"))

    assert robot.get("/api/v1/namespaces/a/secrets").status_code == 200


@pytest.mark.parametrize(
    ("rule", "path", "method", "allowed"),
    [
        # Subresources are resources of their own.
        (
            {"resources": ["pods"], "verbs": ["get"]},
            "/api/v1/namespaces/a/pods/x/log",
            "GET",
            False,
        ),
        (
            {"resources": ["pods/log"], "verbs": ["get"]},
            "/api/v1/namespaces/a/pods/x/log",
            "GET",
            True,
        ),
        (
            {"resources": ["*/status"], "verbs": ["patch"]},
            "/api/v1/namespaces/a/pods/x/status",
            "PATCH",
            True,
        ),
        (
            {"resources": ["pods"], "verbs": ["patch"]},
            "/api/v1/namespaces/a/pods/x/status",
            "PATCH",
            False,
        ),
        # resourceNames: that name only; a list has none (unless its field selector names one).
        (
            {"resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["c"]},
            "/api/v1/namespaces/a/configmaps/c",
            "GET",
            True,
        ),
        (
            {"resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["c"]},
            "/api/v1/namespaces/a/configmaps/d",
            "GET",
            False,
        ),
        (
            {"resources": ["configmaps"], "verbs": ["list"], "resourceNames": ["c"]},
            "/api/v1/namespaces/a/configmaps",
            "GET",
            False,
        ),
        (
            {"resources": ["configmaps"], "verbs": ["list"], "resourceNames": ["c"]},
            "/api/v1/namespaces/a/configmaps?fieldSelector=metadata.name%3Dc",
            "GET",
            True,
        ),
        ({"resources": ["*"], "verbs": ["*"]}, "/api/v1/namespaces/a/configmaps", "DELETE", True),
        # A dry run is still the verb; server-side apply is patch.
        (
            {"resources": ["configmaps"], "verbs": ["create"]},
            "/api/v1/namespaces/a/configmaps?dryRun=All",
            "POST",
            True,
        ),
        (
            {"resources": ["configmaps"], "verbs": ["create"]},
            "/api/v1/namespaces/a/configmaps/c?fieldManager=t",
            "PATCH",
            False,
        ),
    ],
)
def test_rules_match_verbs_resources_and_names(
    admin: httpx.Client,
    robot: httpx.Client,
    rule: dict[str, Any],
    path: str,
    method: str,
    allowed: bool,
) -> None:
    admin.post("/api/v1/namespaces/a/configmaps", json={"metadata": {"name": "c"}})
    post(admin, role("Role", "r", [{"apiGroups": [""], **rule}], "a"))
    post(admin, binding("RoleBinding", "r", "Role", [SA_A], "a"))
    headers = {"Content-Type": "application/apply-patch+yaml"} if method == "PATCH" else {}
    body = b"{}" if method in ("POST", "PATCH") else None
    if method == "POST":
        body = b'{"metadata": {"name": "n"}}'
        headers = {"Content-Type": "application/json"}

    answer = robot.request(method, path, content=body, headers=headers)

    assert (answer.status_code != 403) == allowed, answer.text


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        ({"kind": "Group", "name": "system:serviceaccounts:a"}, True),
        ({"kind": "Group", "name": "system:serviceaccounts"}, True),
        ({"kind": "Group", "name": "system:authenticated"}, True),
        ({"kind": "Group", "name": "system:serviceaccounts:b"}, False),
        ({"kind": "User", "name": ROBOT}, True),
        ({"kind": "ServiceAccount", "name": "robot", "namespace": "b"}, False),
    ],
)
def test_subjects_match_the_user_and_its_groups(
    admin: httpx.Client, robot: httpx.Client, subject: dict[str, str], allowed: bool
) -> None:
    post(
        admin,
        role("ClusterRole", "n", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]),
    )
    post(admin, binding("ClusterRoleBinding", "n", "ClusterRole", [subject]))

    assert (robot.get("/api/v1/nodes").status_code == 200) == allowed


def test_non_resource_urls_and_a_missing_role_in_the_reason(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    post(admin, role("ClusterRole", "m", [{"nonResourceURLs": ["/metrics*"], "verbs": ["get"]}]))
    post(admin, binding("ClusterRoleBinding", "m", "ClusterRole", [SA_A]))
    post(admin, binding("ClusterRoleBinding", "gone", "ClusterRole", [SA_A]))

    metrics = robot.get("/metrics")
    denied = robot.get("/api/v1/nodes")

    assert metrics.status_code != 403  # allowed: the sandbox has no such path (404)
    assert denied.json()["message"] == (
        f'nodes is forbidden: User "{ROBOT}" cannot list resource "nodes" in API group ""'
        f' at the cluster scope: RBAC: clusterrole.{RBAC} "gone" not found'
    )


async def test_the_client_carries_a_token(
    sandbox: Sandbox, admin: httpx.Client, robot: httpx.Client
) -> None:
    token = sandbox.request_token("a", "robot")
    assert sandbox.url is not None

    async with KubernetesClient.from_url(sandbox.url, token=token) as robot:
        with pytest.raises(ForbiddenError, match="cannot list resource"):
            await robot.list("Pod", "a")
    async with KubernetesClient.from_url(sandbox.url, token=sandbox.admin_token) as root:
        assert [p["metadata"]["name"] for p in await root.list("ServiceAccount", "a")] == [
            "default",
            "robot",
        ]


async def test_the_in_cluster_token_file_authenticates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a pod: token and CA files, https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT."""
    from kubernetes.aio.config import incluster_config

    box = Sandbox(SandboxSettings(rbac=True))
    box.create({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "robot", "namespace": "default"}})  # fmt: skip
    box.create(role("Role", "p", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
                    "default"))  # fmt: skip
    subject = {"kind": "ServiceAccount", "name": "robot", "namespace": "default"}
    box.create(binding("RoleBinding", "p", "Role", [subject], "default"))
    (tmp_path / "token").write_text(box.request_token("default", "robot"))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))

    async def list_pods() -> tuple[list[Any], str]:
        async with KubernetesClient.from_cluster() as kube:
            pods = await kube.list("Pod", "default")
            with pytest.raises(ForbiddenError, match="cannot list resource"):
                await kube.list("Pod", "kube-system")
        return pods, box.requests[-1].authorization

    with box.serve(tls=True) as url:
        assert box.certificate_authority is not None
        (tmp_path / "ca.crt").write_bytes(box.certificate_authority)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", url.rsplit(":", 1)[1])
        pods, authorization = await list_pods()

    assert pods == []
    # The package's loader sends "bearer <token>" (lower case); kube takes either case.
    assert authorization.startswith("bearer sa.")


# What the authorizer judges is what the handler serves


@pytest.mark.parametrize("dry_run", ["", "&dryRun=All"])
def test_an_apply_that_creates_needs_create_beside_patch(
    admin: httpx.Client, robot: httpx.Client, dry_run: str
) -> None:
    """kube-apiserver authorizes the create a server-side apply makes as ``create``."""
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]
    post(admin, role("Role", "patcher", rules, "a"))
    post(admin, binding("RoleBinding", "patcher", "Role", [SA_A], "a"))
    admin.post("/api/v1/namespaces/a/configmaps", json={"metadata": {"name": "there"}})

    def apply(name: str) -> httpx.Response:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"k": "v"}}  # fmt: skip
        return robot.patch(
            f"/api/v1/namespaces/a/configmaps/{name}?fieldManager=robot{dry_run}",
            json=body,
            headers={"content-type": "application/apply-patch+yaml"},
        )

    assert apply("there").status_code == 200
    refused = apply("new")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        'configmaps "new" is forbidden: User "system:serviceaccount:a:robot" cannot create'
        ' resource "configmaps" in API group "" in the namespace "a"'
    )
    assert admin.get("/api/v1/namespaces/a/configmaps/new").status_code == 404

    rules[0]["verbs"] = ["create", "patch"]
    admin.put("/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles/patcher",
              json=role("Role", "patcher", rules, "a"))  # fmt: skip
    assert apply("new").status_code == 201


def test_a_repeated_field_selector_cannot_widen_a_resource_names_grant(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cm1"],
              "verbs": ["get", "list", "watch"]}]  # fmt: skip
    post(admin, role("Role", "cm1", rules, "a"))
    post(admin, binding("RoleBinding", "cm1", "Role", [SA_A], "a"))
    for name in ("cm1", "cm2"):
        admin.post("/api/v1/namespaces/a/configmaps", json={"metadata": {"name": name}})

    answer = robot.get(
        "/api/v1/namespaces/a/configmaps"
        "?fieldSelector=metadata.name%3Dcm1&fieldSelector=metadata.name%3Dcm2"
    )

    assert answer.status_code == 200, answer.text
    assert [i["metadata"]["name"] for i in answer.json()["items"]] == ["cm1"]


def test_a_repeated_watch_cannot_turn_a_list_grant_into_a_watch(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    post(admin, role("Role", "list", rules, "a"))
    post(admin, binding("RoleBinding", "list", "Role", [SA_A], "a"))

    listed = robot.get("/api/v1/namespaces/a/pods?watch=false&watch=true")
    watched = robot.get("/api/v1/namespaces/a/pods?watch=true&watch=false")

    assert listed.json()["kind"] == "PodList"
    assert watched.status_code == 403
    assert "cannot watch resource" in watched.json()["message"]


def test_an_empty_path_segment_cannot_reach_what_rbac_refuses(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    rules = [{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get", "delete", "update"]}]
    post(admin, role("ClusterRole", "status", rules))
    post(admin, binding("ClusterRoleBinding", "status", "ClusterRole", [SA_A]))
    admin.post("/api/v1/namespaces", json={"metadata": {"name": "status"}})

    direct = robot.delete("/api/v1/namespaces/status")
    doubled = robot.delete("/api/v1//namespaces/status")

    assert direct.status_code == 403
    assert doubled.status_code == 404, doubled.text
    assert admin.get("/api/v1/namespaces/status").json()["status"]["phase"] == "Active"


@pytest.mark.parametrize(
    ("audiences", "status"),
    [
        (["vault"], 401),
        (["vault", "https://kubernetes.default.svc.cluster.local"], 200),
        (["https://kubernetes.default.svc.cluster.local"], 200),
        ([], 200),
    ],
)
def test_a_token_for_another_audience_is_unauthorized(
    admin: httpx.Client, robot: httpx.Client, audiences: list[str], status: int
) -> None:
    post(admin, role("ClusterRole", "ns", [{"apiGroups": [""], "resources": ["namespaces"],
                                           "verbs": ["list"]}]))  # fmt: skip
    post(admin, binding("ClusterRoleBinding", "ns", "ClusterRole", [SA_A]))
    answer = admin.post(
        "/api/v1/namespaces/a/serviceaccounts/robot/token",
        json={"kind": "TokenRequest", "spec": {"audiences": audiences}},
    )
    token = answer.json()["status"]["token"]

    listed = robot.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"})

    assert listed.status_code == status
    if status == 401:
        assert listed.json() == UNAUTHORIZED


def test_bindings_of_one_missing_role_give_one_reason(
    admin: httpx.Client, robot: httpx.Client
) -> None:
    post(admin, binding("RoleBinding", "ghost", "Role", [SA_A], "a"))
    twin = binding("RoleBinding", "ghost-2", "Role", [SA_A], "a")
    twin["roleRef"]["name"] = "ghost"
    post(admin, twin)

    once = robot.get("/api/v1/namespaces/a/pods").json()["message"]
    post(admin, binding("ClusterRoleBinding", "gone", "ClusterRole", [SA_A]))
    twice = robot.get("/api/v1/namespaces/a/pods").json()["message"]

    denied = f'User "{ROBOT}" cannot list resource "pods" in API group "" in the namespace "a"'
    assert once == f'pods is forbidden: {denied}: RBAC: role.{RBAC} "ghost" not found'
    assert twice == (
        f'pods is forbidden: {denied}: RBAC: [clusterrole.{RBAC} "gone" not found, '
        f'role.{RBAC} "ghost" not found]'
    )


# Validation of the RBAC kinds


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            role("Role", "r", [{"nonResourceURLs": ["/x"], "verbs": ["get"]}], "a"),
            f'Role.{RBAC} "r" is invalid: rules[0].nonResourceURLs: Invalid value:'
            ' []string{"/x"}: namespaced rules cannot apply to non-resource URLs',
        ),
        (
            role("ClusterRole", "r", [{"resources": ["pods"], "verbs": ["get"]}]),
            f'ClusterRole.{RBAC} "r" is invalid: rules[0].apiGroups: Required value:'
            " resource rules must supply at least one api group",
        ),
        (
            role("ClusterRole", "r", [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]),
            f'ClusterRole.{RBAC} "r" is invalid: rules[0].verbs: Required value:'
            " verbs must contain at least one value",
        ),
        (
            binding("ClusterRoleBinding", "r", "Role", [{"kind": "User", "name": "u"}]),
            f'ClusterRoleBinding.{RBAC} "r" is invalid: roleRef.kind: Unsupported value:'
            ' "Role": supported values: "ClusterRole"',
        ),
        (
            binding(
                "ClusterRoleBinding", "r", "ClusterRole", [{"kind": "ServiceAccount", "name": "s"}]
            ),
            f'ClusterRoleBinding.{RBAC} "r" is invalid: subjects[0].namespace: Required value',
        ),
        (
            binding("RoleBinding", "r", "Role", [{"kind": "Robot", "name": "s"}], "a"),
            f'RoleBinding.{RBAC} "r" is invalid: subjects[0].kind: Unsupported value: "Robot":'
            ' supported values: "ServiceAccount", "User", "Group"',
        ),
        (
            role("ClusterRole", "a%b", [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]),
            f'ClusterRole.{RBAC} "a%b" is invalid: metadata.name: Invalid value: "a%b":'
            " may not contain '%'",
        ),
    ],
)
def test_rbac_objects_are_validated_as_kube_validates_them(
    admin: httpx.Client, manifest: dict[str, Any], message: str
) -> None:
    answer = post(admin, manifest)

    assert (answer.status_code, answer.json()["message"]) == (422, message)


def test_a_bindings_role_cannot_change(admin: httpx.Client) -> None:
    made = post(admin, binding("RoleBinding", "r", "Role", [SA_A], "a"))
    changed = made.json()
    changed["roleRef"]["name"] = "other"

    answer = admin.put(f"/apis/{RBAC}/v1/namespaces/a/rolebindings/r", json=changed)

    assert (answer.status_code, answer.json()["message"]) == (
        422,
        f'RoleBinding.{RBAC} "r" is invalid: roleRef: Invalid value: rbac.RoleRef{{APIGroup:'
        f'"{RBAC}", Kind:"Role", Name:"other"}}: cannot change roleRef',
    )


def test_user_and_group_subjects_default_to_the_rbac_group(admin: httpx.Client) -> None:
    made = post(admin, binding("RoleBinding", "r", "Role", [{"kind": "User", "name": "u"}], "a"))

    assert made.json()["subjects"] == [{"kind": "User", "apiGroup": RBAC, "name": "u"}]


# kubectl on `nublado sandbox --rbac`


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_uses_the_admin_kubeconfig_and_gets_service_account_tokens(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "nublado", "sandbox", "--rbac", "--port", "0",
         "--kubeconfig", str(kubeconfig), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("sandbox listening on https://127.0.0.1:"), line
        config = yaml.safe_load(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        assert config["users"][0]["user"]["token"].startswith("sandbox-admin.")

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["kubectl", "--kubeconfig", str(kubeconfig),
                 "--cache-dir", str(tmp_path / "cache"), *args],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        assert kubectl("create", "serviceaccount", "robot").returncode == 0
        token = kubectl("create", "token", "robot").stdout.strip()
        vault = kubectl("create", "token", "robot", "--audience=vault").stdout.strip()
        for_vault = httpx.get(
            f"{server}/api", headers={"Authorization": f"Bearer {vault}"}, verify=False
        )
        authority = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
        as_robot = write_kubeconfig(
            tmp_path / "robot", server, token=token, certificate_authority=authority
        )
        denied = subprocess.run(
            ["kubectl", "--kubeconfig", str(as_robot),
             "--cache-dir", str(tmp_path / "cache2"), "get", "pods"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        anonymous = httpx.get(f"{server}/api/v1/pods", verify=False)
    finally:
        process.terminate()
        process.communicate(timeout=10)

    assert token
    assert vault
    assert for_vault.status_code == 401
    assert denied.returncode == 1
    assert denied.stderr.strip().endswith(
        'pods is forbidden: User "system:serviceaccount:default:robot" cannot list resource'
        ' "pods" in API group "" in the namespace "default"'
    )
    assert (anonymous.status_code, anonymous.json()) == (401, UNAUTHORIZED)


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        "application/json;as=Table;g=meta.k8s.io;v=v1",
    ],
)
def test_the_accepted_form_does_not_change_the_verb(
    admin: httpx.Client, robot: httpx.Client, accept: str
) -> None:
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
    post(admin, role("Role", "r", rules, "a"))
    post(admin, binding("RoleBinding", "r", "Role", [SA_A], "a"))

    listed = robot.get("/api/v1/namespaces/a/configmaps", headers={"Accept": accept})
    read = robot.get("/api/v1/namespaces/a/configmaps/x", headers={"Accept": accept})

    assert listed.status_code == 200
    assert (read.status_code, read.json()["details"]) == (403, {"name": "x", "kind": "configmaps"})
