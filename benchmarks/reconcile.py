"""Benchmark of one lab reconcile pass over N labs (5,000 by default), each part in its own process.

- the sandbox API server (``nublado sandbox`` with examples/nodes.json repeated
  until every lab fits, examples/storage-classes.json);
- this script, which seeds the sandbox over HTTP with N labs' objects exactly
  as a spawn leaves them (each lab rendered by the renderer from
  examples/config.yaml and applied by server-side apply as field manager
  ``nublado``, its pod run by the sandbox's kubelet, its operation record a
  completed spawn's Lease): no REST API, no 5,000 spawns;
- the controller: this script in ``--controller`` mode, which starts the lab
  service as ``nublado serve`` does (LIST+WATCH caches of every lab), builds a
  `LabReconciler`, and times passes, its Kubernetes client counting every
  request by verb: a pass with nothing to do, a pass after 1 % drift (half
  the drifted labs lose their env ConfigMap, half their NetworkPolicy), and
  another with nothing to do; then the LISTs of a pass alone, each kind on
  its own, to show where the time goes. Controller RSS after each step and
  its peak.

Run: flock /tmp/bench.lock .venv/bin/python benchmarks/reconcile.py [--labs 5000]

``--passes N`` (5 by default) runs N passes with nothing to do in a row and prints their
median and range as well: one pass's time swings with the machine.

``RECONCILE_BENCH_PROFILE=FILE`` runs the second pass (nothing to do) under cProfile
in the controller and writes its stats to FILE (read with ``python -m pstats``).
``RECONCILE_BENCH_LOOP=N`` runs N more passes with nothing to do after the first,
printing each one's figures to the controller's stderr: a steady load to sample both
processes with py-spy (``pgrep -f "nublado sandbox"``, ``pgrep -f "reconcile.py
--controller"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from spawn import cpu_seconds, rss_mib, write_nodes, write_users  # noqa: E402


def _status_kib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _live_rss_mib(pid: int) -> float:
    """RSS after a full collection and glibc's malloc_trim: memory in use, without what the
    allocator kept from freed peaks (a LIST's decoded page, freed, stays in the process)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return float(rss_mib(pid))


def _config() -> Any:
    from nublado.serve import _load

    return _load(EXAMPLES / "config.yaml")


def _server(kubeconfig: Path) -> str:
    import yaml

    return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


# Seeding


async def seed(kubeconfig: Path, users_file: Path, count: int) -> float:
    """N labs' objects and records, as spawns leave them; returns the seconds it took."""
    from nublado.kube.client import KubernetesClient
    from nublado.kube.errors import KubernetesError
    from nublado.models.image import ResolvedImage
    from nublado.models.lab import (
        LabOptions,
        LabResourceAmounts,
        LabSpecification,
        LabState,
        LabStatus,
        ResourceAmount,
    )
    from nublado.models.metadata import ControllerMetadata
    from nublado.models.user import UserInfo
    from nublado.render.cli import read_secrets
    from nublado.render.engine import Renderer
    from nublado.render.lab import LabContextBuilder
    from nublado.serve import _seed_sandbox
    from nublado.services.labstate import OperationRecord

    config = _config()
    renderer = Renderer(config.template_dirs)
    builder = LabContextBuilder(config)
    sources = read_secrets(EXAMPLES / "secrets.json")
    discovery = json.loads((EXAMPLES / "discovery.json").read_text())
    spec_template = json.loads((EXAMPLES / "lab-specification.json").read_text())
    users = [UserInfo.model_validate(u) for u in json.loads(users_file.read_text())[:count]]
    size = config.lab.get_size_definition(spec_template["options"]["size"])
    image = ResolvedImage(
        "lighthouse.ceres", "library/sketchbook", "recommended", "sha256:5678", "Recommended"
    )
    started = time.monotonic()
    async with KubernetesClient.from_url(_server(kubeconfig)) as kube:
        collected: list[dict[str, Any]] = []

        class Collector:
            def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
                collected.append(manifest)
                return {**manifest, "metadata": {**manifest["metadata"], "uid": ""}}

        given: ControllerMetadata = _seed_sandbox(Collector(), config, EXAMPLES)  # type: ignore[arg-type]
        for manifest in collected:
            await kube.create(manifest)
        namespace = given.namespace

        async def one(user: UserInfo) -> None:
            env = {
                **spec_template["env"],
                "JUPYTERHUB_SERVICE_PREFIX": f"/nb/user/{user.username}/",
            }
            options = {**spec_template["options"], "image_list": image.reference_with_digest}
            spec = LabSpecification.model_validate({"options": options, "env": env})
            context = builder.build(
                user=user,
                spec=spec,
                image=image,
                size=size,
                secrets=sources,
                token=f"gt-{user.username}.token",
                discovery=discovery,
            )
            for manifest in renderer.render("lab", context):
                for attempt in range(50):
                    try:
                        await kube.apply_one(manifest)
                        break
                    except KubernetesError:
                        # The pod waits for the namespace's default ServiceAccount.
                        if manifest["kind"] != "Pod" or attempt == 49:
                            raise
                        await asyncio.sleep(0.05)
            notebook = user.quota.notebook if user.quota is not None else None
            limits, requests = size.resources.limits, size.resources.requests
            state = LabState(
                user=user,
                options=LabOptions(size=size.size, image=image.reference_with_digest),
                status=LabStatus.PENDING,
                resources=LabResourceAmounts(
                    limits=ResourceAmount(cpu=limits.cpu, memory=limits.memory),
                    requests=ResourceAmount(cpu=requests.cpu, memory=requests.memory),
                ),
                quota=(
                    ResourceAmount(cpu=notebook.cpu, memory=notebook.memory_bytes)
                    if notebook is not None
                    else None
                ),
            )
            lab_ns = f"{config.lab.namespace_prefix}-{user.username}"
            record = OperationRecord(
                username=user.username,
                operation="spawn",
                operation_id=secrets.token_hex(8),
                result="complete",
                holder="bench-seed",
                renew_time=datetime.now(UTC),
                lab_state=state,
                internal_url=f"http://lab.{lab_ns}:8888/nb/user/{user.username}/",
                events=[
                    ("info", f"Starting lab creation for {user.username}", 1),
                    ("info", "Created Kubernetes objects for user lab", 30),
                    ("complete", f"Lab Kubernetes pod started for {user.username}", None),
                ],
                spawn_env=dict(context["lab"].env),
            )
            await kube.create(record.to_lease(namespace))

        queue = list(users)

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        await asyncio.gather(*(worker() for _ in range(16)))
        # Every pod Running before the measured passes (the kubelet has a small delay).
        while True:
            pods = await kube.list("Pod", label_selector="nublado.lsst.io/category=lab")
            if sum((p.get("status") or {}).get("phase") == "Running" for p in pods) == count:
                break
            await asyncio.sleep(0.5)
    return time.monotonic() - started


# The controller process


def run_controller(kubeconfig: Path, count: int, sandbox_pid: int, passes: int = 5) -> None:
    """``--controller``: the lab service and the reconciler; prints one JSON line of figures."""
    import httpx

    from nublado.api.controller import file_discovery
    from nublado.kube.client import KubernetesClient
    from nublado.metrics import Metrics
    from nublado.models.metadata import ControllerMetadata
    from nublado.render.engine import Renderer
    from nublado.serve import run_event_loop, tune_gc
    from nublado.services.images import ImageService, build_image_source
    from nublado.services.labs import LabService
    from nublado.services.reconcile import LabReconciler

    config = _config()
    namespace = ControllerMetadata.from_directory(config.metadata_path).namespace
    pid = os.getpid()
    requests: Counter[str] = Counter()
    figures: dict[str, Any] = {}

    async def main() -> None:
        kube = KubernetesClient.from_url(_server(kubeconfig))
        send = kube._send

        async def counting_send(method: str, path: str, **kwargs: Any) -> Any:
            query = dict(kwargs.get("query") or [])
            verb = method
            if method == "GET" and query.get("watch") == "true":
                verb = "WATCH"
            elif method == "GET" and "limit" in query:
                verb = "LIST"
            elif method == "PATCH" and query.get("dryRun") == "All":
                verb = "PATCH(dry-run)"
            requests[verb] += 1
            return await send(method, path, **kwargs)

        kube._send = counting_send  # type: ignore[method-assign]
        tune_gc()  # as `nublado serve` does
        discovery = file_discovery(EXAMPLES / "discovery.json")
        metrics = Metrics()
        async with kube, httpx.AsyncClient() as http:
            renderer = Renderer(config.template_dirs)
            images = ImageService(config, build_image_source(config.images, http), kube)
            labs = LabService(
                config,
                kube,
                images,
                renderer,
                namespace=namespace,
                identity="bench",
                discovery=discovery,
                metrics=metrics,
            )
            started = time.monotonic()
            await labs.start()
            figures["service_start_s"] = round(time.monotonic() - started, 3)
            figures["rss_after_start_mib"] = round(rss_mib(pid), 1)
            figures["live_after_start_mib"] = round(_live_rss_mib(pid), 1)
            reconciler = LabReconciler(
                config,
                kube,
                labs,
                renderer,
                namespace=namespace,
                metrics=metrics,
                discovery=discovery,
            )

            async def timed(name: str) -> None:
                requests.clear()
                cpu, sandbox_cpu = time.process_time(), cpu_seconds(sandbox_pid)
                report = await reconciler.run()
                figures[name] = {
                    "seconds": report.seconds,
                    "controller_cpu_s": round(time.process_time() - cpu, 2),
                    "sandbox_cpu_s": round(cpu_seconds(sandbox_pid) - sandbox_cpu, 2),
                    "requests": dict(sorted(requests.items())),
                    "labs": report.labs,
                    "running": report.running,
                    "reapplied": len(report.reapplied),
                    "fixed": len(report.fixed),
                    "drift": len(report.drift),
                    "deleted": len(report.deleted),
                    "rss_mib": round(rss_mib(pid), 1),
                }

            await timed("first_pass_nothing_to_do")
            # Passes with nothing to do, one after the other, to profile from outside.
            for _ in range(int(os.environ.get("RECONCILE_BENCH_LOOP", "0"))):
                await timed("loop")
                print(json.dumps(figures.pop("loop")), file=sys.stderr, flush=True)
            if os.environ.get("RECONCILE_BENCH_PROFILE"):
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
                await timed("nothing_to_do")
                profile.disable()
                profile.dump_stats(os.environ["RECONCILE_BENCH_PROFILE"])
            else:
                await timed("nothing_to_do")
            # More passes with nothing to do in a row: one pass's time swings with the
            # machine (0.7-1.3 s for the same work here), so their median and range.
            series = [figures["nothing_to_do"]]
            for _ in range(passes - 1):
                await timed("again")
                series.append(figures.pop("again"))
            figures["series"] = {
                key: [step[key] for step in series]
                for key in ("seconds", "controller_cpu_s", "sandbox_cpu_s", "rss_mib")
            }
            if any(step["requests"] != {"LIST": 9} for step in series):
                figures["series"]["requests"] = [step["requests"] for step in series]
            # 1 % drift: half lose their env ConfigMap, half their NetworkPolicy.
            drifted = sorted(labs.running())[: max(1, count // 100)]
            for index, username in enumerate(drifted):
                lab_ns = f"{config.lab.namespace_prefix}-{username}"
                if index % 2:
                    await kube.delete("NetworkPolicy", f"{username}-nb", lab_ns)
                else:
                    await kube.delete("ConfigMap", f"{username}-nb-env", lab_ns)
            await timed("one_percent_drift")
            await timed("nothing_to_do_after_repair")
            figures["live_after_passes_mib"] = round(_live_rss_mib(pid), 1)
            # The LISTs alone: all at once as a pass sends them, then each kind on its own.
            selector = "nublado.lsst.io/category=lab"
            kinds = [
                "Namespace",
                "PersistentVolumeClaim",
                "ConfigMap",
                "Secret",
                "ResourceQuota",
                "NetworkPolicy",
                "Service",
                "Pod",
            ]
            started = time.monotonic()
            await asyncio.gather(
                *(kube.list(kind, label_selector=selector, page_size=5000) for kind in kinds)
            )
            figures["lists_together_s"] = round(time.monotonic() - started, 3)
            alone = {}
            for kind in kinds:
                started = time.monotonic()
                items = await kube.list(kind, label_selector=selector)
                took = round(time.monotonic() - started, 3)
                # In one page: the sandbox rebuilds the collection for every page it serves.
                started = time.monotonic()
                await kube.list(kind, label_selector=selector, page_size=len(items) + 1)
                alone[kind] = [len(items), took, round(time.monotonic() - started, 3)]
            figures["list_alone_s"] = alone
            figures["rss_peak_mib"] = round(_status_kib(pid, "VmHWM"), 1)
            await labs.stop()
        print(json.dumps(figures), flush=True)

    run_event_loop(main())


# The orchestrator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labs", type=int, default=5000)
    parser.add_argument(
        "--passes",
        type=int,
        default=5,
        help="passes with nothing to do in a row (their median and range; default 5)",
    )
    parser.add_argument("--controller", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sandbox-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.controller:
        run_controller(args.kubeconfig, args.labs, args.sandbox_pid, args.passes)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kubeconfig = folder / "kubeconfig"
        users_file = folder / "users.json"
        write_users(users_file, args.labs)
        nodes_file = write_nodes(folder / "nodes.json", args.labs)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        sandbox = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nublado",
                "sandbox",
                "--kubeconfig",
                str(kubeconfig),
                "--nodes",
                str(nodes_file),
                "--storage-classes",
                str(EXAMPLES / "storage-classes.json"),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "sandbox.log").open("wb"),
        )
        try:
            deadline = time.monotonic() + 60
            while not kubeconfig.exists() and time.monotonic() < deadline:
                if sandbox.poll() is not None:
                    raise SystemExit("the sandbox exited")
                time.sleep(0.05)
            time.sleep(0.2)
            seconds = asyncio.run(seed(kubeconfig, users_file, args.labs))
            print(f"seeded {args.labs} labs in {seconds:.1f} s")
            print(f"sandbox RSS with {args.labs} labs: {rss_mib(sandbox.pid):.0f} MiB")
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--controller",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--labs",
                    str(args.labs),
                    "--sandbox-pid",
                    str(sandbox.pid),
                    "--passes",
                    str(max(1, args.passes)),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
            if result.returncode != 0 or not lines:
                print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
                raise SystemExit("the controller failed")
            figures = json.loads(lines[-1])
            print(
                f"controller: lab service started in {figures['service_start_s']} s, "
                f"RSS {figures['rss_after_start_mib']} MiB "
                f"({figures['live_after_start_mib']} MiB after gc + malloc_trim)"
            )
            for name in (
                "first_pass_nothing_to_do",
                "nothing_to_do",
                "one_percent_drift",
                "nothing_to_do_after_repair",
            ):
                step = figures[name]
                print(
                    f"{name}: {step['seconds']:.3f} s (CPU: controller "
                    f"{step['controller_cpu_s']} s, sandbox {step['sandbox_cpu_s']} s), "
                    f"requests {step['requests']}, "
                    f"labs {step['labs']}, running {step['running']}, "
                    f"re-applied {step['reapplied']}, fixed {step['fixed']}, "
                    f"drift {step['drift']}, deleted {step['deleted']}, RSS {step['rss_mib']} MiB"
                )
            series = figures["series"]

            def spread(values: list[float], digits: int = 2) -> str:
                low, mid, high = (
                    round(v, digits) for v in (min(values), statistics.median(values), max(values))
                )
                return f"median {mid} ({low}-{high})"

            print(
                f"nothing_to_do, {len(series['seconds'])} passes in a row: "
                f"{spread(series['seconds'], 3)} s; CPU: controller "
                f"{spread(series['controller_cpu_s'])} s, sandbox "
                f"{spread(series['sandbox_cpu_s'])} s; RSS {spread(series['rss_mib'], 1)} MiB"
                + (f"; requests {series['requests']}" if "requests" in series else "")
            )
            print(
                f"the pass's LISTs alone (whole objects), together (pages of 5,000): "
                f"{figures['lists_together_s']} s; "
                "each alone (pages of 500):"
            )
            for kind, (items, took, one_page) in figures["list_alone_s"].items():
                print(f"  LIST {kind}: {items} objects, {took} s; in one page {one_page} s")
            print(
                f"controller RSS after the passes, after gc + malloc_trim: "
                f"{figures['live_after_passes_mib']} MiB"
            )
            print(f"controller peak RSS: {figures['rss_peak_mib']} MiB")
        finally:
            sandbox.send_signal(signal.SIGINT)
            try:
                sandbox.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sandbox.kill()


if __name__ == "__main__":
    main()
