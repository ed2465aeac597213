"""What kube-apiserver does to objects on write: defaults, initial status, validation.

Kept apart from the request handling so the rules that bite controllers
(immutable ConfigMaps and Secrets, pod spec immutability, PVC and Job
template immutability) are in one readable place, with the messages the
real server writes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .kinds import ResourceKind
from .quantity import Quantity, QuantityError, parse_quantity
from .store import ApiError, clone
from .validation import FieldError, check_service_range, invalid_error, validate_object

__all__ = [
    "GENERATION_KINDS",
    "admission_defaults",
    "apply_defaults",
    "check_uid_precondition",
    "initial_status",
    "keep_admitted",
    "validate_create",
    "validate_update",
]

Object = dict[str, Any]

# Kinds whose metadata.generation counts spec changes.
GENERATION_KINDS = frozenset({"Job", "Deployment", "NetworkPolicy", "Ingress", "GafaelfawrIngress"})


_POD_UPDATE_MESSAGE = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _image_pull_policy(image: str) -> str:
    name = image.split("@", 1)[0]
    tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
    if "@" in image:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_pod_spec(spec: Object) -> None:
    """A pod spec's scheme defaults, filled while the body is decoded (so its writer owns them).

    ``serviceAccount`` and ``serviceAccountName`` mirror each other, as the
    v1 conversion makes them; the ``default`` account, ``priority`` and
    ``preemptionPolicy`` come from admission instead (`admission_defaults`).
    """
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account:
        spec["serviceAccountName"] = account
        spec["serviceAccount"] = account
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("resources", {})
                container.setdefault(
                    "imagePullPolicy", _image_pull_policy(str(container.get("image", "")))
                )
                for port in container.get("ports") or []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")  # SetDefaults_ContainerPort


def _default_deployment(spec: Object) -> None:
    """SetDefaults_Deployment of apps/v1, and the pod template's defaults."""
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if not isinstance(rolling, dict):
                rolling = strategy["rollingUpdate"] = {}
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template_spec = (spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        _default_pod_spec(template_spec)


def apply_defaults(kind: ResourceKind, obj: Object) -> None:
    """Fill the defaults the API server fills; idempotent, so re-applies compare equal."""
    spec = obj.get("spec")
    metadata = obj.setdefault("metadata", {})
    match kind.kind:
        case "Namespace":
            metadata.setdefault("labels", {})["kubernetes.io/metadata.name"] = metadata["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        case "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
        case "Pod" if isinstance(spec, dict):
            _default_pod_spec(spec)
        case "Service" if isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    port.setdefault("targetPort", port.get("port"))
        case "PersistentVolumeClaim" if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
        case "Job" if isinstance(spec, dict):
            uid = metadata.get("uid", "")
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("manualSelector", False)
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            if uid:
                spec.setdefault(
                    "selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
                )
                template = spec.setdefault("template", {})
                labels = template.setdefault("metadata", {}).setdefault("labels", {})
                labels.setdefault("batch.kubernetes.io/controller-uid", uid)
                labels.setdefault("batch.kubernetes.io/job-name", metadata["name"])
                labels.setdefault("controller-uid", uid)
                labels.setdefault("job-name", metadata["name"])
            template_spec = spec.get("template", {}).get("spec")
            if isinstance(template_spec, dict):
                _default_pod_spec(template_spec)
        case "Deployment" if isinstance(spec, dict):
            _default_deployment(spec)
        case "RoleBinding" | "ClusterRoleBinding":
            # SetDefaults_Subject: a User or Group belongs to the RBAC group.
            for subject in obj.get("subjects") or []:
                if (
                    isinstance(subject, dict)
                    and not subject.get("apiGroup")
                    and subject.get("kind") in ("User", "Group")
                ):
                    subject["apiGroup"] = "rbac.authorization.k8s.io"
        case "NetworkPolicy" if isinstance(spec, dict):
            if "policyTypes" not in spec:
                types = ["Ingress"]
                if "egress" in spec:
                    types.append("Egress")
                spec["policyTypes"] = types


def admission_defaults(kind: ResourceKind, obj: Object) -> None:
    """What kube-apiserver's mutating admission plugins fill in on a create.

    Called after the create's managed fields are recorded, because the real
    server runs the field manager before admission: these fields belong to
    no manager. ServiceAccount admission names the ``default`` account of a
    pod that names none; Priority admission sets the priority and preemption
    policy (of the cluster's default, there being no PriorityClasses here).
    Only pods: a Job's pod template is not admitted, its pods are.
    """
    spec = obj.get("spec")
    if kind.kind != "Pod" or not isinstance(spec, dict):
        return
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = "default"
        spec["serviceAccount"] = "default"
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")


def keep_admitted(kind: ResourceKind, old: Object, new: Object) -> None:
    """Keep, on an update, what admission set at the create (Priority admission does so).

    A replacement body that leaves out ``priority`` or ``preemptionPolicy``
    keeps the stored values; pod validation refuses any other change to them.
    """
    if kind.kind != "Pod":
        return
    old_spec = old.get("spec")
    new_spec = new.get("spec")
    if not isinstance(old_spec, dict) or not isinstance(new_spec, dict):
        return
    for key in ("priority", "preemptionPolicy"):
        if key in old_spec and key not in new_spec:
            new_spec[key] = old_spec[key]


def _qos_class(spec: Object) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    resources = [c.get("resources") or {} for c in containers]
    if all(not r.get("requests") and not r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits = r.get("limits") or {}
        requests = r.get("requests") or limits
        if not all(k in limits for k in ("cpu", "memory")) or requests != limits:
            return "Burstable"
    return "Guaranteed"


def initial_status(kind: ResourceKind, obj: Object, given: Any) -> Any:
    """The status a new object starts with (clients cannot set it on create)."""
    match kind.kind:
        case "Namespace":
            return {"phase": "Active"}
        case "Pod":
            return {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
        case "PersistentVolumeClaim":
            return {"phase": "Pending"}  # the volume controller (storage.py) binds it
        case "Service" | "Ingress":
            return {"loadBalancer": {}}
        case "ResourceQuota":
            hard = clone((obj.get("spec") or {}).get("hard") or {})
            return {"hard": hard, "used": {k: "0" for k in hard}}
        case "Node":
            return given if isinstance(given, dict) else {}
        case _:
            return None


def _go_string(value: Any) -> str:
    """A string field as Go's ``%#v`` prints it inside a struct."""
    return json.dumps(value if isinstance(value, str) else "")


def validate_create(kind: ResourceKind, obj: Object) -> None:
    """Refuse a new object the API server refuses (422 Invalid with every cause)."""
    if kind.kind == "Service":
        check_service_range(kind, obj)
    validate_object(kind, obj)


def _forbid(kind: ResourceKind, name: str, field_path: str, detail: str) -> ApiError:
    return ApiError.invalid(kind, name, field_path, f"Forbidden: {detail}", "FieldValueForbidden")


def _pod_spec_for_compare(spec: Object, tolerations_ok: bool) -> Object:
    spec = clone(spec)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    spec.pop("activeDeadlineSeconds", None)
    spec.pop("terminationGracePeriodSeconds", None)
    if tolerations_ok:
        spec.pop("tolerations", None)
    return spec


def _spec_diff(old: Object, new: Object) -> str:
    lines = ["  core.PodSpec{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key in old:
                lines.append(f"-  \t{key}: {old[key]!r},")
            if key in new:
                lines.append(f"+  \t{key}: {new[key]!r},")
    lines.append("  }")
    return "\n".join(lines)


def check_uid_precondition(kind: ResourceKind, old: Object, incoming: Object) -> None:
    """A PUT's uid is a storage precondition (DefaultUpdatedObjectInfo): 409 when it differs.

    Checked before the resourceVersion, as etcd's GuaranteedUpdate does. A
    patch carries no such precondition; its uid change is a 422 instead.
    """
    given = (incoming.get("metadata") or {}).get("uid")
    name = old["metadata"]["name"]
    stored = old["metadata"].get("uid")
    if given and given != stored:
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {kind.group_resource} "{name}": Precondition '
            f"failed: UID in precondition: {given}, UID in object meta: {stored}",
            {"name": name, "kind": kind.plural},
        )


def _metadata_update(kind: ResourceKind, old: Object, new: Object, given_uid: str | None) -> None:
    """ValidateObjectMetaUpdate's uid rule: an update may omit the uid, never change it.

    ``given_uid`` is the uid the request carried (the update keeps the stored
    one). kube-apiserver checks object metadata twice on update (the common
    fields, then the kind's own ValidateUpdate), so the cause appears twice.
    Name and namespace cannot differ from the URL's (400 before this), and a
    changed creationTimestamp is reset to the stored one, as rest.BeforeUpdate does.
    """
    old_uid = old["metadata"].get("uid")
    if given_uid and old_uid and given_uid != old_uid:
        error = FieldError("FieldValueInvalid", "metadata.uid", given_uid, "field is immutable")
        raise invalid_error(kind, old["metadata"]["name"], [error, error])


def _storage(values: Any) -> Quantity | None:
    try:
        return parse_quantity((values or {}).get("storage"))
    except QuantityError:
        return None


def _claim_shrink(kind: ResourceKind, name: str, old: Object, new: Object) -> None:
    """ValidatePersistentVolumeClaimUpdate (1.32, RecoverVolumeExpansionFailure on by default).

    A claim's request may go down, to recover from a failed expansion, but
    never to or below the capacity its volume already has.
    """
    old_size = _storage(((old.get("spec") or {}).get("resources") or {}).get("requests"))
    new_size = _storage(((new.get("spec") or {}).get("resources") or {}).get("requests"))
    if old_size is None or new_size is None or new_size.value >= old_size.value:
        return
    capacity = _storage((old.get("status") or {}).get("capacity"))
    if new_size.value <= (capacity.value if capacity is not None else 0):
        raise _forbid(
            kind,
            name,
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        )


def validate_update(
    kind: ResourceKind, old: Object, new: Object, given_uid: str | None = None
) -> None:
    """Reject updates the API server rejects (422 Invalid with its message).

    The new object must be valid as a whole first, as on create; then the
    rules that compare it with the stored one (immutable fields) apply.
    """
    _metadata_update(kind, old, new, given_uid)
    validate_object(kind, new)
    name = old["metadata"]["name"]
    match kind.kind:
        case "ConfigMap" | "Secret":
            if old.get("immutable") is True:
                if new.get("immutable") is not True:
                    raise _forbid(
                        kind, name, "immutable", "field is immutable when `immutable` is set"
                    )
                for key in ("data", "binaryData"):
                    if (old.get(key) or {}) != (new.get(key) or {}):
                        raise _forbid(kind, name, key, "field is immutable when `immutable` is set")
            if kind.kind == "Secret" and old.get("type") != new.get("type"):
                raise ApiError.invalid(
                    kind,
                    name,
                    "type",
                    f'Invalid value: "{new.get("type")}": field is immutable',
                    "FieldValueInvalid",
                )
        case "Pod":
            old_spec = old.get("spec") or {}
            new_spec = new.get("spec") or {}
            old_tolerations = old_spec.get("tolerations") or []
            new_tolerations = new_spec.get("tolerations") or []
            additions_only = all(t in new_tolerations for t in old_tolerations)
            before = _pod_spec_for_compare(old_spec, additions_only)
            after = _pod_spec_for_compare(new_spec, additions_only)
            if before != after:
                raise ApiError.invalid(
                    kind,
                    name,
                    "spec",
                    f"{_POD_UPDATE_MESSAGE}\n{_spec_diff(before, after)}",
                    "FieldValueForbidden",
                )
        case "PersistentVolumeClaim":
            _claim_shrink(kind, name, old, new)
            old_spec = clone(old.get("spec") or {})
            new_spec = clone(new.get("spec") or {})
            for spec in (old_spec, new_spec):
                spec.get("resources", {}).pop("requests", None)
                spec.pop("volumeAttributesClassName", None)
                spec.pop("volumeName", None)
            if old_spec != new_spec:
                raise _forbid(
                    kind,
                    name,
                    "spec",
                    "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
        case "Deployment":
            old_selector = (old.get("spec") or {}).get("selector")
            if old_selector != (new.get("spec") or {}).get("selector"):
                raise ApiError.invalid(
                    kind,
                    name,
                    "spec.selector",
                    "Invalid value: field is immutable",
                    "FieldValueInvalid",
                )
        case "Job":
            old_spec = old.get("spec") or {}
            new_spec = new.get("spec") or {}
            for key in ("template", "selector", "completionMode"):
                if old_spec.get(key) != new_spec.get(key):
                    raise ApiError.invalid(
                        kind,
                        name,
                        f"spec.{key}",
                        "Invalid value: field is immutable",
                        "FieldValueInvalid",
                    )
        case "RoleBinding" | "ClusterRoleBinding":
            if old.get("roleRef") != new.get("roleRef"):
                ref = new.get("roleRef") or {}
                raise ApiError.invalid(
                    kind,
                    name,
                    "roleRef",
                    f"Invalid value: rbac.RoleRef{{APIGroup:{_go_string(ref.get('apiGroup'))}, "
                    f"Kind:{_go_string(ref.get('kind'))}, Name:{_go_string(ref.get('name'))}}}: "
                    "cannot change roleRef",
                    "FieldValueInvalid",
                )
        case "Service":
            old_ip = (old.get("spec") or {}).get("clusterIP")
            new_ip = (new.get("spec") or {}).get("clusterIP")
            if old_ip and new_ip != old_ip:
                raise ApiError.invalid(
                    kind,
                    name,
                    "spec.clusterIPs[0]",
                    f'Invalid value: "{new_ip}": may not change once set',
                    "FieldValueInvalid",
                )
