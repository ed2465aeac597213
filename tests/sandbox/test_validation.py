"""Validation and limits: what the sandbox refuses, in kube-apiserver's words.

Each case is a write the real server refuses, with the exact status, message
and causes it answers; then ``fieldValidation`` (Strict, Warn, Ignore) on
every write verb, the 3 MiB body limit, and the guarantee that everything the
controller renders still passes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from render.test_snapshots import CASES as RENDERED_SETS
from sandbox_fixtures import deployable, reference_manifests

from nublado.sandbox.quantity import parse_quantity
from nublado.sandbox.schema import node_for
from nublado.sandbox.server import Sandbox
from nublado.sandbox.validation import find_unknown_fields

NS = "v"
PODS = f"/api/v1/namespaces/{NS}/pods"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
SERVICES = f"/api/v1/namespaces/{NS}/services"
PVCS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
QUOTAS = f"/api/v1/namespaces/{NS}/resourcequotas"
POLICIES = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
INGRESSES = f"/apis/gafaelfawr.lsst.io/v1alpha1/namespaces/{NS}/gafaelfawringresses"
QUANTITY_FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
LABEL_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    r"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*"
    r"[a-z0-9])?)*')"
)
PORT_RANGE = "must be between 1 and 65535, inclusive"
LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QNAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
NODE_TERMS = (
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
)


def _pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    body["spec"].update(spec)
    return body


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **fields}


def _node_affinity(expressions: list[dict[str, Any]]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}


@dataclass
class Refused:
    """A create the real server refuses, and its exact answer."""

    path: str
    body: dict[str, Any]
    status: int
    message: str
    causes: list[tuple[str, str, str]] = field(default_factory=list)  # reason, field, message


def _invalid(kind: str, name: str, *causes: tuple[str, str, str]) -> str:
    texts = [f"{f}: {m}" for _, f, m in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return f'{kind} "{name}" is invalid: {summary}'


def _refused_invalid(
    path: str, body: dict[str, Any], kind: str, *causes: tuple[str, str, str]
) -> Refused:
    name = body["metadata"]["name"]
    return Refused(path, body, 422, _invalid(kind, name, *causes), list(causes))


REFUSED: dict[str, Refused] = {
    "pod-without-containers": _refused_invalid(
        PODS,
        _pod(containers=[]),
        "Pod",
        ("FieldValueRequired", "spec.containers", "Required value"),
    ),
    "pod-without-image": _refused_invalid(
        PODS,
        _pod(containers=[{"name": "c"}]),
        "Pod",
        ("FieldValueRequired", "spec.containers[0].image", "Required value"),
    ),
    "mount-of-missing-volume": _refused_invalid(
        PODS,
        _pod(containers=[_container(volumeMounts=[{"name": "data", "mountPath": "/d"}])]),
        "Pod",
        ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name", 'Not found: "data"'),
    ),
    "unparsable-quantity": Refused(
        PODS,
        _pod(containers=[_container(resources={"limits": {"memory": "lots"}})]),
        400,
        f'Pod in version "v1" cannot be handled as a Pod: {QUANTITY_FORMAT}',
    ),
    "requests-above-limits": _refused_invalid(
        PODS,
        _pod(
            containers=[
                _container(
                    resources={"requests": {"memory": "2048Mi"}, "limits": {"memory": "1Gi"}}
                )
            ]
        ),
        "Pod",
        (
            "FieldValueInvalid",
            "spec.containers[0].resources.requests",
            'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi',
        ),
    ),
    "invalid-label-value": _refused_invalid(
        PODS,
        {**_pod(), "metadata": {"name": "p", "labels": {"app": "not valid!"}}},
        "Pod",
        (
            "FieldValueInvalid",
            "metadata.labels",
            f'Invalid value: "not valid!": {LABEL_VALUE_RULE}',
        ),
    ),
    "service-port-70000": _refused_invalid(
        SERVICES,
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}},
        "Service",
        ("FieldValueInvalid", "spec.ports[0].port", f"Invalid value: 70000: {PORT_RANGE}"),
        ("FieldValueInvalid", "spec.ports[0].targetPort", f"Invalid value: 70000: {PORT_RANGE}"),
    ),
    "secret-not-base64": Refused(
        SECRETS,
        {"metadata": {"name": "s"}, "data": {"token": "not base64"}},
        400,
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3',
    ),
    "configmap-over-1-mib": _refused_invalid(
        CONFIGMAPS,
        {"metadata": {"name": "big"}, "data": {"a": "x" * (1024 * 1024), "b": "y"}},
        "ConfigMap",
        ("FieldValueTooLong", "[]", "Too long: must have at most 1048576 bytes"),
    ),
    "secret-over-1-mib": _refused_invalid(
        SECRETS,
        {
            "metadata": {"name": "big"},
            "data": {"a": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()},
        },
        "Secret",
        ("FieldValueTooLong", "data", "Too long: must have at most 1048576 bytes"),
    ),
    "several-causes": _refused_invalid(
        PODS,
        _pod(containers=[{"name": "a"}, {"name": "a", "image": "busybox"}]),
        "Pod",
        ("FieldValueRequired", "spec.containers[0].image", "Required value"),
        ("FieldValueDuplicate", "spec.containers[1].name", 'Duplicate value: "a"'),
    ),
    "init-container-name-taken": _refused_invalid(
        PODS,
        _pod(initContainers=[_container()]),
        "Pod",
        ("FieldValueDuplicate", "spec.initContainers[0].name", 'Duplicate value: "c"'),
    ),
    "string-for-an-int": Refused(
        PODS,
        _pod(containers=[_container(ports=[{"containerPort": "80"}])]),
        400,
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into '
        "Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
    ),
    "object-for-a-list": Refused(
        PODS,
        _pod(containers=[_container(ports={"containerPort": 80})]),
        400,
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal object into '
        "Go struct field Container.spec.containers.ports of type []v1.ContainerPort",
    ),
    "restart-policy": _refused_invalid(
        PODS,
        _pod(restartPolicy="Sometimes"),
        "Pod",
        (
            "FieldValueNotSupported",
            "spec.restartPolicy",
            'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        ),
    ),
    "container-port-range": _refused_invalid(
        PODS,
        _pod(containers=[_container(ports=[{"containerPort": 70000, "protocol": "XTP"}])]),
        "Pod",
        (
            "FieldValueInvalid",
            "spec.containers[0].ports[0].containerPort",
            f"Invalid value: 70000: {PORT_RANGE}",
        ),
        (
            "FieldValueNotSupported",
            "spec.containers[0].ports[0].protocol",
            'Unsupported value: "XTP": supported values: "SCTP", "TCP", "UDP"',
        ),
    ),
    "env-name": _refused_invalid(
        PODS,
        _pod(containers=[_container(env=[{"name": "A=B", "value": "x"}])]),
        "Pod",
        (
            "FieldValueInvalid",
            "spec.containers[0].env[0].name",
            'Invalid value: "A=B": a valid environment variable name must consist only of '
            "printable ASCII characters other than '='",
        ),
    ),
    "duplicate-volume": _refused_invalid(
        PODS,
        _pod(volumes=[{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}]),
        "Pod",
        ("FieldValueDuplicate", "spec.volumes[1].name", 'Duplicate value: "d"'),
    ),
    "volume-without-source": _refused_invalid(
        PODS,
        _pod(volumes=[{"name": "d"}]),
        "Pod",
        ("FieldValueRequired", "spec.volumes[0]", "Required value: must specify a volume type"),
    ),
    "run-as-negative-user": _refused_invalid(
        PODS,
        _pod(securityContext={"runAsUser": -1}),
        "Pod",
        (
            "FieldValueInvalid",
            "spec.securityContext.runAsUser",
            "Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ),
    ),
    "pod-name": _refused_invalid(
        PODS,
        _pod(name="Bad_Name"),
        "Pod",
        ("FieldValueInvalid", "metadata.name", f'Invalid value: "Bad_Name": {SUBDOMAIN_RULE}'),
    ),
    "annotation-key": _refused_invalid(
        CONFIGMAPS,
        {"metadata": {"name": "c", "annotations": {"a/b/c": "x"}}},
        "ConfigMap",
        (
            "FieldValueInvalid",
            "metadata.annotations",
            'Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')",
        ),
    ),
    "annotations-over-256-kib": _refused_invalid(
        CONFIGMAPS,
        {"metadata": {"name": "c", "annotations": {"a": "x" * (256 * 1024)}}},
        "ConfigMap",
        ("FieldValueTooLong", "metadata.annotations", "Too long: must have at most 262144 bytes"),
    ),
    "configmap-key": _refused_invalid(
        CONFIGMAPS,
        {"metadata": {"name": "c"}, "data": {"a b": "x"}, "binaryData": {"a b": "eA=="}},
        "ConfigMap",
        (
            "FieldValueInvalid",
            "data[a b]",
            'Invalid value: "a b": a valid config key must consist of alphanumeric characters, '
            "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
            "validation is '[-._a-zA-Z0-9]+')",
        ),
        (
            "FieldValueInvalid",
            "data[a b]",
            'Invalid value: "a b": duplicate of key present in binaryData',
        ),
        (
            "FieldValueInvalid",
            "binaryData[a b]",
            'Invalid value: "a b": a valid config key must consist of alphanumeric characters, '
            "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
            "validation is '[-._a-zA-Z0-9]+')",
        ),
        (
            "FieldValueInvalid",
            "binaryData[a b]",
            'Invalid value: "a b": duplicate of key present in data',
        ),
    ),
    "service-duplicate-port": _refused_invalid(
        SERVICES,
        {
            "metadata": {"name": "s"},
            "spec": {
                "ports": [
                    {"name": "a", "port": 80, "targetPort": 8080},
                    {"name": "a", "port": 80, "targetPort": 8080, "protocol": "UDP"},
                ],
                "type": "Internal",
            },
        },
        "Service",
        ("FieldValueDuplicate", "spec.ports[1].name", 'Duplicate value: "a"'),
        (
            "FieldValueNotSupported",
            "spec.type",
            'Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", '
            '"LoadBalancer", "NodePort"',
        ),
    ),
    "service-name": _refused_invalid(
        SERVICES,
        {"metadata": {"name": "1lab"}, "spec": {"ports": [{"port": 80}]}},
        "Service",
        (
            "FieldValueInvalid",
            "metadata.name",
            'Invalid value: "1lab": a DNS-1035 label must consist of lower case alphanumeric '
            "characters or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
            "is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
    ),
    "network-policy": _refused_invalid(
        POLICIES,
        {
            "metadata": {"name": "n"},
            "spec": {
                "podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
                "ingress": [{"from": [{}], "ports": [{"port": 0}]}],
                "policyTypes": ["Inbound"],
            },
        },
        "NetworkPolicy.networking.k8s.io",
        (
            "FieldValueRequired",
            "spec.podSelector.matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
        ("FieldValueInvalid", "spec.ingress[0].ports[0].port", f"Invalid value: 0: {PORT_RANGE}"),
        ("FieldValueRequired", "spec.ingress[0].from[0]", "Required value: must specify a peer"),
        (
            "FieldValueNotSupported",
            "spec.policyTypes[0]",
            'Unsupported value: "Inbound": supported values: "Ingress", "Egress"',
        ),
    ),
    "resource-quota": _refused_invalid(
        QUOTAS,
        {
            "metadata": {"name": "q"},
            "spec": {"hard": {"memory": "-1Gi", "gpus": "1"}, "scopes": ["Sometimes"]},
        },
        "ResourceQuota",
        (
            "FieldValueInvalid",
            "spec.hard[memory]",
            'Invalid value: "-1Gi": must be greater than or equal to 0',
        ),
        (
            "FieldValueInvalid",
            "spec.hard[gpus]",
            'Invalid value: "gpus": must be a standard resource for quota',
        ),
        (
            "FieldValueInvalid",
            "spec.scopes",
            'Invalid value: []core.ResourceQuotaScope{"Sometimes"}: unsupported scope',
        ),
    ),
    "pvc": _refused_invalid(
        PVCS,
        {"metadata": {"name": "c"}, "spec": {"resources": {"requests": {}}}},
        "PersistentVolumeClaim",
        (
            "FieldValueRequired",
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        ),
        ("FieldValueRequired", "spec.resources[storage]", "Required value"),
    ),
    "pvc-access-mode": _refused_invalid(
        PVCS,
        {
            "metadata": {"name": "c"},
            "spec": {
                "accessModes": ["ReadWriteSometimes"],
                "resources": {"requests": {"storage": "0"}},
            },
        },
        "PersistentVolumeClaim",
        (
            "FieldValueNotSupported",
            "spec.accessModes",
            'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
            '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
        ),
        (
            "FieldValueInvalid",
            "spec.resources[storage]",
            'Invalid value: "0": must be greater than zero',
        ),
    ),
    "namespace-name": _refused_invalid(
        "/api/v1/namespaces",
        {"metadata": {"name": "Users"}},
        "Namespace",
        (
            "FieldValueInvalid",
            "metadata.name",
            'Invalid value: "Users": a lowercase RFC 1123 label must consist of lower case '
            "alphanumeric characters or '-', and must start and end with an alphanumeric "
            "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
    ),
    **{
        name: _refused_invalid(PODS, body, "Pod", cause)
        for name, (body, cause) in {
            "toleration-operator-bogus": (
                _pod(tolerations=[{"key": "k", "operator": "Bogus"}]),
                (
                    "FieldValueNotSupported",
                    "spec.tolerations[0].operator",
                    'Unsupported value: "Bogus": supported values: "Equal", "Exists"',
                ),
            ),
            "toleration-effect-nope": (
                _pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "Nope"}]),
                (
                    "FieldValueNotSupported",
                    "spec.tolerations[0].effect",
                    'Unsupported value: "Nope": supported values: "NoSchedule", '
                    '"PreferNoSchedule", "NoExecute"',
                ),
            ),
            "toleration-exists-with-value": (
                _pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
                (
                    "FieldValueInvalid",
                    "spec.tolerations[0].operator",
                    "Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
                ),
            ),
            "toleration-seconds-without-no-execute": (
                _pod(tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 60}]),
                (
                    "FieldValueInvalid",
                    "spec.tolerations[0].effect",
                    "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
                    "`tolerationSeconds` is set",
                ),
            ),
            "node-affinity-operator-bogus": (
                _pod(affinity=_node_affinity([{"key": "zone", "operator": "Bogus"}])),
                (
                    "FieldValueInvalid",
                    f"{NODE_TERMS}[0].matchExpressions[0].operator",
                    'Invalid value: "Bogus": not a valid selector operator',
                ),
            ),
            "node-affinity-no-terms": (
                _pod(
                    affinity={
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": []
                            }
                        }
                    }
                ),
                (
                    "FieldValueRequired",
                    NODE_TERMS,
                    "Required value: must have at least one node selector term",
                ),
            ),
            "node-affinity-in-without-values": (
                _pod(affinity=_node_affinity([{"key": "zone", "operator": "In"}])),
                (
                    "FieldValueRequired",
                    f"{NODE_TERMS}[0].matchExpressions[0].values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ),
            ),
            "config-map-item-path-backsteps": (
                _pod(
                    volumes=[
                        {
                            "name": "v",
                            "configMap": {"name": "cm", "items": [{"key": "a", "path": "../b"}]},
                        }
                    ]
                ),
                (
                    "FieldValueInvalid",
                    "spec.volumes[0].configMap.items[0].path",
                    "Invalid value: \"../b\": must not contain '..'",
                ),
            ),
            "secret-default-mode-4096": (
                _pod(volumes=[{"name": "v", "secret": {"secretName": "s", "defaultMode": 4096}}]),
                (
                    "FieldValueInvalid",
                    "spec.volumes[0].secret.defaultMode",
                    "Invalid value: 4096: must be a number between 0 and 0777 (octal), both "
                    "inclusive",
                ),
            ),
            "empty-dir-negative-size-limit": (
                _pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "-1"}}]),
                (
                    "FieldValueForbidden",
                    "spec.volumes[0].emptyDir.sizeLimit",
                    "Forbidden: SizeLimit field must be a valid resource quantity",
                ),
            ),
            "downward-api-field-bogus": (
                _pod(
                    volumes=[
                        {
                            "name": "v",
                            "downwardAPI": {
                                "items": [{"path": "f", "fieldRef": {"fieldPath": "spec.bogus"}}]
                            },
                        }
                    ]
                ),
                (
                    "FieldValueInvalid",
                    "spec.volumes[0].downwardAPI.fieldRef.fieldPath",
                    'Invalid value: "spec.bogus": error converting fieldPath: field label not '
                    "supported: spec.bogus",
                ),
            ),
            "downward-api-resource-bogus": (
                _pod(
                    volumes=[
                        {
                            "name": "v",
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "f",
                                        "resourceFieldRef": {
                                            "containerName": "c",
                                            "resource": "limits.bogus",
                                        },
                                    }
                                ]
                            },
                        }
                    ]
                ),
                (
                    "FieldValueNotSupported",
                    "spec.volumes[0].downwardAPI.resourceFieldRef.resource",
                    'Unsupported value: "limits.bogus": supported values: "limits.cpu", '
                    '"limits.ephemeral-storage", "limits.memory", "requests.cpu", '
                    '"requests.ephemeral-storage", "requests.memory"',
                ),
            ),
            "env-two-sources": (
                _pod(
                    containers=[
                        _container(
                            env=[
                                {
                                    "name": "A",
                                    "valueFrom": {
                                        "configMapKeyRef": {"name": "cm", "key": "a"},
                                        "secretKeyRef": {"name": "s", "key": "a"},
                                    },
                                }
                            ]
                        )
                    ]
                ),
                (
                    "FieldValueInvalid",
                    "spec.containers[0].env[0].valueFrom",
                    'Invalid value: "": may not have more than one field specified at a time',
                ),
            ),
            "env-value-and-value-from": (
                _pod(
                    containers=[
                        _container(
                            env=[
                                {
                                    "name": "A",
                                    "value": "x",
                                    "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}},
                                }
                            ]
                        )
                    ]
                ),
                (
                    "FieldValueInvalid",
                    "spec.containers[0].env[0].valueFrom",
                    'Invalid value: "": may not be specified when `value` is not empty',
                ),
            ),
            "env-field-ref-bogus": (
                _pod(
                    containers=[
                        _container(
                            env=[
                                {
                                    "name": "A",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.bogus"}},
                                }
                            ]
                        )
                    ]
                ),
                (
                    "FieldValueInvalid",
                    "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                    'Invalid value: "metadata.bogus": error converting fieldPath: field label '
                    "not supported: metadata.bogus",
                ),
            ),
            "image-with-leading-space": (
                _pod(containers=[_container(image=" busybox")]),
                (
                    "FieldValueInvalid",
                    "spec.containers[0].image",
                    'Invalid value: " busybox": must not have leading or trailing whitespace',
                ),
            ),
            "probe-without-handler": (
                _pod(containers=[_container(livenessProbe={"periodSeconds": 5})]),
                (
                    "FieldValueRequired",
                    "spec.containers[0].livenessProbe",
                    "Required value: must specify a handler type",
                ),
            ),
            "active-deadline-zero": (
                _pod(activeDeadlineSeconds=0),
                (
                    "FieldValueInvalid",
                    "spec.activeDeadlineSeconds",
                    "Invalid value: 0: must be between 1 and 2147483647, inclusive",
                ),
            ),
            "hostname-not-a-label": (
                _pod(hostname="Bad_Host"),
                ("FieldValueInvalid", "spec.hostname", f'Invalid value: "Bad_Host": {LABEL_RULE}'),
            ),
            "host-path-type-bogus": (
                _pod(volumes=[{"name": "v", "hostPath": {"path": "/d", "type": "Bogus"}}]),
                (
                    "FieldValueNotSupported",
                    "spec.volumes[0].hostPath.type",
                    'Unsupported value: "Bogus": supported values: "", "BlockDevice", '
                    '"CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", '
                    '"Socket"',
                ),
            ),
            "init-container-restart-never": (
                _pod(initContainers=[_container(name="i", restartPolicy="Never")]),
                (
                    "FieldValueNotSupported",
                    "spec.initContainers[0].restartPolicy",
                    'Unsupported value: "Never": supported values: "Always"',
                ),
            ),
            "dns-none-without-config": (
                _pod(dnsPolicy="None"),
                (
                    "FieldValueRequired",
                    "spec.dnsConfig",
                    "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                ),
            ),
            "fs-group-change-policy-bogus": (
                _pod(securityContext={"fsGroupChangePolicy": "Bogus"}),
                (
                    "FieldValueNotSupported",
                    "spec.securityContext.fsGroupChangePolicy",
                    'Unsupported value: "Bogus": supported values: "Always", "OnRootMismatch"',
                ),
            ),
            "hugepages-without-cpu-or-memory": (
                _pod(containers=[_container(resources={"limits": {"hugepages-2Mi": "2Mi"}})]),
                (
                    "FieldValueForbidden",
                    "spec.containers[0].resources",
                    "Forbidden: HugePages require cpu or memory",
                ),
            ),
            "owner-reference-without-uid": (
                {
                    **_pod(),
                    "metadata": {
                        "name": "p",
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": ""}
                        ],
                    },
                },
                (
                    "FieldValueInvalid",
                    "metadata.ownerReferences.uid",
                    'Invalid value: "": uid must not be empty',
                ),
            ),
            "two-controller-owner-references": (
                {
                    **_pod(),
                    "metadata": {
                        "name": "p",
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "ConfigMap",
                                "name": "a",
                                "uid": "1",
                                "controller": True,
                            },
                            {
                                "apiVersion": "v1",
                                "kind": "ConfigMap",
                                "name": "b",
                                "uid": "2",
                                "controller": True,
                            },
                        ],
                    },
                },
                (
                    "FieldValueInvalid",
                    "metadata.ownerReferences",
                    "Invalid value: []v1.OwnerReference{"
                    'v1.OwnerReference{APIVersion:"v1", Kind:"ConfigMap", Name:"a", UID:"1", '
                    "Controller:(*bool)(0xc000000000), BlockOwnerDeletion:(*bool)(nil)}, "
                    'v1.OwnerReference{APIVersion:"v1", Kind:"ConfigMap", Name:"b", UID:"2", '
                    "Controller:(*bool)(0xc000000000), BlockOwnerDeletion:(*bool)(nil)}}: "
                    'Only one reference can have Controller set to true. Found "true" in '
                    "references for ConfigMap/a and ConfigMap/b",
                ),
            ),
        }.items()
    },
    **{
        name: _refused_invalid(
            SERVICES, {"metadata": {"name": "s"}, "spec": spec}, "Service", cause
        )
        for name, (spec, cause) in {
            "service-cluster-ip-not-an-ip": (
                {"clusterIP": "1.2.3", "ports": [{"port": 80}]},
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    'Invalid value: "1.2.3": must be a valid IP address, (e.g. 10.9.8.7 or '
                    "2001:db8::ffff)",
                ),
            ),
            "service-cluster-ip-outside-range": (
                {"clusterIP": "1.2.3.4", "ports": [{"port": 80}]},
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs",
                    'Invalid value: []string{"1.2.3.4"}: failed to allocate IP 1.2.3.4: the '
                    "provided IP (1.2.3.4) is not in the valid range. The range of valid IPs is "
                    "10.96.0.0/12",
                ),
            ),
            "service-node-port-on-cluster-ip": (
                {"ports": [{"port": 80, "nodePort": 30080}]},
                (
                    "FieldValueForbidden",
                    "spec.ports[0].nodePort",
                    "Forbidden: may not be used when `type` is 'ClusterIP'",
                ),
            ),
            "external-name-service-without-name": (
                {"type": "ExternalName"},
                ("FieldValueRequired", "spec.externalName", "Required value"),
            ),
            "service-app-protocol-not-qualified": (
                {"ports": [{"port": 80, "appProtocol": "a b"}]},
                (
                    "FieldValueInvalid",
                    "spec.ports[0].appProtocol",
                    f'Invalid value: "a b": name part {QNAME_RULE}',
                ),
            ),
        }.items()
    },
    "job-restart-policy": _refused_invalid(
        JOBS,
        {
            "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [_container()]}}},
        },
        "Job.batch",
        (
            "FieldValueNotSupported",
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_the_real_answer(http: httpx.Client, case: str) -> None:
    refused = REFUSED[case]
    response = http.post(refused.path, json=refused.body)
    body = response.json()
    assert (response.status_code, body["message"]) == (refused.status, refused.message)
    assert body["code"] == refused.status
    if refused.status == 400:
        assert body["reason"] == "BadRequest"
        assert "details" not in body
        return
    assert body["reason"] == "Invalid"
    causes = [(c["reason"], c["field"], c["message"]) for c in body["details"]["causes"]]
    assert causes == refused.causes
    assert body["details"]["name"] == refused.body["metadata"]["name"]
    # Nothing was stored.
    assert http.get(f"{refused.path}/{refused.body['metadata']['name']}").status_code == 404


def _body_of_size(size: int) -> bytes:
    """A ConfigMap body of exactly ``size`` bytes."""
    empty = json.dumps({"metadata": {"name": "huge"}, "data": {"a": ""}}).encode()
    return json.dumps(
        {"metadata": {"name": "huge"}, "data": {"a": "x" * (size - len(empty))}}
    ).encode()


def test_body_past_3_mib_is_413(http: httpx.Client) -> None:
    json_headers = {"content-type": "application/json"}
    at_limit = http.post(CONFIGMAPS, content=_body_of_size(3 * 1024 * 1024), headers=json_headers)
    assert at_limit.status_code == 422  # read and decoded: only the 1 MiB rule refuses it
    big = _body_of_size(3 * 1024 * 1024 + 1)
    response = http.post(CONFIGMAPS, content=big, headers=json_headers)
    assert response.status_code == 413
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Request entity too large: limit is 3145728",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    }
    patch = http.patch(
        f"{CONFIGMAPS}/huge",
        content=big,
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patch.status_code == 413


def test_update_is_validated_like_create(http: httpx.Client) -> None:
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "c"}, "data": {"a": "1"}})
    assert created.status_code == 201
    body = created.json()
    body["metadata"]["labels"] = {"app": "not valid!"}
    replaced = http.put(f"{CONFIGMAPS}/c", json=body)
    assert replaced.status_code == 422
    assert replaced.json()["message"] == _invalid(
        "ConfigMap",
        "c",
        ("", "metadata.labels", f'Invalid value: "not valid!": {LABEL_VALUE_RULE}'),
    )
    patched = http.patch(
        f"{CONFIGMAPS}/c",
        content=json.dumps({"data": {"bad key": "x"}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 422
    assert patched.json()["details"]["causes"][0]["field"] == "data[bad key]"


def test_server_side_apply_is_validated(http: httpx.Client) -> None:
    pod = _pod(containers=[{"name": "c"}])
    response = http.patch(
        f"{PODS}/p",
        content=json.dumps(pod),
        params={"fieldManager": "test"},
        headers={"content-type": "application/apply-patch+yaml"},
    )
    assert response.status_code == 422
    assert response.json()["message"] == _invalid(
        "Pod", "p", ("", "spec.containers[0].image", "Required value")
    )


# -- fieldValidation -----------------------------------------------------------

UNKNOWN_STRICT = (
    'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
    'unknown field "metadata.colour", unknown field "spec"'
)


def _write(http: httpx.Client, verb: str, validation: str) -> httpx.Response:
    """One write carrying the unknown fields ``metadata.colour`` and ``spec``."""
    query = {"fieldValidation": validation} if validation else {}
    body = {"metadata": {"name": "c", "colour": "blue"}, "data": {"a": "1"}, "spec": {"x": 1}}
    if verb == "POST":
        return http.post(CONFIGMAPS, json=body, params=query)
    assert http.post(CONFIGMAPS, json={"metadata": {"name": "c"}}).status_code == 201
    if verb == "PUT":
        return http.put(f"{CONFIGMAPS}/c", json=body, params=query)
    if verb == "merge-patch":
        content = json.dumps(body)
        content_type = "application/merge-patch+json"
    else:
        operations = [
            {"op": "add", "path": "/metadata/colour", "value": "blue"},
            {"op": "add", "path": "/data", "value": {"a": "1"}},
            {"op": "add", "path": "/spec", "value": {"x": 1}},
        ]
        content = json.dumps(operations)
        content_type = "application/json-patch+json"
    return http.patch(
        f"{CONFIGMAPS}/c", content=content, params=query, headers={"content-type": content_type}
    )


VERBS = ["POST", "PUT", "merge-patch", "json-patch"]


@pytest.mark.parametrize("verb", ["POST", "PUT"])
def test_strict_refuses_unknown_fields(http: httpx.Client, verb: str) -> None:
    response = _write(http, verb, "Strict")
    assert response.status_code == 400
    assert response.json()["message"] == UNKNOWN_STRICT
    assert response.json()["reason"] == "BadRequest"


@pytest.mark.parametrize("verb", ["POST", "PUT"])
def test_strict_refuses_duplicate_fields(http: httpx.Client, verb: str) -> None:
    body = b'{"metadata": {"name": "c", "name": "c"}, "dta": {}, "data": {"a": "1"}}'
    headers = {"content-type": "application/json"}
    query = {"fieldValidation": "Strict"}
    if verb == "POST":
        response = http.post(CONFIGMAPS, content=body, headers=headers, params=query)
    else:
        assert http.post(CONFIGMAPS, json={"metadata": {"name": "c"}}).status_code == 201
        response = http.put(f"{CONFIGMAPS}/c", content=body, headers=headers, params=query)
    assert response.status_code == 400
    assert response.json()["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'duplicate field "metadata.name", unknown field "dta"'
    )
    # Without Strict, the last value wins, as in Go's decoder.
    lenient = http.post(CONFIGMAPS, content=body.replace(b'"c"}', b'"d"}'), headers=headers)
    assert lenient.status_code == 201
    assert lenient.json()["metadata"]["name"] == "d"


@pytest.mark.parametrize("verb", ["merge-patch", "json-patch"])
def test_strict_refuses_unknown_fields_in_a_patch_as_invalid_patch(
    http: httpx.Client, verb: str
) -> None:
    # The patch handler wraps the strict error in a 422 on the field "patch",
    # the patched object (as the sandbox writes it) being the bad value.
    response = _write(http, verb, "Strict")
    assert response.status_code == 422
    body = response.json()
    strict = 'strict decoding error: unknown field "metadata.colour", unknown field "spec"'
    assert body["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert body["message"].endswith(f'}}": {strict}')
    [cause] = body["details"]["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "patch")
    assert cause["message"].endswith(strict)
    assert set(body["details"]) == {"causes"}
    assert "colour" not in http.get(f"{CONFIGMAPS}/c").json()["metadata"]


def test_wrong_type_in_a_patch_is_invalid_patch(http: httpx.Client) -> None:
    assert http.post(CONFIGMAPS, json={"metadata": {"name": "c"}}).status_code == 201
    response = http.patch(
        f"{CONFIGMAPS}/c",
        content=json.dumps({"data": {"a": 1}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 422
    assert response.json()["message"].endswith(
        "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
    )


@pytest.mark.parametrize("validation", ["Warn", ""])
@pytest.mark.parametrize("verb", VERBS)
def test_warn_drops_unknown_fields_with_a_warning(
    http: httpx.Client, verb: str, validation: str
) -> None:
    response = _write(http, verb, validation)
    assert response.status_code in (200, 201)
    assert response.headers.get_list("warning") == [
        '299 - "unknown field \\"metadata.colour\\""',
        '299 - "unknown field \\"spec\\""',
    ]
    stored = http.get(f"{CONFIGMAPS}/c").json()
    assert "spec" not in stored and "colour" not in stored["metadata"]
    assert stored["data"] == {"a": "1"}


@pytest.mark.parametrize("verb", VERBS)
def test_ignore_drops_unknown_fields_silently(http: httpx.Client, verb: str) -> None:
    response = _write(http, verb, "Ignore")
    assert response.status_code in (200, 201)
    assert "warning" not in response.headers
    stored = http.get(f"{CONFIGMAPS}/c").json()
    assert "spec" not in stored and "colour" not in stored["metadata"]


def _gafaelfawr_ingress(**config: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gafaelfawr.lsst.io/v1alpha1",
        "kind": "GafaelfawrIngress",
        "metadata": {"name": "gi"},
        "config": {"baseUrl": "https://example.com", "scopes": {"all": ["read:image"]}, **config},
        "template": {
            "metadata": {"name": "gi"},
            "spec": {
                "rules": [
                    {
                        "host": "example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "s", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
    }


def test_custom_resource_unknown_fields_follow_field_validation(http: httpx.Client) -> None:
    body = _gafaelfawr_ingress(colour="blue")
    strict = http.post(INGRESSES, json=body, params={"fieldValidation": "Strict"})
    assert strict.status_code == 400
    assert strict.json()["message"] == (
        'GafaelfawrIngress in version "v1alpha1" cannot be handled as a GafaelfawrIngress: '
        'strict decoding error: unknown field "config.colour"'
    )
    warned = http.post(INGRESSES, json=body)
    assert warned.status_code == 201, warned.text
    assert warned.headers.get_list("warning") == ['299 - "unknown field \\"config.colour\\""']
    assert "colour" not in warned.json()["config"]


def test_custom_resource_schema_types_required_enums_and_patterns(http: httpx.Client) -> None:
    body = _gafaelfawr_ingress(allowCookies="yes", authType="digest")
    body["config"]["baseUrl"] = "http://example.com"
    del body["template"]
    response = http.post(INGRESSES, json=body)
    assert response.status_code == 422
    causes = [(c["reason"], c["field"], c["message"]) for c in response.json()["details"]["causes"]]
    assert causes == [
        ("FieldValueRequired", "template", "Required value"),
        (
            "FieldValueInvalid",
            "config.baseUrl",
            'Invalid value: "http://example.com": config.baseUrl in body should match '
            "'^https://[a-z.-]+'",
        ),
        (
            "FieldValueTypeInvalid",
            "config.allowCookies",
            'Invalid value: "string": config.allowCookies in body must be of type boolean: '
            '"string"',
        ),
        (
            "FieldValueNotSupported",
            "config.authType",
            'Unsupported value: "digest": supported values: "basic", "bearer"',
        ),
    ]


# -- everything the controller sends still passes ------------------------------


def _create_all(http: httpx.Client, manifests: list[dict[str, Any]]) -> None:
    """Create each manifest with Strict field validation: no error, no warning."""
    order = ["Namespace", "PersistentVolumeClaim", "ConfigMap", "Secret", "ResourceQuota"]
    ranked = sorted(
        manifests, key=lambda m: order.index(m["kind"]) if m["kind"] in order else len(order)
    )
    for manifest in ranked:
        if (manifest["kind"], manifest["metadata"]["name"]) == ("ServiceAccount", "default"):
            continue  # the reference sets list the one the cluster creates itself
        namespace = manifest["metadata"].get("namespace")
        if namespace:
            http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
        api_version = manifest["apiVersion"]
        prefix = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        plural = {
            "NetworkPolicy": "networkpolicies",
            "ResourceQuota": "resourcequotas",
            "PersistentVolumeClaim": "persistentvolumeclaims",
            "GafaelfawrIngress": "gafaelfawringresses",
        }.get(manifest["kind"], manifest["kind"].lower() + "s")
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
        response = http.post(path, json=manifest, params={"fieldValidation": "Strict"})
        assert response.status_code == 201, (manifest["kind"], response.text)
        assert "warning" not in response.headers, (manifest["kind"], response.headers)


@pytest.mark.parametrize("name", ["lab", "fileserver", "fsadmin", "prepull"])
def test_reference_sets_pass_validation(sandbox: Sandbox, name: str) -> None:
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=30) as http:
        _create_all(http, reference_manifests(name))


@pytest.mark.parametrize("case", sorted(RENDERED_SETS))
def test_rendered_sets_pass_validation(sandbox: Sandbox, case: str) -> None:
    assert sandbox.url is not None
    manifests = deployable(json.loads(json.dumps(RENDERED_SETS[case]())))
    with httpx.Client(base_url=sandbox.url, timeout=30) as http:
        _create_all(http, manifests)


# -- the pieces other sandbox modules reuse ------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.5", "1500m"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("100m", "100m"),
        ("1e3", "1e3"),
        ("0.0000000001", "1n"),
        ("-1Gi", "-1Gi"),
        ("0", "0"),
    ],
)
def test_quantities_print_in_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_quantity(text)) == canonical


def test_unknown_field_walker_reports_and_prunes() -> None:
    node = node_for("v1", "Pod")
    assert node is not None
    pod = _pod(containers=[_container(limits={"cpu": "1"})], colour="blue")
    assert find_unknown_fields(node, pod) == ["spec.containers[0].limits", "spec.colour"]
    assert "colour" in pod["spec"]
    assert find_unknown_fields(node, pod, prune=True) == [
        "spec.containers[0].limits",
        "spec.colour",
    ]
    assert find_unknown_fields(node, pod) == []
    custom = node_for("gafaelfawr.lsst.io/v1alpha1", "GafaelfawrIngress")
    assert custom is not None
    assert find_unknown_fields(custom, _gafaelfawr_ingress(colour="blue")) == ["config.colour"]


def test_generate_name_is_validated(http: httpx.Client) -> None:
    response = http.post(CONFIGMAPS, json={"metadata": {"generateName": "Lab-"}})
    assert response.status_code == 422
    causes = [(c["field"], c["message"]) for c in response.json()["details"]["causes"]]
    assert causes[0] == ("metadata.generateName", f'Invalid value: "Lab-": {SUBDOMAIN_RULE}')
    assert http.post(CONFIGMAPS, json={"metadata": {"generateName": "lab-"}}).status_code == 201


# What a create answers when the name is taken: everything else first, then 409.


def _existing_config_map(http: httpx.Client) -> None:
    response = http.post(CONFIGMAPS, json={"metadata": {"name": "taken"}, "data": {"a": "1"}})
    assert response.status_code == 201


def test_create_of_a_taken_name_decodes_before_answering_409(http: httpx.Client) -> None:
    _existing_config_map(http)

    response = http.post(
        CONFIGMAPS,
        params={"fieldValidation": "Strict"},
        json={"metadata": {"name": "taken"}, "bogus": 1},
    )

    assert response.status_code == 400, response.text
    assert response.json()["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "bogus"'
    )


def test_create_of_a_taken_name_validates_before_answering_409(http: httpx.Client) -> None:
    _existing_config_map(http)

    response = http.post(
        CONFIGMAPS, json={"metadata": {"name": "taken", "labels": {"app": "not valid!"}}}
    )

    assert response.status_code == 422, response.text
    assert response.json()["message"] == (
        f'ConfigMap "taken" is invalid: metadata.labels: Invalid value: "not valid!": '
        f"{LABEL_VALUE_RULE}"
    )


def test_create_of_a_taken_name_is_admitted_before_answering_409(http: httpx.Client) -> None:
    _existing_config_map(http)
    quota = {"metadata": {"name": "q"}, "spec": {"hard": {"configmaps": "1"}}}
    assert http.post(QUOTAS, json=quota).status_code == 201

    response = http.post(CONFIGMAPS, json={"metadata": {"name": "taken"}})

    assert response.status_code == 403, response.text
    assert response.json()["message"].startswith(
        'configmaps "taken" is forbidden: exceeded quota: q,'
    )


def test_create_of_a_taken_valid_name_is_409(http: httpx.Client) -> None:
    _existing_config_map(http)

    response = http.post(CONFIGMAPS, json={"metadata": {"name": "taken"}})

    assert response.status_code == 409
    assert response.json()["message"] == 'configmaps "taken" already exists'


def test_create_of_a_name_being_deleted_validates_before_answering_409(
    http: httpx.Client,
) -> None:
    body = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    assert http.post(CONFIGMAPS, json=body).status_code == 201
    assert http.delete(f"{CONFIGMAPS}/held").status_code == 200

    invalid = http.post(CONFIGMAPS, json={"metadata": {"name": "held", "labels": {"a": "b c"}}})
    taken = http.post(CONFIGMAPS, json={"metadata": {"name": "held"}})

    assert invalid.status_code == 422, invalid.text
    assert taken.status_code == 409
    assert taken.json()["message"] == 'object is being deleted: configmaps "held" already exists'


# Immutable metadata on update.


def test_patching_the_uid_is_invalid(http: httpx.Client) -> None:
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "u"}}).json()

    response = http.patch(
        f"{CONFIGMAPS}/u",
        headers={"content-type": "application/merge-patch+json"},
        json={"metadata": {"uid": "other"}},
    )

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == (
        'ConfigMap "u" is invalid: metadata.uid: Invalid value: "other": field is immutable'
    )
    # Checked twice, as the common fields and as the kind's own metadata.
    cause = {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "other": field is immutable',
        "field": "metadata.uid",
    }
    assert body["details"]["causes"] == [cause, cause]
    assert http.get(f"{CONFIGMAPS}/u").json()["metadata"]["uid"] == created["metadata"]["uid"]


def test_put_with_another_uid_fails_its_precondition(http: httpx.Client) -> None:
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "u"}}).json()
    uid = created["metadata"]["uid"]
    # A stale resourceVersion too: the uid precondition is checked first.
    metadata = {**created["metadata"], "uid": "other", "resourceVersion": "1"}

    response = http.put(f"{CONFIGMAPS}/u", json={**created, "metadata": metadata})

    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["reason"], body["message"]) == (
        "Conflict",
        f'Operation cannot be fulfilled on configmaps "u": Precondition failed: UID in '
        f"precondition: other, UID in object meta: {uid}",
    )
    assert body["details"] == {"name": "u", "kind": "configmaps"}


def test_update_without_a_uid_keeps_the_stored_one(http: httpx.Client) -> None:
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "u"}}).json()
    metadata = {k: v for k, v in created["metadata"].items() if k != "uid"}

    response = http.put(f"{CONFIGMAPS}/u", json={**created, "metadata": metadata})

    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["uid"] == created["metadata"]["uid"]


# DeleteOptions.


BOTH_SET = (
    'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Foreground": '
    "orphanDependents and deletionPropagation cannot be both set"
)


@pytest.mark.parametrize("where", ["body", "query"])
def test_delete_with_orphan_dependents_and_a_propagation_policy_is_invalid(
    http: httpx.Client, where: str
) -> None:
    assert http.post(CONFIGMAPS, json={"metadata": {"name": "d"}}).status_code == 201
    options = {"orphanDependents": True, "propagationPolicy": "Foreground"}
    if where == "body":
        response = http.request("DELETE", f"{CONFIGMAPS}/d", json=options)
    else:
        response = http.delete(
            f"{CONFIGMAPS}/d",
            params={"orphanDependents": "true", "propagationPolicy": "Foreground"},
        )

    assert response.status_code == 422, response.text
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": BOTH_SET,
        "reason": "Invalid",
        "details": {
            "group": "meta.k8s.io",
            "kind": "DeleteOptions",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": 'Invalid value: "Foreground": orphanDependents and '
                    "deletionPropagation cannot be both set",
                    "field": "propagationPolicy",
                }
            ],
        },
        "code": 422,
    }
    assert http.get(f"{CONFIGMAPS}/d").status_code == 200
