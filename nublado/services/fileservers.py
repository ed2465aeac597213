"""Users' WebDAV file servers (api.md 4.12-4.13, objects.md 4 and 7.4), state in the cluster.

As for labs (README, "REST API": state lives in the cluster), nothing here
is remembered that the cluster does not hold. Every replica keeps caches of
the file-server objects (one labelled LIST+WATCH per kind) and of the
per-user operation records (Leases ``fs-<user>`` in the controller's
namespace). A file server is running when its Job's pod runs and the Ingress
the Gafaelfawr operator made from its GafaelfawrIngress has an address.

Creating or deleting a user's file server first claims the user's Lease:
the claim is a create, or a replace with the read resourceVersion as
precondition, so exactly one replica (one request) holds it; the holder
renews it while it works and clears it when done, and a Lease whose holder
stopped renewing may be taken over (the stalled holder's operation is then
cancelled). Once holding the record, the holder reads the user's objects
afresh (the caches may lag another replica's writes), and a creation waits
for old objects still being deleted before it applies. Within a replica,
concurrent ``/files`` requests for one user share the first one's creation
and its result.

A Job whose pod finished (the server exits when idle, or failed) is seen by
the Pod watch and its objects are deleted; the daemon's fileserver-reconcile
job (`reconcile`, on the leader, at once when it takes the lead and every
``fileserver.reconcileInterval``) removes any file server that is not
running (remnants of a replica that died mid-operation).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ..alerts import Alerts
from ..api.errors import (
    FileServerCreateFailedError,
    FileServerDeleteFailedError,
    NotSupportedError,
    UnknownUserError,
)
from ..config import Config
from ..errors import InputError, NubladoError
from ..kube.client import KubernetesClient, WatchEvent
from ..kube.errors import AlreadyExistsError, ConflictError, KubernetesError, NotFoundError
from ..kube.follow import follow
from ..metrics import Metrics
from ..models.user import UserInfo
from ..render.engine import Renderer, RenderError
from ..render.fileserver import build_fileserver_context
from .labstate import CATEGORY_LABEL, USER_LABEL, format_time, parse_time, resource_version

__all__ = [
    "FILESERVER_CATEGORY",
    "LEASE_CATEGORY",
    "FileServerCreationError",
    "FileServerDeletionError",
    "FileServerService",
]

Object = dict[str, Any]

FILESERVER_CATEGORY = "fileserver"
"""The ``nublado.lsst.io/category`` label value of every file-server object."""

LEASE_CATEGORY = "fileserver-operation"
"""The category label of the per-user operation records (Leases ``fs-<user>``)."""

_OPERATION = "nublado.lsst.io/operation"
_RESULT = "nublado.lsst.io/result"

_KINDS = ("PersistentVolumeClaim", "GafaelfawrIngress", "Service", "Job", "Pod", "Ingress")
"""The kinds of the file-server caches: the set's objects and what the cluster makes of them."""

_FINISHED = frozenset({"Succeeded", "Failed"})


class FileServerCreationError(FileServerCreateFailedError):
    """Creating a file server failed or timed out (500 ``file_server_create_failed``)."""


class FileServerDeletionError(FileServerDeleteFailedError):
    """Deleting a file server failed or timed out (500 ``file_server_delete_failed``)."""


class _CreateFailure(Exception):
    """A create step failed with a message for the 500 body."""


class _RecordLost(Exception):
    """Another replica took the user's record over: this replica's operation stopped."""


def _meta(obj: Object | None) -> Object:
    return (obj or {}).get("metadata") or {}


def _deleting(obj: Object | None) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _phase(pod: Object | None) -> str:
    return str(((pod or {}).get("status") or {}).get("phase") or "")


def _put(cache: dict[str, Object], key: str, obj: Object, deleted: bool) -> bool:
    """One cache entry from a watch event or a write; whether it changed.

    A deletion removes only the same object (same uid); an older copy of the
    same object (a late watch event after this replica's own write) is ignored.
    """
    old = cache.get(key)
    same = old is not None and _meta(old).get("uid") == _meta(obj).get("uid")
    if deleted:
        if same:
            del cache[key]
        return same
    if same and resource_version(old) > resource_version(obj):
        return False
    cache[key] = obj
    return True


def _has_address(ingress: Object | None) -> bool:
    balancer = ((ingress or {}).get("status") or {}).get("loadBalancer") or {}
    entries = balancer.get("ingress") or []
    return bool(entries and isinstance(entries[0], dict) and entries[0].get("ip"))


class FileServerService:
    """Every user's file server, with state read from the cluster."""

    def __init__(
        self,
        config: Config,
        kube: KubernetesClient,
        renderer: Renderer,
        *,
        namespace: str,
        identity: str | None = None,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
        lease_duration: float = 15.0,
    ) -> None:
        self._config = config
        self._kube = kube
        self.renderer = renderer
        self._namespace = namespace
        self._fs_namespace = config.fileserver.namespace
        self.identity = identity or f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self._metrics = metrics  # reserved: no file-server metric is defined yet
        self._alerts = alerts
        self._duration = max(1, round(lease_duration))
        self._log = structlog.get_logger("nublado.fileservers")
        # Caches: kind -> user -> object name -> object; Leases by user.
        self._objects: dict[str, dict[str, dict[str, Object]]] = {k: {} for k in _KINDS}
        self._leases: dict[str, Object] = {}
        self._wakers: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._creating: dict[str, asyncio.Future[None]] = {}
        self._cleanups: dict[str, asyncio.Task[bool]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watches: list[asyncio.Task[None]] = []

    @property
    def enabled(self) -> bool:
        """Whether the configuration enables file servers (every route answers 404 otherwise)."""
        return self._config.fileserver.enabled

    # Lifecycle

    async def start(self) -> None:
        """Create the file-server namespace if missing, fill the caches, start the watches."""
        if not self.enabled:
            return
        await self._ensure_namespace()
        selector = f"{CATEGORY_LABEL}={FILESERVER_CATEGORY}"
        lease_selector = f"{CATEGORY_LABEL}={LEASE_CATEGORY}"
        watched: list[tuple[str, str, str]] = [
            ("Lease", self._namespace, lease_selector),
            *((kind, self._fs_namespace, selector) for kind in _KINDS),
        ]
        lists = await asyncio.gather(
            *(self._kube.list_with_version(k, ns, label_selector=s) for k, ns, s in watched)
        )
        for (kind, namespace, sel), (items, version) in zip(watched, lists, strict=True):
            for item in items:
                self._store(kind, item)
            self._watches.append(
                asyncio.create_task(self._follow(kind, namespace, sel, version, items))
            )

    async def stop(self) -> None:
        """Stop the watches and background work; a creation in flight is abandoned.

        Its Lease is no longer renewed, so the next reconcile (of any replica)
        removes whatever it left once the Lease has expired.
        """
        for future in self._creating.values():
            future.cancel()
        for task in [*self._watches, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._watches, *self._tasks, return_exceptions=True)
        self._watches.clear()
        self._tasks.clear()
        self._cleanups.clear()
        self._creating.clear()

    async def _ensure_namespace(self) -> None:
        """The file-server namespace, created when missing (objects.md 4 assumed it existed)."""
        if await self._kube.find("Namespace", self._fs_namespace) is not None:
            return
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self._fs_namespace},
        }
        with contextlib.suppress(AlreadyExistsError):
            await self._kube.create(manifest)
            self._log.info("Created file-server namespace", namespace=self._fs_namespace)

    # Caches

    def _user_of(self, kind: str, obj: Object) -> str | None:
        user = (_meta(obj).get("labels") or {}).get(USER_LABEL)
        if kind == "Lease" and not user:
            user = str(_meta(obj).get("name", "")).removeprefix("fs-") or None
        return str(user) if user else None

    def _store(self, kind: str, obj: Object, *, deleted: bool = False) -> str | None:
        """Put an object in its cache (newer copy wins); the user it belongs to, if changed."""
        user = self._user_of(kind, obj)
        if user is None:
            return None
        if kind == "Lease":
            changed = _put(self._leases, user, obj, deleted)
        else:
            cache = self._objects[kind].setdefault(user, {})
            changed = _put(cache, str(_meta(obj).get("name", "")), obj, deleted)
            if not cache:
                del self._objects[kind][user]
        return user if changed else None

    def _notify(self, username: str) -> None:
        waker = self._wakers.pop(username, None)
        if waker is not None:
            waker.set()

    async def _wait_change(self, username: str, timeout: float) -> None:
        """Until the user's objects or Lease change, at most ``timeout`` seconds."""
        waker = self._wakers.get(username)
        if waker is None:
            waker = self._wakers[username] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await waker.wait()

    async def _follow(
        self, kind: str, namespace: str, selector: str, version: str, items: list[Object]
    ) -> None:
        """Keep one cache current; a watch that fails is restarted from a fresh LIST."""

        async def changed(event: WatchEvent) -> None:
            user = self._store(kind, event.object, deleted=event.type == "DELETED")
            if user is None:
                return
            self._notify(user)
            if kind in ("Pod", "Job") and event.type != "DELETED" and self._finished(user):
                self._schedule_cleanup(user)

        async def relist() -> tuple[list[Object], str]:
            return await self._relist(kind, namespace, selector)

        await follow(
            self._kube,
            kind,
            namespace,
            label_selector=selector,
            version=version,
            items=items,
            on_event=changed,
            relist=relist,
            log=self._log,
        )

    async def _relist(self, kind: str, namespace: str, selector: str) -> tuple[list[Object], str]:
        """Replace one cache with a fresh LIST (after a failed watch)."""
        fresh, version = await self._kube.list_with_version(
            kind, namespace, label_selector=selector
        )
        users = set(self._leases) if kind == "Lease" else set(self._objects[kind])
        if kind == "Lease":
            self._leases.clear()
        else:
            self._objects[kind].clear()
        for item in fresh:
            user = self._store(kind, item)
            if user is not None:
                users.add(user)
        for user in users:
            self._notify(user)
            if self._finished(user):  # its pod ended while the watch was down
                self._schedule_cleanup(user)
        return fresh, version

    def _one(self, kind: str, username: str) -> Object | None:
        return (self._objects[kind].get(username) or {}).get(f"{username}-fs")

    def _pod(self, username: str) -> Object | None:
        """The pod of the user's current Job (matched by owner uid), newest first."""
        job = self._one("Job", username)
        if job is None:
            return None
        uid = _meta(job).get("uid")
        pods = [
            pod
            for pod in (self._objects["Pod"].get(username) or {}).values()
            if any(ref.get("uid") == uid for ref in _meta(pod).get("ownerReferences") or [])
        ]
        pods.sort(key=lambda p: str(_meta(p).get("creationTimestamp", "")), reverse=True)
        return pods[0] if pods else None

    def _has_objects(self, username: str) -> bool:
        return any(self._objects[kind].get(username) for kind in _KINDS)

    def _finished(self, username: str) -> bool:
        """The user's Job has ended: its pod Succeeded or Failed, or the Job says so."""
        job = self._one("Job", username)
        if job is None or _deleting(job):
            return False
        if _phase(self._pod(username)) in _FINISHED:
            return True
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in conditions
        )

    # Queries

    def is_running(self, username: str) -> bool:
        """Whether the user's file server serves: its pod runs and its Ingress has an address."""
        job = self._one("Job", username)
        if job is None or _deleting(job):
            return False
        ingress = self._one("Ingress", username)
        if ingress is None or _deleting(ingress) or not _has_address(ingress):
            return False
        pod = self._pod(username)
        return pod is not None and not _deleting(pod) and _phase(pod) == "Running"

    def running(self) -> list[str]:
        """Users whose file server is running, sorted."""
        return sorted(u for u in self._objects["Job"] if self.is_running(u))

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise NotSupportedError

    # The operation record

    def _mine(self, username: str) -> bool:
        """Whether the cached record names this replica as its holder."""
        spec = (self._leases.get(username) or {}).get("spec") or {}
        return bool(spec.get("holderIdentity") == self.identity)

    async def _reread_lease(self, username: str) -> None:
        """Replace the cached record with the cluster's (after a write it refused)."""
        fresh = await self._kube.find("Lease", f"fs-{username}", self._namespace)
        if fresh is None:
            self._leases.pop(username, None)
        else:
            self._store("Lease", fresh)

    def _held(self, lease: Object | None) -> bool:
        """Held by a live holder: another replica, or an operation of this one."""
        if lease is None:
            return False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if not holder:
            return False
        renewed = parse_time(spec.get("renewTime"))
        if renewed is None:
            return False
        duration = int(spec.get("leaseDurationSeconds") or self._duration)
        return renewed + timedelta(seconds=duration) > datetime.now(UTC)

    def _lease_manifest(
        self, username: str, old: Object | None, operation: str, result: str, holder: str
    ) -> Object:
        metadata: Object = {
            "name": f"fs-{username}",
            "namespace": self._namespace,
            "labels": {CATEGORY_LABEL: LEASE_CATEGORY, USER_LABEL: username},
            "annotations": {_OPERATION: operation, _RESULT: result},
        }
        if old is not None and _meta(old).get("resourceVersion"):
            metadata["resourceVersion"] = _meta(old)["resourceVersion"]
        spec: Object = {"leaseDurationSeconds": self._duration}
        if holder:
            spec["holderIdentity"] = holder
            spec["renewTime"] = format_time(datetime.now(UTC))
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _write_lease(self, manifest: Object, create: bool) -> Object:
        lease = await (self._kube.create(manifest) if create else self._kube.replace(manifest))
        self._store("Lease", lease)
        return lease

    async def _claim(self, username: str, operation: str, deadline: float) -> Object:
        """Hold the user's record: atomic in the cluster, waiting while someone else holds it.

        Within this replica the caller already holds the user's lock, so a
        record naming this replica as holder is a leftover of an earlier run.
        """
        while True:
            lease = self._leases.get(username)
            held = self._held(lease)
            if held and (lease or {}).get("spec", {}).get("holderIdentity") != self.identity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                await self._wait_change(username, min(left, 1.0))
                continue
            manifest = self._lease_manifest(username, lease, operation, "", self.identity)
            try:
                return await self._write_lease(manifest, create=lease is None)
            except (AlreadyExistsError, ConflictError, NotFoundError):
                await self._reread_lease(username)
            if time.monotonic() >= deadline:
                raise TimeoutError

    async def _renew(self, username: str, operation: str) -> None:
        """Renew the held record every duration/3 so no other replica takes it over."""
        while True:
            await asyncio.sleep(self._duration / 3)
            if not self._mine(username):
                # Taken over (this replica stalled past the duration): never take it back.
                self._log.warning("Lost file-server record", user=username)
                return
            lease = self._leases[username]
            manifest = self._lease_manifest(username, lease, operation, "", self.identity)
            try:
                await self._write_lease(manifest, create=False)
            except KubernetesError as exc:
                self._log.warning(
                    "Renewing file-server record failed", user=username, error=str(exc)
                )
                with contextlib.suppress(KubernetesError):
                    await self._reread_lease(username)

    async def _release(self, username: str, operation: str, result: str) -> None:
        """Clear the holder and record the result (a failure only lets the record expire)."""
        for _ in range(3):
            if not self._mine(username):
                return
            lease = self._leases[username]
            manifest = self._lease_manifest(username, lease, operation, result, "")
            try:
                await self._write_lease(manifest, create=False)
            except ConflictError:
                with contextlib.suppress(KubernetesError):
                    await self._reread_lease(username)
                continue
            except KubernetesError as exc:
                self._log.warning(
                    "Releasing file-server record failed", user=username, error=str(exc)
                )
            finally:
                self._notify(username)
            return

    @contextlib.asynccontextmanager
    async def _holding(
        self, username: str, operation: str, deadline: float
    ) -> AsyncIterator[dict[str, str]]:
        """The user's lock and record for one operation; yields where to put the result."""
        lock = self._locks.setdefault(username, asyncio.Lock())
        outcome = {"result": "failed"}
        async with lock:
            await self._claim(username, operation, deadline)
            task = asyncio.current_task()
            state = {"done": False, "lost": False}

            def lost() -> None:
                # Only while the body still runs: then this task waits in it.
                if not state["done"] and not state["lost"] and task is not None:
                    state["lost"] = True
                    task.cancel()

            helpers = [
                asyncio.create_task(self._renew(username, operation)),
                asyncio.create_task(self._guard(username, lost)),
            ]
            try:
                yield outcome
            except asyncio.CancelledError:
                if state["lost"] and task is not None and task.uncancel() == 0:
                    raise _RecordLost(
                        f"Another replica took over the file server of {username}"
                    ) from None
                raise
            finally:
                state["done"] = True
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await asyncio.shield(self._release(username, operation, outcome["result"]))

    async def _guard(self, username: str, lost: Callable[[], None]) -> None:
        """Stop the holder's operation once another replica has taken its record over.

        The holder stalled past the Lease duration (or its renewals failed):
        the new holder now works on the user's objects, so going on would
        undo or duplicate its work.
        """
        while True:
            if not self._mine(username):
                self._log.warning("Lost file-server record, stopping", user=username)
                lost()
                return
            await self._wait_change(username, 1.0)

    # Create

    async def ensure(self, user: UserInfo) -> None:
        """The user's file server running (api.md 4.12): create it and wait, unless it runs.

        Concurrent calls for one user share one creation and its result.
        Raises `FileServerCreationError` on failure, after removing what was made.
        """
        self._check_enabled()
        username = user.username
        if self.is_running(username):
            return
        future = self._creating.get(username)
        if future is None:
            future = asyncio.ensure_future(self._create(user))
            self._creating[username] = future

            def done(f: asyncio.Future[None], username: str = username) -> None:
                if self._creating.get(username) is f:
                    del self._creating[username]
                if not f.cancelled():
                    f.exception()  # retrieved: every waiter may have gone

            future.add_done_callback(done)
        await asyncio.shield(future)

    async def _create(self, user: UserInfo) -> None:
        """One creation, shared by the requests waiting for it; a failure is alerted once.

        api.md 2.4: the 500 a request answers was "already reported to Slack".
        """
        try:
            await self._create_now(user)
        except FileServerCreationError as exc:
            if self._alerts is not None:
                await self._alerts.report(
                    "File server creation failed", user=user.username, error=exc
                )
            raise

    async def _create_now(self, user: UserInfo) -> None:
        username = user.username
        timeout = self._config.fileserver.creation_timeout.total_seconds()
        deadline = time.monotonic() + timeout
        log = self._log.bind(user=username)
        try:
            manifests = self.renderer.render(
                "fileserver", build_fileserver_context(self._config, user)
            )
        except (InputError, RenderError) as exc:
            raise FileServerCreationError(str(exc)) from None
        try:
            async with self._holding(username, "create", deadline) as outcome:
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                        await self._refresh(username)
                        if self.is_running(username):
                            outcome["result"] = "complete"
                            return
                        if self._has_objects(username):
                            log.info("Removing an old file server before creating one")
                            await self._delete_objects(username)
                        await self._wait_removed(manifests)
                        await self._kube.apply(manifests)
                        await self._wait_running(username)
                except TimeoutError:
                    message = f"File server creation timed out after {timeout}"
                except (KubernetesError, _CreateFailure) as exc:
                    message = str(exc)
                else:
                    outcome["result"] = "complete"
                    log.info("Created file server")
                    return
                log.error("Creating file server failed", error=message)
                await self._cleanup_after_failure(username)
                raise FileServerCreationError(message)
        except TimeoutError:
            # The claim itself waited out the creation timeout (another holder).
            raise FileServerCreationError(
                f"File server creation timed out after {timeout}"
            ) from None
        except FileServerCreationError:
            raise
        except Exception as exc:
            # Claiming the record failed, or another replica took it over (api.md 2.4
            # wraps every failure).
            log.error("Creating file server failed", error=str(exc))
            raise FileServerCreationError(str(exc) or type(exc).__name__) from None

    async def _refresh(self, username: str) -> None:
        """Read the user's objects afresh into the caches, once the record is held.

        The watches may lag another replica's writes (its creation finished
        just before it released the record), so deciding from the caches
        alone could remove a server that was just made.
        """
        ns = self._fs_namespace
        selector = {CATEGORY_LABEL: FILESERVER_CATEGORY, USER_LABEL: username}
        lists = await asyncio.gather(
            *(self._kube.list(kind, ns, label_selector=selector) for kind in _KINDS)
        )
        for kind, items in zip(_KINDS, lists, strict=True):
            cached = self._objects[kind].pop(username, {})
            fresh: dict[str, Object] = {}
            for item in items:
                name = str(_meta(item).get("name", ""))
                old = cached.get(name)
                newer = (
                    old is not None
                    and _meta(old).get("uid") == _meta(item).get("uid")
                    and resource_version(old) > resource_version(item)
                )
                fresh[name] = old if newer and old is not None else item
            if fresh:
                self._objects[kind][username] = fresh

    async def _wait_removed(self, manifests: list[Object]) -> None:
        """Until no object the creation will write is still being deleted (objects.md 7.4).

        Applying to an object that is being deleted patches it just before it
        vanishes (a PVC held by ``kubernetes.io/pvc-protection`` until its
        pod has gone): the new pod would then wait for a claim that is gone.
        """
        ns = self._fs_namespace
        names = [(str(m.get("kind")), str(_meta(m).get("name"))) for m in manifests]
        if any(kind == "GafaelfawrIngress" for kind, _ in names):
            names.extend(
                ("Ingress", name) for kind, name in list(names) if kind == "GafaelfawrIngress"
            )
        for kind, name in names:
            obj = await self._kube.find(kind, name, ns)
            if obj is not None and _deleting(obj):
                uid = _meta(obj).get("uid")
                await self._kube.wait_for_deletion(kind, name, ns, uid=uid, timeout=3600.0)

    async def _wait_running(self, username: str) -> None:
        """Until the pod runs and the Ingress has an address; a pod that ends is a failure."""
        while not self.is_running(username):
            pod = self._pod(username)
            if _phase(pod) in _FINISHED:
                name = _meta(pod).get("name")
                raise _CreateFailure(f"File server pod {name} ended in phase {_phase(pod)}")
            await self._wait_change(username, 1.0)

    async def _cleanup_after_failure(self, username: str) -> None:
        """Delete a failed creation's objects, bounded by the delete timeout; log a failure."""
        timeout = self._config.fileserver.delete_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                await self._delete_objects(username)
        except (TimeoutError, KubernetesError) as exc:
            self._log.error(
                "Removing a failed file server failed", user=username, error=str(exc) or "timeout"
            )

    # Delete

    async def delete(self, username: str) -> None:
        """Delete the user's file server and wait until it is gone (api.md 4.13).

        404 ``Unknown user <u>`` for a user with no record and no objects,
        ``File server for <u> not running`` for one whose server is gone; a
        failure or timeout is `FileServerDeletionError`.
        """
        self._check_enabled()
        if username not in self._leases and not self._has_objects(username):
            raise UnknownUserError(f"Unknown user {username}")
        try:
            await self._delete_now(username)
        except FileServerDeletionError as exc:
            if self._alerts is not None:
                await self._alerts.report("File server deletion failed", user=username, error=exc)
            raise

    async def _delete_now(self, username: str) -> None:
        timeout, deadline = self._delete_bounds()
        try:
            async with self._holding(username, "delete", deadline) as outcome:
                await self._refresh(username)
                if not self._has_objects(username):
                    outcome["result"] = "complete"
                    raise UnknownUserError(f"File server for {username} not running")
                try:
                    async with asyncio.timeout(timeout):
                        await self._delete_objects(username)
                except TimeoutError:
                    raise FileServerDeletionError(
                        f"File server deletion timed out after {timeout}"
                    ) from None
                except KubernetesError as exc:
                    raise FileServerDeletionError(str(exc)) from None
                outcome["result"] = "complete"
                self._log.info("Deleted file server", user=username)
        except TimeoutError:
            raise FileServerDeletionError(
                f"File server deletion timed out after {timeout}"
            ) from None
        except (FileServerDeletionError, UnknownUserError):
            raise
        except Exception as exc:
            # Claiming the record failed, or another replica took it over (api.md 2.4
            # wraps every failure).
            self._log.error("Deleting file server failed", user=username, error=str(exc))
            raise FileServerDeletionError(str(exc) or type(exc).__name__) from None

    def _delete_bounds(self) -> tuple[float, float]:
        """The delete timeout, and the deadline to claim the record (a creation may hold it)."""
        fileserver = self._config.fileserver
        timeout = fileserver.delete_timeout.total_seconds()
        return timeout, time.monotonic() + fileserver.creation_timeout.total_seconds() + timeout

    async def _delete_objects(self, username: str) -> None:
        """objects.md 7.4's delete order; the caller bounds it in time.

        The GafaelfawrIngress and its Ingress, the Service, the Job (Foreground:
        its pod first), then the PVCs, whose deletion is not waited for.
        """
        name = f"{username}-fs"
        ns = self._fs_namespace
        # kube.delete bounds each wait itself; the caller's timeout bounds the whole.
        limit = 3600.0
        await self._kube.delete("GafaelfawrIngress", name, ns, timeout=limit)
        await self._kube.wait_for_deletion("Ingress", name, ns, timeout=limit)
        await self._kube.delete("Service", name, ns, timeout=limit)
        await self._kube.delete("Job", name, ns, propagation_policy="Foreground", timeout=limit)
        claims = await self._kube.list(
            "PersistentVolumeClaim", ns, label_selector={USER_LABEL: username}
        )
        for claim in claims:
            await self._kube.delete("PersistentVolumeClaim", _meta(claim)["name"], ns, wait=False)

    # Background cleanup

    def _schedule_cleanup(self, username: str) -> asyncio.Task[bool]:
        """Remove the user's file server if it is not running (one task per user at a time)."""
        task = self._cleanups.get(username)
        if task is not None and not task.done():
            return task
        task = asyncio.ensure_future(self._cleanup(username))
        self._cleanups[username] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cleanup(self, username: str) -> bool:
        """Under the user's record: delete the objects of a file server that is not running.

        Decided again once the record is held, so a server another request
        created meanwhile is left alone. Whether it succeeded (failures are logged).
        """
        timeout, deadline = self._delete_bounds()
        try:
            async with self._holding(username, "delete", deadline) as outcome:
                await self._refresh(username)
                if self.is_running(username) or not self._has_objects(username):
                    outcome["result"] = "complete"
                    return True
                self._log.info("Removing file server that is not running", user=username)
                async with asyncio.timeout(timeout):
                    await self._delete_objects(username)
                outcome["result"] = "complete"
                return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.error(
                "Removing file server failed", user=username, error=str(exc) or "timeout"
            )
            return False

    async def reconcile(self) -> None:
        """Remove every file server that is not running (the daemon's fileserver-reconcile).

        Decided from the cluster, not from memory: one labelled LIST per kind
        (which also refreshes the caches), then, per user whose server is
        not running and not being created here, the removal under the user's
        record, decided again once it is held. Raises `NubladoError` naming
        the users whose removal failed (each is also logged).
        """
        if not self.enabled:
            return
        selector = f"{CATEGORY_LABEL}={FILESERVER_CATEGORY}"
        lists = await asyncio.gather(
            *(self._kube.list(kind, self._fs_namespace, label_selector=selector) for kind in _KINDS)
        )
        found: set[str] = set()
        for kind, items in zip(_KINDS, lists, strict=True):
            for item in items:
                self._store(kind, item)
                user = self._user_of(kind, item)
                if user is not None and kind in ("Job", "GafaelfawrIngress", "Service"):
                    found.add(user)
        users = sorted(u for u in found if not self.is_running(u) and u not in self._creating)
        tasks = [self._schedule_cleanup(username) for username in users]
        results = await asyncio.gather(*tasks)
        failed = [u for u, ok in zip(users, results, strict=True) if not ok]
        if failed:
            raise NubladoError(f"Removing the file servers of {', '.join(failed)} failed")
