"""Benchmark of user file servers: ``GET /files`` latency and the cleanup of idle servers.

The sandbox API server runs in this process's thread (as ``nublado serve
--sandbox`` runs it: examples/nodes.json, storage classes, the controller's
namespace, pod and Secrets), with every kubelet delay and the ingress
controller's address delay at zero. The controller is `build_controller` as
serve wires it (examples/config.yaml, file servers enabled), with
`TrustedUsers` over N generated users, reached over ASGI with httpx (no
socket: the figures are the controller's and the sandbox's work, not
uvicorn's).

Prints:

- ``/files`` latency p50 / p95 for a new user (each request creates that
  user's file server: PVC, GafaelfawrIngress, Service and Job applied, then
  the wait for the Job's pod to run and the Ingress to get its address),
  N users one after the other;
- the time from 100 file-server pods exiting together (as worblehat does
  when idle: the pods go Succeeded) until the controller has deleted every
  object of all 100 (all but the PVCs, whose deletion is not waited for;
  they are counted separately).

Run: .venv/bin/python benchmarks/fileserver.py [--users 100]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from nublado.api.controller import build_controller, file_discovery
from nublado.config import load_config
from nublado.gafaelfawr import TrustedUsers
from nublado.kube.client import KubernetesClient
from nublado.models.user import UserInfo
from nublado.sandbox.server import Sandbox, SandboxSettings, load_nodes_file
from nublado.sandbox.storage import load_storage_classes_file
from nublado.serve import SANDBOX_BASE_URL, _seed_sandbox

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMESPACE = "fileservers"
SELECTOR = "nublado.lsst.io/category=fileserver"


def users(count: int) -> list[UserInfo]:
    return [
        UserInfo.model_validate(
            {
                "username": f"user{i:04d}",
                "uid": 10000 + i,
                "gid": 10000 + i,
                "groups": [{"name": f"user{i:04d}", "id": 10000 + i}],
            }
        )
        for i in range(count)
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def left(sandbox: Sandbox) -> tuple[int, int]:
    """(objects other than PVCs, PVCs) of file servers still in the sandbox."""
    objects = sandbox.objects(NAMESPACE, label_selector=SELECTOR)
    pvcs = sum(1 for o in objects if o["kind"] == "PersistentVolumeClaim")
    return len(objects) - pvcs, pvcs


async def run(count: int) -> None:
    config = load_config(EXAMPLES / "config.yaml")
    config = config.model_copy(update={"base_url": SANDBOX_BASE_URL})
    nodes = load_nodes_file(EXAMPLES / "nodes.json")
    classes = load_storage_classes_file(EXAMPLES / "storage-classes.json")
    sandbox = Sandbox(SandboxSettings(pod_grace_scale=0.0), nodes=nodes, storage_classes=classes)
    people = users(count)
    with sandbox.serve():
        metadata = _seed_sandbox(sandbox, config, EXAMPLES)
        assert sandbox.url is not None
        async with (
            KubernetesClient.from_url(sandbox.url) as kube,
            httpx.AsyncClient() as http,
        ):
            app = build_controller(
                config,
                kube=kube,
                http=http,
                users=TrustedUsers(people),
                metadata=metadata,
                discovery=file_discovery(EXAMPLES / "discovery.json"),
                refresh_images=False,
            )
            async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://nublado.test", timeout=120
                ) as api:
                    await measure(api, sandbox, people, app.state.fileservers)


async def measure(
    api: httpx.AsyncClient, sandbox: Sandbox, people: list[UserInfo], fileservers: Any
) -> None:
    latencies: list[float] = []
    for user in people:
        headers = {"X-Auth-Request-User": user.username, "X-Auth-Request-Token": "bench"}
        start = time.perf_counter()
        response = await api.get("/files", headers=headers)
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"/files for {user.username}: {response.status_code} {response.text}")
    ms = [x * 1000 for x in latencies]
    print(
        f"/files for a new user, {len(ms)} sequential: p50 {statistics.median(ms):.1f} ms,"
        f" p95 {percentile(ms, 0.95):.1f} ms, max {max(ms):.1f} ms"
    )

    pods = sandbox.objects(NAMESPACE, "Pod", label_selector=SELECTOR)
    start = time.perf_counter()
    for pod in pods:
        sandbox.finish_pod(NAMESPACE, pod["metadata"]["name"], "Succeeded")
    pvcs_gone = None
    while True:
        objects, pvcs = left(sandbox)
        if objects == 0 and pvcs_gone is None and pvcs == 0:
            pvcs_gone = time.perf_counter() - start
        if objects == 0 and not fileservers.running():
            done = time.perf_counter() - start
            break
        await asyncio.sleep(0.01)
    while pvcs_gone is None:
        if left(sandbox)[1] == 0:
            pvcs_gone = time.perf_counter() - start
        await asyncio.sleep(0.01)
    print(
        f"cleanup of {len(pods)} idle file servers (pods Succeeded together):"
        f" {done:.2f} s until every object but the PVCs is gone, {pvcs_gone:.2f} s with the PVCs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="new users (and file servers)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(run(args.users))


if __name__ == "__main__":
    main()
