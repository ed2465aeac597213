"""The real kubectl against the sandbox, as an operator uses it: get, explain, create, logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sandbox_fixtures import reference_manifests

from nublado.sandbox.server import Sandbox

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

NS = "userlabs-rachel"
AGE = r"\d+s"
Kubectl = Callable[..., str]


@pytest.fixture
def kubectl(sandbox: Sandbox, tmp_path: Path) -> Iterator[Kubectl]:
    """Run the real kubectl on the sandbox (a temp cache dir); returns its stdout."""
    config = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    base = ["kubectl", "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "KUBECONFIG": str(config)}

    def run(*args: str) -> str:
        done = subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    yield run


@pytest.fixture
def lab(sandbox: Sandbox) -> None:
    """The reference lab applied, its pod Running."""
    for manifest in reference_manifests("lab"):
        sandbox.apply(manifest)
    sandbox.wait_for(
        lambda: (
            (sandbox.get("Pod", "rachel-nb", NS) or {}).get("status", {}).get("phase") == "Running"
        )
    )


def _lines(output: str) -> list[str]:
    return output.rstrip("\n").split("\n")


def _match(lines: list[str], patterns: list[str]) -> None:
    assert len(lines) == len(patterns), lines
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


@pytest.mark.usefixtures("lab")
def test_kubectl_get_pods_prints_ready_status_restarts(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("get", "pods", "-n", NS))

    _match(
        lines,
        [
            r"NAME        READY   STATUS    RESTARTS   AGE",
            rf"rachel-nb   1/1     Running   0          {AGE}",
        ],
    )


@pytest.mark.usefixtures("lab")
def test_kubectl_get_pods_wide_adds_ip_and_node(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("get", "pods", "-n", NS, "-o", "wide"))

    assert lines[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    cells = lines[1].split()
    assert cells[:4] == ["rachel-nb", "1/1", "Running", "0"]
    assert cells[6:] == ["node1", "<none>", "<none>"]


@pytest.mark.usefixtures("lab")
def test_kubectl_get_namespaces(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("get", "ns"))

    _match(
        lines,
        [
            r"NAME              STATUS   AGE",
            rf"default           Active   {AGE}",
            rf"kube-node-lease   Active   {AGE}",
            rf"kube-public       Active   {AGE}",
            rf"kube-system       Active   {AGE}",
            rf"userlabs-rachel   Active   {AGE}",
        ],
    )


@pytest.mark.usefixtures("lab")
def test_kubectl_get_all_lists_services_and_pods(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("get", "all", "-n", NS))

    _match(
        lines,
        [
            r"NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT\(S\)    AGE",
            rf"service/lab   ClusterIP   10\.96\.\d+\.\d+ +<none>        8888/TCP   {AGE}",
            r"",
            r"NAME            READY   STATUS    RESTARTS   AGE",
            rf"pod/rachel-nb   1/1     Running   0          {AGE}",
        ],
    )


@pytest.mark.usefixtures("lab")
def test_kubectl_get_events_prints_the_event_columns(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("get", "events", "-n", NS, "--field-selector", "reason=Scheduled"))

    _match(
        lines,
        [
            r"LAST SEEN   TYPE     REASON      OBJECT          MESSAGE",
            rf"{AGE} +Normal   Scheduled   pod/rachel-nb   "
            r"Successfully assigned userlabs-rachel/rachel-nb to node1",
        ],
    )


def test_kubectl_get_nodes(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("get", "nodes"))

    _match(
        lines,
        [
            r"NAME    STATUS   ROLES    AGE   VERSION",
            rf"node1   Ready    <none>   {AGE} +v1\.32\.0",
            rf"node2   Ready    <none>   {AGE} +v1\.32\.0",
        ],
    )


def test_kubectl_explain_pod_spec_prints_the_field_docs(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("explain", "pod.spec"))

    assert lines[:4] == ["KIND:       Pod", "VERSION:    v1", "", "FIELD: spec <PodSpec>"]
    assert "  containers\t<[]Container> -required-" in lines
    assert "    List of containers belonging to the pod. Containers cannot currently be" in lines


def test_kubectl_explain_a_nested_field(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("explain", "pod.spec.containers.resources"))

    assert "FIELD: resources <ResourceRequirements>" in lines
    assert "  limits\t<map[string]Quantity>" in lines
    assert "  requests\t<map[string]Quantity>" in lines


def test_kubectl_explain_a_custom_resource_field(kubectl: Kubectl) -> None:
    lines = _lines(kubectl("explain", "gafaelfawringress.config"))

    assert lines[:3] == [
        "GROUP:      gafaelfawr.lsst.io",
        "KIND:       GafaelfawrIngress",
        "VERSION:    v1alpha1",
    ]
    assert "FIELD: config <Object>" in lines
    assert "    Configuration for the ingress to create." in lines
    assert "  baseUrl\t<string>" in lines


def test_kubectl_create_namespace_configmap_and_secret(kubectl: Kubectl, sandbox: Sandbox) -> None:
    assert kubectl("create", "namespace", "made") == "namespace/made created\n"
    assert (
        kubectl("create", "configmap", "x", "-n", "made", "--from-literal=a=b")
        == "configmap/x created\n"
    )
    assert (
        kubectl("create", "secret", "generic", "s", "-n", "made", "--from-literal=k=v")
        == "secret/s created\n"
    )

    configmap = sandbox.get("ConfigMap", "x", "made")
    secret = sandbox.get("Secret", "s", "made")
    assert configmap is not None and configmap["data"] == {"a": "b"}
    assert secret is not None and (secret["data"], secret["type"]) == ({"k": "dg=="}, "Opaque")
    _match(
        _lines(kubectl("get", "configmaps,secrets", "-n", "made")),
        [
            r"NAME          DATA   AGE",
            rf"configmap/x   1      {AGE}",
            r"",
            r"NAME       TYPE     DATA   AGE",
            rf"secret/s   Opaque   1      {AGE}",
        ],
    )


def test_kubectl_create_quota_and_serviceaccount(kubectl: Kubectl) -> None:
    created = kubectl("create", "quota", "q", "-n", "default", "--hard=pods=2,limits.cpu=1")
    account = kubectl("create", "serviceaccount", "robot", "-n", "default")

    assert (created, account) == ("resourcequota/q created\n", "serviceaccount/robot created\n")
    _match(
        _lines(kubectl("get", "quota", "q", "-n", "default")),
        [r"NAME   AGE   REQUEST     LIMIT", rf"q      {AGE} +pods: 0/2   limits.cpu: 0/1"],
    )


@pytest.mark.usefixtures("lab")
def test_kubectl_logs_says_the_sandbox_runs_no_containers(kubectl: Kubectl) -> None:
    output = kubectl("logs", "pod/rachel-nb", "-n", NS)

    assert output == (
        "nublado sandbox: no logs for container notebook of pod userlabs-rachel/rachel-nb: "
        "the sandbox runs no containers\n"
    )


def test_kubectl_logs_of_a_missing_pod_is_not_found(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    base = ["kubectl", "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "c")]
    done = subprocess.run(
        [*base, "logs", "pod/nope", "-n", "default"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr == (
        'error: error from server (NotFound): pods "nope" not found in namespace "default"\n'
    )


def test_kubectl_get_leases_shows_the_holder(kubectl: Kubectl, sandbox: Sandbox) -> None:
    sandbox.apply(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "nublado", "namespace": "default"},
            "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
        }
    )

    _match(
        _lines(kubectl("get", "leases", "-n", "default")),
        [r"NAME      HOLDER      AGE", rf"nublado   replica-a   {AGE}"],
    )
    lease = json.loads(kubectl("get", "lease", "nublado", "-n", "default", "-o", "json"))
    assert lease["spec"]["holderIdentity"] == "replica-a"


@pytest.mark.usefixtures("lab")
def test_kubectl_reads_events_through_events_k8s_io(kubectl: Kubectl) -> None:
    listed = json.loads(kubectl("get", "events.v1.events.k8s.io", "-n", NS, "-o", "json"))

    assert listed["items"]
    assert {e["apiVersion"] for e in listed["items"]} == {"events.k8s.io/v1"}
    assert all(e["regarding"]["name"] == "rachel-nb" for e in listed["items"])


def test_kubectl_get_watch_prints_rows_as_objects_come(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    sandbox.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}
    )
    command = ["kubectl", "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "c")]
    watching = subprocess.Popen(
        [*command, "get", "configmaps", "-n", "default", "-w", "--request-timeout=3s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sandbox.wait_for(lambda: sandbox.watch_count() == 1, timeout=10)
        sandbox.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "b", "namespace": "default"},
                "data": {"k": "v"},
            }
        )
        output, _ = watching.communicate(timeout=30)
    finally:
        watching.kill()

    _match(
        _lines(output),
        [r"NAME   DATA   AGE", rf"a      0      {AGE}", rf"b      1      {AGE}"],
    )
