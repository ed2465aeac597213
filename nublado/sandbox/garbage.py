"""Deletion in the sandbox: the DELETE verb's rules and the controllers that finish it.

Kubernetes deletes in two steps. The API server only marks an object
(``deletionTimestamp``) when something still has to happen first: a pod's
containers get their grace period, a finalizer's controller has to clean up,
dependents have to go (foreground) or be orphaned. Controllers then do that
work and remove the finalizers, and the object disappears with the update that
removes the last one. A lab controller sees all of it: pods Terminating, a
409 on a create of the same name, namespaces that take minutes. So the
sandbox does it the same way, with the real finalizers:

- the DELETE verb as the generic registry does it (``rest.BeforeDelete``,
  ``Store.Delete``), the namespace registry's own DELETE, and the "delete
  during update" rule when the last finalizer goes;
- the garbage collector: background, foreground (``foregroundDeletion``) and
  orphan (``orphan``) propagation through ownerReferences, dangling owner
  references collected, dependents' own finalizers honoured;
- the namespace controller: content deleted, the real status conditions, the
  ``kubernetes`` finalizer removed only once every object is gone;
- the PVC protection admission and controller (``kubernetes.io/pvc-protection``);
- the kubelet's part in pod deletion: containers stopped, the pod removed once
  its grace period (scaled by ``SandboxSettings.pod_grace_scale``) is over.

The controllers run synchronously after each write, under the store lock, so
their effects are visible when the request that caused them returns; only the
time-based steps (grace periods, the namespace termination delay) wait.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .clock import now_timestamp, shifted_timestamp
from .kinds import KINDS, ResourceKind, UnknownKindError, kind_named
from .store import ApiError, clone

if TYPE_CHECKING:
    from .host import ClusterHost

__all__ = [
    "FOREGROUND",
    "NAMESPACE_FINALIZER",
    "ORPHAN",
    "PVC_PROTECTION",
    "GarbageCollector",
    "being_deleted_error",
]

Object = dict[str, Any]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
NAMESPACE_FINALIZER = "kubernetes"

# The manager the controllers' writes are recorded under (their user agent's first word).
_CONTROLLER = "kube-controller-manager"
# Delete answers the deleted object for these kinds (ReturnDeletedObject), a Status for others.
_RETURNS_DELETED_OBJECT = frozenset(
    {
        "Pod",
        "ServiceAccount",
        "Service",
        "PersistentVolumeClaim",
        "Node",
        "Namespace",
        "GafaelfawrIngress",
    }
)
_POLICIES = ("Orphan", "Background", "Foreground")
_NAMESPACE_TERMINATING = (
    "The system is ensuring all content is removed from this namespace.  Upon completion, "
    "this namespace will automatically be purged by the system."
)
# The namespace controller's conditions, in the order it writes them, with their "all is
# well" reason and message (pkg/controller/namespace/deletion/status_condition_utils.go).
_NAMESPACE_CONDITIONS = (
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
)

# A unit of controller work: (what, kind, namespace, name, uid).
_Work = tuple[str, str, str, str, str]


def _go_strings(values: Iterable[str]) -> str:
    """A list of strings as Go's ``%#v`` prints it: ``[]string{"a", "b"}``."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def _meta(obj: Object) -> Object:
    meta: Object = obj["metadata"]
    return meta


def _finalizers(obj: Object) -> list[str]:
    return list(_meta(obj).get("finalizers") or [])


def _owner_uids(obj: Object | None) -> set[str]:
    if obj is None:
        return set()
    refs = _meta(obj).get("ownerReferences") or []
    return {str(r.get("uid")) for r in refs if isinstance(r, dict) and r.get("uid")}


def _key(kind: ResourceKind, obj: Object) -> tuple[str, str, str]:
    meta = _meta(obj)
    return (kind.kind, meta.get("namespace", ""), meta["name"])


def _kind_of_reference(ref: Object) -> ResourceKind | None:
    """The kind an ownerReference names, or None when the sandbox does not serve it."""
    try:
        kind = kind_named(str(ref.get("kind", "")))
    except UnknownKindError:
        return None
    if kind.kind != ref.get("kind") or kind.api_version != ref.get("apiVersion"):
        return None
    return kind


def _should_orphan(kind: ResourceKind, finalizers: list[str], policy: str | None) -> bool:
    """shouldOrphanDependents: the policy, else the finalizers, else the kind's default."""
    if policy is not None:
        return policy == "Orphan"
    for finalizer in finalizers:
        if finalizer == ORPHAN:
            return True
        if finalizer == FOREGROUND:
            return False
    # batch/v1 Jobs keep orphaning their pods by default, for backward compatibility.
    return kind.kind == "Job"


def _should_delete_dependents(finalizers: list[str], policy: str | None) -> bool:
    """shouldDeleteDependents: the policy, else the finalizers."""
    if policy is not None:
        return policy == "Foreground"
    for finalizer in finalizers:
        if finalizer == ORPHAN:
            return False
        if finalizer == FOREGROUND:
            return True
    return False


def _finalizers_for_deletion(
    kind: ResourceKind, finalizers: list[str], policy: str | None
) -> list[str]:
    """The finalizers an object keeps when deleted with this propagation policy."""
    wanted = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    if _should_orphan(kind, finalizers, policy):
        wanted.append(ORPHAN)
    if _should_delete_dependents(finalizers, policy):
        wanted.append(FOREGROUND)
    return finalizers if set(wanted) == set(finalizers) else wanted


def _pod_grace_period(pod: Object, requested: int | None) -> int:
    """The grace period of a pod's deletion (podStrategy.CheckGracefulDelete)."""
    spec = pod.get("spec") or {}
    if requested is not None:
        period = requested
    else:
        period = int(spec.get("terminationGracePeriodSeconds") or 0)
    if not spec.get("nodeName"):
        return 0  # never reached a kubelet: nothing to stop
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0  # already stopped
    return period


def _claims(pod: Object) -> set[str]:
    """Names of the PVCs a pod's volumes refer to."""
    names = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName"):
            names.add(str(claim["claimName"]))
    return names


def _deleted_answer(kind: ResourceKind, obj: Object) -> Object:
    """What a DELETE answers for an object it removed (finalizeDelete)."""
    if kind.kind in _RETURNS_DELETED_OBJECT:
        return obj
    details: Object = {"name": _meta(obj)["name"]}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.plural
    details["uid"] = _meta(obj).get("uid")
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def being_deleted_error(kind: ResourceKind, name: str) -> ApiError:
    """409 AlreadyExists for a create whose name is taken by an object being deleted."""
    error = ApiError.already_exists(kind, name)
    error.message = f"object is being deleted: {error.message}"
    return error


class GarbageCollector:
    """Deletion for one `Cluster`: the DELETE verb and the controllers that finish deletions.

    Every method runs with the store lock held (the cluster's callers take it).
    Work the controllers must do after a write (collect a dependent, release an
    owner waiting in the foreground, sync a terminating namespace, release a
    PVC) is queued and done before the write returns.
    """

    def __init__(self, cluster: ClusterHost) -> None:
        self.cluster = cluster
        self.store = cluster.store
        # Owner uid -> the (kind, namespace, name) of the objects whose ownerReferences name it.
        self._dependents_of: dict[str, set[tuple[str, str, str]]] = {}
        self._work: deque[_Work] = deque()
        self._queued: set[_Work] = set()
        self._working = False
        self._namespaces_started: set[str] = set()  # uids of namespaces being emptied
        self._pods_stopping: dict[str, float] = {}  # pod uid -> monotonic start of its grace

    # The DELETE verb

    def delete(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None,
        grace_period_seconds: int | None,
        preconditions: Object | None,
        dry_run: bool,
    ) -> Object:
        """DELETE: remove now or mark for deletion; the answer body.

        With ``dry_run`` every check runs and the answer is what a real
        deletion would answer, but nothing changes.
        """
        if propagation_policy is not None and propagation_policy not in _POLICIES:
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                f'"{propagation_policy}": supported values: "Foreground", "Background", '
                '"Orphan", "nil"',
            )
        obj = self.store.get(kind.kind, (namespace or "") if kind.namespaced else "", name)
        if obj is None:
            raise ApiError.not_found(kind, name)
        _check_preconditions(kind, obj, preconditions or {})
        if kind.kind == "Namespace":
            answer = self._delete_namespace(obj, propagation_policy, dry_run)
        else:
            answer = self._delete(kind, obj, propagation_policy, grace_period_seconds, dry_run)
        self._drain()
        return answer

    def _delete(
        self,
        kind: ResourceKind,
        obj: Object,
        policy: str | None,
        grace: int | None,
        dry_run: bool = False,
    ) -> Object:
        """The generic registry's delete: mark (grace, finalizers) or remove now."""
        meta = _meta(obj)
        if grace is not None and grace < 0:
            grace = 1  # negative grace periods mean "as soon as possible"
        deleting = bool(meta.get("deletionTimestamp"))
        graceful = False
        period = 0
        deadline = ""
        if kind.kind == "Pod":
            current = meta.get("deletionGracePeriodSeconds")
            if deleting and current:
                # A graceful deletion is under way: only a shorter grace period changes it.
                if grace is None or grace >= current:
                    return _deleted_answer(kind, obj)
                graceful, period = True, grace
                deadline = shifted_timestamp(meta["deletionTimestamp"], grace - int(current))
            elif not deleting:
                graceful, period = True, _pod_grace_period(obj, grace)
                deadline = now_timestamp(period)
        finalizers = _finalizers(obj)
        wanted = finalizers
        if not (kind.kind == "Pod" and deleting and meta.get("deletionGracePeriodSeconds")):
            # Once a graceful deletion is pending, DeleteOptions cannot change finalizers.
            wanted = _finalizers_for_deletion(kind, finalizers, policy)
        pending_finalizers = bool(wanted)
        if not (graceful or pending_finalizers):
            return self._delete_now(kind, obj, dry_run)
        new = clone(obj)
        new_meta = _meta(new)
        if wanted != finalizers:
            new_meta["finalizers"] = wanted
        if graceful:
            if not deleting and "generation" in new_meta:
                new_meta["generation"] = int(new_meta["generation"]) + 1
            new_meta["deletionTimestamp"] = deadline
            new_meta["deletionGracePeriodSeconds"] = period
        else:
            _mark_deleting(new_meta)
        if pending_finalizers or period > 0:
            if dry_run or new == obj:
                return new
            stored = self._write(kind, obj, new)
            if period > 0:
                self._stop_pod(stored)
            return stored
        # A zero grace period and no finalizers: the mark is written, then the object removed.
        if dry_run:
            return _deleted_answer(kind, new)
        stored = self._write(kind, obj, new)
        return _deleted_answer(kind, self.remove(kind, stored))

    def _delete_now(self, kind: ResourceKind, obj: Object, dry_run: bool) -> Object:
        if dry_run:
            return _deleted_answer(kind, obj)
        return _deleted_answer(kind, self.remove(kind, obj))

    def _write(self, kind: ResourceKind, old: Object, new: Object) -> Object:
        """Store the registry's own change to an object (no field manager records it)."""
        stored = self.store.put(kind.kind, new, "MODIFIED", old)
        self.cluster._after_write(kind, old, stored)
        self.written(kind, old, stored)
        return stored

    def remove(self, kind: ResourceKind, obj: Object) -> Object:
        """Take an object out of the store for good, and let the controllers react."""
        meta = _meta(obj)
        namespace = meta.get("namespace", "")
        final = self.store.remove(kind.kind, namespace, meta["name"])
        if final is None:
            return obj  # a controller got there first
        uid = str(meta.get("uid", ""))
        self._pods_stopping.pop(uid, None)
        self._namespaces_started.discard(uid)
        self.cluster._after_remove(kind, final)
        self._index(kind, obj, None)
        # Owners waiting for their dependents in the foreground may be free now.
        self._enqueue_owners(meta, namespace)
        # Dependents of a removed owner are garbage unless another owner holds them.
        for dependent_kind, dependent in self._dependents(uid):
            self._enqueue("collect", dependent_kind, dependent)
        if kind.kind == "Pod":
            for claim in _claims(final):
                self._work_item(("pvc", "PersistentVolumeClaim", namespace, claim, ""))
        if namespace and self._namespace_emptying(namespace):
            self._work_item(("namespace", "Namespace", "", namespace, ""))
        self._drain()
        return final

    # Hooks from the cluster's writes

    def admit_create(self, kind: ResourceKind, obj: Object) -> None:
        """Admission on create: the StorageObjectInUseProtection plugin's finalizer."""
        if kind.kind == "PersistentVolumeClaim":
            finalizers = _meta(obj).setdefault("finalizers", [])
            if PVC_PROTECTION not in finalizers:
                finalizers.append(PVC_PROTECTION)

    def check_update(self, kind: ResourceKind, old: Object, new: Object) -> None:
        """Refuse an update that adds a finalizer to an object being deleted (422)."""
        if not _meta(old).get("deletionTimestamp"):
            return
        added = sorted(set(_finalizers(new)) - set(_finalizers(old)))
        if added:
            raise ApiError.invalid(
                kind,
                _meta(old)["name"],
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted, "
                f"found new finalizers {_go_strings(added)}",
                "FieldValueForbidden",
            )

    def deletes_on_update(self, kind: ResourceKind, old: Object, new: Object) -> bool:
        """Whether an update removes the object: its last finalizer goes while it is deleted.

        As ShouldDeleteDuringUpdate: only once the grace period is over (zero or
        none), and for namespaces only once ``spec.finalizers`` is empty too.
        """
        old_meta = _meta(old)
        if _meta(new).get("finalizers") or not old_meta.get("deletionTimestamp"):
            return False
        if old_meta.get("deletionGracePeriodSeconds"):
            return False
        return not (kind.kind == "Namespace" and (new.get("spec") or {}).get("finalizers"))

    def written(self, kind: ResourceKind, old: Object | None, new: Object) -> None:
        """React to a stored create or update."""
        old_owners = _owner_uids(old)
        new_owners = _owner_uids(new)
        self._index(kind, old, new, old_owners, new_owners)
        meta = _meta(new)
        namespace = meta.get("namespace", "")
        if meta.get("deletionTimestamp"):
            finalizers = _finalizers(new)
            if FOREGROUND in finalizers or ORPHAN in finalizers:
                self._enqueue("collect", kind, new)
            if kind.kind == "PersistentVolumeClaim" and PVC_PROTECTION in finalizers:
                self._enqueue("pvc", kind, new)
            if (
                old is not None
                and namespace
                and _finalizers(old) != finalizers
                and self._namespace_emptying(namespace)
            ):
                self._work_item(("namespace", "Namespace", "", namespace, ""))
        if new_owners - old_owners:
            self._enqueue("collect", kind, new)  # a dangling owner is collected at once
        if old is not None and old_owners - new_owners:
            self._enqueue_owners(_meta(old), namespace, old_owners - new_owners)
        self._drain()

    # Work queue

    def _enqueue(self, what: str, kind: ResourceKind, obj: Object) -> None:
        namespace, name = _key(kind, obj)[1:]
        self._work_item((what, kind.kind, namespace, name, str(_meta(obj).get("uid", ""))))

    def _enqueue_owners(self, meta: Object, namespace: str, only: set[str] | None = None) -> None:
        for ref in meta.get("ownerReferences") or []:
            kind = _kind_of_reference(ref)
            if kind is None or (only is not None and ref.get("uid") not in only):
                continue
            owner_namespace = namespace if kind.namespaced else ""
            self._work_item(
                ("collect", kind.kind, owner_namespace, str(ref.get("name")), str(ref.get("uid")))
            )

    def _work_item(self, item: _Work) -> None:
        if item not in self._queued:
            self._queued.add(item)
            self._work.append(item)

    def _drain(self) -> None:
        """Do the queued controller work, including what it queues in turn."""
        if self._working:
            return
        self._working = True
        try:
            while self._work:
                item = self._work.popleft()
                self._queued.discard(item)
                try:
                    self._process(item)
                except ApiError:
                    continue  # the object changed under the controller; a later event retries
        finally:
            self._working = False

    def _process(self, item: _Work) -> None:
        what, kind_name, namespace, name, uid = item
        if what == "namespace":
            self._sync_namespace(name)
            return
        obj = self.store.get(kind_name, namespace, name)
        if obj is None or (uid and _meta(obj).get("uid") != uid):
            return
        kind = kind_named(kind_name)
        if what == "pvc":
            # kube-controller-manager's pvc-protection controller works from its own
            # queue: the finalizer goes after the write that made the claim releasable.
            self.cluster.later(
                0, self._release_claim_later, namespace, name, str(_meta(obj)["uid"])
            )
        else:
            self._collect(kind, obj)

    # The garbage collector

    def _index(
        self,
        kind: ResourceKind,
        old: Object | None,
        new: Object | None,
        before: set[str] | None = None,
        after: set[str] | None = None,
    ) -> None:
        """Keep the owner -> dependents index current (``before`` and ``after``: the two
        versions' owner uids, when the caller has them already)."""
        if before is None:
            before = _owner_uids(old)
        if after is None:
            after = _owner_uids(new)
        if before == after:
            return
        subject = new if new is not None else old
        if subject is None:
            return
        key = _key(kind, subject)
        for uid in before - after:
            dependents = self._dependents_of.get(uid)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents_of[uid]
        for uid in after - before:
            self._dependents_of.setdefault(uid, set()).add(key)

    def _dependents(self, uid: str) -> list[tuple[ResourceKind, Object]]:
        """The objects whose ownerReferences name this uid."""
        found = []
        for kind_name, namespace, name in sorted(self._dependents_of.get(uid, ())):
            obj = self.store.get(kind_name, namespace, name)
            if obj is not None and uid in _owner_uids(obj):
                found.append((kind_named(kind_name), obj))
        return found

    def _collect(self, kind: ResourceKind, obj: Object) -> None:
        """attemptToDeleteItem: what an object's owners (or its own finalizers) call for."""
        meta = _meta(obj)
        finalizers = _finalizers(obj)
        if meta.get("deletionTimestamp"):
            if FOREGROUND in finalizers:
                self._wait_for_dependents(kind, obj)
            elif ORPHAN in finalizers:
                self._orphan_dependents(kind, obj)
            return
        refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict)]
        if not refs:
            return
        by_state: dict[str, list[str]] = {"solid": [], "gone": [], "waiting": []}
        for ref in refs:
            state = self._owner_state(ref, meta.get("namespace", ""))
            by_state[state].append(str(ref.get("uid")))
        solid, gone, waiting = by_state["solid"], by_state["gone"], by_state["waiting"]
        if solid:
            # Another owner keeps it; references to absent or foreground-deleting owners go.
            drop = set(gone + waiting)
            if drop:
                self._drop_owner_references(kind, obj, drop)
            return
        if waiting and self._dependents(str(meta.get("uid"))):
            policy = "Foreground"
        elif ORPHAN in finalizers:
            policy = "Orphan"
        elif FOREGROUND in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        if kind.kind == "Namespace":
            self._delete_namespace(obj, policy, dry_run=False)
        else:
            self._delete(kind, obj, policy, None)

    def _owner_state(self, ref: Object, namespace: str) -> str:
        """classifyReferences: "gone" (dangling), "waiting" (foreground) or "solid"."""
        kind = _kind_of_reference(ref)
        if kind is None:
            return "solid"  # a kind the sandbox cannot look up is never collected
        owner = self.store.get(
            kind.kind, namespace if kind.namespaced else "", str(ref.get("name"))
        )
        if owner is None or _meta(owner).get("uid") != ref.get("uid"):
            return "gone"
        if _meta(owner).get("deletionTimestamp") and FOREGROUND in _finalizers(owner):
            return "waiting"
        return "solid"

    def _wait_for_dependents(self, kind: ResourceKind, owner: Object) -> None:
        """processDeletingDependentsItem: delete the dependents, then release the owner."""
        uid = str(_meta(owner).get("uid"))
        dependents = self._dependents(uid)
        blocking = [
            d
            for _, d in dependents
            if any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in _meta(d).get("ownerReferences") or []
            )
        ]
        if not blocking:
            self._remove_finalizer(kind, owner, FOREGROUND)
            return
        for dependent_kind, dependent in dependents:
            if not _meta(dependent).get("deletionTimestamp"):
                self._enqueue("collect", dependent_kind, dependent)

    def _orphan_dependents(self, kind: ResourceKind, owner: Object) -> None:
        """attemptToOrphan: drop the references to the owner, then its ``orphan`` finalizer."""
        uid = str(_meta(owner).get("uid"))
        for dependent_kind, dependent in self._dependents(uid):
            self._drop_owner_references(dependent_kind, dependent, {uid})
        self._remove_finalizer(kind, owner, ORPHAN)

    def _update_metadata(
        self, kind: ResourceKind, obj: Object, mutate: Callable[[Object], None]
    ) -> None:
        """Change an object's metadata as the garbage collector (this very object, by uid)."""
        meta = _meta(obj)
        self.cluster.update_internal(
            kind.kind,
            meta.get("namespace", ""),
            meta["name"],
            mutate,
            _CONTROLLER,
            subresource="",
            uid=meta.get("uid"),
        )

    def _drop_owner_references(self, kind: ResourceKind, obj: Object, uids: set[str]) -> None:
        def mutate(o: Object) -> None:
            refs = _meta(o).get("ownerReferences") or []
            _meta(o)["ownerReferences"] = [r for r in refs if r.get("uid") not in uids]

        self._update_metadata(kind, obj, mutate)

    def _remove_finalizer(self, kind: ResourceKind, obj: Object, finalizer: str) -> None:
        """Remove one finalizer; the update removes the object if it was the last."""

        def mutate(o: Object) -> None:
            remaining = [f for f in _finalizers(o) if f != finalizer]
            if remaining:
                _meta(o)["finalizers"] = remaining
            else:
                _meta(o).pop("finalizers", None)

        self._update_metadata(kind, obj, mutate)

    # PVC protection

    def _release_claim(self, kind: ResourceKind, pvc: Object) -> None:
        """The PVC protection controller: release a deleted claim no scheduled pod uses."""
        meta = _meta(pvc)
        if not meta.get("deletionTimestamp") or PVC_PROTECTION not in _finalizers(pvc):
            return
        for pod in self.store.iter_objects("Pod", meta.get("namespace", "")):
            if (pod.get("spec") or {}).get("nodeName") and meta["name"] in _claims(pod):
                return  # in use until that pod is gone
        self._remove_finalizer(kind, pvc, PVC_PROTECTION)

    def _release_claim_later(self, namespace: str, name: str, uid: str) -> None:
        """`_release_claim` run from the cluster's loop, as the asynchronous controller."""
        with self.store.lock:
            pvc = self.store.get("PersistentVolumeClaim", namespace, name)
            if pvc is None or _meta(pvc).get("uid") != uid:
                return
            self._release_claim(kind_named("PersistentVolumeClaim"), pvc)
            self._drain()

    # Pods: the kubelet's part

    def _stop_pod(self, pod: Object) -> None:
        """Start (or shorten) a pod's graceful stop; the kubelet removes it at the deadline."""
        meta = _meta(pod)
        uid = str(meta["uid"])
        now = time.monotonic()
        first = uid not in self._pods_stopping
        started = self._pods_stopping.setdefault(uid, now)
        if first:
            for container in (pod.get("spec") or {}).get("containers") or []:
                self.cluster.kubelet._event(
                    pod,
                    "Killing",
                    f"Stopping container {container.get('name')}",
                    field_path=f"spec.containers{{{container.get('name')}}}",
                )
        scaled = int(meta["deletionGracePeriodSeconds"]) * self.cluster.settings.pod_grace_scale
        delay = max(0.0, started + scaled - now)
        self.cluster.later(delay, self._pod_stopped, meta["namespace"], meta["name"], uid)

    def _pod_stopped(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet once the containers have stopped: delete the pod with no grace left."""
        with self.store.lock:
            pod = self.store.get("Pod", namespace, name)
            if pod is None or _meta(pod).get("uid") != uid:
                return
            self._delete(kind_named("Pod"), pod, None, 0)
            self._drain()

    # Namespaces

    def _delete_namespace(self, ns: Object, policy: str | None, dry_run: bool) -> Object:
        """The namespace registry's DELETE: mark Terminating; the controller does the rest."""
        kind = kind_named("Namespace")
        meta = _meta(ns)
        name = meta["name"]
        if meta.get("deletionTimestamp"):
            if (ns.get("spec") or {}).get("finalizers"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on namespaces "{name}": '
                    f"{_NAMESPACE_TERMINATING}",
                    {"name": name, "kind": "namespaces"},
                )
            return self._delete(kind, ns, policy, None, dry_run)
        new = clone(ns)
        new_meta = _meta(new)
        new_meta["deletionTimestamp"] = now_timestamp()
        new.setdefault("status", {})["phase"] = "Terminating"
        if policy is not None:
            finalizers = [f for f in _finalizers(ns) if f not in (ORPHAN, FOREGROUND)]
            if policy == "Orphan":
                finalizers.append(ORPHAN)
            elif policy == "Foreground":
                finalizers.append(FOREGROUND)
            if finalizers:
                new_meta["finalizers"] = finalizers
            else:
                new_meta.pop("finalizers", None)
        if dry_run:
            return new
        stored = self._write(kind, ns, new)
        delay = self.cluster.settings.namespace_termination_delay
        if delay is not None:
            self.cluster.later(delay, self._start_namespace, name, str(meta["uid"]))
        return stored

    def finish_namespace(self, name: str) -> bool:
        """Run the namespace controller on a Terminating namespace now.

        Its content is deleted as a real controller deletes it: pods after
        their grace period, objects with finalizers once those are removed;
        the namespace goes with the last of them. Returns False when the
        namespace is absent or not terminating.
        """
        with self.store.lock:
            ns = self.store.get("Namespace", "", name)
            if ns is None or not _meta(ns).get("deletionTimestamp"):
                return False
            self._start_namespace(name, str(_meta(ns)["uid"]))
            return True

    def _start_namespace(self, name: str, uid: str) -> None:
        with self.store.lock:
            ns = self.store.get("Namespace", "", name)
            if ns is None or _meta(ns).get("uid") != uid or not _meta(ns).get("deletionTimestamp"):
                return
            self._namespaces_started.add(uid)
            self._work_item(("namespace", "Namespace", "", name, ""))
            self._drain()

    def _namespace_emptying(self, name: str) -> bool:
        ns = self.store.get("Namespace", "", name)
        return ns is not None and str(_meta(ns).get("uid")) in self._namespaces_started

    def _sync_namespace(self, name: str) -> None:
        """The namespace controller: delete the content, report what remains, finalize."""
        ns = self.store.get("Namespace", "", name)
        if ns is None or not self._namespace_emptying(name):
            return
        if NAMESPACE_FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        remaining: dict[str, int] = {}
        by_finalizer: dict[str, int] = {}
        for kind in KINDS:
            if not kind.namespaced:
                continue
            for obj in list(self.store.iter_objects(kind.kind, name)):
                if not _meta(obj).get("deletionTimestamp"):
                    try:
                        self._delete(kind, obj, "Background", None)
                    except ApiError:
                        continue
            left = list(self.store.iter_objects(kind.kind, name))
            if left:
                remaining[f"{kind.plural}.{kind.group}"] = len(left)
                for obj in left:
                    for finalizer in _finalizers(obj):
                        by_finalizer[finalizer] = by_finalizer.get(finalizer, 0) + 1
        self._report_content(name, remaining, by_finalizer)
        if not remaining:

            def finalize(o: Object) -> None:
                spec = o.setdefault("spec", {})
                spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]

            self.cluster.update_internal(
                "Namespace", "", name, finalize, _CONTROLLER, subresource="finalize"
            )

    def _report_content(
        self, name: str, remaining: dict[str, int], by_finalizer: dict[str, int]
    ) -> None:
        """Write the namespace controller's conditions, changing only what changed."""
        wanted = {
            kind: ("False", reason, message) for kind, reason, message in _NAMESPACE_CONDITIONS
        }
        if remaining:
            counts = sorted(f"{res} has {n} resource instances" for res, n in remaining.items())
            wanted["NamespaceContentRemaining"] = (
                "True",
                "SomeResourcesRemain",
                f"Some resources are remaining: {', '.join(counts)}",
            )
        if by_finalizer:
            counts = sorted(f"{f} in {n} resource instances" for f, n in by_finalizer.items())
            wanted["NamespaceFinalizersRemaining"] = (
                "True",
                "SomeFinalizersRemain",
                f"Some content in the namespace has finalizers remaining: {', '.join(counts)}",
            )
        now = now_timestamp()

        def mutate(o: Object) -> None:
            conditions = o.setdefault("status", {}).setdefault("conditions", [])
            for condition_type, _, _ in _NAMESPACE_CONDITIONS:
                status, reason, message = wanted[condition_type]
                current = next((c for c in conditions if c.get("type") == condition_type), None)
                if current is None:
                    conditions.append(
                        {
                            "type": condition_type,
                            "status": status,
                            "lastTransitionTime": now,
                            "reason": reason,
                            "message": message,
                        }
                    )
                    continue
                if current.get("status") != status:
                    current["lastTransitionTime"] = now
                current.update(status=status, reason=reason, message=message)

        self.cluster.update_internal("Namespace", "", name, mutate, _CONTROLLER)


def _mark_deleting(meta: Object) -> None:
    """markAsDeleting: an object held by finalizers, deleted with no grace period."""
    if not meta.get("deletionTimestamp") and "generation" in meta:
        meta["generation"] = int(meta["generation"]) + 1
    now = now_timestamp()
    if not meta.get("deletionTimestamp") or meta["deletionTimestamp"] > now:
        meta["deletionTimestamp"] = now
    meta["deletionGracePeriodSeconds"] = 0


def _check_preconditions(kind: ResourceKind, obj: Object, preconditions: Object) -> None:
    """A DELETE's uid and resourceVersion preconditions (409 when they do not hold)."""
    meta = _meta(obj)
    name = meta["name"]
    uid = preconditions.get("uid")
    if uid and uid != meta.get("uid"):
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {kind.group_resource} "{name}": '
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
            f"{meta.get('uid')}",
        )
    version = preconditions.get("resourceVersion")
    if version and version != meta.get("resourceVersion"):
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {kind.group_resource} "{name}": '
            f"Precondition failed: ResourceVersion in precondition: {version}, "
            f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
        )
