"""The lab reconcile: one pass over every lab, from one labelled LIST per kind (api.md 7.7).

The cluster is the truth for a pass: each kind of lab object is listed once
(by the ``nublado.lsst.io/category=lab`` label), with the per-user operation
Leases, and every decision is made from that snapshot, never from the lab
service's watch caches, which may lag. What a pass does, per user:

- an operation in progress (a live or abandoned record): nothing, the lab
  service (its holder or its takeover) owns the user;
- a pod that ended (Succeeded, Failed), is Unknown, or vanished from a lab that
  was running, a lab whose spawn or delete failed, or a namespace someone
  deleted: the lab is deleted through the lab service's normal delete, whose
  claim is conditional on the Lease as listed, so a user whose record anyone
  wrote since the LIST is left alone (afterwards GET answers 404); a pod or
  namespace the LISTs miss is first read by name: one found there had its
  labels edited, which is drift (labels re-applied), never a reason to delete;
- a namespace without pod nor lab (a spawn that died, a record lost): an
  orphan, marked with the time it was first seen so (an annotation, so another
  leader knows it too) and removed once it stayed one for
  ``lab.orphanGracePeriod``;
- a running or starting lab: objects missing from its set are re-applied from
  the templates; objects another field manager changed are compared with the
  desired render through a server-side dry-run apply, and applied when apply
  can fix them in place; a pod (or an immutable object) that differs is only
  reported, as a metric and a log: a user's running pod is never deleted or
  restarted to fix drift.

The desired render of a lab is rebuilt from its own objects by
`nublado.services.drift` (the comparison ``nublado diff`` shows; a deleted env
ConfigMap from the copy of its data the spawn wrote in the record, which never
holds secrets: such a rebuilt env is reported as drift, ``env_incomplete``). A
pass where nothing is wrong renders once (the set's kinds and names) and sends
only its LISTs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar, cast

import msgspec
import structlog

from ..alerts import Alerts
from ..config import Config
from ..errors import NubladoError
from ..heap import trim_heap
from ..kube.client import KubernetesClient
from ..kube.errors import KubernetesError
from ..kube.kinds import kind_named
from ..metrics import Metrics
from ..models.image import ResolvedImage
from ..models.lab import LabRequestOptions, LabSpecification, LabState, LabStatus
from ..models.user import NotebookQuota, UserInfo, UserQuota
from ..render.engine import Renderer
from ..render.lab import LabContextBuilder, SourceSecret
from .drift import (
    DriftError,
    LiveObjects,
    Remedy,
    desired_lab_manifests,
    lab_drift,
    read_sources,
    withheld_env,
)
from .labs import LabService
from .labstate import (
    CATEGORY_LABEL,
    LEASE_CATEGORY,
    OPERATION_ANNOTATION,
    RESULT_ANNOTATION,
    USER_LABEL,
    LabObjects,
    OperationRecord,
    derive_state,
    format_time,
    parse_time,
    rebuild_state,
)


class _ManagedEntry(msgspec.Struct, gc=False):
    """Of a managedFields entry, who wrote (its fieldsV1, most of the entry, is skipped)."""

    manager: str | msgspec.UnsetType = msgspec.UNSET
    subresource: str | msgspec.UnsetType = msgspec.UNSET


class _PartialMeta(msgspec.Struct, gc=False):
    """What a pass reads of an object's metadata (a field the answer lacks stays UNSET)."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    namespace: str | msgspec.UnsetType = msgspec.UNSET
    uid: str | msgspec.UnsetType = msgspec.UNSET
    resourceVersion: str | msgspec.UnsetType = msgspec.UNSET
    creationTimestamp: str | msgspec.UnsetType = msgspec.UNSET
    deletionTimestamp: str | msgspec.UnsetType = msgspec.UNSET
    labels: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    annotations: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    managedFields: list[_ManagedEntry] | msgspec.UnsetType = msgspec.UNSET


class _Partial(msgspec.Struct, gc=False):
    """One item of a PartialObjectMetadataList."""

    metadata: _PartialMeta | msgspec.UnsetType = msgspec.UNSET


_ListMeta = TypedDict("_ListMeta", {"resourceVersion": str, "continue": str}, total=False)


class _PartialList(TypedDict, total=False):
    """A page of a metadata-only LIST (``continue`` is a keyword: hence ``_ListMeta``'s form)."""

    metadata: _ListMeta
    items: list[_Partial]


class _ObjectMeta(TypedDict, total=False):
    """Every field of ObjectMeta but managedFields (which a pass drops unread), as sent."""

    name: Any
    generateName: Any
    namespace: Any
    selfLink: Any
    uid: Any
    resourceVersion: Any
    generation: Any
    creationTimestamp: Any
    deletionTimestamp: Any
    deletionGracePeriodSeconds: Any
    labels: Any
    annotations: Any
    ownerReferences: Any
    finalizers: Any


class _Whole(TypedDict, total=False):
    """A Lease or Namespace (their every field) without its managedFields."""

    apiVersion: Any
    kind: Any
    metadata: _ObjectMeta
    spec: Any
    status: Any


class _WholeList(TypedDict, total=False):
    metadata: _ListMeta
    items: list[_Whole]


_decode_whole_list = msgspec.json.Decoder(_WholeList).decode
"""Decodes a list of Leases or Namespaces as orjson would, but for each item's managedFields
(a Lease's names every annotation), skipped without making Python objects of them."""

_decode_partial_list = msgspec.json.Decoder(_PartialList).decode
"""Decodes a PartialObjectMetadataList into small structs of only what a pass reads: of each
managedFields entry its manager, not its fieldsV1 (most of a pod's metadata), which is
skipped without making Python objects of it. A struct's fields cost less to make and read
than a dict's keys, and these structs are outside the garbage collector (they hold no
cycle): decoding 55,000 objects' metadata triggered some twenty collections otherwise,
a quarter of the pass's CPU. Only a lab that is not healthy has its objects made into
dicts (`_as_object`)."""


__all__ = ["ORPHAN_ANNOTATION", "LabReconciler", "ReconcileError", "ReconcileReport"]

Object = dict[str, Any]
_V = TypeVar("_V")

ORPHAN_ANNOTATION = "nublado.lsst.io/orphaned-since"
"""When the reconcile first found a lab namespace orphaned (kept on the namespace itself)."""

_LABS_PER_PAGE = 10_000
"""Labs whose objects of a kind one LIST page holds (a kind with two objects per lab: pages of
20,000): a pass over up to that many labs sends one LIST per kind; past it, pages bound
what one answer holds (a pod's metadata, its managedFields included, is about 10 KB)."""

_STATE_KEYS = (("Pod", "{user}-nb"), ("ConfigMap", "{user}-nb-env"), ("ResourceQuota", "{user}-nb"))
"""What a lab's state is derived from (`derive_state`): read in full for a lab not healthy."""

_RENDER_SOURCE_KINDS = frozenset({"ConfigMap", "Secret", "ResourceQuota", "Pod"})
"""Kinds a lab's desired render is rebuilt from (`desired_lab_manifests`)."""

_CONCURRENT_REPAIRS = 8
"""Labs a pass repairs or deletes at once."""

_PROBE_USER = "nublado-reconcile-probe"
"""The user of the render that tells which kinds and names a lab set has."""

_SYSTEM_MANAGERS = frozenset(
    {
        "nublado",
        "kube-controller-manager",
        "kube-scheduler",
        "default-scheduler",
        "kubelet",
        "kube-apiserver",
    }
)
"""Field managers whose writes are not drift: ours and the cluster's own controllers."""


class ReconcileError(NubladoError):
    """A reconcile pass failed: its LISTs, or the repair of some labs (``report`` says which)."""

    def __init__(self, message: str, report: ReconcileReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ReconcileReport:
    """What one pass found and did; object entries are ``(user, kind, name)``."""

    labs: int = 0
    """Lab namespaces listed."""
    running: int = 0
    """Labs running at the end of the pass (the ``active_labs`` gauge)."""
    busy: list[str] = field(default_factory=list)
    """Users left alone: an operation in progress, or their record changed during the pass."""
    reapplied: list[tuple[str, str, str]] = field(default_factory=list)
    """Missing objects of running labs, applied again from the templates."""
    fixed: list[tuple[str, str, str]] = field(default_factory=list)
    """Objects changed by someone else and put back in place by apply."""
    drift: list[tuple[str, str, str]] = field(default_factory=list)
    """Objects that differ in a way apply cannot fix (a pod spec): reported only."""
    unbuildable: list[tuple[str, str]] = field(default_factory=list)
    """Labs whose desired render cannot be rebuilt from their objects, with why."""
    deleted: dict[str, str] = field(default_factory=dict)
    """Users whose lab was deleted, with why: terminated, failed, vanished, namespace-gone,
    orphan."""
    orphans: list[str] = field(default_factory=list)
    """Users whose namespace is an orphan still inside its grace period."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """Users whose repair failed, with the error (the next pass tries again)."""
    seconds: float = 0.0


@dataclass
class _Snapshot:
    """Every lab object and record, as the pass's LISTs returned them, by user.

    Namespaces and Leases are whole (without managedFields); the other kinds
    are kept as their listed metadata (`_PartialMeta`, without managedFields),
    by kind, user and name template, pods only those Running (listed by their
    phase); ``foreign`` holds (kind, name template) of objects another field
    manager wrote, by user.
    """

    namespaces: dict[str, Object]
    leases: dict[str, Object]
    listed: dict[str, dict[str, dict[str, _PartialMeta]]]  # kind -> user -> template -> metadata
    foreign: dict[str, set[tuple[str, str]]]
    set_size: int = 0
    """How many objects of the set ``listed`` holds for a lab that has them all."""

    def only(self, users: Iterable[str]) -> _Snapshot:
        """The part of the snapshot about ``users``."""
        keep = list(users)

        def part(by_user: Mapping[str, _V]) -> dict[str, _V]:
            return {u: by_user[u] for u in keep if u in by_user}

        return _Snapshot(
            part(self.namespaces),
            part(self.leases),
            {kind: part(by_user) for kind, by_user in self.listed.items()},
            part(self.foreign),
            self.set_size,
        )

    def users(self) -> set[str]:
        """Every user something was listed of."""
        found = set(self.namespaces) | set(self.leases)
        for by_user in self.listed.values():
            found.update(by_user)
        return found

    def has(self, username: str, kind: str, template: str) -> bool:
        """Whether the LISTs returned that object of the user's lab."""
        return template in self.listed.get(kind, {}).get(username, {})

    def mine(self, username: str) -> dict[tuple[str, str], Object]:
        """The user's listed objects as dicts (what the rest of a pass reads), by (kind,
        name template): made only for a lab that is not healthy."""
        mine: dict[tuple[str, str], Object] = {}
        for kind, by_user in self.listed.items():
            for template, meta in by_user.get(username, {}).items():
                mine[(kind, template)] = _as_object(kind, meta)
        return mine


@dataclass(frozen=True)
class _SetEntry:
    """One object of the lab set: its kind, and its name with the user's name as ``{user}``."""

    kind: str
    name: str

    def for_user(self, username: str) -> str:
        return self.name.replace("{user}", username)


class LabReconciler:
    """Runs lab reconcile passes; the daemon's leader schedules `run` (job ``lab-reconcile``)."""

    def __init__(
        self,
        config: Config,
        kube: KubernetesClient,
        labs: LabService,
        renderer: Renderer,
        *,
        namespace: str,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
        discovery: Callable[[], Awaitable[Mapping[str, Any] | None]] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._config = config
        self._kube = kube
        self._labs = labs
        self._renderer = renderer
        self._namespace = namespace
        self._metrics = metrics
        self._alerts = alerts
        self._discovery = discovery
        self._clock = clock or (lambda: datetime.now(UTC))
        self._builder = LabContextBuilder(config)
        self._log = structlog.get_logger("nublado.reconcile")
        self._lock = asyncio.Lock()

    # The pass

    async def run(self) -> ReconcileReport:
        """One pass; ReconcileError when its LISTs fail or some lab could not be repaired."""
        async with self._lock:
            started = time.monotonic()
            report = ReconcileReport()
            try:
                await self._pass(report)
            finally:
                # The pass's decoded LISTs are freed by now: their heap pages go back.
                trim_heap()
                report.seconds = round(time.monotonic() - started, 4)
            self._log.info(
                "Lab reconcile done",
                labs=report.labs,
                running=report.running,
                reapplied=len(report.reapplied),
                fixed=len(report.fixed),
                drift=len(report.drift),
                deleted=len(report.deleted),
                orphans=len(report.orphans),
                busy=len(report.busy),
                errors=len(report.errors),
                seconds=report.seconds,
            )
            if report.errors:
                users = ", ".join(sorted({user for user, _ in report.errors}))
                raise ReconcileError(f"Lab reconcile could not repair: {users}", report)
            return report

    async def _pass(self, report: ReconcileReport) -> None:
        entries = self._lab_set()
        try:
            snapshot = await self._list(entries)
        except KubernetesError as exc:
            self._count_error("list")
            self._log.error("Lab reconcile failed listing lab objects", error=str(exc))
            raise ReconcileError(f"Lab reconcile failed listing lab objects: {exc}") from exc
        report.labs = len(snapshot.namespaces)
        users = sorted(snapshot.users(), key=str)
        running = 0
        drift_kinds: dict[str, int] = {}
        context = _PassContext()
        gate = asyncio.Semaphore(_CONCURRENT_REPAIRS)

        async def reconcile(username: str) -> LabStatus | None:
            # Several at once: a delete waits for its namespace to go, which takes a while.
            async with gate:
                try:
                    return await self._reconcile_user(username, snapshot, entries, report, context)
                except NubladoError as exc:
                    message = str(exc) or type(exc).__name__
                    report.errors.append((username, message))
                    self._count_error("lab")
                    self._log.error("Lab reconcile failed for user", user=username, error=message)
                    if self._alerts is not None:
                        await self._alerts.report("Lab reconcile failed", user=username, error=exc)
                    return None

        others = []
        for username in users:
            if _healthy(username, snapshot):
                running += 1  # the common case, decided here without a task
            else:
                others.append(username)
        # The healthy labs' part (nearly all of it) is read no more: freed before the
        # repairs, whose lasting allocations (the lab service's caches of what they write)
        # then do not pin its pages: the controller's RSS after a pass with 1 % drift
        # rose 8-28 MiB with it, all of it allocator pages, not objects in use.
        snapshot = snapshot.only(others)
        statuses = await asyncio.gather(*(reconcile(username) for username in others))
        running += sum(status is LabStatus.RUNNING for status in statuses)
        report.busy.sort()
        for found in (report.reapplied, report.fixed, report.drift):
            found.sort()
        report.unbuildable.sort()
        report.orphans.sort()
        report.errors.sort()
        for _, kind, _ in report.drift:
            drift_kinds[kind] = drift_kinds.get(kind, 0) + 1
        report.running = running
        if self._metrics is not None:
            self._metrics.active_labs.set(running)
            kinds = {entry.kind for entry in entries} | set(drift_kinds)
            for kind in kinds:
                self._metrics.lab_drift.labels(kind=kind).set(drift_kinds.get(kind, 0))

    # Listing

    def _lab_set(self) -> list[_SetEntry]:
        """The kinds and names of a lab's objects, from one render for a made-up user.

        Names are the probe's with its user's name replaced; the ResourceQuota
        (rendered only for a user with a quota) is expected only of such users.
        """
        lab = self._config.lab
        size = lab.sizes[0]
        keys: dict[str, dict[str, str]] = {}
        for entry in lab.secrets:
            keys.setdefault(entry.secret_name, {})[entry.secret_key] = ""
        if lab.pull_secret is not None:
            keys.setdefault(lab.pull_secret, {})
        secrets = {name: SourceSecret(data=data, type=None) for name, data in keys.items()}
        user = UserInfo(
            username=_PROBE_USER,
            uid=1000,
            gid=1000,
            quota=UserQuota(notebook=NotebookQuota(cpu=1.0, memory=1.0)),
        )
        image = ResolvedImage("registry.invalid", "probe", "probe", "sha256:0", "probe")
        spec = LabSpecification(
            options=LabRequestOptions(size=size.size, image_list=image.reference_with_digest),
            env={"JUPYTERHUB_SERVICE_PREFIX": "/"},
        )
        context = self._builder.build(
            user=user,
            spec=spec,
            image=image,
            size=size,
            secrets=secrets,
            token="",
            discovery=None,
        )
        return [
            _SetEntry(m["kind"], str(m["metadata"]["name"]).replace(_PROBE_USER, "{user}"))
            for m in self._renderer.render("lab", context)
        ]

    async def _list(self, entries: list[_SetEntry]) -> _Snapshot:
        """One labelled LIST per kind of the set, and one of the operation Leases.

        Only the Leases and Namespaces are listed whole: every other kind is
        listed as metadata (``PartialObjectMetadataList``: existence, labels,
        annotations, and managedFields, which tell who wrote it), the pods
        only those Running (a field selector on ``status.phase``): that is
        all a healthy lab is decided from. A lab that is not healthy has its
        objects read again in full (`_full_objects`). Each page is cut down as
        it arrives, so the pass holds one page of decoded objects at a time.
        """
        selector = f"{CATEGORY_LABEL}=lab"
        kinds = list(dict.fromkeys(e.kind for e in entries if e.kind != "Namespace"))
        by_kind: dict[str, list[_SetEntry]] = {}
        for entry in entries:
            by_kind.setdefault(entry.kind, []).append(entry)
        prefix = f"{self._config.lab.namespace_prefix}-"
        snapshot = _Snapshot(
            {},
            {},
            {kind: {} for kind in kinds},
            {},
            len({(e.kind, e.name) for e in entries if e.kind != "Namespace"}),
        )
        templates = {kind: {e.name: e for e in found} for kind, found in by_kind.items()}

        async def whole(
            kind: str,
            namespace: str | None,
            label_selector: str,
            api_version: str,
            kept: dict[str, Object],
            name_prefix: str | None = None,
        ) -> None:
            # Leases and Namespaces, kept whole by their user label (a namespace only when
            # its name is the user's: ``name_prefix`` and the user).
            async for page, _ in self._kube.list_pages(
                kind,
                namespace,
                label_selector=label_selector,
                page_size=_LABS_PER_PAGE,
                decode=_decode_whole_list,
            ):
                if page is None:
                    kept.clear()
                    continue
                for obj in page:
                    metadata = obj.get("metadata") or {}
                    user = (metadata.get("labels") or {}).get(USER_LABEL)
                    if not user:
                        continue
                    if name_prefix is not None and metadata.get("name") != f"{name_prefix}{user}":
                        continue
                    obj.setdefault("apiVersion", api_version)
                    obj.setdefault("kind", kind)
                    kept[str(user)] = obj

        async def objects(kind: str) -> None:
            # Only Running pods: a lab whose pod is not listed is read again in full.
            fields = "status.phase=Running" if kind == "Pod" else None
            kept = snapshot.listed[kind]
            async for page, _ in self._kube.list_pages(
                kind,
                label_selector=selector,
                field_selector=fields,
                page_size=_LABS_PER_PAGE * len(templates[kind]),
                metadata_only=True,
                decode=_decode_partial_list,
            ):
                if page is None:
                    kept.clear()
                    for edited in snapshot.foreign.values():
                        edited -= {k for k in edited if k[0] == kind}
                    continue
                items = cast("list[_Partial]", page)  # as `_decode_partial_list` made them
                _take(kind, items, templates[kind], prefix, kept, snapshot.foreign)

        # Every LIST at once: the server makes one answer while we decode another. The
        # small ones first, the pods' (half the bytes) last: asked first, the pods' answer
        # still came whole last (its 50 MB cross the socket only as fast as this loop,
        # busy decoding the others, reads them), and the server making it first left
        # this side idle for the first quarter of the pass (1.0-1.1 s -> 0.8 s a pass).
        # (Asking for the pods only once a first answer came was slower: 1.02 s against
        # 0.89 s on average over 12 passes each.)
        kinds.sort(key=lambda kind: kind == "Pod")
        await asyncio.gather(
            whole("Namespace", None, selector, "v1", snapshot.namespaces, prefix),
            whole(
                "Lease",
                self._namespace,
                f"{CATEGORY_LABEL}={LEASE_CATEGORY}",
                "coordination.k8s.io/v1",
                snapshot.leases,
            ),
            *(objects(kind) for kind in kinds),
        )
        return snapshot

    async def _full_objects(
        self,
        username: str,
        mine: dict[tuple[str, str], Object],
        keys: set[tuple[str, str]],
    ) -> dict[tuple[str, str], Object]:
        """``mine`` with the objects named by ``keys`` read again in full (GET each).

        The LISTs gave their metadata only. An object gone since is dropped; a
        pod is read whether or not the LIST had it (it lists Running pods only).
        """
        namespace = f"{self._config.lab.namespace_prefix}-{username}"
        full = dict(mine)
        for kind, template in sorted(keys):
            if kind != "Pod" and (kind, template) not in mine:
                continue
            if (mine.get((kind, template)) or {}).get("spec") is not None:
                continue  # already read in full
            name = template.replace("{user}", username)
            obj = await self._kube.find(kind, name, namespace)
            if obj is None:
                full.pop((kind, template), None)
                continue
            (obj.get("metadata") or {}).pop("managedFields", None)
            full[(kind, template)] = {**obj, "kind": kind}
        return full

    # One user

    async def _reconcile_user(
        self,
        username: str,
        snapshot: _Snapshot,
        entries: list[_SetEntry],
        report: ReconcileReport,
        context: _PassContext,
    ) -> LabStatus | None:
        """Reconcile one user's lab; returns its status at the end of the pass (None: no lab)."""
        lease = snapshot.leases.get(username)
        namespace = snapshot.namespaces.get(username)
        mine = snapshot.mine(username)
        edited = snapshot.foreign.get(username, set())
        record = OperationRecord.from_lease(lease) if lease is not None else None
        if record is not None and record.in_progress:
            report.busy.append(username)
            return None
        # The LISTs find labs by label: a namespace someone relabelled looks gone. Before
        # deciding a lab ended, read it by name (only labs that look wrong).
        namespace_name = f"{self._config.lab.namespace_prefix}-{username}"
        if namespace is None and (_had_lab(record) or mine):
            namespace = await self._by_name(username, "Namespace", namespace_name, None)
            if namespace is not None:
                template = f"{self._config.lab.namespace_prefix}-{{user}}"
                edited = {*edited, ("Namespace", template)}
        if namespace is not None and not _terminating(namespace):
            # The LISTs gave metadata (and Running pods only): what a state is derived from
            # is read in full, the pod by name whatever its labels say.
            mine = await self._full_objects(username, mine, set(_STATE_KEYS))
        pod = mine.get(("Pod", "{user}-nb"))
        if pod is not None and not _labelled_for(pod, username):
            self._log.warning(
                "Lab object relabelled: not listed by its labels, found by name",
                user=username,
                kind="Pod",
                name=f"{username}-nb",
            )
            edited = {*edited, ("Pod", "{user}-nb")}
        objects = LabObjects(
            namespace=namespace,
            pod=pod,
            env=mine.get(("ConfigMap", "{user}-nb-env")),
            quota=mine.get(("ResourceQuota", "{user}-nb")),
        )
        state = derive_state(self._config, record, objects)
        if namespace is None:
            if state is None and _had_lab(record) and record is not None:
                state = record.lab_state  # GET already 404s; the record still says running
            if state is not None:
                # Someone deleted the namespace (or a spawn failed before it): end the lab.
                complete = record is not None and record.result == "complete"
                reason = "namespace-gone" if complete else "failed"
                await self._delete(username, lease, state, reason, report)
            return None
        if _terminating(namespace):
            return None  # on its way out; the next pass sees it gone
        orphan = pod is None and not _had_lab(record)
        if not orphan and ORPHAN_ANNOTATION in _annotations(namespace):
            await self._unmark_orphan(username, namespace)
        if orphan:
            await self._orphan(username, lease, namespace, state, report)
            return None
        if state is None:
            return None
        if pod is None:
            vanished = record is not None and record.result == "complete"
            await self._delete(username, lease, state, "vanished" if vanished else "failed", report)
            return None
        if state.status is LabStatus.TERMINATED:
            await self._delete(username, lease, state, "terminated", report)
            return None
        if state.status is LabStatus.FAILED:
            await self._delete(username, lease, state, "failed", report)
            return None
        await self._repair(
            username, lease, record, state, namespace, mine, edited, entries, report, context
        )
        if state.status is LabStatus.PENDING and record is not None and record.result == "complete":
            return LabStatus.RUNNING  # the spawn saw the pod Running (as LabService.state)
        return state.status

    async def _by_name(
        self, username: str, kind: str, name: str, namespace: str | None
    ) -> Object | None:
        """An object of the lab the labelled LIST missed, read by name (None: it is gone).

        Found, it is there with its labels changed (``kubectl label``): drift, which
        `_repair` puts back by apply, never a reason to delete a running lab.
        """
        obj = await self._kube.find(kind, name, namespace)
        if obj is None:
            return None
        labels = (obj.get("metadata") or {}).get("labels") or {}
        self._log.warning(
            "Lab object relabelled: not listed by its labels, found by name",
            user=username,
            kind=kind,
            name=name,
            labels={k: labels.get(k) for k in (CATEGORY_LABEL, USER_LABEL)},
        )
        (obj.get("metadata") or {}).pop("managedFields", None)
        return {**obj, "kind": kind}

    async def _delete(
        self,
        username: str,
        lease: Object | None,
        state: LabState,
        why: str,
        report: ReconcileReport,
    ) -> None:
        """The lab service's normal delete, claimed over the Lease as listed."""
        namespace = f"{self._config.lab.namespace_prefix}-{username}"
        reasons = {
            "terminated": f"Lab pod {namespace}/{username}-nb terminated: deleting the lab",
            "failed": f"Lab for {username} failed: deleting it",
            "vanished": f"Lab pod {namespace}/{username}-nb is missing: deleting the lab",
            "namespace-gone": f"Lab namespace {namespace} was deleted: ending the lab",
            "orphan": f"Lab namespace {namespace} has no lab: deleting it",
        }
        status = LabStatus.TERMINATED if why == "terminated" else LabStatus.FAILED
        marked = state.model_copy(update={"status": status})
        self._log.info("Deleting lab", user=username, reason=why, status=status.value)
        done = await self._labs.delete_for_reconcile(username, lease, marked, reasons[why])
        if not done:
            report.busy.append(username)
            return
        report.deleted[username] = why
        action = "ended_namespace_gone" if why == "namespace-gone" else f"deleted_{why}"
        self._count(action)

    async def _orphan(
        self,
        username: str,
        lease: Object | None,
        namespace: Object,
        state: LabState | None,
        report: ReconcileReport,
    ) -> None:
        """Mark an orphan namespace, or remove it once it stayed one for the grace period.

        The first sighting is written on the namespace (by a PUT conditional on its
        resourceVersion), so another leader, or this one after a restart, counts
        from it; the namespace's creation must also be older than the grace period.
        """
        grace = self._config.lab.orphan_grace_period.total_seconds()
        now = self._clock()
        metadata = namespace.get("metadata") or {}
        since = parse_time(_annotations(namespace).get(ORPHAN_ANNOTATION))
        created = parse_time(metadata.get("creationTimestamp"))
        if since is None:
            marked = {
                **namespace,
                "metadata": {
                    **metadata,
                    "annotations": {**_annotations(namespace), ORPHAN_ANNOTATION: format_time(now)},
                },
            }
            marked["metadata"].pop("managedFields", None)
            try:
                await self._kube.replace(marked)
            except KubernetesError as exc:
                if exc.status != 409:
                    raise
                report.busy.append(username)  # changed since the LIST: the next pass decides
                return
            self._log.info("Lab namespace orphaned", user=username, namespace=metadata.get("name"))
            self._count("orphan_marked")
            report.orphans.append(username)
            return
        old_enough = created is None or (now - created).total_seconds() >= grace
        if (now - since).total_seconds() < grace or not old_enough:
            report.orphans.append(username)
            return
        if state is None:
            state = rebuild_state(self._config, username, LabObjects(namespace=namespace))
        if state is None:
            return
        await self._delete(username, lease, state, "orphan", report)

    async def _unmark_orphan(self, username: str, namespace: Object) -> None:
        """A namespace marked orphan has a lab again: drop the mark (or a later pass would count
        from it)."""
        metadata = dict(namespace.get("metadata") or {})
        annotations = {k: v for k, v in _annotations(namespace).items() if k != ORPHAN_ANNOTATION}
        metadata["annotations"] = annotations
        metadata.pop("managedFields", None)
        try:
            await self._kube.replace({**namespace, "metadata": metadata})
        except KubernetesError as exc:
            if exc.status != 409:
                raise

    # Running labs

    async def _repair(
        self,
        username: str,
        lease: Object | None,
        record: OperationRecord | None,
        state: LabState,
        namespace: Object,
        mine: dict[tuple[str, str], Object],
        edited: set[tuple[str, str]],
        entries: list[_SetEntry],
        report: ReconcileReport,
        context: _PassContext,
    ) -> None:
        """Re-apply missing objects, fix changed ones in place, report a drifted pod.

        Suspects only: objects missing from the LIST, and objects a field manager
        other than ours and the cluster's wrote (someone edited them). Those are
        compared with the desired render (`lab_drift`: a dry-run apply each).
        """
        expected = [
            e
            for e in entries
            if (e.kind != "Namespace" or (e.kind, e.name) in edited)
            and (e.kind != "ResourceQuota" or state.quota is not None)
        ]
        suspects = {
            (e.kind, e.for_user(username))
            for e in expected
            if (e.kind, e.name) not in mine or (e.kind, e.name) in edited
        }
        if not suspects:
            return
        # The one per-lab read: a user whose record changed since the LIST is left alone.
        fresh = await self._kube.find("Lease", f"lab-{username}", self._namespace)
        if _version(fresh) != _version(lease):
            report.busy.append(username)
            return
        fresh_record = OperationRecord.from_lease(fresh) if fresh is not None else None
        if fresh_record is not None and fresh_record.in_progress:
            report.busy.append(username)
            return
        kinds = ("Namespace", *dict.fromkeys(e.kind for e in entries if e.kind != "Namespace"))
        # What the desired render is rebuilt from (the env and files ConfigMaps, the
        # Secrets) and what is compared with it (the suspects), in full.
        needed = {
            (e.kind, e.name)
            for e in entries
            if e.kind in _RENDER_SOURCE_KINDS or (e.kind, e.for_user(username)) in suspects
        }
        mine = await self._full_objects(username, mine, needed)
        objects = [{**obj, "kind": kind} for (kind, _), obj in mine.items()]
        live = LiveObjects.of([namespace, *objects], kinds=kinds, record=record)
        env_name = f"{username}-nb-env"
        withheld = withheld_env(self._config, username, live)
        try:
            desired = desired_lab_manifests(
                self._config,
                self._renderer,
                username,
                live,
                sources=await context.secrets(self._kube, self._config, self._namespace),
                discovery=await context.discovery(self._discovery),
            )
        except DriftError as exc:
            report.unbuildable.append((username, str(exc)))
            self._log.warning("Lab cannot be rebuilt", user=username, reason=str(exc))
            return
        wanted = [m for m in desired if (m["kind"], m["metadata"]["name"]) in suspects]
        log = self._log.bind(user=username)
        for drift in await lab_drift(self._kube, wanted, live):
            where = (username, drift.kind, drift.name)
            if drift.remedy in (Remedy.CREATE, Remedy.APPLY):
                await self._kube.apply_one(drift.manifest)
                if drift.missing:
                    report.reapplied.append(where)
                    self._count("reapplied")
                    log.warning("Re-applied missing lab object", kind=drift.kind, name=drift.name)
                    if (drift.kind, drift.name) == ("ConfigMap", env_name) and withheld:
                        # The record never holds secrets: the lab's env lacks them until respawned.
                        report.drift.append(where)
                        self._count("env_incomplete")
                        log.warning(
                            "Re-applied lab env lacks the secrets the record does not hold",
                            kind=drift.kind,
                            name=drift.name,
                            missing_keys=withheld,
                        )
                else:
                    report.fixed.append(where)
                    self._count("fixed")
                    log.warning(
                        "Fixed changed lab object",
                        kind=drift.kind,
                        name=drift.name,
                        fields=[f.path for f in drift.fields],
                    )
                continue
            report.drift.append(where)
            log.warning(
                "Lab object drifted, not fixed",
                kind=drift.kind,
                name=drift.name,
                remedy=drift.remedy.value,
                reason=drift.reason,
                fields=[f.path for f in drift.fields],
            )

    # Metrics

    def _count(self, action: str) -> None:
        if self._metrics is not None:
            self._metrics.lab_reconcile_actions.labels(action=action).inc()

    def _count_error(self, stage: str) -> None:
        if self._metrics is not None:
            self._metrics.lab_reconcile_errors.labels(stage=stage).inc()


class _PassContext:
    """What a pass reads at most once, and only if some lab needs a render."""

    def __init__(self) -> None:
        self._secrets: dict[str, SourceSecret] | None = None
        self._discovery: Mapping[str, Any] | None = None
        self._discovered = False
        self._lock = asyncio.Lock()  # labs repaired at once read them once

    async def secrets(
        self, kube: KubernetesClient, config: Config, namespace: str
    ) -> dict[str, SourceSecret]:
        async with self._lock:
            return await self._read_secrets(kube, config, namespace)

    async def _read_secrets(
        self, kube: KubernetesClient, config: Config, namespace: str
    ) -> dict[str, SourceSecret]:
        if self._secrets is None:
            found = await read_sources(kube, config, namespace)
            missing = [n for n in config.lab.source_secret_names if n not in found]
            if missing:
                raise ReconcileError(f"Secret {namespace}/{missing[0]} does not exist")
            self._secrets = found
        return self._secrets

    async def discovery(
        self, source: Callable[[], Awaitable[Mapping[str, Any] | None]] | None
    ) -> Mapping[str, Any] | None:
        async with self._lock:
            if not self._discovered and source is not None:
                self._discovery = await source()
                self._discovered = True
            return self._discovery


def _healthy(username: str, snapshot: _Snapshot) -> bool:
    """Whether a lab needs nothing, decided without decoding its record (the common case).

    A completed spawn's record, its namespace there (not terminating, not marked
    orphan), its pod Running (listed: the LIST has only Running pods), every
    object of the set there (the ResourceQuota included: without it, whether the
    user has a quota is in the record), and none written by another field manager.
    """
    lease = snapshot.leases.get(username)
    namespace = snapshot.namespaces.get(username)
    if lease is None or namespace is None or not snapshot.has(username, "Pod", "{user}-nb"):
        return False
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    if annotations.get(OPERATION_ANNOTATION) not in ("spawn", "monitor"):
        return False
    if annotations.get(RESULT_ANNOTATION) != "complete":
        return False
    metadata = namespace.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    if ORPHAN_ANNOTATION in (metadata.get("annotations") or {}):
        return False
    if snapshot.foreign.get(username):
        return False  # another field manager wrote one of its objects (only the set's are noted)
    # Every object of the set there: each kind's listed objects of the user are kept by
    # their entry's name template, so counting them (8 lookups) says it, rather than
    # looking up each entry (30 for 5,000 labs, a tenth of the pass's own work).
    found = 0
    for by_user in snapshot.listed.values():
        mine = by_user.get(username)
        if mine is not None:
            found += len(mine)
    return found == snapshot.set_size


def _take(
    kind: str,
    page: list[_Partial],
    entries: dict[str, _SetEntry],
    prefix: str,
    kept: dict[str, dict[str, _PartialMeta]],
    foreign: dict[str, set[tuple[str, str]]],
) -> None:
    """Keep a page's objects of lab sets in the snapshot (their metadata, without
    managedFields), noting those another field manager wrote."""
    unset = msgspec.UNSET
    for partial in page:
        metadata = partial.metadata
        if metadata is unset or metadata.labels is unset:
            continue
        user = metadata.labels.get(USER_LABEL)
        if not user:
            continue
        user = str(user)
        if metadata.namespace != prefix + user:
            continue
        name = str(metadata.name)
        # The common case first: the name is its template with the user's name in it (a
        # name has no braces, so this template gives back exactly that name).
        entry = entries.get(name.replace(user, "{user}")) or _entry_for(entries, user, name)
        if entry is None:
            continue  # not one of the set
        managed = metadata.managedFields
        if managed is not unset:
            if _foreign(managed):
                foreign.setdefault(user, set()).add((kind, entry.name))
            metadata.managedFields = unset
        mine = kept.get(user)
        if mine is None:
            mine = kept[user] = {}
        mine[entry.name] = metadata


def _as_object(kind: str, metadata: _PartialMeta) -> Object:
    """A listed object as the dict the rest of a pass reads: its metadata (fields the
    answer had), a pod's phase (Running: the LIST asked for only those)."""
    obj: Object = {
        "apiVersion": kind_named(kind).api_version,
        "kind": kind,
        "metadata": msgspec.to_builtins(metadata),
    }
    if kind == "Pod":
        obj["status"] = {"phase": "Running"}  # listed by its phase
    return obj


def _entry_for(entries: dict[str, _SetEntry], username: str, name: str) -> _SetEntry | None:
    """The entry of the set (by name template) an object of ``username`` named ``name`` is."""
    for guess in (name.replace(username, "{user}"), name):
        entry = entries.get(guess)
        if entry is not None and entry.for_user(username) == name:
            return entry
    # A user's name found elsewhere in the name too: try each template.
    return next((e for e in entries.values() if e.for_user(username) == name), None)


def _labelled_for(obj: Object, username: str) -> bool:
    """Whether an object carries the labels the pass lists a lab's objects by."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(CATEGORY_LABEL) == "lab" and labels.get(USER_LABEL) == username


def _terminating(namespace: Object) -> bool:
    return bool((namespace.get("metadata") or {}).get("deletionTimestamp"))


def _had_lab(record: OperationRecord | None) -> bool:
    """Whether the record describes a lab that was spawned (and not deleted since)."""
    if record is None or record.lab_state is None:
        return False
    if record.operation in ("spawn", "monitor"):
        return record.result in ("complete", "failed")
    return record.operation == "delete" and record.result == "failed"


def _annotations(obj: Object) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _version(obj: Object | None) -> str | None:
    if obj is None:
        return None
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _foreign(managed: list[_ManagedEntry]) -> bool:
    """Whether a field manager other than ours and the cluster's wrote the object."""
    for entry in managed:
        if entry.subresource == "status":
            continue
        if entry.manager not in _SYSTEM_MANAGERS:
            return True
    return False
