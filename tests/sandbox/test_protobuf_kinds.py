"""kubectl's protobuf creates of RBAC objects and Deployments, and what a 415 says is accepted.

``kubectl create role|clusterrole|rolebinding|clusterrolebinding|deployment``
send ``application/vnd.kubernetes.protobuf`` and do not fall back to JSON,
so the sandbox must read them: each object is created as kubectl's own
client-side rendering (``--dry-run=client -o json``) shows it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox

NS = "p"
RBAC = "rbac.authorization.k8s.io"
JSON_YAML = "application/json, application/yaml"
WITH_PROTOBUF = f"{JSON_YAML}, application/vnd.kubernetes.protobuf"
UNKNOWN = "the body of the request was in an unknown format - accepted media types include: "

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(sandbox: Sandbox, http: httpx.Client, tmp_path: Path) -> Kubectl:
    """kubectl on the served sandbox, in namespace ``p``."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    base = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, "-n", NS, *args], capture_output=True, text=True, timeout=60, check=False
        )

    return run


# (kubectl create arguments, the fields of the object kubectl's rendering and the server's agree on)
CREATES = [
    (
        ["role", "r", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=x"],
        ["rules"],
    ),
    (["clusterrole", "urls", "--verb=get", "--non-resource-url=/logs/*"], ["rules"]),
    (["clusterrole", "agg", "--aggregation-rule=team=a"], ["aggregationRule"]),
    (
        ["rolebinding", "rb", "--role=r", "--user=u", "--group=g", "--serviceaccount=p:s"],
        ["subjects", "roleRef"],
    ),
    (
        ["clusterrolebinding", "crb", "--clusterrole=view", "--serviceaccount=p:s"],
        ["subjects", "roleRef"],
    ),
    (["deployment", "web", "--image=nginx"], ["spec.replicas", "spec.selector", "labels"]),
    (
        ["deployment", "cmd", "--image=busybox", "--replicas=0", "--port=80", "--", "sleep", "1"],
        ["spec.replicas", "spec.selector", "labels", "container"],
    ),
]


def _field(obj: dict[str, Any], path: str) -> Any:
    if path == "labels":
        return (obj["metadata"]["labels"], obj["spec"]["template"]["metadata"]["labels"])
    if path == "container":
        container = obj["spec"]["template"]["spec"]["containers"][0]
        ports = [p["containerPort"] for p in container.get("ports", [])]
        return (container["name"], container["image"], container.get("command"), ports)
    value: Any = obj
    for key in path.split("."):
        value = value[key]
    return value


@pytest.mark.parametrize(("args", "fields"), CREATES)
def test_kubectl_creates_what_it_renders(
    kubectl: Kubectl, args: list[str], fields: list[str]
) -> None:
    split = args.index("--") if "--" in args else len(args)
    flags, command = args[:split], args[split:]  # the command keeps its "--"
    rendered = kubectl("create", *flags, "--dry-run=client", "-o", "json", *command)
    assert rendered.returncode == 0, rendered.stderr
    expected = json.loads(rendered.stdout)

    created = kubectl("create", *args)

    assert created.returncode == 0, created.stderr
    kind = expected["kind"].lower()
    group = expected["apiVersion"].rpartition("/")[0]
    assert created.stdout.strip() == f"{kind}{'.' + group if group else ''}/{args[1]} created"
    resource = f"{kind}.{group}" if group else kind
    stored = json.loads(kubectl("get", resource, args[1], "-o", "json").stdout)
    for field in fields:
        assert _field(stored, field) == _field(expected, field), field


# -- a protobuf body the sandbox cannot read, and what a 415 lists -------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field_bytes(1, api_version.encode()) + _field_bytes(2, kind.encode())
    return b"k8s\x00" + _field_bytes(1, type_meta) + _field_bytes(2, raw)


PROTOBUF = {"content-type": "application/vnd.kubernetes.protobuf"}
ROLES = f"/apis/{RBAC}/v1/namespaces/{NS}/roles"


def test_a_protobuf_role_is_read_field_by_field(http: httpx.Client) -> None:
    # PolicyRule: verbs = 1, apiGroups = 2, resources = 3, resourceNames = 4.
    rule = _field_bytes(1, b"get") + _field_bytes(2, b"") + _field_bytes(3, b"pods")
    rule += _field_bytes(4, b"x")
    raw = _field_bytes(1, _field_bytes(1, b"r")) + _field_bytes(2, rule)

    answer = http.post(ROLES, content=_envelope(f"{RBAC}/v1", "Role", raw), headers=PROTOBUF)

    assert answer.status_code == 201, answer.text
    assert answer.json()["rules"] == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"]}
    ]


# A Role whose rule has field 9, and a ConfigMap with field 9 (neither message has one).
_RULE_9 = _field_bytes(1, b"get") + _field_bytes(3, b"pods") + _field_bytes(9, b"?")
UNKNOWN_FIELDS = [
    (
        ROLES,
        f"{RBAC}/v1",
        "Role",
        _field_bytes(1, _field_bytes(1, b"r")) + _field_bytes(2, _RULE_9),
    ),
    (
        f"/api/v1/namespaces/{NS}/configmaps",
        "v1",
        "ConfigMap",
        _field_bytes(1, _field_bytes(1, b"r")) + _field_bytes(9, b"?"),
    ),
]


@pytest.mark.parametrize(("path", "api_version", "kind", "raw"), UNKNOWN_FIELDS)
def test_a_protobuf_field_the_sandbox_does_not_know_is_refused_not_dropped(
    http: httpx.Client, path: str, api_version: str, kind: str, raw: bytes
) -> None:
    answer = http.post(path, content=_envelope(api_version, kind, raw), headers=PROTOBUF)

    assert answer.status_code == 415
    assert answer.json()["message"] == UNKNOWN + JSON_YAML
    assert http.get(f"{path}/r").status_code == 404


@pytest.mark.parametrize(
    ("path", "accepted"),
    [
        (f"/api/v1/namespaces/{NS}/configmaps", WITH_PROTOBUF),
        (f"/apis/apps/v1/namespaces/{NS}/deployments", WITH_PROTOBUF),
        (ROLES, WITH_PROTOBUF),
        (f"/apis/{RBAC}/v1/clusterrolebindings", WITH_PROTOBUF),
        (f"/api/v1/namespaces/{NS}/pods", JSON_YAML),
        (f"/apis/gafaelfawr.lsst.io/v1alpha1/namespaces/{NS}/gafaelfawringresses", JSON_YAML),
    ],
)
def test_a_415_lists_what_the_kind_accepts(http: httpx.Client, path: str, accepted: str) -> None:
    answer = http.post(path, content=b"x", headers={"content-type": "text/plain"})

    assert answer.status_code == 415
    assert answer.json()["message"] == UNKNOWN + accepted
