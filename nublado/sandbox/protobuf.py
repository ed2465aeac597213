"""Kubernetes' protobuf request bodies, for the kinds kubectl writes with them.

``kubectl create configmap|secret|namespace|serviceaccount|deployment|role|
clusterrole|rolebinding|clusterrolebinding`` (and ``create token``) send
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\x00``, then a
``runtime.Unknown`` envelope (type meta, raw bytes) around the object's own
message. kubectl does not fall back to JSON when a server refuses that
(it shows the 415), so the sandbox reads these bodies.

The message definitions below are the few k8s.io/api and apimachinery
messages those kinds need, with the field numbers of their ``generated.proto``
(proto2), built once into a descriptor pool. Decoded messages become the
object's JSON form (``bytes`` as base64, as the JSON API writes Secret data).
A body of another kind answers 415, as kube-apiserver does for a type it has
no protobuf form of.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.message import DecodeError, Message

from .clock import TIME_FORMAT
from .store import ApiError

__all__ = ["PROTOBUF_KINDS", "PROTOBUF_MEDIA_TYPE", "decode_object"]

Object = dict[str, Any]

PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_RUNTIME = "k8s.io.apimachinery.pkg.runtime"
_CORE = "k8s.io.api.core.v1"
_RESOURCE = "k8s.io.apimachinery.pkg.api.resource"
_AUTHENTICATION = "k8s.io.api.authentication.v1"
_AUTHORIZATION = "k8s.io.api.authorization.v1"
_RBAC = "k8s.io.api.rbac.v1"
_APPS = "k8s.io.api.apps.v1"
_QUANTITY = f"{_RESOURCE}.Quantity"

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_BOOL = descriptor_pb2.FieldDescriptorProto.TYPE_BOOL
_INT64 = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
_INT32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

# (name, number, type, repeated, message type or map value type)
_Field = tuple[str, int, int, bool, str]

# message name -> fields; a map's type is ``map:string``, ``map:bytes`` or ``map:<message>``.
_MESSAGES: dict[str, list[_Field]] = {
    _QUANTITY: [("string", 1, _STRING, False, "")],
    f"{_RUNTIME}.TypeMeta": [
        ("apiVersion", 1, _STRING, False, ""),
        ("kind", 2, _STRING, False, ""),
    ],
    f"{_RUNTIME}.Unknown": [
        ("typeMeta", 1, _MESSAGE, False, f"{_RUNTIME}.TypeMeta"),
        ("raw", 2, _BYTES, False, ""),
        ("contentEncoding", 3, _STRING, False, ""),
        ("contentType", 4, _STRING, False, ""),
    ],
    f"{_META}.Time": [
        ("seconds", 1, _INT64, False, ""),
        ("nanos", 2, _INT32, False, ""),
    ],
    f"{_META}.OwnerReference": [
        ("kind", 1, _STRING, False, ""),
        ("name", 3, _STRING, False, ""),
        ("uid", 4, _STRING, False, ""),
        ("apiVersion", 5, _STRING, False, ""),
        ("controller", 6, _BOOL, False, ""),
        ("blockOwnerDeletion", 7, _BOOL, False, ""),
    ],
    f"{_META}.ObjectMeta": [
        ("name", 1, _STRING, False, ""),
        ("generateName", 2, _STRING, False, ""),
        ("namespace", 3, _STRING, False, ""),
        ("selfLink", 4, _STRING, False, ""),
        ("uid", 5, _STRING, False, ""),
        ("resourceVersion", 6, _STRING, False, ""),
        ("generation", 7, _INT64, False, ""),
        ("creationTimestamp", 8, _MESSAGE, False, f"{_META}.Time"),
        ("deletionTimestamp", 9, _MESSAGE, False, f"{_META}.Time"),
        ("deletionGracePeriodSeconds", 10, _INT64, False, ""),
        ("labels", 11, _MESSAGE, True, "map:string"),
        ("annotations", 12, _MESSAGE, True, "map:string"),
        ("ownerReferences", 13, _MESSAGE, True, f"{_META}.OwnerReference"),
        ("finalizers", 14, _STRING, True, ""),
    ],
    f"{_META}.LabelSelectorRequirement": [
        ("key", 1, _STRING, False, ""),
        ("operator", 2, _STRING, False, ""),
        ("values", 3, _STRING, True, ""),
    ],
    f"{_META}.LabelSelector": [
        ("matchLabels", 1, _MESSAGE, True, "map:string"),
        ("matchExpressions", 2, _MESSAGE, True, f"{_META}.LabelSelectorRequirement"),
    ],
    f"{_CORE}.ConfigMap": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("data", 2, _MESSAGE, True, "map:string"),
        ("binaryData", 3, _MESSAGE, True, "map:bytes"),
        ("immutable", 4, _BOOL, False, ""),
    ],
    f"{_CORE}.Secret": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("data", 2, _MESSAGE, True, "map:bytes"),
        ("type", 3, _STRING, False, ""),
        ("stringData", 4, _MESSAGE, True, "map:string"),
        ("immutable", 5, _BOOL, False, ""),
    ],
    f"{_CORE}.NamespaceSpec": [("finalizers", 1, _STRING, True, "")],
    f"{_CORE}.NamespaceStatus": [("phase", 1, _STRING, False, "")],
    f"{_CORE}.Namespace": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("spec", 2, _MESSAGE, False, f"{_CORE}.NamespaceSpec"),
        ("status", 3, _MESSAGE, False, f"{_CORE}.NamespaceStatus"),
    ],
    f"{_CORE}.ObjectReference": [
        ("kind", 1, _STRING, False, ""),
        ("namespace", 2, _STRING, False, ""),
        ("name", 3, _STRING, False, ""),
        ("uid", 4, _STRING, False, ""),
        ("apiVersion", 5, _STRING, False, ""),
        ("resourceVersion", 6, _STRING, False, ""),
        ("fieldPath", 7, _STRING, False, ""),
    ],
    f"{_CORE}.LocalObjectReference": [("name", 1, _STRING, False, "")],
    f"{_CORE}.ScopedResourceSelectorRequirement": [
        ("scopeName", 1, _STRING, False, ""),
        ("operator", 2, _STRING, False, ""),
        ("values", 3, _STRING, True, ""),
    ],
    f"{_CORE}.ScopeSelector": [
        ("matchExpressions", 1, _MESSAGE, True, f"{_CORE}.ScopedResourceSelectorRequirement"),
    ],
    f"{_CORE}.ResourceQuotaSpec": [
        ("hard", 1, _MESSAGE, True, f"map:{_QUANTITY}"),
        ("scopes", 2, _STRING, True, ""),
        ("scopeSelector", 3, _MESSAGE, False, f"{_CORE}.ScopeSelector"),
    ],
    f"{_CORE}.ResourceQuotaStatus": [
        ("hard", 1, _MESSAGE, True, f"map:{_QUANTITY}"),
        ("used", 2, _MESSAGE, True, f"map:{_QUANTITY}"),
    ],
    f"{_CORE}.ResourceQuota": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("spec", 2, _MESSAGE, False, f"{_CORE}.ResourceQuotaSpec"),
        ("status", 3, _MESSAGE, False, f"{_CORE}.ResourceQuotaStatus"),
    ],
    f"{_CORE}.ServiceAccount": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("secrets", 2, _MESSAGE, True, f"{_CORE}.ObjectReference"),
        ("imagePullSecrets", 3, _MESSAGE, True, f"{_CORE}.LocalObjectReference"),
        ("automountServiceAccountToken", 4, _BOOL, False, ""),
    ],
    # `kubectl create token`: the TokenRequest subresource's body.
    f"{_AUTHENTICATION}.BoundObjectReference": [
        ("kind", 1, _STRING, False, ""),
        ("apiVersion", 2, _STRING, False, ""),
        ("name", 3, _STRING, False, ""),
        ("uid", 4, _STRING, False, ""),
    ],
    f"{_AUTHENTICATION}.TokenRequestSpec": [
        ("audiences", 1, _STRING, True, ""),
        ("boundObjectRef", 3, _MESSAGE, False, f"{_AUTHENTICATION}.BoundObjectReference"),
        ("expirationSeconds", 4, _INT64, False, ""),
    ],
    # Empty from kubectl, but Go writes it (it is no pointer).
    f"{_AUTHENTICATION}.TokenRequestStatus": [
        ("token", 1, _STRING, False, ""),
        ("expirationTimestamp", 2, _MESSAGE, False, f"{_META}.Time"),
    ],
    f"{_AUTHENTICATION}.TokenRequest": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("spec", 2, _MESSAGE, False, f"{_AUTHENTICATION}.TokenRequestSpec"),
        ("status", 3, _MESSAGE, False, f"{_AUTHENTICATION}.TokenRequestStatus"),
    ],
    # `kubectl create deployment NAME --image=I [--replicas=N] [--port=P] [-- COMMAND]`.
    f"{_CORE}.ContainerPort": [
        ("name", 1, _STRING, False, ""),
        ("hostPort", 2, _INT32, False, ""),
        ("containerPort", 3, _INT32, False, ""),
        ("protocol", 4, _STRING, False, ""),
        ("hostIP", 5, _STRING, False, ""),
    ],
    f"{_CORE}.ResourceRequirements": [
        ("limits", 1, _MESSAGE, True, f"map:{_QUANTITY}"),
        ("requests", 2, _MESSAGE, True, f"map:{_QUANTITY}"),
    ],
    f"{_CORE}.Container": [
        ("name", 1, _STRING, False, ""),
        ("image", 2, _STRING, False, ""),
        ("command", 3, _STRING, True, ""),
        ("args", 4, _STRING, True, ""),
        ("workingDir", 5, _STRING, False, ""),
        ("ports", 6, _MESSAGE, True, f"{_CORE}.ContainerPort"),
        ("resources", 8, _MESSAGE, False, f"{_CORE}.ResourceRequirements"),
        ("terminationMessagePath", 13, _STRING, False, ""),
        ("imagePullPolicy", 14, _STRING, False, ""),
        ("stdin", 16, _BOOL, False, ""),
        ("stdinOnce", 17, _BOOL, False, ""),
        ("tty", 18, _BOOL, False, ""),
        ("terminationMessagePolicy", 20, _STRING, False, ""),
    ],
    # Go writes every field that is not a pointer, empty or not: these are PodSpec's.
    f"{_CORE}.PodSpec": [
        ("containers", 2, _MESSAGE, True, f"{_CORE}.Container"),
        ("restartPolicy", 3, _STRING, False, ""),
        ("dnsPolicy", 6, _STRING, False, ""),
        ("serviceAccountName", 8, _STRING, False, ""),
        ("serviceAccount", 9, _STRING, False, ""),
        ("nodeName", 10, _STRING, False, ""),
        ("hostNetwork", 11, _BOOL, False, ""),
        ("hostPID", 12, _BOOL, False, ""),
        ("hostIPC", 13, _BOOL, False, ""),
        ("hostname", 16, _STRING, False, ""),
        ("subdomain", 17, _STRING, False, ""),
        ("schedulerName", 19, _STRING, False, ""),
        ("priorityClassName", 24, _STRING, False, ""),
    ],
    f"{_CORE}.PodTemplateSpec": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("spec", 2, _MESSAGE, False, f"{_CORE}.PodSpec"),
    ],
    f"{_APPS}.DeploymentStrategy": [("type", 1, _STRING, False, "")],
    f"{_APPS}.DeploymentSpec": [
        ("replicas", 1, _INT32, False, ""),
        ("selector", 2, _MESSAGE, False, f"{_META}.LabelSelector"),
        ("template", 3, _MESSAGE, False, f"{_CORE}.PodTemplateSpec"),
        ("strategy", 4, _MESSAGE, False, f"{_APPS}.DeploymentStrategy"),
        ("minReadySeconds", 5, _INT32, False, ""),
        ("revisionHistoryLimit", 6, _INT32, False, ""),
        ("paused", 7, _BOOL, False, ""),
        ("progressDeadlineSeconds", 9, _INT32, False, ""),
    ],
    # kubectl sends it empty (Go writes its counters as 0); a create ignores it.
    f"{_APPS}.DeploymentStatus": [
        ("observedGeneration", 1, _INT64, False, ""),
        ("replicas", 2, _INT32, False, ""),
        ("updatedReplicas", 3, _INT32, False, ""),
        ("availableReplicas", 4, _INT32, False, ""),
        ("unavailableReplicas", 5, _INT32, False, ""),
        ("readyReplicas", 7, _INT32, False, ""),
    ],
    f"{_APPS}.Deployment": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("spec", 2, _MESSAGE, False, f"{_APPS}.DeploymentSpec"),
        ("status", 3, _MESSAGE, False, f"{_APPS}.DeploymentStatus"),
    ],
    # `kubectl create role|clusterrole|rolebinding|clusterrolebinding`.
    f"{_RBAC}.PolicyRule": [
        ("verbs", 1, _STRING, True, ""),
        ("apiGroups", 2, _STRING, True, ""),
        ("resources", 3, _STRING, True, ""),
        ("resourceNames", 4, _STRING, True, ""),
        ("nonResourceURLs", 5, _STRING, True, ""),
    ],
    f"{_RBAC}.AggregationRule": [
        ("clusterRoleSelectors", 1, _MESSAGE, True, f"{_META}.LabelSelector"),
    ],
    f"{_RBAC}.Role": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("rules", 2, _MESSAGE, True, f"{_RBAC}.PolicyRule"),
    ],
    f"{_RBAC}.ClusterRole": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("rules", 2, _MESSAGE, True, f"{_RBAC}.PolicyRule"),
        ("aggregationRule", 3, _MESSAGE, False, f"{_RBAC}.AggregationRule"),
    ],
    f"{_RBAC}.Subject": [
        ("kind", 1, _STRING, False, ""),
        ("apiGroup", 2, _STRING, False, ""),
        ("name", 3, _STRING, False, ""),
        ("namespace", 4, _STRING, False, ""),
    ],
    f"{_RBAC}.RoleRef": [
        ("apiGroup", 1, _STRING, False, ""),
        ("kind", 2, _STRING, False, ""),
        ("name", 3, _STRING, False, ""),
    ],
    f"{_RBAC}.RoleBinding": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("subjects", 2, _MESSAGE, True, f"{_RBAC}.Subject"),
        ("roleRef", 3, _MESSAGE, False, f"{_RBAC}.RoleRef"),
    ],
    f"{_RBAC}.ClusterRoleBinding": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("subjects", 2, _MESSAGE, True, f"{_RBAC}.Subject"),
        ("roleRef", 3, _MESSAGE, False, f"{_RBAC}.RoleRef"),
    ],
    # `kubectl auth can-i`: a SelfSubjectAccessReview (its selectors left out).
    f"{_AUTHORIZATION}.ResourceAttributes": [
        ("namespace", 1, _STRING, False, ""),
        ("verb", 2, _STRING, False, ""),
        ("group", 3, _STRING, False, ""),
        ("version", 4, _STRING, False, ""),
        ("resource", 5, _STRING, False, ""),
        ("subresource", 6, _STRING, False, ""),
        ("name", 7, _STRING, False, ""),
    ],
    f"{_AUTHORIZATION}.NonResourceAttributes": [
        ("path", 1, _STRING, False, ""),
        ("verb", 2, _STRING, False, ""),
    ],
    f"{_AUTHORIZATION}.SelfSubjectAccessReviewSpec": [
        ("resourceAttributes", 1, _MESSAGE, False, f"{_AUTHORIZATION}.ResourceAttributes"),
        ("nonResourceAttributes", 2, _MESSAGE, False, f"{_AUTHORIZATION}.NonResourceAttributes"),
    ],
    # Empty from kubectl, but Go writes it (it is no pointer).
    f"{_AUTHORIZATION}.SubjectAccessReviewStatus": [
        ("allowed", 1, _BOOL, False, ""),
        ("reason", 2, _STRING, False, ""),
        ("evaluationError", 3, _STRING, False, ""),
        ("denied", 4, _BOOL, False, ""),
    ],
    f"{_AUTHORIZATION}.SelfSubjectAccessReview": [
        ("metadata", 1, _MESSAGE, False, f"{_META}.ObjectMeta"),
        ("spec", 2, _MESSAGE, False, f"{_AUTHORIZATION}.SelfSubjectAccessReviewSpec"),
        ("status", 3, _MESSAGE, False, f"{_AUTHORIZATION}.SubjectAccessReviewStatus"),
    ],
}

# (apiVersion, kind) of the envelope -> message name.
_KINDS = {
    ("v1", "ConfigMap"): f"{_CORE}.ConfigMap",
    ("v1", "Secret"): f"{_CORE}.Secret",
    ("v1", "Namespace"): f"{_CORE}.Namespace",
    ("v1", "ServiceAccount"): f"{_CORE}.ServiceAccount",
    ("v1", "ResourceQuota"): f"{_CORE}.ResourceQuota",
    ("authentication.k8s.io/v1", "TokenRequest"): f"{_AUTHENTICATION}.TokenRequest",
    ("apps/v1", "Deployment"): f"{_APPS}.Deployment",
    ("rbac.authorization.k8s.io/v1", "Role"): f"{_RBAC}.Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): f"{_RBAC}.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): f"{_RBAC}.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): f"{_RBAC}.ClusterRoleBinding",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): (
        f"{_AUTHORIZATION}.SelfSubjectAccessReview"
    ),
}

PROTOBUF_KINDS = frozenset(kind for _, kind in _KINDS)
"""The kinds whose protobuf bodies the sandbox reads (a 415 for another lists JSON and YAML)."""


# Fields that are pointers in the Go types: present only when set, false or 0 included
# (a name alone, or MESSAGE.name where another message's field of that name is no pointer).
_POINTERS = frozenset(
    {
        "automountServiceAccountToken",
        "blockOwnerDeletion",
        "controller",
        "deletionGracePeriodSeconds",
        "immutable",
        "DeploymentSpec.replicas",
        "DeploymentSpec.revisionHistoryLimit",
        "DeploymentSpec.progressDeadlineSeconds",
    }
)


def _entry_name(field: str) -> str:
    return field[0].upper() + field[1:] + "Entry"


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    """A descriptor pool holding the messages above (one file per proto package)."""
    pool = descriptor_pool.DescriptorPool()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for full_name, fields in _MESSAGES.items():
        package, _, name = full_name.rpartition(".")
        proto = files.get(package)
        if proto is None:
            proto = descriptor_pb2.FileDescriptorProto(
                name=f"{package.replace('.', '/')}/generated.proto",
                package=package,
                syntax="proto2",
            )
            files[package] = proto
        message = proto.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=_REPEATED if repeated else _OPTIONAL,
                json_name=field_name,
            )
            if type_name.startswith("map:"):
                entry = message.nested_type.add(name=_entry_name(field_name))
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=_STRING, label=_OPTIONAL)
                value = type_name.removeprefix("map:")
                if value in ("string", "bytes"):
                    value_type = _BYTES if value == "bytes" else _STRING
                    entry.field.add(name="value", number=2, type=value_type, label=_OPTIONAL)
                else:
                    entry.field.add(
                        name="value",
                        number=2,
                        type=_MESSAGE,
                        label=_OPTIONAL,
                        type_name=f".{value}",
                    )
                field.type_name = f".{full_name}.{_entry_name(field_name)}"
            elif type_name:
                field.type_name = f".{type_name}"
    # Packages that others depend on first: core uses meta and resource.
    files[_CORE].dependency.extend([files[_META].name, files[_RESOURCE].name])
    files[_AUTHENTICATION].dependency.append(files[_META].name)
    files[_AUTHORIZATION].dependency.append(files[_META].name)
    files[_RBAC].dependency.append(files[_META].name)
    files[_APPS].dependency.extend([files[_META].name, files[_CORE].name])
    for package in (
        _RUNTIME,
        _RESOURCE,
        _META,
        _CORE,
        _AUTHENTICATION,
        _AUTHORIZATION,
        _RBAC,
        _APPS,
    ):
        pool.Add(files[package])
    return pool


@cache
def _message_class(full_name: str) -> type[Message]:
    descriptor = _pool().FindMessageTypeByName(full_name)
    message_class: type[Message] = message_factory.GetMessageClass(descriptor)
    return message_class


def _time(message: Message) -> str:
    seconds = getattr(message, "seconds")  # noqa: B009 - a dynamic message's field
    return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)


def _repeated(field: Any) -> bool:
    """Whether a field is repeated (``is_repeated`` in newer protobuf, ``label`` before)."""
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == field.LABEL_REPEATED)


def _map_value(field: Any, value: Any) -> Any:
    """One map value in its JSON form: bytes as base64, a Quantity as its string."""
    if field.type == field.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if field.message_type is not None:
        if field.message_type.full_name == _QUANTITY:
            return getattr(value, "string")  # noqa: B009 - a dynamic message's field
        return _to_json(value)
    return value


def _to_json(message: Message) -> Object:
    """A decoded message as its JSON form: set fields only, maps as objects, bytes base64."""
    out: Object = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {key: _map_value(value_field, item) for key, item in value.items()}
        elif field.message_type is not None and field.message_type.full_name == f"{_META}.Time":
            if value.ListFields():  # the zero time is Go's null
                out[field.name] = _time(value)
        elif field.message_type is not None:
            if _repeated(field):
                out[field.name] = [_to_json(item) for item in value]
            else:
                out[field.name] = _to_json(value)
        elif _repeated(field):
            out[field.name] = list(value)
        elif (
            not value
            and field.name not in _POINTERS
            and f"{message.DESCRIPTOR.name}.{field.name}" not in _POINTERS
        ):
            continue  # Go writes every plain field; its JSON omits the empty ones
        elif field.type == field.TYPE_BYTES:
            out[field.name] = base64.b64encode(value).decode()
        else:
            out[field.name] = value
    return out


def _unsupported() -> ApiError:
    """415 for a protobuf body the sandbox cannot read: JSON and YAML are what it accepts."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml",
    )


def _has_unknown_fields(message: Message) -> bool:
    """Whether a decoded message (or one inside it) carries a field no definition here names.

    Such a field would be dropped without a word; the body is refused instead.
    """
    if len(unknown_fields.UnknownFieldSet(message)):
        return True
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            holds_messages = field.message_type.fields_by_name["value"].message_type is not None
            items = list(value.values()) if holds_messages else []
        elif _repeated(field):
            items = value
        else:
            items = [value]
        if any(_has_unknown_fields(item) for item in items):
            return True
    return False


def decode_object(raw: bytes) -> Object:
    """A protobuf request body as the JSON object it encodes.

    400 for a body that is not a Kubernetes protobuf envelope, 415 for a kind
    the sandbox has no message definition of, or a body with a field its
    definitions leave out (rather than drop it).
    """
    if not raw.startswith(_MAGIC):
        raise ApiError.bad_request(
            "provided data does not appear to be a protobuf message, expected prefix "
            f"[{' '.join(str(b) for b in _MAGIC)}]"
        )
    try:
        envelope = _message_class(f"{_RUNTIME}.Unknown").FromString(raw[len(_MAGIC) :])
        type_meta = _to_json(envelope).get("typeMeta", {})
        api_version = str(type_meta.get("apiVersion", ""))
        kind = str(type_meta.get("kind", ""))
        message_name = _KINDS.get((api_version, kind))
        if message_name is None:
            raise _unsupported()
        message = _message_class(message_name).FromString(getattr(envelope, "raw"))  # noqa: B009
        if _has_unknown_fields(message):
            raise _unsupported()
    except DecodeError as exc:
        raise ApiError.bad_request(f"error decoding request body: {exc}") from None
    obj = {"apiVersion": api_version, "kind": kind}
    obj.update(_to_json(message))
    return obj
