"""The sandbox's scheduler: which node a new pod goes to, or why none will do.

It runs kube-scheduler's filters that a lab's spec exercises, in upstream's
order: the pod's claims (missing, or unbound with an Immediate class), then per
node NodeUnschedulable, TaintToleration and NodeAffinity (``nodeSelector`` and
required node affinity). A pod no node fits stays Pending with condition
PodScheduled False (reason Unschedulable) and a FailedScheduling Event whose
message is the real one, and is tried again when nodes or claims change. Of
the nodes that fit, the one with the most preferred-affinity weight, then the
most of the pod's images already present, wins (ties: node order).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import Cluster
    from .kubelet import Kubelet

__all__ = ["Scheduler", "image_present", "match_node_selector_term", "tolerates"]

Object = dict[str, Any]

_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
_UNSCHEDULABLE = "node(s) were unschedulable"
_UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


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
    """The first filter that rejects the node, as its reason, or None if it fits."""
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


def _preferred_weight(spec: Object, node: Object) -> int:
    preferred = _node_affinity(spec).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(
        int(p.get("weight") or 0)
        for p in preferred
        if match_node_selector_term(p.get("preference") or {}, node)
    )


def _unschedulable_message(total: int, reasons: str) -> str:
    return (
        f"0/{total} nodes are available: {reasons}. preemption: 0/{total} nodes are "
        f"available: {total} Preemption is not helpful for scheduling."
    )


class Scheduler:
    """Binds Pending pods to nodes, after the kubelet's schedule delay."""

    def __init__(self, cluster: Cluster, kubelet: Kubelet) -> None:
        self.cluster = cluster
        self.kubelet = kubelet
        self._waiting: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid

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
            self.cluster.later(0, self.schedule, pod_namespace, name, uid)

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

    def _pick(self, pod: Object) -> tuple[str | None, str]:
        """The chosen node, or None and the FailedScheduling message."""
        spec = pod.get("spec") or {}
        nodes = list(self.cluster.store.iter_objects("Node", None))
        total = len(nodes)
        problem = self._claims_problem(pod)
        if problem is not None:
            return None, _unschedulable_message(total, problem)
        if not nodes:
            return None, "no nodes available to schedule pods"
        reasons: Counter[str] = Counter()
        feasible = []
        for node in nodes:
            reason = _filter(spec, node)
            if reason is None:
                feasible.append(node)
            else:
                reasons[reason] += 1
        if not feasible:
            text = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
            return None, _unschedulable_message(total, text)
        images = [
            str(c.get("image", ""))
            for key in ("initContainers", "containers")
            for c in spec.get(key) or []
            if isinstance(c, dict)
        ]

        def score(node: Object) -> tuple[int, int]:
            names = {n for i in (node.get("status") or {}).get("images") or [] for n in i["names"]}
            return _preferred_weight(spec, node), sum(image_present(i, names) for i in images)

        best = max(feasible, key=score)  # max keeps the first of equals: node order
        return str(best["metadata"]["name"]), ""

    def schedule(self, namespace: str, name: str, uid: str) -> None:
        """One scheduling attempt: bind the pod, or record why it cannot be."""
        with self.cluster.store.lock:
            pod = self.kubelet._current(namespace, name, uid)
            if pod is None:
                return
            node = (pod.get("spec") or {}).get("nodeName")
            message = ""
            if not node:
                node, message = self._pick(pod)
            if node is None:
                self._waiting[(namespace, name)] = uid
                self._unschedulable(pod, message)
                return
            self._waiting.pop((namespace, name), None)
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
