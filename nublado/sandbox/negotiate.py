"""What a read's Accept header asks for: the object, a Table, or metadata only.

kube-apiserver reads the ``as``, ``g`` and ``v`` parameters of each offer in
an Accept header: ``application/json;as=Table;g=meta.k8s.io;v=v1`` asks for a
Table (what kubectl prints), ``as=PartialObjectMetadata`` for one object's
metadata and ``as=PartialObjectMetadataList`` for a collection's (what
client-go's metadata informers read: a LIST of 5,000 pods without their
specs and statuses). Offers are tried in order; one the server cannot serve
(another ``as``, a group or version it does not know) is skipped, and when
none is left the read fails with 406 NotAcceptable, as the real server's
negotiation does. The body is JSON whatever the media type asked for (the
sandbox writes no YAML or protobuf answers).

Asking for a list's form of one object, or one object's form of a list,
is a 406 too, with the server's message (the Go type it names is the
internal one, ``*core.PodList``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kinds import ResourceKind
from .schema import definition_name
from .store import ApiError

__all__ = [
    "METADATA",
    "METADATA_LIST",
    "OBJECT",
    "TABLE",
    "Wanted",
    "negotiate",
    "partial_list",
    "partial_object",
]

Object = dict[str, Any]

OBJECT = "Object"
TABLE = "Table"
METADATA = "PartialObjectMetadata"
METADATA_LIST = "PartialObjectMetadataList"

_MEDIA = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_ANY = ("*/*", "application/*")
_META_GROUP = "meta.k8s.io"
_META_VERSION = "v1"


@dataclass(frozen=True)
class Wanted:
    """The form a read answers in (``OBJECT``, ``TABLE``, ``METADATA``, ``METADATA_LIST``)."""

    form: str


def _offers(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The offers of an Accept header, best first (by ``q``, then in the order given)."""
    offers = []
    for index, text in enumerate(accept.split(",")):
        parts = [p.strip() for p in text.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip()
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality <= 0:
            continue
        offers.append((-quality, index, media, params))
    offers.sort(key=lambda o: (o[0], o[1]))
    return [(media, params) for _, _, media, params in offers]


def _custom(kind: ResourceKind) -> bool:
    return definition_name(kind.api_version, kind.kind) is None


def _accepted(kind: ResourceKind) -> str:
    media = _MEDIA[:2] if _custom(kind) else _MEDIA
    return ", ".join(media)


def _go_type(kind: ResourceKind, listing: bool) -> str:
    """The internal Go type the real server names in its 406 messages."""
    if _custom(kind):
        return "*unstructured.UnstructuredList" if listing else "*unstructured.Unstructured"
    package = kind.group.split(".")[0] if kind.group else "core"
    return f"*{package}.{kind.kind}{'List' if listing else ''}"


def negotiate(kind: ResourceKind, accept: str, *, listing: bool) -> Wanted:
    """The form a GET (``listing`` False), LIST or WATCH answers in; 406 when none fits.

    A LIST may have ``METADATA_LIST`` or a Table; a GET or a WATCH event
    ``METADATA`` or a Table (a watch's events are single objects).
    """
    if not accept.strip():
        return Wanted(OBJECT)
    for media, params in _offers(accept):
        if media not in _MEDIA and media not in _ANY:
            continue
        target = params.get("as")
        if target is None:
            return Wanted(OBJECT)
        if params.get("g") != _META_GROUP or params.get("v") != _META_VERSION:
            continue
        if target == TABLE:
            return Wanted(TABLE)
        if target == METADATA:
            if listing:
                raise _not_acceptable(
                    "you requested PartialObjectMetadata, but the requested object is a list "
                    f"({_go_type(kind, True)})"
                )
            return Wanted(METADATA)
        if target == METADATA_LIST:
            if not listing:
                raise _not_acceptable(
                    "you requested PartialObjectMetadataList, but the requested object is not "
                    f"a list ({_go_type(kind, False)})"
                )
            return Wanted(METADATA_LIST)
    raise _not_acceptable(f"only the following media types are accepted: {_accepted(kind)}")


def _not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def partial_object(obj: Object) -> Object:
    """One object as a ``meta.k8s.io/v1`` PartialObjectMetadata: its metadata only."""
    return {
        "kind": METADATA,
        "apiVersion": f"{_META_GROUP}/{_META_VERSION}",
        "metadata": obj["metadata"],
    }


def partial_list(body: Object) -> Object:
    """A LIST's answer as a PartialObjectMetadataList: the list's metadata, items' metadata."""
    return {
        "kind": METADATA_LIST,
        "apiVersion": f"{_META_GROUP}/{_META_VERSION}",
        "metadata": body["metadata"],
        "items": [partial_object(o) for o in body["items"]],
    }
