"""Users' labs: create, delete, status and spawn events, with their state in the cluster.

The design (README, "REST API": state lives in the cluster): every replica
keeps caches of the lab objects and of the per-user operation records (Leases), fed by
LIST+WATCH; status and events are answered from them. An operation (spawn,
delete, monitor) is claimed by writing its record with a resourceVersion
precondition, so exactly one replica runs it; the holder renews the record
while it runs, and a record whose holder stopped renewing is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from ..alerts import Alerts
from ..api.errors import (
    DeleteFailedError,
    InsufficientQuotaError,
    InvalidLabSizeError,
    LabExistsError,
    OperationInProgressError,
    PermissionDeniedError,
    UnknownUserError,
    client_error,
)
from ..config import Config, LabSizeDefinition
from ..images.reference import InvalidDockerReferenceError
from ..images.source import UnknownImageError
from ..kube.client import KubernetesClient, WatchEvent
from ..kube.errors import (
    AlreadyExistsError,
    ConflictError,
    KubernetesError,
    KubernetesTimeoutError,
)
from ..kube.follow import follow
from ..loop import LoopMemo
from ..metrics import Metrics
from ..models.lab import (
    LabOptions,
    LabResourceAmounts,
    LabSpecification,
    LabState,
    LabStatus,
    ResourceAmount,
)
from ..models.user import UserInfo
from ..render.engine import Renderer
from ..render.lab import LabContextBuilder, SourceSecret
from .images import ImageService
from .labstate import (
    CANCEL_ANNOTATION,
    CATEGORY_LABEL,
    LEASE_CATEGORY,
    OPERATION_ANNOTATION,
    OPERATION_ID_ANNOTATION,
    RESULT_ANNOTATION,
    USER_LABEL,
    LabObjects,
    OperationRecord,
    derive_state,
    resource_version,
)
from .labwire import object_decoder, watch_decoder

__all__ = ["LabService", "SpawnEvent", "trim_cached"]

Object = dict[str, Any]

_LIST_PAGE = 500
"""Objects per page of the caches' LISTs: each page is cut down before the next is read."""

_MAX_POD_EVENTS = 100
_BAD_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "InvalidImageName",
    }
)
_TERMINAL = frozenset({"complete", "failed"})
_HANDOFF_WAIT = 5.0
"""How long stop() lets a spawn still applying objects reach its pod before failing it."""
_WATCH_DECODERS = {
    kind: watch_decoder(kind)
    for kind in (
        "Lease",
        "Namespace",
        "Pod",
        "ConfigMap",
        "ResourceQuota",
        "Event",
        "ServiceAccount",
    )
}
"""How the service's watches decode their events: only what the caches read (`labwire`)."""
_ANSWER_DECODERS: dict[str, Callable[[bytes], Object]] = {}
_LEASE_DECODER = object_decoder("Lease")


def _answer_decoder(kind: str) -> Callable[[bytes], Object]:
    """How a spawn decodes the answer to its apply of a ``kind``: what `_store` keeps of it."""
    decoder = _ANSWER_DECODERS.get(kind)
    if decoder is None:
        decoder = _ANSWER_DECODERS[kind] = object_decoder(kind)
    return decoder


_DEFAULT_ACCOUNT = "metadata.name=default"
"""Field selector of the ServiceAccount each namespace gets and a pod needs to be admitted."""


@dataclass(frozen=True, slots=True)
class SpawnEvent:
    """One event of a lab operation's stream (api.md 6.2)."""

    event: str
    message: str
    progress: int | None = None

    def data(self) -> str:
        """The SSE ``data`` line: ``json.dumps`` defaults, progress only when set."""
        body: dict[str, Any] = {"message": self.message}
        if self.progress is not None:
            body["progress"] = self.progress
        return json.dumps(body)


class _Waker:
    """A one-shot event a user's readers wait on (`LabService._waker`), with a time limit.

    Why not ``asyncio.Event`` and ``asyncio.timeout``: a spawn waits for a
    change about eight times (its pod's watcher, the client's event stream),
    and each such wait cost an ``asyncio.timeout`` block (its current_task
    and reschedule, with a timer) and the Event's own loop lookup: three
    ``get_running_loop`` calls, each a getpid system call on Python 3.11,
    and the block alone about 8 us of CPU. Here a wait is one future and one
    timer on a loop the caller already has. What it means is the same: `set`
    wakes every waiter, once; a wait ends at the set or at its time limit,
    whichever comes first (no error at the limit), and a cancelled wait
    leaves nothing behind.
    """

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Until `set`, at most ``timeout`` seconds (``loop``: the running loop)."""
        if self._set:
            return
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _end_wait, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if not self._set:
                self._waiters.remove(waiter)


def _end_wait(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _LostRecordError(Exception):
    """Another replica wrote the record: this holder stops without writing again."""


class _SpawnFailure(Exception):
    """A spawn failed with a message for its ``error`` event."""


@dataclass
class _Operation:
    """An operation this replica holds: its task and the latest copy of its record."""

    record: OperationRecord
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    pod_created: bool = False
    handoff: bool = False
    remote_cancel: bool = False
    counted: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    @property
    def kind(self) -> str:
        return self.record.operation


class LabService:
    """Every user's lab, with state read from the cluster."""

    def __init__(
        self,
        config: Config,
        kube: KubernetesClient,
        images: ImageService,
        renderer: Renderer,
        *,
        namespace: str,
        identity: str | None = None,
        discovery: Callable[[], Awaitable[Mapping[str, Any] | None]] | None = None,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
        lease_duration: float = 15.0,
    ) -> None:
        self._config = config
        self._kube = kube
        self._images = images
        self._renderer = renderer
        self._namespace = namespace
        self.identity = identity or f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self._discovery = discovery
        self._metrics = metrics
        self._alerts = alerts
        self._duration = max(1, round(lease_duration))
        self._builder = LabContextBuilder(config)
        self._log = structlog.get_logger("nublado.labs")
        # Caches, keyed by username.
        self._leases: dict[str, Object] = {}
        self._objects: dict[str, dict[str, Object]] = {
            "Namespace": {},
            "Pod": {},
            "ConfigMap": {},
            "ResourceQuota": {},
        }
        # Read by spawns instead of a request each (watch-fed, like the caches above):
        # the controller namespace's Secrets that labs copy, by name, and the
        # resourceVersion of each namespace's ``default`` ServiceAccount, by namespace.
        self._sources: dict[str, Object] = {}
        self._sources_current = False  # False until listed, and while its watch is down
        self._accounts: dict[str, int] = {}
        self._seen: dict[str, None] = {}
        self._running: set[str] = set()  # users whose lab is running, for the gauge
        self._previous: dict[str, OperationRecord] = {}  # the operation before the current
        self._gone: dict[str, str] = {}  # uid -> kind of lab objects this replica deleted
        # Per user: set when their record changes (`_wakers`), when their pod does (`_pod_wakers`).
        self._wakers: dict[str, _Waker] = {}
        self._pod_wakers: dict[str, _Waker] = {}
        self._loop = LoopMemo()  # the one `_wait_change` waits in
        # username -> (Lease, its (uid, resourceVersion), its decoded record)
        self._parsed: dict[str, tuple[Object, tuple[Any, Any] | None, OperationRecord]] = {}
        self._ops: dict[str, _Operation] = {}
        self._deletes: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watches: list[asyncio.Task[None]] = []
        self._stopping = False
        self.handoff_wait = _HANDOFF_WAIT
        """Seconds stop() lets a spawn still applying objects reach its pod (tests shorten it)."""

    # Lifecycle

    async def start(self) -> None:
        """LIST+WATCH every cache, wait until they are filled, take over abandoned records.

        A start that fails (a LIST the controller may not make) leaves nothing running.
        """
        try:
            await self._start()
        except BaseException:
            for task in self._watches:
                task.cancel()
            await asyncio.gather(*self._watches, return_exceptions=True)
            self._watches.clear()
            raise

    async def _start(self) -> None:
        self._stopping = False
        selector = f"{CATEGORY_LABEL}=lab"
        lease_selector = f"{CATEGORY_LABEL}={LEASE_CATEGORY}"
        lists = await asyncio.gather(
            self._list_kept("Lease", self._namespace, lease_selector),
            *(self._list_kept(kind, None, selector) for kind in self._objects),
        )
        kinds = ["Lease", *self._objects]
        for kind, (items, version) in zip(kinds, lists, strict=True):
            for item in items:
                self._store(kind, item)
            namespace = self._namespace if kind == "Lease" else None
            sel = lease_selector if kind == "Lease" else selector
            if kind != "Lease":
                # What the watch remembers of each object (for a relist's DELETED events):
                # who it is, not the full object the LIST decoded.
                items = [_identity(item) for item in items]
            self._watches.append(
                asyncio.create_task(self._follow(kind, namespace, sel, version, items))
            )
        del lists
        await self._start_spawn_caches()
        self._watches.append(asyncio.create_task(self._supervise()))
        await self._take_over(initial=True)

    async def stop(self) -> None:
        """Hand running operations over to the next replica, finish deletes, stop the watches."""
        self._stopping = True
        # One grace period for all the spawns still applying, not one each in turn.
        deadline = time.monotonic() + self.handoff_wait
        for username, op in list(self._ops.items()):
            if op.task is None or op.task.done():
                continue
            if op.kind == "delete":
                continue
            if op.kind == "spawn" and not op.pod_created:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        while not op.pod_created and not op.task.done():
                            await asyncio.sleep(0.02)
                if not op.pod_created and not op.task.done():
                    op.task.cancel()
                    continue
            op.handoff = True
            op.task.cancel()
            self._log.info("Handing over lab operation", user=username, operation=op.kind)
        pending = [op.task for op in self._ops.values() if op.task is not None]
        pending.extend(self._deletes.values())
        if pending:
            timeout = self._config.lab.delete_timeout.total_seconds() + self.handoff_wait
            await asyncio.wait(pending, timeout=timeout)
        for task in [*self._watches, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._watches, *self._tasks, return_exceptions=True)
        self._watches.clear()
        self._tasks.clear()

    # Caches

    def _source_names(self) -> set[str]:
        """The controller namespace's Secrets a spawn copies (``lab.secrets``, pull secret)."""
        return set(self._config.lab.source_secret_names)

    async def _start_spawn_caches(self) -> None:
        """LIST+WATCH what every spawn reads besides the lab objects.

        The source Secrets and the ``default`` ServiceAccounts (cluster-wide, by
        field selector) would otherwise cost each spawn a LIST and a wait: two of
        its ~18 Kubernetes requests. A spawn that misses in either still reads the
        cluster (a GET, a wait), so a lagging watch only makes it slower.
        """
        follows: list[tuple[str, str | None, str | None]] = []
        if self._source_names():
            follows.append(("Secret", self._namespace, None))
        follows.append(("ServiceAccount", None, _DEFAULT_ACCOUNT))
        lists = await asyncio.gather(
            *(
                self._kube.list_with_version(kind, namespace, field_selector=fields)
                for kind, namespace, fields in follows
            )
        )
        for (kind, namespace, fields), (items, version) in zip(follows, lists, strict=True):
            for item in items:
                self._store_spawn_input(kind, item)
            if kind == "Secret":
                self._sources_current = True
            self._watches.append(
                asyncio.create_task(self._follow_inputs(kind, namespace, fields, version, items))
            )

    def _store_spawn_input(self, kind: str, obj: Object, *, deleted: bool = False) -> None:
        metadata = obj.get("metadata") or {}
        if kind == "Secret":
            name = str(metadata.get("name", ""))
            if name not in self._source_names():
                return  # not kept: the namespace may hold large unrelated Secrets
            if deleted:
                self._sources.pop(name, None)
            elif resource_version(obj) >= resource_version(self._sources.get(name)):
                self._sources[name] = obj
        else:
            namespace = str(metadata.get("namespace", ""))
            if deleted:
                self._accounts.pop(namespace, None)
            else:
                self._accounts[namespace] = resource_version(obj)

    async def _follow_inputs(
        self,
        kind: str,
        namespace: str | None,
        fields: str | None,
        version: str,
        items: list[Object],
    ) -> None:
        """Keep `_sources` or `_accounts` current; a watch that ends is restarted from a LIST."""

        async def changed(event: WatchEvent) -> None:
            self._store_spawn_input(kind, event.object, deleted=event.type == "DELETED")

        async def relist() -> tuple[list[Object], str]:
            fresh, version = await self._kube.list_with_version(
                kind, namespace, field_selector=fields
            )
            if kind == "Secret":
                self._sources.clear()
            else:
                self._accounts.clear()
            for item in fresh:
                self._store_spawn_input(kind, item)
            if kind == "Secret":
                self._sources_current = True
            return fresh, version

        def broken() -> None:
            # A spawn must not copy a Secret changed while nothing was watching.
            if kind == "Secret":
                self._sources_current = False

        await follow(
            self._kube,
            kind,
            namespace,
            field_selector=fields,
            version=version,
            items=items,
            on_event=changed,
            relist=relist,
            log=self._log,
            on_broken=broken,
            # A ServiceAccount's identity is all `_store_spawn_input` reads (a Secret's
            # data it copies: those are decoded whole).
            decode=_WATCH_DECODERS["ServiceAccount"] if kind == "ServiceAccount" else None,
        )

    def _user_of(self, kind: str, obj: Object) -> str | None:
        metadata = obj.get("metadata") or {}
        user = (metadata.get("labels") or {}).get(USER_LABEL)
        if not user:
            return None
        name = metadata.get("name")
        if kind == "Pod" and name != f"{user}-nb":
            return None
        if kind == "ConfigMap" and name != f"{user}-nb-env":
            return None
        if kind == "ResourceQuota" and name != f"{user}-nb":
            return None
        if kind == "Namespace" and name != self._lab_namespace(user):
            return None
        return str(user)

    def _store(self, kind: str, obj: Object, *, deleted: bool = False) -> bool:
        """Put an object seen by a watch or a write in its cache; the newer copy wins.

        True when the cache changed (what waits on it is then woken).
        """
        user = self._user_of(kind, obj)
        if user is None:
            return False
        cache = self._leases if kind == "Lease" else self._objects[kind]
        old = cache.get(user)
        uid = (obj.get("metadata") or {}).get("uid")
        if str(uid) in self._gone and not deleted:
            return False
        if deleted:
            self._gone.pop(str(uid), None)
            if old is not None and (old.get("metadata") or {}).get("uid") == (
                obj.get("metadata") or {}
            ).get("uid"):
                del cache[user]
                return True
            return False
        same = old is not None and (old.get("metadata") or {}).get("uid") == uid
        if same:
            kept, seen = resource_version(old), resource_version(obj)
            if kept > seen:
                return False  # a watch event older than a copy this replica wrote
            if kept == seen >= 0:
                # The copy this replica wrote (or stored from a write's answer) coming
                # back from the watch: nothing changed, nobody need look again.
                return False
        if kind == "Lease" and old is not None and _operation_id(old) != _operation_id(obj):
            # A stream of the replaced operation may not have read its last events yet.
            self._previous[user] = OperationRecord.from_lease(old)
        cache[user] = trim_cached(kind, obj)
        self._seen.setdefault(user, None)
        return True

    async def _notify(self, username: str | None = None, kind: str | None = None) -> None:
        """Wake what waits on a user's ``kind`` of object (every user's and kind's: None).

        Readers wait on one of two things: the record (event streams, deletes
        joining another's) or the pod (a spawn following it). A change of the
        namespace, env ConfigMap or quota wakes neither: it would only make each
        of them look again and find nothing new, several times per spawn.
        """
        self._track_running(username)
        maps = [self._wakers, self._pod_wakers]
        if kind == "Lease":
            maps = [self._wakers]
        elif kind == "Pod":
            maps = [self._pod_wakers]
        elif kind is not None:
            maps = []
        wakers: list[_Waker] = []
        for wakers_of in maps:
            if username is None:
                wakers.extend(wakers_of.values())
                wakers_of.clear()
            else:
                waker = wakers_of.pop(username, None)
                if waker is not None:
                    wakers.append(waker)
        for waker in wakers:
            waker.set()

    async def _follow(
        self, kind: str, namespace: str | None, selector: str, version: str, items: list[Object]
    ) -> None:
        """Keep one cache current; a watch that fails is restarted from a fresh LIST."""

        async def changed(event: WatchEvent) -> None:
            if self._store(kind, event.object, deleted=event.type == "DELETED"):
                if kind == "Lease":
                    self._lease_changed(event.object)
                await self._notify(self._user_of(kind, event.object), kind)

        async def relist() -> tuple[list[Object], str]:
            fresh = await self._relist(kind, namespace, selector)
            await self._notify()
            return fresh

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
            keep=_kept_lease if kind == "Lease" else _identity,
            decode=_WATCH_DECODERS[kind],
        )

    async def _list_kept(
        self, kind: str, namespace: str | None, selector: str
    ) -> tuple[list[Object], str]:
        """LIST a cache's kind page by page, each object cut down to what the cache keeps.

        5,000 labs' pods are about 100 MB of JSON: decoded whole at once, they
        would set the controller's memory for good (freed, it stays with the
        process), where one page at a time costs a tenth of it.
        """
        kept: list[Object] = []
        version = ""
        async for page, page_version in self._kube.list_pages(
            kind, namespace, label_selector=selector, page_size=_LIST_PAGE
        ):
            if page is None:
                kept = []
                continue
            version = page_version
            while page:
                item = page.pop()
                kept.append(trim_cached(kind, item))
        kept.reverse()
        return kept, version

    async def _relist(
        self, kind: str, namespace: str | None, selector: str
    ) -> tuple[list[Object], str]:
        """Replace one cache with a fresh LIST (after a failed watch); returns it and its version.

        Deleted objects whose DELETED event the failed watch never delivered are
        dropped from the cache and from ``_gone`` (which would otherwise keep them).
        """
        fresh, version = await self._list_kept(kind, namespace, selector)
        cache = self._leases if kind == "Lease" else self._objects[kind]
        listed = set()
        uids = set()
        for item in fresh:
            uids.add(str((item.get("metadata") or {}).get("uid", "")))
            user = self._user_of(kind, item)
            if user is not None:
                listed.add(user)
                self._store(kind, item)
        for user in [u for u in cache if u not in listed]:
            del cache[user]
        for uid in [u for u, k in self._gone.items() if k == kind and u not in uids]:
            del self._gone[uid]
        if kind != "Lease":
            fresh = [_identity(item) for item in fresh]  # the watch needs no more of them
        return fresh, version

    def _lease_changed(self, lease: Object) -> None:
        """A DELETE on another replica asked this holder to stop its spawn."""
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        if annotations.get(CANCEL_ANNOTATION) != "requested":
            return  # the common case, decided without decoding the record
        record = OperationRecord.from_lease(lease)
        op = self._ops.get(record.username)
        if (
            record.cancel
            and record.holder == self.identity
            and op is not None
            and op.kind in ("spawn", "monitor")
            and op.record.operation_id == record.operation_id
            and not op.remote_cancel
        ):
            op.remote_cancel = True
            self._background(self._remote_delete(record.username))

    def _background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _record(self, username: str) -> OperationRecord | None:
        """The newest record known, as a copy the caller may change (see `_peek`)."""
        record = self._peek(username)
        return record.clone() if record is not None else None

    def _peek(self, username: str) -> OperationRecord | None:
        """The newest record known: this replica's own write or the cache's copy.

        Shared, not copied: for callers that only read it (status, streams, the
        gauge), which ask on every change. Each Lease version is decoded once: the
        watch's echo of this replica's own write (another dict, same uid and
        resourceVersion) reuses the record decoded from the write's answer.
        """
        lease = self._newest_lease(username)
        if lease is None:
            return None
        parsed = self._parsed.get(username)
        if parsed is not None and parsed[0] is lease:
            return parsed[2]
        metadata = lease.get("metadata") or {}
        version = metadata.get("resourceVersion")
        key = (metadata.get("uid"), version) if version else None
        if parsed is None or key is None or parsed[1] != key:
            parsed = (lease, key, OperationRecord.from_lease(lease))
        else:
            parsed = (lease, key, parsed[2])
        self._parsed[username] = parsed
        return parsed[2]

    def _newest_lease(self, username: str) -> Object | None:
        """The Lease `_peek` decodes: this replica's own write or the cache's copy, the newer."""
        lease = self._leases.get(username)
        op = self._ops.get(username)
        mine = op.record.lease if op is not None else None
        if mine is not None and resource_version(mine) >= resource_version(lease):
            lease = mine
        return lease

    def _progress(self, username: str) -> tuple[str, str] | None:
        """The newest record's operation and result, read without decoding the record.

        What the gauge and the takeover scan ask of every user: decoding each
        record (its state, events and spawn env) for it would keep 5,000 decoded
        records besides their Leases.
        """
        lease = self._newest_lease(username)
        if lease is None:
            return None
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        return (
            str(annotations.get(OPERATION_ANNOTATION, "")),
            str(annotations.get(RESULT_ANNOTATION, "")),
        )

    def _remember(self, record: OperationRecord) -> None:
        """Seed `_peek`'s cache with a record this replica just wrote, as its Lease decodes.

        The Lease the server answered holds exactly what ``record.to_lease`` wrote,
        so decoding it again (the events JSON, the LabState) would give the same
        record: a snapshot is kept instead (the operation goes on changing its own).
        """
        lease = record.lease
        metadata = (lease or {}).get("metadata") or {}
        version = metadata.get("resourceVersion")
        if lease is not None and version:
            snapshot = record.clone()
            self._parsed[record.username] = (lease, (metadata.get("uid"), version), snapshot)

    def _lab_objects(self, username: str) -> LabObjects:
        return LabObjects(
            namespace=self._objects["Namespace"].get(username),
            pod=self._objects["Pod"].get(username),
            env=self._objects["ConfigMap"].get(username),
            quota=self._objects["ResourceQuota"].get(username),
        )

    def _lab_namespace(self, username: str) -> str:
        return f"{self._config.lab.namespace_prefix}-{username}"

    def _track_running(self, username: str | None) -> None:
        """Keep the active_labs gauge current as a user's status changes (every user's: None).

        Called on every change, so it decides from the record and the pod phase
        alone, as state() would, without building a LabState.
        """
        if self._metrics is None:
            return
        for user in list(self._seen) if username is None else [username]:
            if self._is_running(user):
                self._running.add(user)
            else:
                self._running.discard(user)
        self._metrics.active_labs.set(len(self._running))

    def _is_running(self, username: str) -> bool:
        """Whether state(username) would say running (PLAN-LABS status derivation)."""
        progress = self._progress(username)
        operation, result = progress or ("", "")
        if progress is not None and ((operation and not result) or result == "failed"):
            return False
        namespace = self._objects["Namespace"].get(username)
        if namespace is None or (namespace.get("metadata") or {}).get("deletionTimestamp"):
            return False
        phase = ((self._objects["Pod"].get(username) or {}).get("status") or {}).get("phase")
        if phase == "Running":
            return True
        # A spawn that saw its pod Running before the pod cache did (as state()).
        return phase == "Pending" and result == "complete"

    # Queries

    def running(self) -> list[str]:
        """Users whose lab is running, in the order this replica first saw them."""
        # `_is_running` answers as state() would, without decoding every user's record
        # (and keeping 5,000 decoded records in `_peek`'s cache for one listing).
        result = [username for username in self._seen if self._is_running(username)]
        if self._metrics is not None:
            self._metrics.active_labs.set(len(result))
        return result

    def state(self, username: str) -> LabState | None:
        """The user's lab from the caches alone (api.md 12.7), None when there is none."""
        record = self._peek(username)
        objects = self._lab_objects(username)
        state = derive_state(self._config, record, objects)
        if (
            state is not None
            and state.status is LabStatus.PENDING
            and record is not None
            and record.result == "complete"
        ):
            # The spawn saw the pod Running; the pod cache may not have caught up.
            state = state.model_copy(update={"status": LabStatus.RUNNING})
        return state

    # Create

    async def create(self, user: UserInfo, token: str, spec: LabSpecification) -> None:
        """api.md 4.6 steps 2-10: check, claim the record, start the spawn in the background."""
        username = user.username
        notebook = user.quota.notebook if user.quota is not None else None
        if notebook is not None and not notebook.spawn:
            raise PermissionDeniedError("Spawning a notebook is not permitted")
        if not user.uid:
            raise PermissionDeniedError("Must have a UID to spawn labs")
        if not user.gid:
            raise PermissionDeniedError("Must have a GID to spawn labs")
        options = spec.options
        attribute = next(
            name
            for name in ("image_list", "image_dropdown", "image_class", "image_tag")
            if getattr(options, name)
        )
        try:
            image = (await self._images.resolve(options)).resolved()
        except (UnknownImageError, InvalidDockerReferenceError) as exc:
            raise client_error(exc, location=("body", "options", attribute)) from exc
        try:
            size = self._config.lab.get_size_definition(options.size)
        except KeyError:
            raise InvalidLabSizeError(options.size.value) from None
        limits = size.resources.limits
        if notebook is not None and (
            notebook.memory_bytes < limits.memory or notebook.cpu < limits.cpu
        ):
            raise InsufficientQuotaError()

        record = self._record(username)
        op = self._ops.get(username)
        if (op is not None and op.record.in_progress and op.record.holder == self.identity) or (
            username in self._deletes and not self._deletes[username].done()
        ):
            raise OperationInProgressError(username)
        if record is not None and record.live():
            raise OperationInProgressError(username)
        current = self.state(username)
        delete_first = False
        if current is not None:
            if record is not None and record.in_progress:
                delete_first = True  # an abandoned operation: clean up behind it
            elif current.status in (LabStatus.TERMINATED, LabStatus.FAILED):
                delete_first = True
            else:
                raise LabExistsError(username)

        state = LabState(
            user=user,
            options=LabOptions(
                size=size.size,
                enable_debug=options.enable_debug,
                reset_user_env=options.reset_user_env,
                image=image.reference_with_digest,
            ),
            status=LabStatus.PENDING,
            internal_url=None,
            resources=LabResourceAmounts(
                limits=ResourceAmount(cpu=limits.cpu, memory=limits.memory),
                requests=ResourceAmount(
                    cpu=size.resources.requests.cpu, memory=size.resources.requests.memory
                ),
            ),
            quota=(
                ResourceAmount(cpu=notebook.cpu, memory=notebook.memory_bytes)
                if notebook is not None
                else None
            ),
        )
        new = OperationRecord(
            username=username,
            operation="spawn",
            lab_state=state,
            events=[("info", f"Starting lab creation for {username}", 1)],
        )
        op = await self._claim(username, record, new)
        started = time.monotonic()
        op.task = asyncio.create_task(
            self._spawn(op, user, token, spec, image, size, delete_first, started)
        )

    async def _claim(
        self, username: str, old: OperationRecord | None, new: OperationRecord
    ) -> _Operation:
        """Write a new operation's record atomically; 409 when someone else won."""
        new.holder = self.identity
        new.duration = self._duration
        new.renew_time = datetime.now(UTC)
        new.operation_id = new.operation_id or secrets.token_hex(8)
        new.lease = old.lease if old is not None else None
        manifest = new.to_lease(self._namespace)
        try:
            if old is None or old.lease is None:
                lease = await self._kube.create(manifest, decode=_LEASE_DECODER)
            else:
                lease = await self._kube.replace(manifest, decode=_LEASE_DECODER)
        except (AlreadyExistsError, ConflictError):
            raise OperationInProgressError(username) from None
        new.lease = lease
        self._store("Lease", lease)
        self._remember(new)
        op = _Operation(record=new)
        self._ops[username] = op
        await self._notify(username, "Lease")
        return op

    async def _write(self, op: _Operation, **changes: Any) -> None:
        """Replace the record with changes; a Conflict means another replica took it."""
        async with op.lock:
            record = op.record
            events = changes.pop("add_events", None)
            for key, value in changes.items():
                setattr(record, key, value)
            if events:
                record.events = [*record.events, *events]
            record.renew_time = datetime.now(UTC)
            for _ in range(3):
                try:
                    lease = await self._kube.replace(
                        record.to_lease(self._namespace), decode=_LEASE_DECODER
                    )
                    break
                except ConflictError:
                    # Another replica may only have asked for a cancel (a DELETE it got):
                    # the record is still ours then; anything else means we lost it.
                    fresh = await self._kube.find(
                        "Lease", f"lab-{record.username}", self._namespace
                    )
                    if fresh is None:
                        raise _LostRecordError from None
                    theirs = OperationRecord.from_lease(fresh)
                    if theirs.holder != self.identity or theirs.operation_id != record.operation_id:
                        raise _LostRecordError from None
                    record.lease = fresh
                    record.cancel = theirs.cancel
            else:
                raise _LostRecordError
            record.lease = lease
            self._store("Lease", lease)
            self._remember(record)
        await self._notify(record.username, "Lease")

    async def _renew(self, op: _Operation) -> None:
        """Renew the record every duration/3; one failed write must not end the renewals.

        A renewal task that died on one Kubernetes error would let the record
        expire under a running operation: another replica would take it over.
        """
        while True:
            await asyncio.sleep(self._duration / 3)
            try:
                await self._write(op)
            except KubernetesError as exc:
                self._log.warning(
                    "Renewing lab operation record failed", user=op.record.username, error=str(exc)
                )

    # The spawn

    async def _spawn(
        self,
        op: _Operation,
        user: UserInfo,
        token: str,
        spec: LabSpecification,
        image: Any,
        size: LabSizeDefinition,
        delete_first: bool,
        started: float,
    ) -> None:
        username = user.username
        log = self._log.bind(user=username)
        renew = asyncio.create_task(self._renew(op))
        timeout = self._config.lab.spawn_timeout.total_seconds()
        outcome = "failure"
        error: BaseException | None = None
        try:
            try:
                async with asyncio.timeout(timeout):
                    if delete_first:
                        await self._write(
                            op,
                            add_events=[
                                ("info", f"Deleting existing failed lab for {username}", 2)
                            ],
                        )
                        await self._delete_objects(op, username, (5, 12, 20), spawn=True)
                    pending = await self._build_and_watch(op, user, token, spec, image, size)
            except TimeoutError:
                outcome = "timeout"
                raise _SpawnFailure(f"Lab spawn timed out after {timeout}") from None
            outcome = "success"
            self._count(op, outcome)
            await self._write(
                op,
                result="complete",
                add_events=[
                    *pending,
                    ("complete", f"Lab Kubernetes pod started for {username}", None),
                ],
            )
            log.info("Lab spawned", seconds=round(time.monotonic() - started, 3))
            if self._metrics is not None:
                self._metrics.spawn_duration.observe(time.monotonic() - started)
        except (_SpawnFailure, KubernetesError) as exc:
            error = exc
            self._count(op, outcome)
            await self._fail_spawn(op, str(exc), log)
        except _LostRecordError:
            self._count(op, "cancelled")
            log.warning("Lab operation record taken by another replica, stopping")
        except asyncio.CancelledError:
            self._count(op, "cancelled")
            with contextlib.suppress(_LostRecordError, KubernetesError):
                if op.handoff:
                    await self._write(op, holder="")
                elif not self._stopping or op.pod_created:
                    await self._write(
                        op,
                        result="cancelled",
                        add_events=[("failed", "Operation cancelled", None)],
                    )
                else:
                    await self._interrupt(op, username)
        except Exception as exc:
            error = exc
            self._count(op, "failure")
            log.exception("Lab spawn failed unexpectedly")
            await self._fail_spawn(op, str(exc) or type(exc).__name__, log)
        finally:
            await self._end(op, renew, username, error)

    async def _end(
        self,
        op: _Operation,
        renew: asyncio.Task[None],
        username: str,
        error: BaseException | None,
    ) -> None:
        """An operation's last steps: stop renewing, report a failure once, wake waiters."""
        renew.cancel()
        with contextlib.suppress(BaseException):
            await renew
        if error is not None and self._alerts is not None:
            await self._alerts.report("Lab spawn failed", user=username, error=error)
        op.done.set()

    def _count(self, op: _Operation, outcome: str) -> None:
        """Count a spawn's outcome before its last event is written (a reader sees both).

        Once per operation: a spawn counted as a success whose ``complete`` write
        then fails is not counted a second time as cancelled or failed.
        """
        if op.counted:
            return
        op.counted = True
        if self._metrics is not None:
            self._metrics.spawns.labels(outcome=outcome).inc()

    async def _fail_spawn(self, op: _Operation, message: str, log: Any) -> None:
        log.error("Lab spawn failed", error=message)
        with contextlib.suppress(_LostRecordError, KubernetesError):
            await self._write(
                op,
                result="failed",
                add_events=[("error", message, None), ("failed", "Lab spawn failed", None)],
            )

    async def _interrupt(self, op: _Operation, username: str) -> None:
        """Fail a spawn that cannot go on (its replica stops) and remove what it made."""
        await self._write(
            op,
            result="failed",
            add_events=[
                ("error", "Lab spawn interrupted: the controller running it stopped", None),
                ("failed", "Lab spawn failed", None),
            ],
        )
        with contextlib.suppress(KubernetesError):
            await self._kube.delete("Namespace", self._lab_namespace(username), wait=False)

    async def _read_secrets(self) -> dict[str, SourceSecret]:
        result: dict[str, SourceSecret] = {}
        ns = self._namespace
        wanted = self._config.lab.source_secret_names
        if not wanted:
            return result
        # From the watch-fed cache while its watch runs; a Secret it lacks (created a
        # moment ago), or any while the watch is down, is read from the cluster.
        for name in wanted:
            obj = self._sources.get(name) if self._sources_current else None
            if obj is None:
                try:
                    obj = await self._kube.find("Secret", name, ns)
                except KubernetesError as exc:
                    raise _SpawnFailure(
                        _failure("reading object", "Secret", f"{ns}/{name}", exc)
                    ) from None
            if obj is None:
                raise _SpawnFailure(f"Secret {ns}/{name} does not exist")
            result[name] = SourceSecret(data=dict(obj.get("data") or {}), type=obj.get("type"))
        for entry in self._config.lab.secrets:
            if entry.secret_key not in result[entry.secret_name].data:
                raise _SpawnFailure(f"No key {entry.secret_key} in secret {ns}/{entry.secret_name}")
        return result

    async def _build_and_watch(
        self,
        op: _Operation,
        user: UserInfo,
        token: str,
        spec: LabSpecification,
        image: Any,
        size: LabSizeDefinition,
    ) -> list[tuple[str, str, int | None]]:
        username = user.username
        source = await self._read_secrets()
        discovery = await self._discovery() if self._discovery is not None else None
        context = self._builder.build(
            user=user,
            spec=spec,
            image=image,
            size=size,
            secrets=source,
            token=token,
            discovery=discovery,
        )
        manifests = self._renderer.render("lab", context)
        namespace = self._lab_namespace(username)

        async def apply(manifest: Object) -> Object:
            kind = manifest["kind"]
            name = manifest["metadata"]["name"]
            try:
                result = await self._kube.apply_one(manifest, decode=_answer_decoder(kind))
            except KubernetesError as exc:
                if kind == "Namespace":
                    raise _SpawnFailure(_failure("creating namespace", kind, name, exc)) from None
                where = f"{namespace}/{name}"
                raise _SpawnFailure(_failure("creating object", kind, where, exc)) from None
            if kind in self._objects:
                self._store(kind, result.object)
            return result.object

        async def account(namespace_version: int) -> None:
            # The cached ServiceAccount counts only if written after this namespace's
            # version: one of a deleted namespace of the same name does not.
            if self._accounts.get(namespace, -1) > namespace_version:
                return
            try:
                await self._kube.wait_for(
                    "ServiceAccount",
                    "default",
                    namespace,
                    lambda o: o is not None,
                    timeout=self._config.lab.spawn_timeout.total_seconds(),
                )
            except KubernetesError as exc:
                raise _SpawnFailure(
                    f"Error waiting for ServiceAccount {namespace}/default: {exc}"
                ) from None

        namespace_version = -1
        pod: Object = {}
        for step in _apply_steps(manifests):
            kind = step[0]["kind"]
            if kind == "Pod":
                await account(namespace_version)
            applied = await _together([apply(m) for m in step])
            if kind == "Namespace":
                namespace_version = resource_version(applied[0])
            elif kind == "Pod":
                pod = applied[0]
                op.pod_created = True
        pod_uid = str((pod.get("metadata") or {}).get("uid", ""))
        pod_version = (pod.get("metadata") or {}).get("resourceVersion")
        prefix = spec.env["JUPYTERHUB_SERVICE_PREFIX"]
        await self._write(
            op,
            internal_url=f"http://lab.{namespace}:8888{prefix}",
            spawn_env=dict(context["lab"].env),  # the reconcile rebuilds a deleted env from it
            add_events=[("info", "Created Kubernetes objects for user lab", 30)],
        )
        return await self._watch_pod(op, username, pod_uid, pod_version)

    async def _watch_pod(
        self, op: _Operation, username: str, pod_uid: str, pod_version: str | None = None
    ) -> list[tuple[str, str, int | None]]:
        """Wait for the pod to run, reporting its Kubernetes Events; fail at once on a bad state.

        Events that arrive together are written to the record together (one Lease
        write, the same events in the same order); those not yet written when the
        pod runs are returned, for the caller's ``complete`` write.
        ``pod_version``: the pod's resourceVersion at its create; its Events all come
        later, so their watch starts there without a LIST.
        """
        namespace = self._lab_namespace(username)
        name = f"{username}-nb"
        queue: asyncio.Queue[tuple[str, str, Object | None]] = asyncio.Queue()

        async def pods() -> None:
            try:
                await follow_pod()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Never die silently: the spawn would wait on the queue until its timeout.
                await queue.put(("pod", "ERROR", {"message": str(exc) or type(exc).__name__}))

        async def follow_pod() -> None:
            # The service's watch of all lab pods keeps the cache current: no watch of its own.
            uid = pod_uid
            seen = None
            while True:
                pod = self._objects["Pod"].get(username)
                metadata = (pod or {}).get("metadata") or {}
                if pod is None or (uid and metadata.get("uid") != uid):
                    await queue.put(("pod", "DELETED", pod))
                    return
                uid = uid or str(metadata.get("uid", ""))
                if metadata.get("resourceVersion") != seen:
                    seen = metadata.get("resourceVersion")
                    await queue.put(("pod", "MODIFIED", pod))
                await self._wait_change(self._duration / 3, username, pod=True)

        async def events() -> None:
            selector = f"involvedObject.kind=Pod,involvedObject.name={name}"
            if pod_uid:
                selector += f",involvedObject.uid={pod_uid}"
            try:
                async for event in self._kube.watch(
                    "Event",
                    namespace,
                    field_selector=selector,
                    resource_version=pod_version,
                    decode=_WATCH_DECODERS["Event"],
                ):
                    if event.type == "ADDED":
                        await queue.put(("event", event.type, event.object))
            except KubernetesError as exc:
                # Progress messages are a nicety: the spawn goes on without them.
                self._log.warning("Watching pod events failed", user=username, error=str(exc))

        watchers = [asyncio.create_task(pods())]
        progress = 30
        reported = 0
        pending: list[tuple[str, str, int | None]] = []
        try:
            events_started = False
            while True:
                if pending and queue.empty():
                    await self._write(op, add_events=pending)
                    pending = []
                source, kind, obj = await queue.get()
                if source == "pod":
                    if kind == "ERROR":
                        assert obj is not None
                        raise _SpawnFailure(
                            f"Error following pod {namespace}/{name}: {obj['message']}"
                        )
                    if kind == "DELETED":
                        if pending:
                            await self._write(op, add_events=pending)
                        raise _SpawnFailure(f"Pod {namespace}/{name} was deleted")
                    assert obj is not None
                    verdict = _pod_verdict(obj)
                    if verdict == "running":
                        return pending
                    if verdict is not None:
                        if pending:
                            await self._write(op, add_events=pending)
                        raise _SpawnFailure(verdict)
                    if not events_started:
                        events_started = True
                        watchers.append(asyncio.create_task(events()))
                elif obj is not None and reported < _MAX_POD_EVENTS:
                    message = str(obj.get("message") or "")
                    if not message:
                        continue
                    progress = int(progress + (75 - progress) / 3) if progress >= 35 else 35
                    reported += 1
                    pending.append(("info", message, progress))
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    # Delete

    async def delete(self, username: str) -> None:
        """api.md 4.7: delete the lab and wait until it is gone; join a delete under way."""
        running = self._deletes.get(username)
        if running is not None and not running.done():
            await asyncio.shield(running)
            return
        op = self._ops.get(username)
        cancelled = False
        if op is not None and op.task is not None and not op.task.done() and op.kind != "delete":
            if op.record.in_progress:
                # Its cancel handler writes result=cancelled: remember that it was running,
                # or a spawn that had not applied its namespace yet would look like no lab.
                cancelled = True
                op.task.cancel()
            await asyncio.wait([op.task])
        if cancelled or (op is not None and op.kind != "delete" and op.record.in_progress):
            pass  # this replica's spawn, cancelled above: delete what it made (204)
        else:
            record = self._record(username)
            if record is not None and record.live() and record.holder != self.identity:
                await self._delete_remote(username, record)
                return
            if self.state(username) is None:
                raise UnknownUserError.for_path(username)
        task = self._deletes.get(username)
        if task is None or task.done():
            task = asyncio.create_task(self._run_delete(username))
            self._deletes[username] = task
        await asyncio.shield(task)

    async def delete_for_reconcile(
        self, username: str, lease: Object | None, state: LabState | None, reason: str
    ) -> bool:
        """Delete a lab the reconcile found ended, vanished or orphaned, by the normal delete.

        The claim is conditional on the Lease as the reconcile listed it (``lease``;
        None when there was none), so a user whose record anyone wrote since is left
        alone: False then, and while an operation runs. ``reason`` is the delete's
        first event. Raises DeleteFailedError when the delete fails (record ``failed``).
        """
        running = self._deletes.get(username)
        op = self._ops.get(username)
        if (running is not None and not running.done()) or (
            op is not None and op.task is not None and not op.task.done()
        ):
            return False
        listed = OperationRecord.from_lease(lease) if lease is not None else None
        if listed is not None and listed.in_progress:
            return False
        task = asyncio.create_task(
            self._run_delete(username, listed=(listed,), state=state, reason=reason)
        )
        self._deletes[username] = task
        try:
            await asyncio.shield(task)
        except OperationInProgressError:
            return False
        return True

    async def _run_delete(
        self,
        username: str,
        *,
        listed: tuple[OperationRecord | None] | None = None,
        state: LabState | None = None,
        reason: str | None = None,
    ) -> None:
        """Claim the record for a delete and run it; DeleteFailedError on failure or timeout.

        ``listed``: claim over exactly this record (the reconcile's), OperationInProgressError
        if it changed, instead of the newest known and joining a delete on a conflict.
        """
        log = self._log.bind(user=username)
        record = listed[0] if listed is not None else self._record(username)
        if state is None:
            state = self.state(username)
        events: list[tuple[str, str, int | None]] = [("info", "Shutting down Kubernetes pod", 25)]
        if reason is not None:
            events.insert(0, ("info", reason, None))
        new = OperationRecord(
            username=username,
            operation="delete",
            lab_state=(record.lab_state if record is not None else None) or state,
            events=events,
        )
        if new.lab_state is not None:
            new.lab_state = new.lab_state.model_copy(
                update={"status": LabStatus.TERMINATING, "internal_url": None}
            )
        try:
            op = await self._claim(username, record, new)
        except OperationInProgressError:
            if listed is not None:
                raise
            claimed = await self._claim_after_conflict(username, new)
            if claimed is None:
                return  # another replica's delete, joined: it finished
            op = claimed
        renew = asyncio.create_task(self._renew(op))
        timeout = self._config.lab.delete_timeout.total_seconds()
        try:
            try:
                async with asyncio.timeout(timeout):
                    await self._delete_objects(op, username, (None, 62, 100), spawn=False)
            except TimeoutError:
                raise _SpawnFailure(f"Delete lab timed out after {timeout}") from None
            await self._write(op, result="deleted")
            log.info("Lab deleted")
        except (_SpawnFailure, KubernetesError) as exc:
            log.error("Lab delete failed", error=str(exc))
            with contextlib.suppress(_LostRecordError, KubernetesError):
                await self._write(
                    op,
                    result="failed",
                    add_events=[("error", str(exc), None), ("failed", "Lab delete failed", None)],
                )
            if self._alerts is not None:
                await self._alerts.report("Lab delete failed", user=username, error=exc)
            raise DeleteFailedError() from exc
        except _LostRecordError:
            raise DeleteFailedError() from None
        finally:
            await self._end(op, renew, username, None)

    async def _claim_after_conflict(self, username: str, new: OperationRecord) -> _Operation | None:
        """A delete's claim lost: stop our own spawn, join another replica's delete, or retry.

        A spawn of this replica that claimed first (a recreate racing this DELETE)
        is cancelled and waited for, so its objects are deleted here rather than
        applied after a 204. A delete running on another replica is joined (api.md
        4.7 case 1): None once it finished, DeleteFailedError if it failed. A spawn
        live on another replica keeps the 409 (api.md 7.6's start race).
        """
        while True:
            mine = self._ops.get(username)
            if (
                mine is not None
                and mine.kind != "delete"
                and mine.task is not None
                and not mine.task.done()
            ):
                mine.task.cancel()
                await asyncio.wait([mine.task])
            lease = await self._kube.find("Lease", f"lab-{username}", self._namespace)
            fresh = OperationRecord.from_lease(lease) if lease is not None else None
            if lease is not None:
                self._store("Lease", lease)
            if fresh is not None and fresh.live() and fresh.holder != self.identity:
                if fresh.operation != "delete":
                    raise OperationInProgressError(username)
                if await self._join_delete(username, fresh.operation_id):
                    return None
                continue  # its holder stopped renewing: take the delete over
            new.operation_id = ""
            return await self._claim(username, fresh, new)

    async def _join_delete(self, username: str, operation_id: str) -> bool:
        """Wait for another replica's delete: True when it ended, False if its holder is gone."""
        while True:
            current = self._peek(username)
            if current is None or current.operation_id != operation_id:
                return True  # replaced: that delete ended and something else began
            if current.result:
                if current.result == "failed":
                    raise DeleteFailedError()
                return True
            if current.expired():
                return False
            await self._wait_change(1.0, username)

    async def _delete_objects(
        self, op: _Operation, username: str, progress: tuple[int | None, int, int], *, spawn: bool
    ) -> None:
        """Pod (grace 1 s) then namespace, each waited for, with the operation's events."""
        namespace = self._lab_namespace(username)
        timeout = self._config.lab.delete_timeout.total_seconds()
        if progress[0] is not None:
            await self._write(
                op, add_events=[("info", "Shutting down Kubernetes pod", progress[0])]
            )
        pod = f"{username}-nb"
        try:
            await self._kube.delete("Pod", pod, namespace, grace_period_seconds=1, timeout=timeout)
        except KubernetesTimeoutError:
            raise
        except KubernetesError as exc:
            where = f"{namespace}/{pod}"
            raise _SpawnFailure(_failure("deleting object", "Pod", where, exc)) from None
        await self._write(op, add_events=[("info", "Deleting user namespace", progress[1])])
        try:
            await self._kube.delete("Namespace", namespace, timeout=timeout)
        except KubernetesTimeoutError:
            raise
        except KubernetesError as exc:
            where = namespace
            raise _SpawnFailure(_failure("deleting namespace", "Namespace", where, exc)) from None
        for kind, cache in self._objects.items():
            obj = cache.pop(username, None)
            if obj is not None:
                # A watch lagging behind must not bring the deleted lab back.
                self._gone[str((obj.get("metadata") or {}).get("uid", ""))] = kind
        await self._write(op, add_events=[("info", f"Lab for {username} deleted", progress[2])])

    async def _delete_remote(self, username: str, record: OperationRecord) -> None:
        """Ask the replica holding the operation to stop, then wait for its result."""
        if record.operation in ("spawn", "monitor") and not record.cancel:
            record.cancel = True
            try:
                lease = await self._kube.replace(record.to_lease(self._namespace))
                self._store("Lease", lease)
            except ConflictError:
                pass  # the holder wrote meanwhile; wait below all the same
        op_id = record.operation_id
        asked = time.monotonic()
        deadline = asked + (
            self._config.lab.delete_timeout.total_seconds()
            + self._config.lab.spawn_timeout.total_seconds()
        )
        while time.monotonic() < deadline:
            current = self._record(username)
            if current is None:
                raise UnknownUserError.for_path(username)
            if current.operation == "delete" and current.result:
                if current.result == "failed":
                    raise DeleteFailedError()
                return
            if current.in_progress and current.expired():
                break  # the holder is gone: delete here
            if (
                current.operation_id == op_id
                and current.result
                and (not current.cancel or time.monotonic() - asked > self._duration)
            ):
                # The holder finished its spawn: before our cancel request landed (it
                # never saw it, so no delete comes from it: act at once), or it saw the
                # request yet never started the delete (after a lease duration).
                break
            if not current.cancel and current.operation_id == op_id and not current.result:
                # Our cancel request was overwritten by a write of the holder: ask again.
                current.cancel = True
                with contextlib.suppress(ConflictError):
                    self._store(
                        "Lease", await self._kube.replace(current.to_lease(self._namespace))
                    )
            await self._wait_change(1.0, username)
        if self.state(username) is None:
            return
        task = asyncio.create_task(self._run_delete(username))
        self._deletes[username] = task
        await asyncio.shield(task)

    async def _remote_delete(self, username: str) -> None:
        """Another replica asked (cancel annotation): stop the spawn, delete the lab here."""
        op = self._ops.get(username)
        if op is not None and op.task is not None and not op.task.done():
            op.task.cancel()
            await asyncio.wait([op.task])
        task = self._deletes.get(username)
        if task is None or task.done():
            task = asyncio.create_task(self._run_delete(username))
            self._deletes[username] = task
        with contextlib.suppress(DeleteFailedError, OperationInProgressError):
            await task

    def _waker(self, username: str, *, pod: bool = False) -> _Waker:
        """The event the next change of a user's record (``pod``: pod) sets, shared by all.

        Taken before reading what it guards, it cannot miss a change made after
        that read: `_notify` pops and sets this very event, even while the reader
        is away (a stream suspended at its ``yield`` while a slow client reads).
        """
        wakers = self._pod_wakers if pod else self._wakers
        waker = wakers.get(username)
        if waker is None:
            waker = wakers[username] = _Waker()
        return waker

    async def _wait_change(
        self,
        timeout: float,
        username: str,
        waker: _Waker | None = None,
        *,
        pod: bool = False,
    ) -> None:
        """Until the user's record (``pod``: pod) changes, at most ``timeout`` s.

        ``waker``: the user's `_waker`, taken before the caller read what it waits on.
        """
        if waker is None:
            waker = self._waker(username, pod=pod)
        await waker.wait(self._loop.get(), timeout)

    # Events

    async def events(self, username: str) -> AsyncIterator[SpawnEvent]:
        """The user's operation events, replayed then live; UnknownUserError before any."""
        record = self._record(username)
        if record is None:
            with contextlib.suppress(KubernetesError):
                lease = await self._kube.find("Lease", f"lab-{username}", self._namespace)
                if lease is not None:
                    self._store("Lease", lease)
                    record = self._record(username)
        if record is None:
            state = self.state(username)
            if state is None:
                raise UnknownUserError.for_path(username)
            return _single(state, username)
        return self._stream(username, record.operation_id)

    async def _stream(self, username: str, operation_id: str) -> AsyncIterator[SpawnEvent]:
        sent = 0
        while True:
            waker = self._waker(username)  # before the read: a change after it is not lost
            record = self._peek(username)
            if record is not None and record.operation_id != operation_id:
                previous = self._previous.get(username)
                if previous is None or previous.operation_id != operation_id:
                    return
                record = previous
            if record is None:
                return
            replaced = record.operation_id != (self._peek(username) or record).operation_id
            for event, message, progress in record.events[sent:]:
                sent += 1
                yield SpawnEvent(event, message, progress)
                if event in _TERMINAL:
                    return
            if not record.in_progress or replaced:
                return
            await self._wait_change(self._duration / 3, username, waker)

    # Takeover

    async def _supervise(self) -> None:
        """Take over records whose holder stopped renewing, now and then."""
        while True:
            await asyncio.sleep(self._duration / 3)
            try:
                self.running()  # keeps the active_labs gauge current
                await self._take_over(initial=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.warning("Takeover failed", error=str(exc))

    async def _take_over(self, *, initial: bool) -> None:
        for username in list(self._leases):
            operation, result = self._progress(username) or ("", "")
            if not operation or result:
                continue  # not in progress (most users), decided without decoding the record
            record = self._record(username)
            if record is None or not record.in_progress or self._stopping:
                continue
            op = self._ops.get(username)
            if op is not None and op.task is not None and not op.task.done():
                continue
            if not record.expired() and not (initial and record.holder == self.identity):
                continue
            try:
                await self._take_over_one(username, record)
            except OperationInProgressError:
                continue  # another replica took it first
        if not initial:
            return
        for username, pod in list(self._objects["Pod"].items()):
            # A lab spawned by an earlier controller (no record) still starting: follow it.
            phase = (pod.get("status") or {}).get("phase")
            if username in self._leases or phase != "Pending":
                continue
            if username not in self._objects["Namespace"]:
                continue
            with contextlib.suppress(OperationInProgressError):
                await self._take_over_one(username, OperationRecord(username, operation="spawn"))

    async def _take_over_one(self, username: str, record: OperationRecord) -> None:
        log = self._log.bind(user=username)
        log.info("Taking over lab operation", operation=record.operation, holder=record.holder)
        if record.operation == "delete":
            task = asyncio.create_task(self._run_delete(username))
            self._deletes[username] = task
            self._background(_quiet(task))
            return
        pod = self._objects["Pod"].get(username)
        if pod is None:
            # Same operation id: listeners of the interrupted spawn see its end.
            new = OperationRecord(
                username=username,
                operation=record.operation,
                operation_id=record.operation_id,
                lab_state=record.lab_state,
                internal_url=record.internal_url,
                events=list(record.events),
                spawn_env=record.spawn_env,
                withheld_env=record.withheld_env,
            )
            op = await self._claim(username, record, new)
            self._count(op, "failure")
            try:
                await self._interrupt(op, username)
            finally:
                op.done.set()
            if self._alerts is not None:
                await self._alerts.report(
                    "Lab spawn failed",
                    user=username,
                    error=_SpawnFailure("Lab spawn interrupted: the controller running it stopped"),
                )
            return
        new = OperationRecord(
            username=username,
            operation="monitor",
            lab_state=record.lab_state,
            internal_url=record.internal_url,
            spawn_env=record.spawn_env,
            withheld_env=record.withheld_env,
            events=[("info", f"Monitoring in-progress lab creation for {username}", 1)],
        )
        op = await self._claim(username, record, new)
        op.pod_created = True
        op.task = asyncio.create_task(self._monitor(op, username))

    async def _monitor(self, op: _Operation, username: str) -> None:
        """Follow a spawn taken over with its pod; reported and counted as a spawn."""
        log = self._log.bind(user=username)
        renew = asyncio.create_task(self._renew(op))
        timeout = self._config.lab.spawn_timeout.total_seconds()
        outcome = "failure"
        error: BaseException | None = None
        try:
            try:
                async with asyncio.timeout(timeout):
                    pending = await self._watch_pod(op, username, "")
            except TimeoutError:
                outcome = "timeout"
                raise _SpawnFailure(f"In-progress lab spawn timed out after {timeout}") from None
            self._count(op, "success")
            await self._write(
                op,
                result="complete",
                add_events=[
                    *pending,
                    ("complete", f"Lab Kubernetes pod started for {username}", None),
                ],
            )
        except (_SpawnFailure, KubernetesError) as exc:
            error = exc
            self._count(op, outcome)
            await self._fail_spawn(op, str(exc), log)
        except _LostRecordError:
            self._count(op, "cancelled")
        except asyncio.CancelledError:
            self._count(op, "cancelled")
            with contextlib.suppress(_LostRecordError, KubernetesError):
                if op.handoff:
                    await self._write(op, holder="")
                else:
                    await self._write(
                        op,
                        result="cancelled",
                        add_events=[("failed", "Operation cancelled", None)],
                    )
        except Exception as exc:
            error = exc
            self._count(op, "failure")
            log.exception("Lab monitor failed unexpectedly")
            await self._fail_spawn(op, str(exc) or type(exc).__name__, log)
        finally:
            await self._end(op, renew, username, error)


# What a lab set's other objects never depend on when the API server admits them:
# a run of these in a set's order is applied at once. Anything else (the namespace,
# the quota that admission counts later objects against, the pod, an object a site
# adds, such as a ServiceAccount the pod names) is applied alone, in its place.
_INDEPENDENT_KINDS = frozenset(
    {"ConfigMap", "Secret", "PersistentVolumeClaim", "NetworkPolicy", "Service"}
)


def _apply_steps(manifests: list[Object]) -> list[list[Object]]:
    """A set's manifests in its order, consecutive independent ones grouped in one step.

    The built-in lab set takes five round trips instead of one per object: the
    namespace; the PVCs, ConfigMaps and Secrets; the quota; the NetworkPolicy and
    Service; the pod.
    """
    steps: list[list[Object]] = []
    for manifest in manifests:
        free = manifest["kind"] in _INDEPENDENT_KINDS
        if free and steps and steps[-1][0]["kind"] in _INDEPENDENT_KINDS:
            steps[-1].append(manifest)
        else:
            steps.append([manifest])
    return steps


async def _together(steps: list[Awaitable[Any]]) -> list[Any]:
    """Run ``steps`` at once and wait for all; their results, or the earliest one's error.

    Every request of a step is in flight by the time one fails, so all are waited
    for, and the failure earliest in ``steps`` (the set's order) is raised: a
    spawn reports the same object's error, as applying one by one did, however
    the answers interleave.
    """
    if len(steps) == 1:
        return [await steps[0]]
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _failure(action: str, kind: str, where: str, exc: KubernetesError) -> str:
    """api.md 6.4's ``Error <action> (<Kind> <where>, status <code>): <message>``.

    A request that got no answer at all (a dropped connection) has no status
    code: it says so instead of a misleading ``status 0``.
    """
    status = f"status {exc.status}" if exc.status else "no answer"
    return f"Error {action} ({kind} {where}, {status}): {exc.message}"


def _operation_id(lease: Object) -> str:
    """A Lease's operation id, read without decoding the whole record."""
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(OPERATION_ID_ANNOTATION, ""))


async def _quiet(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(Exception):
        await task


async def _single(state: LabState, username: str) -> AsyncIterator[SpawnEvent]:
    """The stream of a lab with no record (adopted): one event for its state (DECISIONS API 2)."""
    if state.status is LabStatus.RUNNING:
        yield SpawnEvent("complete", f"Lab Kubernetes pod started for {username}")
    elif state.status in (LabStatus.FAILED, LabStatus.TERMINATED):
        yield SpawnEvent("failed", "Lab spawn failed")


_METADATA_FIELDS = ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
"""What the caches keep of every object's metadata besides its labels: `_store` matches
uid and resourceVersion, `_user_of` the name, derive_state the namespace's deletionTimestamp."""

_POD_ANNOTATIONS = ("nublado.lsst.io/user-name", "nublado.lsst.io/user-groups")
"""The pod annotations rebuild_state reads (the user's name and groups)."""

_ENV_KEYS = (
    "CPU_LIMIT",
    "MEM_LIMIT",
    "CPU_GUARANTEE",
    "MEM_GUARANTEE",
    "DEBUG",
    "RESET_USER_ENV",
    "JUPYTER_IMAGE_SPEC",
    "JUPYTERHUB_SERVICE_PREFIX",
)
"""The env ConfigMap keys rebuild_state reads (resources, options, the lab's URL)."""

_QUOTA_KEYS = ("limits.cpu", "limits.memory")
"""The ResourceQuota's ``spec.hard`` keys rebuild_state reads."""

_POD_STATUS_FIELDS = ("phase", "reason", "message")
_CONDITION_FIELDS = ("type", "status", "reason", "message")
_SECURITY_FIELDS = ("runAsUser", "runAsGroup")


def _pick(source: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The entries of ``keys`` present in ``source``, keyed by the shared constant strings.

    A decoded object's keys are new strings per LIST page; the constants'
    are one each for all 5,000 labs.
    """
    return {key: source[key] for key in keys if key in source}


def _interned(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Labels with keys and values shared between labs (most are the same for every lab)."""
    return {
        sys.intern(str(k)): sys.intern(v) if isinstance(v, str) else v for k, v in mapping.items()
    }


def trim_cached(kind: str, obj: Object) -> Object:
    """What a lab cache keeps of an object: only what the caches' readers read.

    The readers are `derive_state` and `rebuild_state` (the lab's state), the
    spawn's `_pod_verdict` (a pod's status), the takeover (a pod's phase) and
    `_store`/`_user_of` (name, labels, uid, resourceVersion). The rest (managedFields,
    most of a pod's spec, the env ConfigMap's other keys, other annotations) is
    dropped, or 5,000 labs would hold hundreds of megabytes of it: the
    reconcile and the delete paths read objects from the cluster, not from here.
    """
    source = obj.get("metadata") or {}
    if kind == "Lease":
        return _kept_lease(obj)
    metadata = _pick(source, _METADATA_FIELDS)
    if source.get("namespace"):
        metadata["namespace"] = sys.intern(str(source["namespace"]))
    if source.get("labels"):
        metadata["labels"] = _interned(source["labels"])
    if kind == "Pod" and source.get("annotations"):
        metadata["annotations"] = _pick(source["annotations"], _POD_ANNOTATIONS)
    trimmed: Object = {"apiVersion": sys.intern(str(obj.get("apiVersion", ""))), "kind": kind}
    trimmed["metadata"] = metadata
    if kind == "ConfigMap":
        trimmed["data"] = _pick(obj.get("data") or {}, _ENV_KEYS)
    elif kind == "ResourceQuota":
        hard = (obj.get("spec") or {}).get("hard") or {}
        trimmed["spec"] = {"hard": _pick(hard, _QUOTA_KEYS)}
    elif kind == "Pod":
        trimmed["spec"] = _trim_pod_spec(obj.get("spec") or {})
        trimmed["status"] = _trim_pod_status(obj.get("status") or {})
    return trimmed


_LEASE_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations")
"""What `OperationRecord.from_lease` and ``to_lease`` read of a Lease's metadata."""
_LEASE_METADATA_SET = frozenset(_LEASE_METADATA)


def _kept_lease(lease: Object) -> Object:
    """A Lease as the cache and its watch keep it: without managedFields and timestamps.

    The same dict when it is already one (the watch starts from the cache's copies,
    which it then shares rather than holding a second copy of each).
    """
    metadata = lease.get("metadata") or {}
    if metadata.keys() <= _LEASE_METADATA_SET:
        return lease
    return {**lease, "metadata": _pick(metadata, _LEASE_METADATA)}


def _trim_pod_spec(spec: Mapping[str, Any]) -> Object:
    """The containers' names and user and group (rebuild_state's uid and gid)."""
    kept: Object = {}
    for key in ("initContainers", "containers"):
        containers = []
        for container in spec.get(key) or []:
            entry = _pick(container, ("name",))
            if "securityContext" in container:
                entry["securityContext"] = _pick(container["securityContext"], _SECURITY_FIELDS)
            containers.append(entry)
        if containers:
            kept[key] = containers
    return kept


def _trim_pod_status(status: Mapping[str, Any]) -> Object:
    """Phase, reason, conditions and the containers' states: what `_pod_verdict` reads."""
    kept = _pick(status, _POD_STATUS_FIELDS)
    if "conditions" in status:
        kept["conditions"] = [_pick(c, _CONDITION_FIELDS) for c in status["conditions"] or []]
    for key in ("initContainerStatuses", "containerStatuses"):
        if key in status:
            kept[key] = [_pick(c, ("name", "state")) for c in status[key] or []]
    return kept


def _identity(obj: Object) -> Object:
    """What a watch remembers of a lab object: enough to name it in a DELETED event.

    The lab caches' ``_store`` finds the user from the labels and name and
    matches the uid; nothing else of a relist's DELETED object is read.
    """
    metadata = obj.get("metadata") or {}
    kept = {
        k: metadata[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "labels")
        if k in metadata
    }
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept}


def _pod_verdict(pod: Object) -> str | None:
    """``running``, a failure message, or None while the pod is still on its way."""
    metadata = pod.get("metadata") or {}
    where = f"{metadata.get('namespace')}/{metadata.get('name')}"
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        reason = status.get("reason") or status.get("message") or ""
        return f"Pod {where} terminated with phase {phase}" + (f": {reason}" if reason else "")
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in _BAD_WAITING:
                message = waiting.get("message")
                text = f"Pod {where} container {container.get('name')} failed: {reason}"
                return text + (f": {message}" if message else "")
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            message = condition.get("message")
            text = f"Pod {where} cannot be scheduled"
            return text + (f": {message}" if message else "")
    # A Running pod whose container crash-loops is not a started lab: checked above.
    return "running" if phase == "Running" else None
