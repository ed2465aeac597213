"""Benchmark of the Kubernetes layer against the sandbox (loopback only, bounded loops).

Prints:
- server-side applies per second of the reference lab object set, sequential and
  with 50 concurrent appliers (real client, real HTTP on 127.0.0.1), on a
  sandbox with the example nodes and storage classes, so every apply is
  validated (the client asks for fieldValidation=Strict), admitted against the
  lab's quota, and its claims bound and pod scheduled and started as on a cluster
  (sequential applies are also measured without nodes, pods left Pending);
- time to LIST 5,000 pods by label selector (all namespaces), with the client's
  default paging and in one page, and the time to select one user's pod;
- a watch's round trip (open a watch of one ConfigMap by name from the current
  resourceVersion, apply the ConfigMap, read its event, close) and a Lease's
  create and two replaces (a spawn's lock), sequential, over plain aiohttp;
- sandbox memory (RSS growth) holding 5,000 labs' objects.

Run: .venv/bin/python benchmarks/kube.py [--sequential-labs N] [--concurrent-labs N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox, SandboxSettings

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "reference"
NODES = ROOT / "examples" / "nodes.json"
STORAGE_CLASSES = ROOT / "examples" / "storage-classes.json"


def lab_template() -> str:
    """The reference lab set as deployable manifests, in apply order (the tests' own)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from sandbox_fixtures import reference_manifests

    return json.dumps(reference_manifests("lab"))


TEMPLATE = lab_template()


def lab(user: str) -> list[dict[str, Any]]:
    """The reference lab set renamed for another user."""
    text = TEMPLATE.replace("userlabs-rachel", f"userlabs-{user}").replace('"rachel', f'"{user}')
    text = text.replace("/user/rachel/", f"/user/{user}/")
    manifests: list[dict[str, Any]] = json.loads(text)
    return manifests


def rss_bytes() -> int:
    """Resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def bench_sequential(url: str, labs: int, label: str) -> None:
    objects_per_lab = len(lab("x"))
    async with KubernetesClient.from_url(url) as client:
        start = time.perf_counter()
        for i in range(labs):
            await client.apply(lab(f"seq{i}"))
        elapsed = time.perf_counter() - start
        count = labs * objects_per_lab
        print(
            f"apply, sequential, {label}: {count / elapsed:6.0f} objects/s  "
            f"({labs} labs x {objects_per_lab} objects in {elapsed:.2f}s, "
            f"{elapsed / labs * 1000:.1f} ms per lab)"
        )


async def bench_applies(url: str, sequential_labs: int, concurrent_labs: int, workers: int) -> None:
    await bench_sequential(url, sequential_labs, "pods scheduled and started")
    objects_per_lab = len(lab("x"))
    async with KubernetesClient.from_url(url) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(concurrent_labs):
            queue.put_nowait(i)

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await client.apply(lab(f"par{i}"))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - start
        count = concurrent_labs * objects_per_lab
        print(
            f"apply, {workers} concurrent: {count / elapsed:8.0f} objects/s  "
            f"({concurrent_labs} labs x {objects_per_lab} objects in {elapsed:.2f}s)"
        )

        start = time.perf_counter()
        for i in range(sequential_labs):
            await client.apply(lab(f"seq{i}"))
        elapsed = time.perf_counter() - start
        rate = sequential_labs * objects_per_lab / elapsed
        print(f"re-apply (no-op):      {rate:8.0f} objects/s")


async def bench_list(url: str, pods: int, rounds: int) -> None:
    async with KubernetesClient.from_url(url) as client:
        cases = [
            ("LIST all lab pods, pages of 500", "nublado.lsst.io/category=lab", 500, pods),
            ("LIST all lab pods, one page    ", "nublado.lsst.io/category=lab", pods, pods),
            ("LIST one user's pod           ", f"nublado.lsst.io/user=u{pods // 2}", 500, 1),
        ]
        for label, selector, page, expected in cases:
            timings = []
            for _ in range(rounds):
                start = time.perf_counter()
                items = await client.list("Pod", label_selector=selector, page_size=page)
                timings.append(time.perf_counter() - start)
                assert len(items) == expected, (len(items), expected)
            print(
                f"{label}: {min(timings) * 1000:7.1f} ms min, "
                f"{statistics.median(timings) * 1000:7.1f} ms median ({rounds} rounds, "
                f"{expected} of {pods} pods)"
            )


async def bench_watch_and_lease(url: str, rounds: int) -> None:
    """Watch open/event/close and Lease create+replace cycles, one at a time."""
    ns = f"{url}/api/v1/namespaces/default"
    leases = f"{url}/apis/coordination.k8s.io/v1/namespaces/default/leases"
    json_type = {"Content-Type": "application/json"}
    apply_type = {"Content-Type": "application/apply-patch+yaml"}
    async with aiohttp.ClientSession(trust_env=False) as session:
        timings = []
        for i in range(rounds):
            name = f"watched-{i}"
            start = time.perf_counter()
            async with session.get(f"{ns}/configmaps") as listed:
                version = (await listed.json())["metadata"]["resourceVersion"]
            query = {
                "watch": "true",
                "resourceVersion": version,
                "fieldSelector": f"metadata.name={name}",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "10",
            }
            async with session.get(f"{ns}/configmaps", params=query) as watch:
                assert watch.status == 200, watch.status
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
                async with session.patch(
                    f"{ns}/configmaps/{name}",
                    params={"fieldManager": "bench", "fieldValidation": "Strict"},
                    data=json.dumps(body),
                    headers=apply_type,
                ) as applied:
                    assert applied.status == 201, applied.status
                line = await watch.content.readline()
                assert json.loads(line)["type"] == "ADDED"
            timings.append(time.perf_counter() - start)
        print(
            f"watch cycle (LIST rv, watch, apply, event, close): "
            f"{statistics.median(timings) * 1000:6.2f} ms median ({rounds} rounds)"
        )

        timings = []
        for i in range(rounds):
            name = f"lock-{i}"
            lease: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name},
                "spec": {"holderIdentity": "bench", "leaseDurationSeconds": 30},
            }
            start = time.perf_counter()
            async with session.post(leases, data=json.dumps(lease), headers=json_type) as made:
                assert made.status == 201, made.status
                lease = await made.json()
            for holder in ("bench-2", "bench-3"):
                lease["spec"]["holderIdentity"] = holder
                async with session.put(
                    f"{leases}/{name}", data=json.dumps(lease), headers=json_type
                ) as replaced:
                    assert replaced.status == 200, replaced.status
                    lease = await replaced.json()
            timings.append(time.perf_counter() - start)
        print(
            f"Lease create + 2 replaces:  {statistics.median(timings) * 1000:6.2f} ms median "
            f"({rounds} rounds)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential-labs", type=int, default=200)
    parser.add_argument("--concurrent-labs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--labs", type=int, default=5000, help="labs for LIST and memory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=200, help="watch and Lease cycles")
    args = parser.parse_args()

    print(f"reference lab set: {len(lab('x'))} objects; sandbox on 127.0.0.1 (uvicorn, 1 thread)")
    # Without nodes the pods stay Pending: the apply path alone, as before the
    # sandbox scheduled and started pods.
    pending = Sandbox(storage_classes=STORAGE_CLASSES)
    with pending.serve() as url:
        asyncio.run(bench_sequential(url, args.sequential_labs, "pods left Pending  "))
    del pending
    sandbox = Sandbox(nodes=NODES, storage_classes=STORAGE_CLASSES)
    with sandbox.serve() as url:
        asyncio.run(
            bench_applies(url, args.sequential_labs, args.concurrent_labs, args.concurrency)
        )
        asyncio.run(bench_watch_and_lease(url, args.cycles))
    del sandbox
    gc.collect()

    # Pods stay Pending (the kubelet waits), so only the labs' own objects are measured.
    before = rss_bytes()
    big = Sandbox(SandboxSettings(schedule_delay=3600), storage_classes=STORAGE_CLASSES)
    start = time.perf_counter()
    for i in range(args.labs):
        for manifest in lab(f"u{i}"):
            big.apply(manifest, field_manager="nublado")
    loaded = time.perf_counter() - start
    gc.collect()
    grown = rss_bytes() - before
    count = big.cluster.store.count()
    print(
        f"sandbox memory, {args.labs} labs: {grown / 2**20:7.1f} MiB RSS growth for {count} "
        f"objects ({grown / args.labs / 1024:.1f} KiB per lab; loaded in-process in "
        f"{loaded:.1f}s, watch history of {big.settings.history_limit} events included)"
    )
    with big.serve() as url:
        asyncio.run(bench_list(url, args.labs, args.rounds))


if __name__ == "__main__":
    main()
