"""Benchmark of lab spawns through the controller's REST API, each part in its own process.

Three processes, so each one's CPU time and memory can be read from /proc:

- the sandbox API server (``nublado sandbox`` with examples/nodes.json and
  examples/storage-classes.json, kubelet delays at zero);
- the controller: this script again in ``--controller`` mode, which runs
  `build_controller` under uvicorn exactly as ``nublado serve --sandbox``
  wires it (examples/config.yaml with its static image source, examples/
  discovery, the controller namespace, pod and Secrets created first with
  serve's own helper), but with `TrustedUsers` over a generated file of N
  users, and its Kubernetes client counting every HTTP request it sends;
- this client, which talks HTTP to the controller (aiohttp, a keep-alive
  connection per concurrent spawn, bodies encoded before the clock starts):
  POST create, then read the SSE events stream until ``complete``.

Prints create -> ``complete`` latency p50 / p95 for 1 spawn, 50 sequential
and 100 concurrent spawns; spawns per second at 100 concurrent (errors
counted); Kubernetes requests per spawn (counted in the controller's client,
by verb and kind); the controller's CPU time per spawn (utime + stime of its
process over the spawns) and the ceiling that implies; the sandbox's and the
controller's CPU share during the concurrent run (a share near 100 % of one
core marks the process that limits); controller RSS with 1,000 running labs.

Run: .venv/bin/python benchmarks/spawn.py [--running 1000] [--profile FILE]

``BENCH_TRACE=1`` prints a timeline to stderr: each Kubernetes request the
controller sends (start on the system's monotonic clock, duration, verb,
path; in the controller log, kept with ``SPAWN_BENCH_LOG=FILE``) and, from
this client, each spawn's POST, 201 and ``complete`` on the same clock.

``--profile FILE`` runs cProfile in the controller during the sequential and
the concurrent runs and writes their stats to FILE.sequential and
FILE.concurrent (read with ``python -m pstats``). ``--profile-sandbox FILE``
runs every thread of the sandbox (its server's among them) under cProfile
for its whole life, start-up included, and writes their merged stats to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TOKEN = "bench-token"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_STATS_PATH = "/_bench/stats"
_PROFILE_PATH = "/_bench/profile"


# The sandbox process, profiled


def run_profiled_sandbox(output: Path, argv: list[str]) -> None:
    """``--profiled-sandbox FILE``: ``nublado <argv>`` with each thread under cProfile."""
    import cProfile
    import pstats
    import runpy
    import threading

    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(original_run, thread)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile()
    profiles.append(main_profile)
    sys.argv = ["nublado", *argv]
    try:
        main_profile.runcall(runpy.run_module, "nublado", run_name="__main__")
    except SystemExit:
        pass
    finally:
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(output)


# The controller process


def run_controller(
    kubeconfig: Path, users_file: Path, port_file: Path, spawn_timeout: float, default_gc: bool
) -> None:
    """``--controller``: the app of ``nublado serve --sandbox`` against a separate sandbox."""
    import cProfile

    import httpx
    import uvicorn
    import yaml

    from nublado.api.controller import build_controller, file_discovery
    from nublado.gafaelfawr import TrustedUsers
    from nublado.httpwire import CoalescingHTTPProtocol
    from nublado.kube.client import KubernetesClient
    from nublado.models.metadata import ControllerMetadata
    from nublado.serve import _bind, _load, _seed_sandbox, _Server, run_event_loop, tune_gc

    config = _load(EXAMPLES / "config.yaml")
    lab = config.lab.model_copy(update={"spawn_timeout": timedelta(seconds=spawn_timeout)})
    config = config.model_copy(update={"lab": lab})
    users = TrustedUsers.from_file(users_file)
    listener = _bind("127.0.0.1", 0)
    requests: Counter[str] = Counter()
    profiler: list[cProfile.Profile] = []
    collector = {"seconds": 0.0, "start": 0.0, "full": 0}

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        # The cyclic collector's share of the controller's CPU (it grows with the caches).
        if phase == "start":
            collector["start"] = time.process_time()
        else:
            collector["seconds"] += time.process_time() - collector["start"]
            collector["full"] += info["generation"] == 2

    gc.callbacks.append(gc_timer)

    async def main() -> None:
        # As `nublado serve --sandbox`: the sandbox's URL, no proxy lookup from the
        # environment (from_kubeconfig's client looks it up once, when its session opens).
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        kube = KubernetesClient.from_url(server)
        send = kube._send

        # Read once: this wrapper runs in the controller for every request, and its
        # own CPU counts as the controller's (an environment lookup per request cost
        # about 0.1 ms per spawn).
        trace = bool(os.environ.get("BENCH_TRACE"))

        async def counting_send(method: str, path: str, **kwargs: Any) -> Any:
            # /api/v1/namespaces/x/pods/y -> "GET pods" (watches and lists as "WATCH"/"LIST")
            parts = path.partition("?")[0].strip("/").split("/")
            kind = _kind_of(parts)
            verb = method
            if method == "GET":
                if ("watch", "true") in (kwargs.get("query") or ()):
                    verb = "WATCH"
                elif parts[-1] == kind:
                    verb = "LIST"
            requests[f"{verb} {kind}"] += 1
            if trace:
                t0 = time.perf_counter()
                try:
                    return await send(method, path, **kwargs)
                finally:
                    took = 1000 * (time.perf_counter() - t0)
                    where = path.split("?")[0]
                    print(f"TRACE {t0:.4f} {took:6.2f}ms {verb} {where}", file=sys.stderr)
            return await send(method, path, **kwargs)

        kube._send = counting_send  # type: ignore[method-assign]
        metadata = await _seed(kube, config)
        async with kube, httpx.AsyncClient() as http:
            app = build_controller(
                config,
                kube=kube,
                http=http,
                users=users,
                metadata=metadata,
                discovery=file_discovery(EXAMPLES / "discovery.json"),
            )

            async def bench_app(scope: Any, receive: Any, send: Any) -> None:
                path = scope.get("path", "") if scope["type"] == "http" else ""
                if path == _STATS_PATH:
                    body = json.dumps({"requests": dict(requests), "gc": collector}).encode()
                elif path == _PROFILE_PATH + "/start":
                    profiler.append(cProfile.Profile())
                    profiler[-1].enable()
                    body = b"{}"
                elif path == _PROFILE_PATH + "/stop":
                    profiler[-1].disable()
                    profiler[-1].dump_stats(parse_qs(scope["query_string"].decode())["file"][0])
                    body = b"{}"
                else:
                    await app(scope, receive, send)
                    return
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})

            if not default_gc:
                tune_gc()  # as `nublado serve` does
            server = _Server(
                uvicorn.Config(
                    bench_app,
                    lifespan="on",
                    log_config=None,
                    http=CoalescingHTTPProtocol,
                    access_log=False,
                    proxy_headers=False,
                    server_header=False,
                    timeout_graceful_shutdown=10,
                )
            )
            task = asyncio.create_task(server.serve(sockets=[listener]))

            def dump_tasks() -> None:  # kill -USR1 <controller>: where every task waits
                for each in asyncio.all_tasks():
                    where, coro = [], each.get_coro()
                    while coro is not None:
                        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
                        if frame is not None:
                            where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
                    print("TASK", " > ".join(where), file=sys.stderr)

            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
            while not server.started and not task.done():
                await asyncio.sleep(0.05)
            port_file.write_text(str(listener.getsockname()[1]))
            await task

    async def _seed(kube: KubernetesClient, config: Any) -> ControllerMetadata:
        # serve's helper creates through a Sandbox object in its process; here the
        # sandbox is another process, so its manifests are collected and sent over HTTP.
        collected: list[dict[str, Any]] = []

        class Collector:
            def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
                collected.append(manifest)
                return {**manifest, "metadata": {**manifest["metadata"], "uid": ""}}

        given = _seed_sandbox(Collector(), config, EXAMPLES)  # type: ignore[arg-type]
        uid = ""
        for manifest in collected:
            created = await kube.create(manifest)
            if manifest["kind"] == "Pod":
                uid = created["metadata"]["uid"]
        return ControllerMetadata(given.name, given.namespace, uid)

    run_event_loop(main())  # as `nublado serve`: uvloop's loop when installed


def _kind_of(parts: list[str]) -> str:
    """The resource plural of an API path (``/api/v1/namespaces/ns/pods/x`` -> ``pods``)."""
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    return rest[0] if rest else "?"


# The client


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """utime and stime of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_users(path: Path, count: int) -> list[str]:
    """``count`` users like the example's rachel (same groups and quota), distinct ids."""
    template = json.loads((EXAMPLES / "users.json").read_text())[0]
    users = []
    for index in range(count):
        name = f"bench{index:04d}"
        users.append(
            {
                **template,
                "username": name,
                "name": f"Bench {index}",
                "uid": 100000 + index,
                "gid": 100000 + index,
                "groups": [{"name": name, "id": 100000 + index}, *template["groups"][1:]],
            }
        )
    path.write_text(json.dumps(users))
    return [u["username"] for u in users]


def write_nodes(path: Path, labs: int) -> Path:
    """examples/nodes.json, its nodes repeated until ``labs`` small labs fit.

    An example node (8 CPU, 32 GiB) holds 32 small labs (0.25 CPU requested
    each); the two example nodes alone would leave the 65th lab unschedulable.
    """
    nodes = json.loads((EXAMPLES / "nodes.json").read_text())
    copies = labs // (32 * len(nodes)) + 1
    repeated = {f"{name}-{index}": node for index in range(copies) for name, node in nodes.items()}
    path.write_text(json.dumps(repeated))
    return path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Bench:
    """The client side: spawns through the controller and reads the processes' figures.

    The client shares the machine's cores with the controller and the sandbox, so
    its own CPU caps the spawns/s it can measure: it uses aiohttp (already used by
    the controller's Kubernetes client), a pool of keep-alive connections sized for
    the concurrency, and request bodies encoded once before the timed runs.
    """

    def __init__(
        self, base: str, prefix: str, controller: int, sandbox: int, concurrency: int
    ) -> None:
        import aiohttp

        self.prefix = prefix
        self.controller = controller
        self.sandbox = sandbox
        self.trace = bool(os.environ.get("BENCH_TRACE"))
        self.http = aiohttp.ClientSession(
            base_url=base,
            # One connection per spawn in flight (create, then its event stream), and a
            # few for the stats requests. uvicorn closes a connection idle 5 s:
            # reusing one that old races its close.
            connector=aiohttp.TCPConnector(limit=concurrency + 4, keepalive_timeout=2.0),
            # As httpx's timeout=60: per connect and per read, not over a whole stream.
            timeout=aiohttp.ClientTimeout(total=None, connect=60, sock_read=60),
        )
        template = json.loads((EXAMPLES / "lab-specification.json").read_text())
        self.template: dict[str, Any] = template

    def body(self, user: str) -> bytes:
        """The create request's body for ``user``: the example spec with its prefix."""
        env = {**self.template["env"], "JUPYTERHUB_SERVICE_PREFIX": f"/nb/user/{user}/"}
        return json.dumps({**self.template, "env": env}).encode()

    async def spawn(self, user: str, body: bytes) -> float:
        """Seconds from POST create to the ``complete`` event; raises on any failure."""
        headers = {
            "X-Auth-Request-User": user,
            "X-Auth-Request-Token": TOKEN,
            "Content-Type": "application/json",
        }
        labs = f"{self.prefix}/spawner/v1/labs/{user}"
        started = time.perf_counter()
        async with self.http.post(f"{labs}/create", data=body, headers=headers) as response:
            if self.trace:
                print(f"CLIENT {started:.4f} post, {time.perf_counter():.4f} 201", file=sys.stderr)
            if response.status != 201:
                text = await response.text()
                raise RuntimeError(f"create {user}: {response.status} {text}")
            await response.read()  # the rest of the body, so the connection is reused
        event = None
        async with self.http.get(f"{labs}/events", headers=headers) as stream:
            if self.trace:
                print(f"CLIENT {time.perf_counter():.4f} headers", file=sys.stderr)
            async for line in stream.content:
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                    if self.trace:
                        print(f"CLIENT {time.perf_counter():.4f} got {event}", file=sys.stderr)
                    if event == "complete":
                        took = time.perf_counter() - started
                        if self.trace:
                            print(f"CLIENT {time.perf_counter():.4f} complete", file=sys.stderr)
                        # The server ends the stream after complete: read to its end
                        # (after the clock stops) so the connection goes back to the pool.
                        await stream.read()
                        return took
                    if event == "failed":
                        break
            status = "" if stream.status == 200 else f" (status {stream.status})"
        raise RuntimeError(f"spawn {user}: stream ended with {event}{status}")

    async def get_json(self, path: str, **params: str) -> Any:
        async with self.http.get(path, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def requests(self) -> Counter[str]:
        return Counter((await self.get_json(_STATS_PATH))["requests"])

    async def gc_seconds(self) -> tuple[float, int]:
        stats = (await self.get_json(_STATS_PATH))["gc"]
        return stats["seconds"], stats["full"]

    async def run(
        self, label: str, users: list[str], concurrency: int, *, profile: Path | None = None
    ) -> dict[str, Any]:
        """Spawn every user, ``concurrency`` at a time; latencies, errors and costs."""
        bodies = {user: self.body(user) for user in users}  # encoded before the clock starts
        before = await self.requests()
        gc_before = await self.gc_seconds()
        if profile is not None:
            await self.get_json(f"{_PROFILE_PATH}/start")
        sys_c = cpu_times(self.controller)[1]
        cpu_c, cpu_s = cpu_seconds(self.controller), cpu_seconds(self.sandbox)
        cpu_b = cpu_seconds(os.getpid())
        latencies: list[float] = []
        errors: list[str] = []
        gate = asyncio.Semaphore(concurrency)

        async def one(user: str) -> None:
            async with gate:
                try:
                    latencies.append(await self.spawn(user, bodies[user]))
                except Exception as exc:
                    errors.append(repr(exc)[:200])

        wall = time.perf_counter()
        await asyncio.gather(*(one(u) for u in users))
        wall = time.perf_counter() - wall
        cpu_c = cpu_seconds(self.controller) - cpu_c
        sys_c = cpu_times(self.controller)[1] - sys_c
        cpu_s = cpu_seconds(self.sandbox) - cpu_s
        cpu_b = cpu_seconds(os.getpid()) - cpu_b
        if profile is not None:
            await self.get_json(f"{_PROFILE_PATH}/stop", file=str(profile))
        used = (await self.requests()) - before
        gc_after = await self.gc_seconds()
        n = len(users)
        return {
            "label": label,
            "n": n,
            "errors": errors,
            "p50": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p95": percentile(latencies, 0.95) * 1000 if latencies else float("nan"),
            "rate": len(latencies) / wall,
            "wall": wall,
            "controller_cpu_ms": cpu_c / n * 1000,
            "controller_share": cpu_c / wall,
            "controller_sys_ms": sys_c / n * 1000,
            "controller_gc_ms": (gc_after[0] - gc_before[0]) / n * 1000,
            "full_collections": gc_after[1] - gc_before[1],
            "sandbox_cpu_ms": cpu_s / n * 1000,
            "sandbox_share": cpu_s / wall,
            "requests": used,
            "client_share": cpu_b / wall,
            "load": os.getloadavg()[0],
        }


def report(result: dict[str, Any]) -> None:
    r = result
    print(
        f"{r['label']:>16}: n={r['n']:4d}  p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms"
        f"  {r['rate']:5.1f} spawns/s  errors {len(r['errors'])}"
        f"  | CPU per spawn: controller {r['controller_cpu_ms']:5.1f} ms"
        f" ({r['controller_sys_ms']:.1f} system, {r['controller_gc_ms']:.1f} GC,"
        f" {r['full_collections']} full collections),"
        f" sandbox {r['sandbox_cpu_ms']:5.1f} ms"
        f"  | CPU share: controller {r['controller_share']:4.0%},"
        f" sandbox {r['sandbox_share']:4.0%}, this client {r['client_share']:4.0%}"
        f" (load average {r['load']:.1f})"
    )
    for error in r["errors"][:3]:
        print(f"{'':>18}error: {error}")


def wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start in 60 s")


async def bench(args: argparse.Namespace, base: str, controller: int, sandbox: int) -> None:
    from nublado.config.loader import load_config

    prefix = load_config(EXAMPLES / "config.yaml").path_prefix
    users = args.users
    b = Bench(base, prefix, controller, sandbox, args.concurrent)
    queue = iter(users)

    def take(n: int) -> list[str]:
        return [next(queue) for _ in range(n)]

    await b.run("warm-up", take(3), 1)
    profiles: list[Path | None] = [None, None]
    if args.profile is not None:
        profiles = [Path(f"{args.profile}.{name}") for name in ("sequential", "concurrent")]
    results = [
        await b.run("1 spawn", take(1), 1),
        await b.run("50 sequential", take(args.sequential), 1, profile=profiles[0]),
        await b.run("100 concurrent", take(args.concurrent), args.concurrent, profile=profiles[1]),
    ]
    for result in results:
        report(result)
    seq, conc = results[1], results[2]
    print()
    print("Kubernetes requests per spawn (counted in the controller's client):")
    for name, result in (("sequential", seq), ("concurrent", conc)):
        total = sum(result["requests"].values())
        detail = ", ".join(
            f"{k} {v / result['n']:.2g}" for k, v in sorted(result["requests"].items())
        )
        print(f"  {name}: {total / result['n']:.1f} ({detail})")
    cpu = conc["controller_cpu_ms"]
    print()
    print(
        f"controller CPU per spawn: {seq['controller_cpu_ms']:.1f} ms sequential,"
        f" {cpu:.1f} ms concurrent -> CPU-bound ceiling {1000 / cpu:.0f} spawns/s on one core"
    )
    print(
        f"sandbox CPU per spawn: {seq['sandbox_cpu_ms']:.1f} ms sequential,"
        f" {conc['sandbox_cpu_ms']:.1f} ms concurrent -> ceiling"
        f" {1000 / conc['sandbox_cpu_ms']:.0f} spawns/s on one core"
    )
    if args.profile is not None:
        print(f"controller profiles: {profiles[0]}, {profiles[1]}")

    remaining = list(queue)
    if remaining:
        fill = await b.run("fill", remaining, args.concurrent)
        print()
        report(fill)
    await asyncio.sleep(1.0)
    running = await b.get_json(f"{prefix}/spawner/v1/labs")
    print(
        f"controller RSS with {len(running)} running labs: {rss_mib(controller):.0f} MiB"
        f" (sandbox {rss_mib(sandbox):.0f} MiB)"
    )
    await b.http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--running",
        type=int,
        default=1000,
        help="labs running at the end (at least the warm-up and measured spawns, 154 by default)",
    )
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--profile-sandbox",
        type=Path,
        default=None,
        help="run the sandbox's threads under cProfile (start-up included) into this file",
    )
    parser.add_argument(
        "--spawn-timeout",
        type=float,
        default=60.0,
        help="the controller's lab.spawnTimeout (examples/config.yaml has 10 s)",
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="leave Python's collector thresholds (nublado serve raises them: tune_gc)",
    )
    parser.add_argument("--controller", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--users-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    if sys.argv[1:2] == ["--profiled-sandbox"]:  # the sandbox's own arguments follow
        run_profiled_sandbox(Path(sys.argv[2]), sys.argv[3:])
        return
    args = parser.parse_args()
    if args.controller:
        run_controller(
            args.kubeconfig, args.users_file, args.port_file, args.spawn_timeout, args.default_gc
        )
        return
    needed = 4 + args.sequential + args.concurrent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kubeconfig = folder / "kubeconfig"
        users_file = folder / "users.json"
        port_file = folder / "port"
        args.users = write_users(users_file, max(args.running, needed))
        nodes_file = write_nodes(folder / "nodes.json", max(args.running, needed))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        profile_sandbox = (
            [__file__, "--profiled-sandbox", str(args.profile_sandbox), "sandbox"]
            if args.profile_sandbox
            else ["-m", "nublado", "sandbox"]
        )
        sandbox = subprocess.Popen(
            [
                sys.executable,
                *profile_sandbox,
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
        controller: subprocess.Popen[bytes] | None = None
        log = (folder / "controller.log").open("wb")
        try:
            deadline = time.monotonic() + 60
            while not kubeconfig.exists() and time.monotonic() < deadline:
                if sandbox.poll() is not None:
                    raise SystemExit("the sandbox exited")
                time.sleep(0.05)
            time.sleep(0.2)
            controller = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--controller",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--users-file",
                    str(users_file),
                    "--port-file",
                    str(port_file),
                    "--spawn-timeout",
                    str(args.spawn_timeout),
                    *(["--default-gc"] if args.default_gc else []),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
            port = wait_for_file(port_file, controller, "the controller")
            asyncio.run(bench(args, f"http://127.0.0.1:{port}", controller.pid, sandbox.pid))
            text = (folder / "controller.log").read_text(errors="replace")
            if os.environ.get("SPAWN_BENCH_LOG"):
                Path(os.environ["SPAWN_BENCH_LOG"]).write_text(text)
            problems = [
                line
                for line in text.splitlines()
                if re.search(r"\[(error|critical)|Traceback|\"level\": \"error", line)
            ]
            if problems:
                print(f"controller log: {len(problems)} error lines, first: {problems[0][:200]}")
        finally:
            for process in (controller, sandbox):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGINT)
            for process in (controller, sandbox):
                if process is not None:
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
            log.close()


if __name__ == "__main__":
    main()
