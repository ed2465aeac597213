"""The daemon against the sandbox: ``nublado daemon`` as a process, two replicas, /metrics.

``--once`` and the leader-elected run are real processes (``python -m
nublado daemon``) given a kubeconfig of the served sandbox. Two daemons in
one process share the sandbox's Lease to show takeover without a job running
twice in one period; the controller app shows the job metrics at /metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from reference_cases import INPUTS
from sandbox_fixtures import ensure_namespace

from nublado.config import Config
from nublado.config.daemon import DEFAULT_LEASE_NAME, LeaderElectionConfig
from nublado.daemon import JOB_NAMES, Daemon
from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox, SandboxSettings

NS = "nublado"
FAST_ELECTION = {"leaseDuration": 2, "renewDeadline": 1.2, "retryPeriod": 0.2}


@pytest.fixture
async def namespace(admin: KubernetesClient) -> None:
    await ensure_namespace(admin, NS)


def write_config(tmp_path: Path, **daemon: Any) -> Path:
    """standard.yaml with its pod's metadata in tmp_path, an unreachable registry, ``daemon``."""
    metadata = tmp_path / "metadata"
    metadata.mkdir(exist_ok=True)
    for field, value in (("name", "nublado-controller"), ("namespace", NS), ("uid", "u-1")):
        (metadata / field).write_text(value)
    document = yaml.safe_load((INPUTS / "config" / "standard.yaml").read_text())
    document["metadataPath"] = str(metadata)
    document["images"]["source"]["registry"] = "127.0.0.1:9"  # refused at once
    document["daemon"] = {"leaderElection": FAST_ELECTION, **daemon}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def nublado(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nublado", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECONFIG": "/nonexistent"},
    )


@pytest.fixture
def kubeconfig(sandbox: Sandbox, controller_token: str, tmp_path: Path) -> Path:
    """A kubeconfig of the controller's ServiceAccount (its bearer token)."""
    return sandbox.write_kubeconfig(tmp_path / "kubeconfig", token=controller_token)


def scratch_policy(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "scratch"
    root.mkdir()
    old = root / "old"
    old.write_bytes(b"x" * 100)
    past = time.time() - 8 * 3600
    os.utime(old, (past, past))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"directories:\n  - path: {root}\n    threshold: 10B\n"
        "    intervals:\n      large: {access_interval: 1h}\n"
    )
    return policy, old


# --once


async def test_once_runs_one_job_and_exits_0(
    kubeconfig: Path, tmp_path: Path, namespace: None, sandbox: Sandbox
) -> None:
    """A purge needs no lab state: no LIST or WATCH of the labs, no takeover."""
    policy, old = scratch_policy(tmp_path)
    config = write_config(tmp_path, purge={"policyFile": str(policy), "interval": "1h"})
    mark = len(sandbox.requests)

    result = await asyncio.to_thread(
        nublado,
        "daemon",
        "--config",
        str(config),
        "--kubeconfig",
        str(kubeconfig),
        "--once",
        "purge",
    )

    assert result.returncode == 0, result.stderr
    assert not old.exists()
    assert [(r.method, r.target) for r in sandbox.requests[mark:]] == []


async def test_once_runs_the_lab_reconcile(
    kubeconfig: Path, tmp_path: Path, namespace: None, admin: KubernetesClient
) -> None:
    """``--once lab-reconcile`` reads the labs: an orphaned lab namespace gets its first mark."""
    labels = {"nublado.lsst.io/category": "lab", "nublado.lsst.io/user": "orphan"}
    await admin.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "userlabs-orphan", "labels": labels},
        }
    )
    config = write_config(tmp_path)

    result = await asyncio.to_thread(
        nublado,
        "daemon",
        "--config",
        str(config),
        "--kubeconfig",
        str(kubeconfig),
        "--once",
        "lab-reconcile",
    )

    assert result.returncode == 0, result.stderr
    marked = await admin.get("Namespace", "userlabs-orphan")
    assert marked is not None
    assert "nublado.lsst.io/orphaned-since" in marked["metadata"]["annotations"]


async def test_once_exits_1_when_the_job_fails(
    kubeconfig: Path, tmp_path: Path, namespace: None
) -> None:
    config = write_config(tmp_path)

    result = await asyncio.to_thread(
        nublado,
        "daemon",
        "--config",
        str(config),
        "--kubeconfig",
        str(kubeconfig),
        "--once",
        "image-refresh",
    )

    assert result.returncode == 1, result.stderr
    assert "Job failed" in result.stderr
    assert "image refresh failed" in result.stderr


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            "reconcile",
            "nublado: error: unknown job 'reconcile'; valid jobs: " + ", ".join(JOB_NAMES),
        ),
        (
            "image-prune",
            "nublado: error: job image-prune is not configured here; configured jobs:"
            " lab-reconcile, image-refresh, prepull",
        ),
    ],
)
async def test_once_exits_2_on_a_job_it_cannot_run(
    job: str, message: str, kubeconfig: Path, tmp_path: Path, namespace: None
) -> None:
    config = write_config(tmp_path)

    result = await asyncio.to_thread(
        nublado, "daemon", "--config", str(config), "--kubeconfig", str(kubeconfig), "--once", job
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "the file does not exist"), ("garbage: [\n", "not valid YAML (line 2)")],
)
async def test_once_exits_2_on_a_kubeconfig_it_cannot_load(
    content: str | None, reason: str, tmp_path: Path
) -> None:
    """Exit 1 means a job failed: a kubeconfig that cannot be read is bad input, exit 2."""
    config = write_config(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)

    result = await asyncio.to_thread(
        nublado, "daemon", "--config", str(config), "--kubeconfig", str(kubeconfig),
        "--once", "lab-reconcile",
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"nublado: error: cannot load kubeconfig {kubeconfig}: {reason}"
    )
    assert "Traceback" not in result.stderr
    assert "Config not found" not in result.stderr


# Leader-elected run as a process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


METRICS_PORT = free_port()


@pytest.fixture
def daemon_process(kubeconfig: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    config = write_config(tmp_path)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "nublado", "daemon", "--config", str(config)),
            *("--metrics-port", str(METRICS_PORT)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def test_the_daemon_leads_and_releases_its_lease_on_sigterm(
    daemon_process: subprocess.Popen[str], sandbox: Sandbox, namespace: None
) -> None:
    async with asyncio.timeout(30):
        while (sandbox.get("Lease", DEFAULT_LEASE_NAME, NS) or {}).get("spec", {}).get(
            "holderIdentity"
        ) is None:
            await asyncio.sleep(0.05)
    async with httpx.AsyncClient() as web, asyncio.timeout(10):
        metrics = ""
        while "nublado_daemon_leader 1.0" not in metrics:
            metrics = (await web.get(f"http://127.0.0.1:{METRICS_PORT}/metrics")).text

    daemon_process.send_signal(signal.SIGTERM)
    status = await asyncio.to_thread(daemon_process.wait, 30)

    output = daemon_process.stdout.read() if daemon_process.stdout else ""
    assert status == 0, output
    lease = sandbox.get("Lease", DEFAULT_LEASE_NAME, NS)
    assert lease is not None
    assert lease["spec"].get("holderIdentity") is None
    assert "nublado_daemon_leader 1.0" in metrics
    assert 'nublado_job_runs_total{job="image-refresh",outcome="success"} 0.0' in metrics


# Two replicas


def replica_config(tmp_path: Path, interval: float) -> Config:
    from nublado.config import load_config

    config = load_config(write_config(tmp_path))
    lab = config.lab.model_copy(update={"reconcile_interval": timedelta(seconds=interval)})
    daemon = config.daemon.model_copy(
        update={
            "jitter": timedelta(0),
            "leader_election": LeaderElectionConfig.model_validate(FAST_ELECTION),
        }
    )
    return config.model_copy(update={"lab": lab, "daemon": daemon})


async def test_a_killed_leaders_jobs_move_to_the_other_replica_and_never_run_twice(
    client: KubernetesClient, sandbox: Sandbox, tmp_path: Path, namespace: None
) -> None:
    interval = 0.25
    config = replica_config(tmp_path, interval)
    runs: list[tuple[str, float, float]] = []

    def recorder(identity: str) -> Any:
        async def lab_reconcile() -> None:
            start = time.monotonic()
            await asyncio.sleep(0.05)
            runs.append((identity, start, time.monotonic()))

        return lab_reconcile

    daemons = {
        name: Daemon(
            config,
            {"lab-reconcile": recorder(name)},
            kube=client,
            namespace=NS,
            identity=name,
            release_on_cancel=False,  # a killed process releases nothing
        )
        for name in ("a", "b")
    }
    tasks = {name: asyncio.create_task(d.run()) for name, d in daemons.items()}
    try:
        async with asyncio.timeout(10):
            while len(runs) < 4:
                await asyncio.sleep(0.02)
        leader = runs[0][0]
        other = "b" if leader == "a" else "a"
        assert {who for who, _, _ in runs} == {leader}

        tasks[leader].cancel()
        await asyncio.gather(tasks[leader], return_exceptions=True)
        killed = time.monotonic()
        async with asyncio.timeout(10):
            while not any(who == other for who, _, _ in runs):
                await asyncio.sleep(0.02)
            taken = next(start for who, start, _ in runs if who == other)
            while len([r for r in runs if r[0] == other]) < 3:
                await asyncio.sleep(0.02)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    assert taken - killed <= 2 + 2 * 0.2 + 0.5  # lease duration + retry period, and slack
    ordered = sorted(runs, key=lambda run: run[1])
    for (_, _, end), (_, start, _) in itertools.pairwise(ordered):
        assert start >= end  # never two runs at once, on either replica
    starts = [start for _, start, _ in ordered]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= interval * 0.9  # at most one run per period
    assert sandbox.get("Lease", DEFAULT_LEASE_NAME, NS)["spec"]["holderIdentity"] == other


# /metrics of the controller


async def test_the_controller_serves_job_metrics_and_leads(
    client: KubernetesClient, admin: KubernetesClient, sandbox: Sandbox, tmp_path: Path, router: Any
) -> None:
    from lab_api_support import CONTROLLER_NAMESPACE, controller_namespace, served
    from reference_cases import reference_metadata

    from nublado.api.controller import build_controller

    await controller_namespace(admin)
    config = replica_config(tmp_path, 60)
    ran = asyncio.Event()

    async def lab_reconcile() -> None:
        ran.set()

    async with httpx.AsyncClient() as http:
        app = build_controller(
            config,
            kube=client,
            http=http,
            users=object(),  # type: ignore[arg-type]
            metadata=reference_metadata(),
            namespace=CONTROLLER_NAMESPACE,
            identity="replica-a",
            refresh_images=False,
            jobs={"lab-reconcile": lab_reconcile},
        )
        async with served(app) as api:
            async with asyncio.timeout(10):
                await ran.wait()
                while (
                    app.state.daemon.metrics.job_runs.labels(
                        job="lab-reconcile", outcome="success"
                    )._value.get()
                    < 1
                ):
                    await asyncio.sleep(0.02)
            text = (await api.get("/metrics")).text

    assert 'nublado_job_runs_total{job="lab-reconcile",outcome="success"} 1.0' in text
    assert 'nublado_job_runs_total{job="lab-reconcile",outcome="failure"} 0.0' in text
    assert 'nublado_job_duration_seconds_count{job="lab-reconcile"} 1.0' in text
    assert 'nublado_job_last_success_timestamp_seconds{job="lab-reconcile"}' in text
    assert "nublado_daemon_leader 1.0" in text
    lease = sandbox.get("Lease", DEFAULT_LEASE_NAME, CONTROLLER_NAMESPACE)
    assert lease is not None
    assert lease["spec"].get("holderIdentity") is None  # released at shutdown


# The file-server reconcile job, faults included


@pytest.mark.parametrize("sandbox_settings", [SandboxSettings(pod_grace_scale=0.0)])
async def test_fileserver_reconcile_job_repairs_on_the_run_after_a_fault(
    client: KubernetesClient, admin: KubernetesClient, sandbox: Sandbox
) -> None:
    from fileserver_support import FS_NAMESPACE, fileserver_config, fileserver_objects
    from lab_api_support import CONTROLLER_NAMESPACE, user_for

    from nublado.metrics import Metrics
    from nublado.models.user import UserInfo
    from nublado.render.engine import Renderer
    from nublado.services.fileservers import FileServerService

    await ensure_namespace(admin, CONTROLLER_NAMESPACE)
    config = fileserver_config()
    made = FileServerService(
        config, client, Renderer(config.template_dirs), namespace=CONTROLLER_NAMESPACE
    )
    await made.start()
    try:
        await made.ensure(UserInfo.model_validate(user_for("rachel")))
    finally:
        await made.stop()
    # While no controller runs, the server's pod exits: a broken file server is left.
    (pod,) = sandbox.objects(FS_NAMESPACE, "Pod", label_selector="job-name=rachel-fs")
    sandbox.finish_pod(FS_NAMESPACE, pod["metadata"]["name"])
    # The daemon's file-server service: not started (no watches), it reads the cluster.
    metrics = Metrics()
    fileservers = FileServerService(
        config, client, Renderer(config.template_dirs), namespace=CONTROLLER_NAMESPACE
    )
    daemon = Daemon(
        config, {"fileserver-reconcile": fileservers.reconcile}, elect=False, metrics=metrics
    )
    sandbox.inject_fault("GET", f"/apis/batch/v1/namespaces/{FS_NAMESPACE}/jobs", count=4)

    failed = await daemon.run_once("fileserver-reconcile")
    left = fileserver_objects(sandbox, "rachel")
    repaired = await daemon.run_once("fileserver-reconcile")

    assert (failed, repaired) == (False, True)
    assert left != []
    assert fileserver_objects(sandbox, "rachel") == []
    errors = {
        sample.labels["error"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "nublado_job_failures"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert errors == {"KubernetesError": 1}
    assert (
        metrics.registry.get_sample_value(
            "nublado_job_runs_total", {"job": "fileserver-reconcile", "outcome": "failure"}
        )
        == 1
    )
