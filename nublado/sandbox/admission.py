"""Admission as kube-apiserver runs it, and the quota controller that feeds it.

Two plugins a lab controller meets: ServiceAccount (a pod must name an
account that exists in its namespace) and ResourceQuota (a create or update
that would push a namespace past its quota, or a pod that leaves a covered
compute resource unset, is refused with 403). The DefaultStorageClass plugin
lives with the storage classes in `nublado.sandbox.storage`. The quota
controller keeps every quota's ``status.hard`` and ``status.used`` current as
objects come and go, synchronously, so admission always has usage to check
against (a real cluster has a short window where it answers "status unknown").
Messages are upstream's, word for word.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .kinds import KINDS, ResourceKind
from .quantity import Quantity, QuantityError, decode_quantity
from .resize import check_claim_resize
from .store import ApiError

if TYPE_CHECKING:
    from .host import ClusterHost

__all__ = ["Admission", "forbidden", "object_usage"]

Object = dict[str, Any]

_ONE = Quantity.of(1)
_ZERO = Quantity.of(0)
# What a pod's quota evaluator counts (apimachinery's podResources).
_POD_RESOURCES = frozenset(
    {
        "count/pods",
        "pods",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    }
)
# A quota on one of these makes every container of a new pod set it (upstream's
# "backward compatibility requirement").
_MUST_SPECIFY = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)
# Legacy quota names of object counts, besides count/<resource>.
_LEGACY_COUNTS = {
    "pods": "Pod",
    "services": "Service",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "resourcequotas": "ResourceQuota",
    "services.loadbalancers": "Service",
    "services.nodeports": "Service",
    "requests.storage": "PersistentVolumeClaim",
}
_COUNT_KINDS = {f"count/{k.group_resource}": k.kind for k in KINDS if k.namespaced}
_STORAGE_CLASS_SUFFIXES = (
    ".storageclass.storage.k8s.io/requests.storage",
    ".storageclass.storage.k8s.io/persistentvolumeclaims",
)
_TERMINAL_PHASES = ("Succeeded", "Failed")


def forbidden(kind: ResourceKind, name: str, message: str) -> ApiError:
    """403 Forbidden from an admission plugin, as ``admission.NewForbidden`` words it."""
    details: Object = {"name": name, "kind": kind.plural}
    if kind.group:
        details["group"] = kind.group
    message = f'{kind.group_resource} "{name}" is forbidden: {message}'
    return ApiError(403, "Forbidden", message, details)


def _quantity(value: Any) -> Quantity | None:
    try:
        return decode_quantity(value)
    except QuantityError:
        return None  # validation refuses these; quota just does not count them


def _add(usage: dict[str, Quantity], key: str, value: Quantity) -> None:
    usage[key] = usage[key] + value if key in usage else value


def _resource_list(values: Any) -> dict[str, Quantity]:
    parsed: dict[str, Quantity] = {}
    for key, raw in (values or {}).items() if isinstance(values, dict) else ():
        quantity = _quantity(raw)
        if quantity is not None:
            parsed[str(key)] = quantity
    return parsed


def _container_resources(container: Object) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    """Requests and limits, with requests defaulted from limits as the API server does."""
    resources = container.get("resources") or {}
    limits = _resource_list(resources.get("limits"))
    requests = {**limits, **_resource_list(resources.get("requests"))}
    return requests, limits


def _compute_usage(
    requests: dict[str, Quantity], limits: dict[str, Quantity]
) -> dict[str, Quantity]:
    """Quota names of a set of requests and limits (upstream's podComputeUsageHelper)."""
    usage: dict[str, Quantity] = {"pods": _ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = requests[name]
            usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-"):
            usage[name] = value
            usage[f"requests.{name}"] = value
        elif "/" in name and not name.startswith("kubernetes.io/"):
            usage[f"requests.{name}"] = value
    return usage


def _containers(spec: Object, key: str) -> list[Object]:
    return [c for c in spec.get(key) or [] if isinstance(c, dict)]


def _pod_totals(spec: Object) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    """A pod's requests and limits: containers summed, then init containers' maxima."""
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    for container in _containers(spec, "containers"):
        container_requests, container_limits = _container_resources(container)
        for key, value in container_requests.items():
            _add(requests, key, value)
        for key, value in container_limits.items():
            _add(limits, key, value)
    for container in _containers(spec, "initContainers"):
        for total, values in zip((requests, limits), _container_resources(container), strict=True):
            for key, value in values.items():
                if key not in total or value.nanos > total[key].nanos:
                    total[key] = value
    for key, value in _resource_list(spec.get("overhead")).items():
        _add(requests, key, value)
        if key in limits:  # overhead raises only limits that are set
            _add(limits, key, value)
    return requests, limits


def _pod_usage(pod: Object) -> dict[str, Quantity]:
    usage = {"count/pods": _ONE}
    if (pod.get("status") or {}).get("phase") in _TERMINAL_PHASES:
        return usage  # ended pods keep only their object count
    usage.update(_compute_usage(*_pod_totals(pod.get("spec") or {})))
    return usage


def object_usage(kind: ResourceKind, obj: Object) -> dict[str, Quantity]:
    """What one object counts against a quota, by quota resource name."""
    if kind.kind == "Pod":
        return _pod_usage(obj)
    usage = {f"count/{kind.group_resource}": _ONE}
    spec = obj.get("spec") or {}
    match kind.kind:
        case "Service":
            usage["services"] = _ONE
            service_type = spec.get("type", "ClusterIP")
            if service_type == "LoadBalancer":
                usage["services.loadbalancers"] = _ONE
            if service_type in ("NodePort", "LoadBalancer"):
                ports = len(spec.get("ports") or [])
                usage["services.nodeports"] = Quantity.of(ports)
        case "PersistentVolumeClaim":
            usage["persistentvolumeclaims"] = _ONE
            requested = _resource_list((spec.get("resources") or {}).get("requests"))
            storage = requested.get("storage")
            if storage is not None:
                usage["requests.storage"] = storage
            storage_class = spec.get("storageClassName")
            if storage_class:
                prefix = f"{storage_class}.storageclass.storage.k8s.io/"
                usage[f"{prefix}persistentvolumeclaims"] = _ONE
                if storage is not None:
                    usage[f"{prefix}requests.storage"] = storage
        case "ConfigMap":
            usage["configmaps"] = _ONE
        case "Secret":
            usage["secrets"] = _ONE
        case "ResourceQuota":
            usage["resourcequotas"] = _ONE
    return usage


def _matching(kind: ResourceKind, hard: Iterable[str]) -> set[str]:
    """The quota resource names an evaluator of ``kind`` tracks among ``hard``."""
    return {name for name in hard if _kind_of(name) == kind.kind}


def _kind_of(name: str) -> str | None:
    """The kind whose objects a quota resource name counts."""
    if name in _POD_RESOURCES or name.startswith(("hugepages-", "requests.hugepages-")):
        return "Pod"
    if name in _LEGACY_COUNTS:
        return _LEGACY_COUNTS[name]
    if name in _COUNT_KINDS:
        return _COUNT_KINDS[name]
    if name.endswith(_STORAGE_CLASS_SUFFIXES):
        return "PersistentVolumeClaim"
    if name.startswith("requests.") and "/" in name:
        return "Pod"  # extended resources
    return None


def _usage_may_change(kind: ResourceKind, old: Object | None, new: Object) -> bool:
    """Whether a write can change what the object counts (cheap: most writes cannot)."""
    if old is None:
        return True
    match kind.kind:
        case "Pod":
            ended = ((old.get("status") or {}).get("phase") in _TERMINAL_PHASES) != (
                (new.get("status") or {}).get("phase") in _TERMINAL_PHASES
            )
            return ended or old.get("spec") != new.get("spec")
        case "PersistentVolumeClaim" | "Service":
            return old.get("spec") != new.get("spec")
    return False


def _pretty(usage: dict[str, Quantity], names: Iterable[str]) -> str:
    return ",".join(f"{name}={usage.get(name, _ZERO)}" for name in sorted(names))


class Admission:
    """The admission plugins and the quota controller of one cluster."""

    def __init__(self, cluster: ClusterHost) -> None:
        self.cluster = cluster
        # What each stored object counts, by (kind, namespace, name), with the uid and
        # resourceVersion it was counted at: a quota's recount after each write of its
        # namespace parses every pod's quantities again otherwise (2% of the CPU per spawn).
        self._counted: dict[tuple[str, str, str], tuple[Any, Any, dict[str, Quantity]]] = {}
        # The same for each quota's parsed status (read on every create in its namespace).
        self._parsed: dict[
            tuple[str, str, str],
            tuple[Any, Any, tuple[dict[str, Quantity], dict[str, Quantity]]],
        ] = {}

    # Admission

    def admit_create(self, kind: ResourceKind, obj: Object, name: str) -> None:
        """Admit a new object (after defaults); ``name`` is the one the request gave.

        Raises the 403 a real API server answers; may fill fields as mutating
        plugins do (a PVC's default storage class).
        """
        namespace = obj["metadata"].get("namespace", "")
        if kind.kind == "Pod":
            self._check_service_account(kind, obj, namespace, name)
        elif kind.kind == "PersistentVolumeClaim":
            self.cluster.storage.default_class(obj)
        if kind.namespaced:
            self._check_quota(kind, obj, None, namespace, name)

    def admit_update(self, kind: ResourceKind, old: Object, new: Object) -> None:
        """Admit an update: quota for the kinds whose usage an update can change."""
        if kind.kind == "PersistentVolumeClaim":
            check_claim_resize(self.cluster.store, kind, old, new)
        if kind.kind in ("PersistentVolumeClaim", "Service"):
            meta = old["metadata"]
            self._check_quota(kind, new, old, meta.get("namespace", ""), meta["name"])

    def _check_service_account(
        self, kind: ResourceKind, pod: Object, namespace: str, name: str
    ) -> None:
        if "kubernetes.io/config.mirror" in (pod["metadata"].get("annotations") or {}):
            return
        spec = pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        if self.cluster.store.get("ServiceAccount", namespace, account) is None:
            raise forbidden(
                kind,
                name,
                f"error looking up service account {namespace}/{account}: "
                f'serviceaccount "{account}" not found',
            )

    def _quotas(self, namespace: str) -> list[Object]:
        quotas = self.cluster.store.iter_objects("ResourceQuota", namespace)
        return sorted(quotas, key=lambda q: q["metadata"]["name"])

    def _quota_lists(self, quota: Object) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
        """A quota's status ``hard`` and ``used``, parsed once per version of the quota."""
        meta = quota["metadata"]
        key = ("ResourceQuota", meta.get("namespace", ""), meta.get("name", ""))
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        known = self._parsed.get(key)
        if known is not None and known[0] == uid and known[1] == version and version:
            return known[2]
        status = quota.get("status") or {}
        lists = (_resource_list(status.get("hard")), _resource_list(status.get("used")))
        self._parsed[key] = (uid, version, lists)
        return lists

    def _check_quota(
        self, kind: ResourceKind, obj: Object, old: Object | None, namespace: str, name: str
    ) -> None:
        covering = []
        for quota in self._quotas(namespace):
            hard = self._quota_lists(quota)[0]
            restricted = _matching(kind, hard)
            if restricted:
                covering.append((quota, hard, restricted))
        if not covering:
            return
        usage = object_usage(kind, obj)
        if old is not None:
            before = object_usage(kind, old)
            usage = {k: v - before[k] if k in before else v for k, v in usage.items()}
            usage = {k: v for k, v in usage.items() if v.nanos > 0}
        for quota, hard, restricted in covering:
            if kind.kind == "Pod" and old is None:
                missing = self._missing_compute(obj, restricted)
                if missing:
                    raise forbidden(
                        kind, name, f"failed quota: {quota['metadata']['name']}: {missing}"
                    )
            used = self._quota_lists(quota)[1]
            requested = {k: v for k, v in usage.items() if k in restricted and v.nanos != 0}
            exceeded = [
                k
                for k, v in requested.items()
                if (used[k] + v if k in used else v).nanos > hard[k].nanos
            ]
            if exceeded:
                raise forbidden(
                    kind,
                    name,
                    f"exceeded quota: {quota['metadata']['name']}, "
                    f"requested: {_pretty(requested, exceeded)}, "
                    f"used: {_pretty(used, exceeded)}, "
                    f"limited: {_pretty(hard, exceeded)}",
                )

    def _missing_compute(self, pod: Object, restricted: set[str]) -> str:
        """Upstream's "must specify" text for containers that leave a quota'd resource unset."""
        required = restricted & _MUST_SPECIFY
        if not required:
            return ""
        spec = pod.get("spec") or {}
        missing: dict[str, set[str]] = {}
        for container in _containers(spec, "containers") + _containers(spec, "initContainers"):
            present = set(_compute_usage(*_container_resources(container)))
            for resource in required - present:
                missing.setdefault(resource, set()).add(str(container.get("name", "")))
        if not missing:
            return ""
        parts = [f"{r} for: {','.join(sorted(names))}" for r, names in sorted(missing.items())]
        return "must specify " + "; ".join(parts)

    # The quota controller

    def after_write(self, kind: ResourceKind, old: Object | None, new: Object) -> None:
        """Bring the namespace's quotas up to date after a write that changes usage."""
        if kind.kind == "ResourceQuota":
            if old is None or old.get("spec") != new.get("spec"):
                self._sync(new)
        elif kind.namespaced and kind.kind != "Event" and _usage_may_change(kind, old, new):
            self._sync_for(kind, new["metadata"].get("namespace", ""))

    def after_remove(self, kind: ResourceKind, obj: Object) -> None:
        """Stop counting a removed object."""
        if kind.kind == "ResourceQuota":
            meta = obj["metadata"]
            self._parsed.pop((kind.kind, meta.get("namespace", ""), meta.get("name", "")), None)
        if kind.namespaced and kind.kind not in ("ResourceQuota", "Event"):
            meta = obj["metadata"]
            self._counted.pop((kind.kind, meta.get("namespace", ""), meta.get("name", "")), None)
            self._sync_for(kind, meta.get("namespace", ""))

    def _sync_for(self, kind: ResourceKind, namespace: str) -> None:
        for quota in self._quotas(namespace):
            hard = (quota.get("status") or {}).get("hard") or {}
            if any(_kind_of(name) == kind.kind for name in hard):
                self._sync(quota)

    def _usage(self, namespace: str, names: Iterable[str]) -> dict[str, str]:
        wanted = {name: _kind_of(name) for name in names}
        totals: dict[str, Quantity] = {}
        by_kind = {k.kind: k for k in KINDS}
        for kind_name in sorted({k for k in wanted.values() if k is not None}):
            for obj in self.cluster.store.iter_objects(kind_name, namespace):
                for key, value in self._object_usage(by_kind[kind_name], obj).items():
                    if key in wanted:
                        _add(totals, key, value)
        return {name: str(totals.get(name, _ZERO)) for name in wanted}

    def _object_usage(self, kind: ResourceKind, obj: Object) -> dict[str, Quantity]:
        """`object_usage` of a stored object, counted once per version of it."""
        meta = obj["metadata"]
        key = (kind.kind, meta.get("namespace", ""), meta.get("name", ""))
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        known = self._counted.get(key)
        if known is not None and known[0] == uid and known[1] == version and version:
            return known[2]
        usage = object_usage(kind, obj)
        self._counted[key] = (uid, version, usage)
        return usage

    def _sync(self, quota: Object) -> None:
        meta = quota["metadata"]
        if meta.get("deletionTimestamp"):
            return
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        status = quota.get("status") or {}
        used = self._usage(meta["namespace"], hard)
        if status.get("hard") == hard and status.get("used") == used:
            return

        def mutate(o: Object) -> None:
            o["status"] = {"hard": hard, "used": used}

        self.cluster.update_internal(
            "ResourceQuota",
            meta["namespace"],
            meta["name"],
            mutate,
            "kube-controller-manager",
            uid=meta.get("uid"),
        )
