"""The sandbox's scheduler: which node a new pod goes to, or why none will do.

It runs kube-scheduler's filters that a lab's spec exercises, in upstream's
order: the pod's claims (missing, or unbound with an Immediate class), then per
node NodeUnschedulable, TaintToleration, NodeAffinity (``nodeSelector`` and
required node affinity) and NodeResourcesFit (the pod's requests against the
node's allocatable less what its other pods request, and its pod count). A pod
no node fits stays Pending with condition PodScheduled False (reason
Unschedulable) and a FailedScheduling Event whose message is the real one, and
is tried again when nodes, claims or pods change. Of
the nodes that fit, the one with the most preferred-affinity weight, then the
most of the pod's images already present, wins (ties: node order).
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .quantity import QuantityError, parse_quantity

if TYPE_CHECKING:
    from .host import ClusterHost, KubeletView

__all__ = ["Scheduler", "image_present", "match_node_selector_term", "pod_requests", "tolerates"]

Object = dict[str, Any]

_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
_UNSCHEDULABLE = "node(s) were unschedulable"
_UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
# What the preemption dry run says of a node, by whether evicting pods could make room.
_NOT_HELPFUL = "Preemption is not helpful for scheduling"
_NO_VICTIMS = "No preemption victims found for incoming pod"
# Resources NodeResourcesFit always tracks; others only when scalar (see `_tracked`).
_NATIVE = ("cpu", "memory", "ephemeral-storage")
# Phases in which a pod holds no resources.
_TERMINAL = ("Succeeded", "Failed")


def image_present(image: str, names: set[str]) -> bool:
    """Whether a node listing ``names`` has ``image``, also by its digest or tag alone."""
    if image in names:
        return True
    repository, _, digest = image.partition("@")
    if digest:
        # repo:tag@digest is found by repo@digest, as containerd resolves it.
        last = repository.rpartition("/")
        name = last[0] + last[1] + last[2].partition(":")[0]
        return f"{name}@{digest}" in names
    return False


def tolerates(tolerations: list[Object], taint: Object) -> bool:
    """Whether any toleration matches the taint (upstream's ToleratesTaint)."""
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if key and key != taint.get("key"):
            continue
        if not key and operator != "Exists":
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expression(expression: Object, value: str | None) -> bool:
    operator = expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    match operator:
        case "In":
            return value is not None and value in values
        case "NotIn":
            return value is None or value not in values
        case "Exists":
            return value is not None
        case "DoesNotExist":
            return value is None
        case "Gt" | "Lt":
            if value is None or len(values) != 1:
                return False
            try:
                left, right = int(value), int(values[0])
            except ValueError:
                return False
            return left > right if operator == "Gt" else left < right
    return False


def match_node_selector_term(term: Object, node: Object) -> bool:
    """One nodeSelectorTerm: all its expressions and fields hold (an empty term matches none)."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    for expression in expressions:
        if not _match_expression(expression, labels.get(expression.get("key"))):
            return False
    for expression in fields:
        if expression.get("key") != "metadata.name":
            return False
        if not _match_expression(expression, node["metadata"]["name"]):
            return False
    return True


def _node_affinity(spec: Object) -> Object:
    return (spec.get("affinity") or {}).get("nodeAffinity") or {}


def _matches_affinity(spec: Object, node: Object) -> bool:
    labels = node["metadata"].get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = _node_affinity(spec).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    terms = required.get("nodeSelectorTerms") or []
    return any(match_node_selector_term(term, node) for term in terms)


def _filter(spec: Object, node: Object) -> str | None:
    """The first of the node filters before NodeResourcesFit that rejects the node, or None."""
    tolerations = spec.get("tolerations") or []
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not tolerates(tolerations, _UNSCHEDULABLE_TAINT):
        return _UNSCHEDULABLE
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    if not _matches_affinity(spec, node):
        return _AFFINITY
    return None


def _tracked(name: str) -> bool:
    """Whether NodeResourcesFit checks a resource: cpu, memory, ephemeral-storage, scalars.

    Scalars are hugepages, attachable volumes and extended resources (a name
    with a domain outside kubernetes.io, as ``nvidia.com/gpu``).
    """
    if name in _NATIVE or name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    return "/" in name and not name.startswith(("kubernetes.io/", "requests."))


def _amount(name: str, value: Fraction) -> int:
    """A resource as the scheduler counts it: millicores for cpu, else whole units, rounded up."""
    return math.ceil(value * 1000) if name == "cpu" else math.ceil(value)


def _resource_list(resources: Object | None) -> dict[str, Fraction]:
    """A container's requests, defaulted from its limits as the API server's defaulting does."""
    resources = resources if isinstance(resources, dict) else {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    values = {}
    for name, text in merged.items():
        if not _tracked(str(name)):
            continue
        try:
            values[str(name)] = parse_quantity(text).value
        except QuantityError:  # validation refused it already; nothing to count
            continue
    return values


def _add(total: dict[str, Fraction], more: dict[str, Fraction]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Fraction(0)) + value


def _max(total: dict[str, Fraction], other: dict[str, Fraction]) -> None:
    for name, value in other.items():
        total[name] = max(total.get(name, Fraction(0)), value)


def pod_requests(pod: Object) -> dict[str, int]:
    """What a pod asks of its node (upstream's PodRequests), in `_amount` units.

    The containers' requests summed; each init container in turn needs its
    own requests plus those of the sidecars (restartPolicy Always) started
    before it, and the pod needs the larger of the two; plus the overhead.
    """
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        _add(total, _resource_list((container or {}).get("resources")))
    sidecars: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    for container in spec.get("initContainers") or []:
        requests = _resource_list((container or {}).get("resources"))
        if (container or {}).get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            _max(init_peak, sidecars)
        else:
            _add(requests, sidecars)
            _max(init_peak, requests)
    _max(total, init_peak)
    _add(total, _resource_list({"requests": spec.get("overhead") or {}}))
    return {name: _amount(name, value) for name, value in total.items() if value}


def _allocatable(node: Object) -> dict[str, int]:
    """A node's allocatable resources as the scheduler counts them (callers only read it).

    Parsed once per version of the node: every scheduling attempt reads every
    node's, and a stored version never changes.
    """
    meta = node.get("metadata") or {}
    key = (meta.get("uid"), meta.get("resourceVersion"))
    if key[1]:
        known = _ALLOCATABLE.get(key)
        if known is not None:
            return known
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    values = {}
    for name, text in allocatable.items():
        try:
            values[str(name)] = _amount(str(name), parse_quantity(text).value)
        except QuantityError:
            continue
    if key[1]:
        if len(_ALLOCATABLE) >= _ALLOCATABLE_MAX:
            _ALLOCATABLE.clear()
        _ALLOCATABLE[key] = values
    return values


_ALLOCATABLE: dict[tuple[Any, Any], dict[str, int]] = {}
_ALLOCATABLE_MAX = 4096


class _NodeUsage:
    """The pods bound to a node that still hold resources, and what they request."""

    def __init__(self) -> None:
        self.pods = 0
        self.requested: Counter[str] = Counter()


def _image_names(node: Object) -> set[str]:
    """Every name of every image a node reports, gathered once per stored version of it.

    Each pod scored every feasible node by gathering its image names again; a
    stored node is never changed in place, so its names are kept with the
    very dict (the entry is checked to be for that dict, not a reused id).
    """
    known = _IMAGE_NAMES.get(id(node))
    if known is not None and known[0] is node:
        return known[1]
    names = {n for i in (node.get("status") or {}).get("images") or [] for n in i["names"]}
    if len(_IMAGE_NAMES) >= _IMAGE_NAMES_MAX:
        _IMAGE_NAMES.clear()
    _IMAGE_NAMES[id(node)] = (node, names)
    return names


_IMAGE_NAMES: dict[int, tuple[Object, set[str]]] = {}
_IMAGE_NAMES_MAX = 1024


def _insufficient(
    requests: dict[str, int], node: Object, usage: _NodeUsage | None
) -> tuple[list[str], bool]:
    """NodeResourcesFit: the node's shortfalls and whether all could be freed by preemption.

    A shortfall larger than the node's whole allocatable is one no eviction
    could make up (upstream marks the node UnschedulableAndUnresolvable).
    """
    if "allocatable" not in (node.get("status") or {}):
        # A node posted by hand has no kubelet to report its size: the sandbox
        # lets it take anything (a real one would reject all as Too many pods).
        return [], True
    allocatable = _allocatable(node)
    usage = usage or _NodeUsage()
    reasons = []
    resolvable = True
    if usage.pods + 1 > allocatable.get("pods", 0):
        reasons.append("Too many pods")
    for name, wanted in requests.items():
        free = allocatable.get(name, 0) - usage.requested[name]
        if wanted > free:
            reasons.append(f"Insufficient {name}")
            resolvable = resolvable and wanted <= allocatable.get(name, 0)
    return reasons, resolvable


def _preferred_weight(spec: Object, node: Object) -> int:
    preferred = _node_affinity(spec).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(
        int(p.get("weight") or 0)
        for p in preferred
        if match_node_selector_term(p.get("preference") or {}, node)
    )


def _histogram(reasons: Counter[str]) -> str:
    """Reasons with their node counts, as upstream's FitError sorts them (by the text)."""
    return ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))


def _unschedulable_message(total: int, reasons: str, preemption: str | None = None) -> str:
    preemption = preemption or f"{total} {_NOT_HELPFUL}"
    return (
        f"0/{total} nodes are available: {reasons}. preemption: 0/{total} nodes are "
        f"available: {preemption}."
    )


class Scheduler:
    """Binds Pending pods to nodes, after the kubelet's schedule delay."""

    def __init__(self, cluster: ClusterHost, kubelet: KubeletView) -> None:
        self.cluster = cluster
        self.kubelet = kubelet
        self._waiting: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid
        # Waiting pods some node lacked room for: worth a retry when a bound pod goes.
        self._short: set[tuple[str, str]] = set()
        # Pods holding a node's resources (bound, not terminated), kept as pods are
        # written rather than counted at each attempt: pod uid -> (node, requests).
        self._bound: dict[str, tuple[str, dict[str, int]]] = {}
        self._usage: dict[str, _NodeUsage] = {}

    def queue(self, pod: Object) -> None:
        """Schedule a new pod once the schedule delay has passed."""
        meta = pod["metadata"]
        self.cluster.later(
            self.cluster.settings.schedule_delay,
            self.schedule,
            meta["namespace"],
            meta["name"],
            meta["uid"],
        )

    def retry(self, namespace: str | None = None) -> None:
        """Try unschedulable pods again: all when nodes change, a namespace's when a claim binds.

        Only a claim of its own namespace can unblock a pod, and retrying every
        waiting pod on each bind made a cluster of Pending labs quadratic.
        """
        retried = [
            (key, uid)
            for key, uid in self._waiting.items()
            if namespace is None or key[0] == namespace
        ]
        for (pod_namespace, name), uid in retried:
            del self._waiting[(pod_namespace, name)]
            self._short.discard((pod_namespace, name))
            self.cluster.later(0, self.schedule, pod_namespace, name, uid)

    def pod_written(self, pod: Object) -> None:
        """Count a bound pod against its node until it terminates (Succeeded or Failed)."""
        uid = pod["metadata"]["uid"]
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        holds = node != "" and (pod.get("status") or {}).get("phase") not in _TERMINAL
        if holds and uid not in self._bound:
            requests = pod_requests(pod)
            self._bound[uid] = (node, requests)
            usage = self._usage.setdefault(node, _NodeUsage())
            usage.pods += 1
            usage.requested.update(requests)
        elif not holds and uid in self._bound:
            self._release(uid)

    def pod_removed(self, pod: Object) -> None:
        """A pod is gone: what it held on its node is free."""
        if pod["metadata"]["uid"] in self._bound:
            self._release(pod["metadata"]["uid"])

    def _release(self, uid: str) -> None:
        """Free a pod's share of its node; pods that lacked room may fit now.

        Only those are retried (upstream requeues on AssignedPodDelete for
        NodeResourcesFit failures alone), so pods waiting for claims see no
        extra attempts.
        """
        node, requests = self._bound.pop(uid)
        usage = self._usage[node]
        usage.pods -= 1
        usage.requested.subtract(requests)
        for key in sorted(self._short):
            waiting = self._waiting.pop(key, None)
            if waiting is not None:
                self.cluster.later(0, self.schedule, key[0], key[1], waiting)
        self._short.clear()

    def _claims_problem(self, pod: Object) -> str | None:
        """VolumeBinding's PreFilter: a missing claim, or unbound Immediate ones."""
        namespace = pod["metadata"]["namespace"]
        unbound = False
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = ((volume or {}).get("persistentVolumeClaim") or {}).get("claimName")
            if not name:
                continue
            claim = self.cluster.store.get("PersistentVolumeClaim", namespace, name)
            if claim is None:
                return f'persistentvolumeclaim "{name}" not found'
            if claim["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{name}" is being deleted'
            bound = (claim.get("status") or {}).get("phase") == "Bound"
            if not bound and not self.cluster.storage.unbound_claim_delays(claim):
                unbound = True
        return "pod has unbound immediate PersistentVolumeClaims" if unbound else None

    def _pick(self, pod: Object) -> tuple[str | None, str, bool]:
        """The chosen node, or None, the FailedScheduling message and whether room was short."""
        spec = pod.get("spec") or {}
        nodes = list(self.cluster.store.iter_objects("Node", None))
        total = len(nodes)
        problem = self._claims_problem(pod)
        if problem is not None:
            return None, _unschedulable_message(total, problem), False
        if not nodes:
            return None, "no nodes available to schedule pods", False
        reasons: Counter[str] = Counter()
        preemption: Counter[str] = Counter()
        feasible = []
        short = False
        requests = pod_requests(pod)
        for node in nodes:
            reason = _filter(spec, node)
            if reason is not None:
                reasons[reason] += 1
                preemption[_NOT_HELPFUL] += 1
                continue
            name = node["metadata"]["name"]
            shortfalls, resolvable = _insufficient(requests, node, self._usage.get(name))
            if not shortfalls:
                feasible.append(node)
                continue
            reasons.update(shortfalls)
            short = True
            # The sandbox preempts nothing: with room to be made, it finds no victims.
            preemption[_NO_VICTIMS if resolvable else _NOT_HELPFUL] += 1
        if not feasible:
            message = _unschedulable_message(total, _histogram(reasons), _histogram(preemption))
            return None, message, short
        images = [
            str(c.get("image", ""))
            for key in ("initContainers", "containers")
            for c in spec.get(key) or []
            if isinstance(c, dict)
        ]

        def score(node: Object) -> tuple[int, int]:
            names = _image_names(node)
            return _preferred_weight(spec, node), sum(image_present(i, names) for i in images)

        best = max(feasible, key=score)  # max keeps the first of equals: node order
        return str(best["metadata"]["name"]), "", False

    def schedule(self, namespace: str, name: str, uid: str) -> None:
        """One scheduling attempt: bind the pod, or record why it cannot be."""
        with self.cluster.store.lock:
            pod = self.kubelet._current(namespace, name, uid)
            if pod is None:
                return
            node = (pod.get("spec") or {}).get("nodeName")
            message = ""
            short = False
            if node and self.cluster.store.get("Node", "", node) is None:
                # Bound by its creator to a node that does not exist: no kubelet
                # will run it, so it stays Pending (until such a node registers).
                self._waiting[(namespace, name)] = uid
                return
            if not node:
                node, message, short = self._pick(pod)
            if node is None:
                self._waiting[(namespace, name)] = uid
                if short:
                    self._short.add((namespace, name))
                self._unschedulable(pod, message)
                return
            self._waiting.pop((namespace, name), None)
            self._short.discard((namespace, name))
            self.cluster.storage.bind_for_pod(pod, node)
            self._bind(pod, node)

    def _unschedulable(self, pod: Object, message: str) -> None:
        meta = pod["metadata"]
        self.kubelet._event(
            pod, "FailedScheduling", message, event_type="Warning", component="default-scheduler"
        )
        now = self.kubelet.now()

        def mutate(o: Object) -> None:
            status = o.setdefault("status", {})
            conditions = status.get("conditions") or []
            old: Object = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": old.get("lastTransitionTime", now)
                if old.get("status") == "False"
                else now,
                "reason": "Unschedulable",
                "message": message,
            }
            status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [
                condition
            ]

        self.cluster.update_internal(
            "Pod", meta["namespace"], meta["name"], mutate, "default-scheduler", uid=meta["uid"]
        )

    def _bind(self, pod: Object, node: str) -> None:
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        now = self.kubelet.now()

        def bind(o: Object) -> None:
            o.setdefault("spec", {})["nodeName"] = node
            o.setdefault("status", {})["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                }
            ]

        bound = self.cluster.update_internal(
            "Pod", namespace, name, bind, None, subresource="", uid=meta["uid"]
        )
        if bound is None:
            return
        self.kubelet._event(
            bound,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {node}",
            component="default-scheduler",
        )
        self.kubelet.pod_bound(bound)
