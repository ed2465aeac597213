"""Typed JSON decoders for what the lab service reads of the objects a spawn meets.

Every spawn decodes a dozen apply answers, three Lease answers and the watch
events of its objects (the pod's several times over, about 18 KB each, half
of it ``managedFields``). Decoded whole with orjson, that JSON was one of the
largest parts of the controller's CPU per spawn, yet the caches keep only a
few fields of it (`nublado.services.labs.trim_cached`). These msgspec
decoders build plain dicts of only those fields: the rest (managedFields, most
of a pod's spec, other objects' bodies) is skipped without making Python
objects of it.

The shapes are ``TypedDict``s with ``total=False``: what an object lacks is
left out, as orjson would, and the dicts are the same the rest of the service
reads. A body whose types are not what a shape says (a label value that is not
a string) is decoded whole with orjson instead, so an odd object costs more
CPU, never a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import msgspec
import orjson

__all__ = ["object_decoder", "watch_decoder"]

Object = dict[str, Any]


class _Meta(TypedDict, total=False):
    """Of any object's metadata: what `_store`, `_user_of`, the record and the state read."""

    name: str
    namespace: str
    uid: str
    resourceVersion: str
    deletionTimestamp: str | None
    labels: dict[str, str]
    annotations: dict[str, str]


class _Bare(TypedDict, total=False):
    """An object of a kind the service keeps nothing of but its identity."""

    apiVersion: str
    kind: str
    metadata: _Meta


class _Security(TypedDict, total=False):
    runAsUser: int
    runAsGroup: int


class _Container(TypedDict, total=False):
    name: str
    securityContext: _Security


class _PodSpec(TypedDict, total=False):
    initContainers: list[_Container]
    containers: list[_Container]


class _Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str


class _ContainerStatus(TypedDict, total=False):
    name: str
    state: dict[str, Any]


class _PodStatus(TypedDict, total=False):
    phase: str
    reason: str
    message: str
    conditions: list[_Condition]
    initContainerStatuses: list[_ContainerStatus]
    containerStatuses: list[_ContainerStatus]


class _Pod(TypedDict, total=False):
    """Identity, the containers' user and group, and the status `_pod_verdict` reads."""

    apiVersion: str
    kind: str
    metadata: _Meta
    spec: _PodSpec
    status: _PodStatus


class _ConfigMap(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: _Meta
    data: dict[str, str]


class _QuotaSpec(TypedDict, total=False):
    hard: dict[str, str]


class _Quota(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: _Meta
    spec: _QuotaSpec


class _Lease(TypedDict, total=False):
    """A Lease without managedFields and timestamps: what the operation record reads."""

    apiVersion: str
    kind: str
    metadata: _Meta
    spec: dict[str, Any]


class _Event(TypedDict, total=False):
    """A Kubernetes Event as a spawn reports it: its message."""

    apiVersion: str
    kind: str
    metadata: _Meta
    message: str
    reason: str
    type: str


_SHAPES: dict[str, Any] = {
    "Pod": _Pod,
    "ConfigMap": _ConfigMap,
    "ResourceQuota": _Quota,
    "Lease": _Lease,
    "Event": _Event,
}


def _shape(kind: str) -> Any:
    return _SHAPES.get(kind, _Bare)


def _with_fallback(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decoded(data: bytes) -> Any:
        try:
            return decode(data)
        except msgspec.MsgspecError:
            # Types other than the shape's: the whole object (and orjson's own error
            # for a body that is not JSON at all, as without a shape).
            return orjson.loads(data)

    return decoded


def object_decoder(kind: str) -> Callable[[bytes], Object]:
    """Decodes an answer holding one object of ``kind`` (an apply's, a Lease write's)."""
    return _with_fallback(msgspec.json.Decoder(_shape(kind)).decode)


def watch_decoder(kind: str) -> Callable[[bytes], Object]:
    """Decodes one line of a watch of ``kind``: ``{"type": ..., "object": ...}``.

    An ERROR event's object is a Status, whose fields the shapes lack (a pod's
    ``status`` is even an object there): such a line is decoded again whole,
    once per failed watch.
    """
    # The line's two members: the type a string, the object of the kind's shape.
    typed = msgspec.json.Decoder(dict[str, str | _shape(kind)]).decode  # type: ignore[misc]

    def decoded(line: bytes) -> Object:
        try:
            result: Object = typed(line)
        except msgspec.MsgspecError:
            return orjson.loads(line)  # type: ignore[no-any-return]
        if result.get("type") == "ERROR":
            return orjson.loads(line)  # type: ignore[no-any-return]
        return result

    return decoded
