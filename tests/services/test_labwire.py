"""The lab service's typed decoders: only what the caches read, never a lost field or event."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox
from nublado.services.labs import trim_cached
from nublado.services.labwire import object_decoder, watch_decoder

_MANAGED = [{"manager": "nublado", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "rachel-nb",
        "namespace": "userlabs-rachel",
        "uid": "u-1",
        "resourceVersion": "42",
        "labels": {"nublado.lsst.io/category": "lab", "nublado.lsst.io/user": "rachel"},
        "annotations": {
            "nublado.lsst.io/user-name": "Rachel",
            "nublado.lsst.io/user-groups": "[]",
            "other": "x",
        },
        "managedFields": _MANAGED,
        "creationTimestamp": "2026-01-01T00:00:00Z",
    },
    "spec": {
        "containers": [
            {
                "name": "notebook",
                "image": "lab:1",
                "env": [{"name": "A", "value": "1"}],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "privileged": False},
            }
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
    },
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None}],
        "containerStatuses": [
            {"name": "notebook", "state": {"waiting": {"reason": "ContainerCreating"}}, "ready": 0}
        ],
        "hostIP": "10.0.0.1",
    },
}


def test_a_pod_event_decodes_to_what_the_cache_keeps() -> None:
    """The decoded pod lacks managedFields and what no reader reads, and trims alike."""
    line = orjson.dumps({"type": "MODIFIED", "object": POD})
    event = watch_decoder("Pod")(line)

    assert event["type"] == "MODIFIED"
    pod = event["object"]
    assert "managedFields" not in pod["metadata"]
    assert "volumes" not in pod["spec"]
    assert pod["spec"]["containers"] == [
        {"name": "notebook", "securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}
    ]
    assert pod["status"] == {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {"name": "notebook", "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    }
    assert trim_cached("Pod", pod) == trim_cached("Pod", POD)


@pytest.mark.parametrize("kind", ["Pod", "ConfigMap", "Lease", "Namespace", "Event"])
def test_an_error_event_keeps_its_status(kind: str) -> None:
    """An ERROR event's Status (code, reason, message) is whole whatever the watched kind."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 1 (2)",
        "reason": "Expired",
        "code": 410,
    }
    line = json.dumps({"type": "ERROR", "object": status}).encode()

    assert watch_decoder(kind)(line) == {"type": "ERROR", "object": status}


def test_an_object_of_unexpected_types_is_decoded_whole() -> None:
    """A label value that is not a string (no shape allows it) costs CPU, not the object."""
    odd = {**POD, "metadata": {**POD["metadata"], "labels": {"n": 1}}}

    assert object_decoder("Pod")(orjson.dumps(odd)) == odd
    assert watch_decoder("Pod")(orjson.dumps({"type": "ADDED", "object": odd}))["object"] == odd


def test_a_body_that_is_not_json_fails_as_without_a_shape() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        object_decoder("Lease")(b"<html>bad gateway</html>")
    with pytest.raises(orjson.JSONDecodeError):
        watch_decoder("Pod")(b'{"type": "ADDED", "object": {"kind"')


def test_kinds_without_a_shape_keep_their_identity() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "n", "uid": "u", "resourceVersion": "3"},
        "data": {"token": "c2VjcmV0"},
    }

    assert object_decoder("Secret")(orjson.dumps(secret)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "n", "uid": "u", "resourceVersion": "3"},
    }


async def test_a_decoded_watch_relists_after_its_version_expired(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    """Through the client: the 410 ERROR line still makes the watch relist (not retry it)."""
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "w"}}
    start = await client.apply_one({**cm, "data": {"v": "1"}}, decode=object_decoder("ConfigMap"))
    assert "managedFields" not in start.object["metadata"]
    await client.apply_one({**cm, "data": {"v": "2"}})
    sandbox.compact()
    seen = [
        (event.type, event.object["data"]["v"])
        async for event in client.watch(
            "ConfigMap",
            "w",
            resource_version=start.resource_version,
            timeout=0.5,
            decode=watch_decoder("ConfigMap"),
        )
    ]

    assert seen == [("ADDED", "2")]
