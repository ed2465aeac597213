"""Server-side Table output: what ``kubectl get`` prints, computed as kube-apiserver does.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
the ``meta.k8s.io/v1`` Table it gets back: column definitions (name, type,
priority 1 for the ``-o wide`` ones) and one row of cells per object. The
printers here follow kube-apiserver's (pkg/printers/internalversion): a pod's
READY and STATUS by the same rules (``ContainerCreating``, ``Completed``,
``ErrImagePull``, ``Terminating``...), ages as ``HumanDuration`` writes them,
and a custom resource's ``additionalPrinterColumns``. Kinds without a printer
get NAME and AGE, as the server's default convertor gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from .kinds import ResourceKind
from .openapi import printer_columns
from .schema import definition_name, definitions

__all__ = [
    "human_duration",
    "object_table",
    "pod_status",
    "table",
    "wants_table",
]

Object = dict[str, Any]
Cell = Any

_TABLE_MEDIA = "as=table"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a ``meta.k8s.io/v1`` Table first."""
    for offer in accept.split(","):
        params = {p.strip().lower() for p in offer.split(";")[1:]}
        if _TABLE_MEDIA in params:
            return "g=meta.k8s.io" in params and "v=v1" in params
        if offer.strip():
            return False
    return False


# -- time ------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: ``42s``, ``5m3s``, ``3h20m``, ``6d2h``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def _since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: an age, or ``<unknown>`` without a time."""
    when = _parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def _age(obj: Object, now: datetime) -> str:
    return _since(obj["metadata"].get("creationTimestamp"), now)


# -- columns ---------------------------------------------------------------


@cache
def _doc(definition: str, field: str) -> str:
    """A field's description from Kubernetes' schema, for a column definition."""
    spec = definitions().get(definition, {}).get("properties", {}).get(field, {})
    return str(spec.get("description", ""))


def _column(
    name: str, description: str, *, type_: str = "string", priority: int = 0, format_: str = ""
) -> Object:
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


def _name_column() -> Object:
    return _column("Name", _doc(_META, "name"), format_="name")


def _age_column() -> Object:
    return _column("Age", _doc(_META, "creationTimestamp"))


# -- printers ----------------------------------------------------------------


def _none(value: Any) -> Any:
    return value if value not in (None, "", []) else "<none>"


def pod_status(pod: Object) -> tuple[str, int, int, int, str | None]:
    """A pod's STATUS, ready and total containers, restarts and last restart time.

    kubectl's rules: the phase (or status.reason), then the first init
    container not done (``Init:0/1``, ``Init:ErrImagePull``), then a
    container's waiting or terminated reason (``ContainerCreating``,
    ``Completed``, ``ExitCode:1``), ``Running`` back when a container still
    runs, and ``Terminating`` for a pod being deleted that has not ended.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    total = len(spec.get("containers") or [])
    ready = 0
    restarts = 0
    last_restart: str | None = None
    conditions = status.get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == (
            "SchedulingGated"
        ):
            reason = "SchedulingGated"
    init_specs = spec.get("initContainers") or []
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(container.get("restartCount") or 0)
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = f"Init:{terminated['reason']}"
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions
    )
    if not initializing or initialized:
        restarts = 0
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            last = (container.get("lastState") or {}).get("terminated") or {}
            finished = last.get("finishedAt")
            if finished and (last_restart is None or finished > last_restart):
                last_restart = finished
            state = container.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" for c in conditions)
            reason = "Running" if pod_ready else "NotReady"
    deleting = pod["metadata"].get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart


_POD = "io.k8s.api.core.v1.Pod"


def _pod_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _column("Status", "The aggregate status of the containers in this pod."),
        _column(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted.",
        ),
        _age_column(),
        _column("IP", _doc("io.k8s.api.core.v1.PodStatus", "podIP"), priority=1),
        _column("Node", _doc("io.k8s.api.core.v1.PodSpec", "nodeName"), priority=1),
        _column(
            "Nominated Node",
            _doc("io.k8s.api.core.v1.PodStatus", "nominatedNodeName"),
            priority=1,
        ),
        _column(
            "Readiness Gates", _doc("io.k8s.api.core.v1.PodSpec", "readinessGates"), priority=1
        ),
    ]


def _pod_cells(pod: Object, now: datetime) -> list[Cell]:
    reason, ready, total, restarts_count, last_restart = pod_status(pod)
    restarts = str(restarts_count)
    if restarts_count and last_restart:
        restarts = f"{restarts_count} ({_since(last_restart, now)} ago)"
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    gates = spec.get("readinessGates") or []
    if gates:
        true_conditions = {
            c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
        }
        passed = sum(1 for g in gates if g.get("conditionType") in true_conditions)
        readiness = f"{passed}/{len(gates)}"
    else:
        readiness = "<none>"
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restarts,
        _age(pod, now),
        _none(status.get("podIP")),
        _none(spec.get("nodeName")),
        _none(status.get("nominatedNodeName")),
        readiness,
    ]


def _namespace_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Status", "The status of the namespace"),
        _age_column(),
    ]


def _namespace_cells(ns: Object, now: datetime) -> list[Cell]:
    phase = (ns.get("status") or {}).get("phase", "")
    return [ns["metadata"]["name"], phase, _age(ns, now)]


_EVENT = "io.k8s.api.core.v1.Event"


def _event_columns() -> list[Object]:
    return [
        _column("Last Seen", _doc(_EVENT, "lastTimestamp")),
        _column("Type", _doc(_EVENT, "type")),
        _column("Reason", _doc(_EVENT, "reason")),
        _column("Object", _doc(_EVENT, "involvedObject")),
        _column("Subobject", _doc("io.k8s.api.core.v1.ObjectReference", "fieldPath"), priority=1),
        _column("Source", _doc(_EVENT, "source"), priority=1),
        _column("Message", _doc(_EVENT, "message")),
        _column("First Seen", _doc(_EVENT, "firstTimestamp"), priority=1),
        _column("Count", _doc(_EVENT, "count"), type_="integer", priority=1),
        _column("Name", _doc(_META, "name"), format_="name", priority=1),
    ]


def _event_source(event: Object) -> str:
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    if host:
        return f"{component}, {host}"
    return component


def _event_cells(event: Object, now: datetime) -> list[Cell]:
    first = event.get("firstTimestamp")
    first_seen = _since(first if first else event.get("eventTime"), now)
    last = event.get("lastTimestamp")
    last_seen = _since(last, now) if last else first_seen
    count = event.get("count") or 0
    series = event.get("series")
    if series:
        last_seen = _since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1
    involved = event.get("involvedObject") or {}
    target = str(involved.get("kind", "")).lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        _event_source(event),
        str(event.get("message", "")).strip(),
        first_seen,
        int(count),
        event["metadata"]["name"],
    ]


_NODE = "io.k8s.api.core.v1.Node"


def _node_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Status", "The status of the node"),
        _column("Roles", "The roles of the node"),
        _age_column(),
        _column("Version", _doc("io.k8s.api.core.v1.NodeSystemInfo", "kubeletVersion")),
        _column("Internal-IP", "List of internal IPs for the node.", priority=1),
        _column("External-IP", "List of external IPs for the node.", priority=1),
        _column("OS-Image", _doc("io.k8s.api.core.v1.NodeSystemInfo", "osImage"), priority=1),
        _column(
            "Kernel-Version",
            _doc("io.k8s.api.core.v1.NodeSystemInfo", "kernelVersion"),
            priority=1,
        ),
        _column(
            "Container-Runtime",
            _doc("io.k8s.api.core.v1.NodeSystemInfo", "containerRuntimeVersion"),
            priority=1,
        ),
    ]


def _node_cells(node: Object, now: datetime) -> list[Cell]:
    status = node.get("status") or {}
    ready = "Unknown"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = "Ready" if condition.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    roles = set()
    for label, value in (node["metadata"].get("labels") or {}).items():
        if label.startswith("node-role.kubernetes.io/"):
            role = label.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif label == "kubernetes.io/role" and value:
            roles.add(value)
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        found = [a.get("address", "") for a in addresses if a.get("type") == kind]
        return found[0] if found else "<none>"

    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        ready,
        ",".join(sorted(roles)) or "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}
_PVC = "io.k8s.api.core.v1.PersistentVolumeClaimSpec"


def _pvc_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Status", _doc("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "phase")),
        _column("Volume", _doc(_PVC, "volumeName")),
        _column("Capacity", _doc("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "capacity")),
        _column(
            "Access Modes", _doc("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "accessModes")
        ),
        _column("StorageClass", _doc(_PVC, "storageClassName")),
        _column("VolumeAttributesClass", _doc(_PVC, "volumeAttributesClassName")),
        _age_column(),
        _column("VolumeMode", _doc(_PVC, "volumeMode"), priority=1),
    ]


def _pvc_cells(pvc: Object, now: datetime) -> list[Cell]:
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    phase = status.get("phase", "")
    if pvc["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    capacity = ""
    access = ""
    if spec.get("volumeName"):
        modes = status.get("accessModes") or []
        access = ",".join(_ACCESS_MODES[m] for m in _ACCESS_MODES if m in modes)
        capacity = str((status.get("capacity") or {}).get("storage", ""))
    storage_class = spec.get("storageClassName")
    if storage_class is None:
        annotations = pvc["metadata"].get("annotations") or {}
        storage_class = annotations.get("volume.beta.kubernetes.io/storage-class", "")
    return [
        pvc["metadata"]["name"],
        phase,
        spec.get("volumeName", ""),
        capacity,
        access,
        storage_class,
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc, now),
        spec.get("volumeMode") or "<unset>",
    ]


_SERVICE = "io.k8s.api.core.v1.ServiceSpec"


def _service_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Type", _doc(_SERVICE, "type")),
        _column("Cluster-IP", _doc(_SERVICE, "clusterIP")),
        _column("External-IP", _doc(_SERVICE, "externalIPs")),
        _column("Port(s)", "The ports that this service is exposed on"),
        _age_column(),
        _column("Selector", _doc(_SERVICE, "selector"), priority=1),
    ]


def _service_cells(svc: Object, now: datetime) -> list[Cell]:
    spec = svc.get("spec") or {}
    service_type = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if service_type == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = [
            i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")
        ]
        external_ip = ",".join(found + external) or "<pending>"
    elif service_type == "ExternalName":
        external_ip = spec.get("externalName", "")
    else:
        external_ip = ",".join(external) or "<none>"
    ports = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            ports.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            ports.append(f"{port.get('port')}/{protocol}")
    selector = spec.get("selector") or {}
    return [
        svc["metadata"]["name"],
        service_type,
        spec.get("clusterIP") or "<none>",
        external_ip,
        ",".join(ports) or "<none>",
        _age(svc, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


_JOB = "io.k8s.api.batch.v1.JobSpec"


def _job_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Status", "Status of the job."),
        _column("Completions", "The completion status of the job."),
        _column("Duration", "Time required to complete the job."),
        _age_column(),
        _column("Containers", "Names of each container in the template.", priority=1),
        _column("Images", "Images referenced by each container in the template.", priority=1),
        _column("Selector", _doc(_JOB, "selector"), priority=1),
    ]


def _job_cells(job: Object, now: datetime) -> list[Cell]:
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    true_conditions = {
        c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
    }
    if "Complete" in true_conditions:
        state = "Complete"
    elif "Failed" in true_conditions:
        state = "Failed"
    elif job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    elif "Suspended" in true_conditions:
        state = "Suspended"
    elif "FailureTarget" in true_conditions:
        state = "FailureTarget"
    elif "SuccessCriteriaMet" in true_conditions:
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 1) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started = _parse_time(status.get("startTime"))
    finished = _parse_time(status.get("completionTime"))
    if started is None:
        duration = ""
    else:
        duration = human_duration(((finished or now) - started).total_seconds())
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return [
        job["metadata"]["name"],
        state,
        completions,
        duration,
        _age(job, now),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _configmap_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Data", _doc("io.k8s.api.core.v1.ConfigMap", "data"), type_="integer"),
        _age_column(),
    ]


def _configmap_cells(cm: Object, now: datetime) -> list[Cell]:
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [cm["metadata"]["name"], count, _age(cm, now)]


def _secret_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Type", _doc("io.k8s.api.core.v1.Secret", "type")),
        _column("Data", _doc("io.k8s.api.core.v1.Secret", "data"), type_="integer"),
        _age_column(),
    ]


def _secret_cells(secret: Object, now: datetime) -> list[Cell]:
    count = len(set(secret.get("data") or {}) | set(secret.get("stringData") or {}))
    return [secret["metadata"]["name"], secret.get("type", "Opaque"), count, _age(secret, now)]


def _service_account_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Secrets", _doc("io.k8s.api.core.v1.ServiceAccount", "secrets"), type_="integer"),
        _age_column(),
    ]


def _service_account_cells(sa: Object, now: datetime) -> list[Cell]:
    return [sa["metadata"]["name"], len(sa.get("secrets") or []), _age(sa, now)]


def _lease_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Holder", _doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
        _age_column(),
    ]


def _lease_cells(lease: Object, now: datetime) -> list[Cell]:
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return [lease["metadata"]["name"], holder, _age(lease, now)]


_SC = "io.k8s.api.storage.v1.StorageClass"


def _storage_class_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Provisioner", _doc(_SC, "provisioner")),
        _column("ReclaimPolicy", _doc(_SC, "reclaimPolicy")),
        _column("VolumeBindingMode", _doc(_SC, "volumeBindingMode")),
        _column("AllowVolumeExpansion", _doc(_SC, "allowVolumeExpansion")),
        _age_column(),
    ]


def _storage_class_cells(sc: Object, now: datetime) -> list[Cell]:
    name = sc["metadata"]["name"]
    annotations = sc["metadata"].get("annotations") or {}
    if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
        name = f"{name} (default)"
    return [
        name,
        sc.get("provisioner", ""),
        sc.get("reclaimPolicy") or "Delete",
        sc.get("volumeBindingMode") or "Immediate",
        bool(sc.get("allowVolumeExpansion", False)),
        _age(sc, now),
    ]


def _quota_columns() -> list[Object]:
    return [
        _name_column(),
        _age_column(),
        _column(
            "Request",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        _column(
            "Limit",
            "Limits control the maximum amount of cpu/memory that a container may use "
            "independent of contention on the node.",
        ),
    ]


def _quota_cells(quota: Object, now: datetime) -> list[Cell]:
    status = quota.get("status") or {}
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        column = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        column.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [quota["metadata"]["name"], _age(quota, now), ", ".join(requests), ", ".join(limits)]


def format_label_selector(selector: Object | None) -> str:
    """apimachinery's ``FormatLabelSelector``: ``a=b,c in (d,e)``, ``<none>`` when empty."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = ",".join(expression.get("values") or [])
        match operator:
            case "In":
                parts.append(f"{key} in ({values})")
            case "NotIn":
                parts.append(f"{key} notin ({values})")
            case "Exists":
                parts.append(key)
            case "DoesNotExist":
                parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _network_policy_columns() -> list[Object]:
    return [
        _name_column(),
        _column(
            "Pod-Selector",
            _doc("io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector"),
        ),
        _age_column(),
    ]


def _network_policy_cells(policy: Object, now: datetime) -> list[Cell]:
    selector = (policy.get("spec") or {}).get("podSelector")
    return [policy["metadata"]["name"], format_label_selector(selector), _age(policy, now)]


_INGRESS = "io.k8s.api.networking.v1.IngressSpec"


def _ingress_columns() -> list[Object]:
    return [
        _name_column(),
        _column("Class", _doc(_INGRESS, "ingressClassName")),
        _column(
            "Hosts", "Hosts that incoming requests are matched against before the ingress rule"
        ),
        _column("Address", "Address is a list containing ingress points for the load-balancer"),
        _column("Ports", "Ports of TLS configurations that open"),
        _age_column(),
    ]


def _ingress_cells(ingress: Object, now: datetime) -> list[Cell]:
    spec = ingress.get("spec") or {}
    hosts = [r["host"] for r in spec.get("rules") or [] if r.get("host")]
    if not hosts:
        shown_hosts = "*"
    elif len(hosts) > 3:
        shown_hosts = ",".join(hosts[:3]) + f" + {len(hosts) - 3} more..."
    else:
        shown_hosts = ",".join(hosts)
    balancer = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [a.get("ip") or a.get("hostname") for a in balancer]
    return [
        ingress["metadata"]["name"],
        spec.get("ingressClassName") or "<none>",
        shown_hosts,
        ",".join(a for a in addresses if a),
        "80, 443" if spec.get("tls") else "80",
        _age(ingress, now),
    ]


def _default_columns() -> list[Object]:
    return [_name_column(), _age_column()]


def _default_cells(obj: Object, now: datetime) -> list[Cell]:
    return [obj["metadata"]["name"], _age(obj, now)]


@dataclass(frozen=True)
class _Printer:
    columns: Callable[[], list[Object]]
    cells: Callable[[Object, datetime], list[Cell]]


_PRINTERS = {
    "Pod": _Printer(_pod_columns, _pod_cells),
    "Namespace": _Printer(_namespace_columns, _namespace_cells),
    "Event": _Printer(_event_columns, _event_cells),
    "Node": _Printer(_node_columns, _node_cells),
    "PersistentVolumeClaim": _Printer(_pvc_columns, _pvc_cells),
    "Service": _Printer(_service_columns, _service_cells),
    "Job": _Printer(_job_columns, _job_cells),
    "ConfigMap": _Printer(_configmap_columns, _configmap_cells),
    "Secret": _Printer(_secret_columns, _secret_cells),
    "ServiceAccount": _Printer(_service_account_columns, _service_account_cells),
    "Lease": _Printer(_lease_columns, _lease_cells),
    "StorageClass": _Printer(_storage_class_columns, _storage_class_cells),
    "ResourceQuota": _Printer(_quota_columns, _quota_cells),
    "NetworkPolicy": _Printer(_network_policy_columns, _network_policy_cells),
    "Ingress": _Printer(_ingress_columns, _ingress_cells),
}


# -- custom resources --------------------------------------------------------


def _json_path(obj: Any, path: str) -> Any:
    """A simple ``.a.b.c`` JSONPath, as CRD printer columns use; None when absent."""
    node = obj
    for part in path.strip().lstrip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _custom_cell(column: Object, obj: Object, now: datetime) -> Cell:
    value = _json_path(obj, str(column.get("jsonPath", "")))
    if value is None:
        return None
    if column.get("type") == "date":
        return _since(value, now) if isinstance(value, str) else "<invalid>"
    if column.get("type") == "string" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _custom_printer(kind: ResourceKind) -> _Printer | None:
    columns = printer_columns(kind)
    if not columns:
        return None
    definitions_ = [_name_column()] + [
        _column(
            str(c["name"]),
            str(c.get("description", "")),
            type_=str(c.get("type", "string")),
            priority=int(c.get("priority", 0)),
            format_=str(c.get("format", "")),
        )
        for c in columns
    ]
    return _Printer(
        lambda: definitions_,
        lambda obj, now: [obj["metadata"]["name"]] + [_custom_cell(c, obj, now) for c in columns],
    )


def _printer(kind: ResourceKind) -> _Printer:
    printer = _PRINTERS.get(kind.kind)
    if printer is not None and definition_name(kind.api_version, kind.kind) is not None:
        return printer
    return _custom_printer(kind) or _Printer(_default_columns, _default_cells)


# -- tables ------------------------------------------------------------------


def _row_object(obj: Object, include: str) -> Object | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def table(
    kind: ResourceKind,
    objects: list[Object],
    metadata: Object,
    *,
    include_object: str = "Metadata",
    present: Callable[[Object], Object] | None = None,
    headers: bool = True,
) -> Object:
    """A ``meta.k8s.io/v1`` Table of ``objects`` (stored form; ``present`` makes the row
    object's form, for a kind served under another version).

    ``include_object`` is the ``includeObject`` query: ``Metadata`` (default,
    a PartialObjectMetadata), ``Object`` or ``None``. Without ``headers`` the
    column definitions are left out, as in a watch's later events.
    """
    printer = _printer(kind)
    now = datetime.now(UTC)
    rows = []
    for obj in objects:
        row: Object = {"cells": printer.cells(obj, now)}
        shown = _row_object(present(obj) if present else obj, include_object)
        if shown is not None:
            row["object"] = shown
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": printer.columns() if headers else None,
        "rows": rows,
    }


def object_table(
    kind: ResourceKind,
    obj: Object,
    *,
    include_object: str = "Metadata",
    present: Callable[[Object], Object] | None = None,
) -> Object:
    """The Table of one object (a GET of a name)."""
    metadata = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
    return table(kind, [obj], metadata, include_object=include_object, present=present)
