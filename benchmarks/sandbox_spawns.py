"""Spawn-shaped load on the sandbox alone: what one sandbox process can serve.

Runs ``nublado sandbox`` in its own process (40 nodes, so pods keep fitting)
and drives it with the real client, each "spawn" making the Kubernetes
requests a lab spawn makes: a Lease create and replace, a LIST of Secrets, the
server-side applies of the reference lab set (namespace first, pod last), a
GET of the namespace's default ServiceAccount, a watch of the pod by name until
it runs and a watch of its Events (fieldSelector involvedObject.name) until
``Started``, then a last Lease replace. No lab controller: the figures are the
sandbox's own ceiling.

Prints the sequential create-to-running p50, the spawns per second with
``--concurrency`` spawns in flight, and the sandbox process's CPU per spawn
(from /proc, so other load on the machine skews it less than wall time).

Run: .venv/bin/python benchmarks/sandbox_spawns.py [--sequential N] [--concurrent N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kube import NODES, STORAGE_CLASSES, lab

from nublado.kube.client import KubernetesClient

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


class Server:
    """``nublado sandbox`` in a subprocess, with its CPU time."""

    def __init__(self, workdir: Path) -> None:
        base = json.loads(NODES.read_text())
        node = next(iter(base.values()))
        nodes = workdir / "nodes.json"
        nodes.write_text(json.dumps({f"node{i}": node for i in range(1, 41)}))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nublado",
                "sandbox",
                "--kubeconfig",
                str(workdir / "kubeconfig"),
                "--nodes",
                str(nodes),
                "--storage-classes",
                str(STORAGE_CLASSES),
                "--log-level",
                "critical",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "sandbox listening on URL; kubeconfig ..."
        self.url = line.split("listening on ", 1)[1].split(";", 1)[0]
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu(self) -> float:
        """User and system CPU seconds of the sandbox process so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / self._tick

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _running(pod: dict[str, Any] | None) -> bool:
    return pod is not None and (pod.get("status") or {}).get("phase") == "Running"


async def spawn(client: KubernetesClient, user: str) -> None:
    """One lab's requests, as a spawn makes them."""
    lease: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": f"lab-{user}", "namespace": "default"},
        "spec": {"holderIdentity": "bench", "leaseDurationSeconds": 30},
    }
    lease = await client.create(lease)
    lease["spec"]["holderIdentity"] = "bench-spawning"
    _, lease = await client._request("PUT", f"{LEASES}/lab-{user}", body=lease)
    await client.list("Secret", "default", label_selector="app=nublado")
    manifests = lab(user)
    await client.apply(manifests)
    meta = manifests[-1]["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    await client.find("ServiceAccount", "default", namespace)

    async def started() -> None:
        selector = f"involvedObject.name={name}"
        async for event in client.watch("Event", namespace, field_selector=selector, timeout=30):
            if event.object.get("reason") == "Started":
                return

    events = asyncio.create_task(started())
    await client.wait_for("Pod", name, namespace, _running, timeout=30)
    await asyncio.wait_for(events, 30)
    lease = {**lease, "spec": {**lease["spec"], "holderIdentity": "bench-done"}}
    await client._request("PUT", f"{LEASES}/lab-{user}", body=lease)


async def run(server: Server, sequential: int, concurrent: int, concurrency: int) -> None:
    async with KubernetesClient.from_url(server.url) as client:
        for i in range(5):
            await spawn(client, f"warm{i}")
        timings = []
        cpu = server.cpu()
        for i in range(sequential):
            start = time.perf_counter()
            await spawn(client, f"seq{i}")
            timings.append(time.perf_counter() - start)
        used = server.cpu() - cpu
        print(
            f"sequential spawns: p50 {statistics.median(timings) * 1000:6.1f} ms create->running, "
            f"sandbox CPU {used / sequential * 1000:5.1f} ms per spawn ({sequential} spawns)"
        )

        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(concurrent):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                await spawn(client, f"par{queue.get_nowait()}")

        cpu = server.cpu()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        used = server.cpu() - cpu
        print(
            f"{concurrency} concurrent spawns: {concurrent / elapsed:5.1f} spawns/s, sandbox CPU "
            f"{used / concurrent * 1000:5.1f} ms per spawn ({used / elapsed * 100:.0f}% of a core; "
            f"{concurrent} spawns; ceiling at 100%: {concurrent / used:5.1f} spawns/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        server = Server(Path(workdir))
        try:
            asyncio.run(run(server, args.sequential, args.concurrent, args.concurrency))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
