"""The sandbox: an in-process Kubernetes API server for trying nublado and for tests.

It speaks the real Kubernetes REST protocol over HTTP (see
`nublado.sandbox.protocol`), keeps objects in memory, and plays the parts of
a cluster a lab controller depends on (namespace lifecycle, a kubelet, the Job
controller, Gafaelfawr, an ingress controller). The same client code runs
against it and against a real cluster; kubectl can read and write it.

Typical test use::

    sandbox = Sandbox(nodes=REFERENCE / "inputs/nodes/standard.json")
    with sandbox.serve() as url:
        client = KubernetesClient.from_url(url)
        ...
        sandbox.inject_fault("PATCH", "/api/v1/namespaces/*/pods/*", status=503)
        sandbox.set_pod_failure("ErrImagePull", name="rachel-nb")
        assert sandbox.objects(namespace="userlabs-rachel") == []
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import uvicorn
import yaml

from ..httpwire import CoalescingHTTPProtocol
from .auth import Tokens
from .cluster import Cluster, SandboxSettings
from .kinds import KINDS, kind_for_manifest, kind_named
from .kubelet import PodFailure
from .protocol import Fault, create_app
from .rbac import UsageLog
from .storage import DEFAULT_STORAGE_CLASSES, load_storage_classes_file
from .store import ApiError, clone

__all__ = [
    "Fault",
    "NodesFileError",
    "PodFailure",
    "Sandbox",
    "SandboxSettings",
    "load_nodes_file",
    "serving_gc",
    "write_kubeconfig",
]

Object = dict[str, Any]


def serving_gc() -> None:
    """Collect cyclic garbage less often, for a process that only serves a sandbox.

    The store holds every object as nested dicts and lists, and each write
    allocates thousands more; with the default thresholds the collector
    ran several times a second over the whole store, about 13% of the
    server's CPU under a spawn-shaped load. Rarer young collections (and
    rarer full ones) cut that to about 2%. What a write allocates is freed by
    reference counting, not by the collector, so memory stays where it was.
    Process-wide: call it in a process of its own (``nublado sandbox``), not
    in a test process.
    """
    gc.set_threshold(20_000, 50, 100)


class NodesFileError(ValueError):
    """A nodes file that cannot be read or does not describe nodes."""


def load_nodes_file(path: Path) -> dict[str, Any]:
    """Read a nodes file (name -> {images: [{names, size_bytes}], labels}) for the sandbox."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise NodesFileError(f"cannot read nodes file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise NodesFileError(f"nodes file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise NodesFileError(f"nodes file {path} must map node names to objects")
    for name, node in data.items():
        images = node.get("images", [])
        if not isinstance(images, list) or not all(
            isinstance(i, dict) and isinstance(i.get("names"), list) for i in images
        ):
            raise NodesFileError(
                f"nodes file {path}: node {name}: images must be a list of {{names: [...]}}"
            )
        if not isinstance(node.get("labels", {}), dict):
            raise NodesFileError(f"nodes file {path}: node {name}: labels must be a mapping")
    return data


def write_kubeconfig(
    path: Path,
    url: str,
    *,
    namespace: str | None = None,
    token: str | None = None,
    certificate_authority: bytes | None = None,
) -> Path:
    """Write a kubeconfig whose only context points at ``url``.

    With a bearer ``token`` for its user, and the PEM ``certificate_authority``
    an https server's certificate is checked against.
    """
    context: Object = {"cluster": "sandbox", "user": "sandbox"}
    if namespace:
        context["namespace"] = namespace
    cluster: Object = {"server": url}
    if certificate_authority is not None:
        cluster["certificate-authority-data"] = base64.b64encode(certificate_authority).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": cluster}],
        "users": [{"name": "sandbox", "user": {"token": token} if token else {}}],
        "contexts": [{"name": "sandbox", "context": context}],
        "current-context": "sandbox",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class RecordedRequest(NamedTuple):
    """One request the sandbox received, for tests that check what a client sent."""

    method: str
    target: str  # path, with ?query when there is one
    user_agent: str
    authorization: str


class Sandbox:
    """Handle on one sandbox API server: its state, its faults, and serving it.

    Every method is thread-safe and synchronous, so both plain and asyncio
    tests can call it while the server runs in its own thread.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        nodes: Path | dict[str, Any] | None = None,
        storage_classes: Path | list[Object] | dict[str, Any] | None = None,
        usage: UsageLog | None = None,
    ) -> None:
        self.cluster = Cluster(settings)
        self.tokens = Tokens()
        self.usage = usage or UsageLog()
        """What RBAC allowed each user (RBAC mode); kept across `reset`."""
        self.settings = self.cluster.settings
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._requests: deque[RecordedRequest] = deque(maxlen=2000)
        self.url: str | None = None
        self.certificate_authority: bytes | None = None
        """The PEM certificate clients trust while served with ``tls=True``."""
        self._thread: threading.Thread | None = None
        self.app = create_app(self)
        if nodes is not None:
            self.load_nodes(nodes)
        self.load_storage_classes(storage_classes)

    # State

    def objects(
        self,
        namespace: str | None = None,
        kind: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[Object]:
        """Copies of the stored objects, by kind order then namespace and name.

        With ``namespace``, only the objects in that namespace (not the
        Namespace itself); with ``kind``, only that kind (``Pod``, ``pods``, ``po``).
        """
        kinds = [kind_named(kind)] if kind else list(KINDS)
        found: list[Object] = []
        with self.cluster.store.lock:
            for k in kinds:
                if namespace is not None and not k.namespaced:
                    continue
                items, _ = self.cluster.list(k.kind, namespace, label_selector)
                found.extend(clone(items))
        return found

    def get(self, kind: str, name: str, namespace: str | None = None) -> Object | None:
        """A copy of one object, or None."""
        k = kind_named(kind)
        with self.cluster.store.lock:
            obj = self.cluster.store.get(k.kind, (namespace or "") if k.namespaced else "", name)
            return clone(obj) if obj is not None else None

    def apply(
        self, manifest: Object, *, field_manager: str = "sandbox", force: bool = True
    ) -> Object:
        """Server-side apply a manifest directly (test setup), as a given field manager."""
        kind = kind_for_manifest(manifest)
        meta = manifest.get("metadata") or {}
        obj, _ = self.cluster.apply(
            kind.kind,
            meta.get("namespace") if kind.namespaced else None,
            meta["name"],
            orjson.dumps(manifest),
            field_manager=field_manager,
            force=force,
        )
        return clone(obj)

    def create(self, manifest: Object, *, field_manager: str = "sandbox") -> Object:
        """Create an object directly (test setup); raises `ApiError` as the API would answer."""
        kind = kind_for_manifest(manifest)
        meta = manifest.get("metadata") or {}
        obj = self.cluster.create(
            kind.kind,
            meta.get("namespace") if kind.namespaced else None,
            manifest,
            field_manager=field_manager,
        )
        return clone(obj)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete an object directly; False when it was absent."""
        try:
            self.cluster.delete(kind, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def reset(
        self,
        settings: SandboxSettings | None = None,
        *,
        nodes: Path | dict[str, Any] | None = None,
        storage_classes: Path | list[Object] | dict[str, Any] | None = None,
    ) -> None:
        """Start over with an empty cluster, keeping the server (tests share one per module).

        Open watches end, faults, pod failures and recorded requests are
        cleared, and timers still pending from before act on the old cluster
        only. Requests already in flight may still reach the new one.
        """
        old = self.cluster
        fresh = Cluster(settings)
        with old.store.lock:
            loop = old.loop
            old.store.close_watches()
        if loop is not None and not loop.is_closed():
            fresh.attach(loop)
        self.cluster = fresh
        self.settings = fresh.settings
        self.clear_faults()
        self._requests.clear()
        if nodes is not None:
            self.load_nodes(nodes)
        self.load_storage_classes(storage_classes)

    def load_storage_classes(
        self, source: Path | list[Object] | dict[str, Any] | None = None
    ) -> list[Object]:
        """Add StorageClasses from a file or its content; None: ``standard``, the default."""
        if source is None:
            source = DEFAULT_STORAGE_CLASSES
        data = load_storage_classes_file(source) if isinstance(source, Path) else source
        return self.cluster.storage.add_classes(data)

    def load_nodes(self, source: Path | dict[str, Any]) -> list[Object]:
        """Add Nodes from a nodes file or its parsed content (with status.images)."""
        data = load_nodes_file(source) if isinstance(source, Path) else source
        return self.cluster.add_nodes(data)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The last 2,000 requests received, oldest first (a snapshot, safe to iterate)."""
        return list(self._requests)

    @property
    def revision(self) -> int:
        """The latest resourceVersion handed out."""
        return self.cluster.store.revision

    # Cluster behaviour

    def set_pod_failure(
        self, failure: PodFailure | str, name: str = "*", namespace: str = "*"
    ) -> None:
        """Make pods matching the glob patterns fail (now if they exist, and when created).

        ``failure`` is one of ErrImagePull, ImagePullBackOff, CrashLoopBackOff, Failed.
        """
        self.cluster.kubelet.set_failure(failure, name, namespace)

    def clear_pod_failures(self) -> None:
        """New pods start normally again."""
        self.cluster.kubelet.clear_failures()

    def finish_pod(self, namespace: str, name: str, phase: str = "Succeeded") -> bool:
        """End a running pod now, as its process exiting would (0 for Succeeded, else 1).

        The Job controller then records its Job complete or failed. False when
        the pod is absent, already finished or being deleted.
        """
        with self.cluster.store.lock:
            pod = self.cluster.store.get("Pod", namespace, name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return False
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return False
            self.cluster.kubelet.terminate(pod, phase, 0 if phase == "Succeeded" else 1)
            return True

    def finish_namespace(self, name: str) -> bool:
        """Run the namespace controller on a Terminating namespace now.

        Its content goes as on a cluster (pods after their grace period,
        objects with finalizers once those are removed), then the namespace.
        """
        return self.cluster.finish_namespace(name)

    def compact(self) -> None:
        """Forget watch history: a watch resuming from an older resourceVersion gets 410."""
        self.cluster.store.compact()

    # Faults

    def inject_fault(
        self,
        method: str = "*",
        path: str = "*",
        *,
        status: int | None = 500,
        count: int | None = 1,
        delay: float = 0.0,
        reason: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Fail the next ``count`` requests matching method and path glob with ``status``.

        The answer is a Kubernetes Status body (reason from the status code
        unless given). ``count=None`` affects every matching request until
        `clear_faults`. With ``delay`` the request is held that long first.
        """
        fault = Fault(method, path, status, count, delay, reason, message)
        with self._faults_lock:
            self._faults.append(fault)
        return fault

    def add_latency(
        self, seconds: float, method: str = "*", path: str = "*", *, count: int | None = None
    ) -> Fault:
        """Hold matching requests ``seconds`` before serving them normally."""
        return self.inject_fault(method, path, status=None, count=count, delay=seconds)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._faults_lock:
            self._faults.clear()

    def cut_watches(self) -> int:
        """Drop every open watch connection mid-stream; returns how many were cut."""
        return self.cluster.store.cut_watches()

    def watch_count(self) -> int:
        """Number of watches open now."""
        return self.cluster.store.watcher_count()

    def _record(self, method: str, path: str, query: str, headers: dict[str, str]) -> None:
        """Remember a request (the last 2,000 are kept in `requests`)."""
        target = f"{path}?{query}" if query else path
        self._requests.append(
            RecordedRequest(
                method, target, headers.get("user-agent", ""), headers.get("authorization", "")
            )
        )

    def _take_fault(self, method: str, path: str, query: str) -> Fault | None:
        """The first fault rule matching a request, consuming one of its uses."""
        with self._faults_lock:
            for fault in self._faults:
                if fault.matches(method, path, query):
                    fault.hits += 1
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    # Waiting

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` is truthy and return it (TimeoutError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox condition not met within {timeout}s")
            time.sleep(0.005)

    async def wait_for_async(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """`wait_for` for asyncio tests: polls without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox condition not met within {timeout}s")
            await asyncio.sleep(0.005)

    # Serving

    @contextmanager
    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "critical",
        tls: bool = False,
    ) -> Iterator[str]:
        """Serve the sandbox with uvicorn in a thread; yields its URL (``http://127.0.0.1:P``).

        With ``tls``, serve HTTPS with a new self-signed certificate
        (`certificate_authority`; `nublado.sandbox.tls` says why kubectl needs it).
        """
        with contextlib.ExitStack() as stack:
            ssl: dict[str, str] = {}
            if tls:
                from .tls import serving_certificate

                made = serving_certificate()
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                (folder / "tls.crt").write_bytes(made.certificate)
                (folder / "tls.key").write_bytes(made.key)
                ssl = {
                    "ssl_certfile": str(folder / "tls.crt"),
                    "ssl_keyfile": str(folder / "tls.key"),
                }
                self.certificate_authority = made.certificate
            yield stack.enter_context(self._serve(host, port, log_level, ssl, tls))

    @contextmanager
    def _serve(
        self, host: str, port: int, log_level: str, ssl: dict[str, str], tls: bool
    ) -> Iterator[str]:
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=2,
            access_log=False,
            proxy_headers=False,  # no proxy in front; its middleware was 1% of the CPU
            http=CoalescingHTTPProtocol,  # one socket write per answer
            **ssl,  # type: ignore[arg-type]
        )
        # uvicorn installs signal handlers only in the main thread: none here.
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=_run_until_closed, args=(server,), name="nublado-sandbox", daemon=True
        )
        thread.start()
        self._thread = thread
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox could not listen on {host}:{port}")
            time.sleep(0.005)
        bound = server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://[{host}]:{bound}" if ":" in host else f"{scheme}://{host}:{bound}"
        try:
            yield self.url
        finally:
            self.cluster.store.close_watches()
            server.should_exit = True
            thread.join(timeout=10)
            self.url = None
            self._thread = None
            self.certificate_authority = None

    @property
    def serving(self) -> bool:
        """Whether the server thread started by `serve` is still running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def admin_token(self) -> str:
        """The bearer token of ``sandbox-admin`` (``system:masters``), stable across `reset`."""
        return self.tokens.admin_token

    def request_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A token for a ServiceAccount, as its TokenRequest subresource issues one (test setup)."""
        from .auth import token_request_response

        body = {"spec": {"expirationSeconds": expiration_seconds}}
        answer = token_request_response(self.tokens, self.cluster.store, namespace, name, body)
        return str(answer["status"]["token"])

    def write_kubeconfig(
        self, path: Path, url: str | None = None, *, token: str | None = None
    ) -> Path:
        """Write a kubeconfig pointing at this sandbox (while it is served).

        Its user has ``token``, by default the admin token in RBAC mode
        (none otherwise: every request is served).
        """
        target = url or self.url
        if target is None:
            raise RuntimeError("the sandbox is not being served")
        if token is None and self.settings.rbac:
            token = self.admin_token
        return write_kubeconfig(
            path, target, token=token, certificate_authority=self.certificate_authority
        )


def _run_until_closed(server: uvicorn.Server) -> None:
    """`uvicorn.Server.run`, then drop the connections its shutdown left open.

    uvicorn's shutdown closes each idle connection; over TLS that close waits
    for the peer's close_notify, which a client that aborted its connection
    (as the Kubernetes client does with idle TLS connections) never sends.
    Left open when the loop closes, such a connection is an unclosed uvloop
    handle: a ResourceWarning, and uv_loop_close fails with EBUSY.
    """

    async def serve() -> None:
        await server.serve()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)  # the aborted handles close on the next turn of the loop

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(serve())
