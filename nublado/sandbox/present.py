"""How the HTTP layer reads bodies and shows stored objects, per request.

A body may be JSON, YAML or kubectl's protobuf (`nublado.sandbox.protobuf`);
a kind served as a view of another (events.k8s.io Events, stored as core
Events) has its bodies, patches and field selectors converted to the stored
form going in, and its objects converted back coming out
(`nublado.sandbox.events`); a read may ask for a Table instead of objects
(`nublado.sandbox.table`), a watch included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from . import events, table
from .body import decode_apply_body, decode_object_body, decode_patch_body, media_type
from .kinds import VIEWS, ResourceKind
from .negotiate import METADATA, TABLE, negotiate, partial_object
from .protobuf import PROTOBUF_MEDIA_TYPE, decode_object
from .request import ApiRequest, current_write
from .store import ApiError

__all__ = [
    "event_writer",
    "field_selector",
    "include_object",
    "present",
    "presenter",
    "request_object",
    "view_patch",
]

Object = dict[str, Any]


async def request_object(
    request: ApiRequest, kind: ResourceKind, creating_in: str | None = None
) -> Object:
    """A create or replace body: JSON, YAML or kubectl's protobuf, in the stored form.

    ``creating_in`` is the namespace of a create, for the checks the newer
    events.k8s.io API makes of new Events.
    """
    raw = await request.body()
    content_type = media_type(request.headers.get("content-type"))
    if content_type == PROTOBUF_MEDIA_TYPE:
        body = decode_object(raw)
    else:
        body = decode_object_body(raw, content_type, kind.kind)
    if kind not in VIEWS:
        return body
    stored = events.to_stored(body)
    if creating_in is not None:
        events.validate_create(stored, creating_in)
    return stored


def view_patch(content_type: str, raw: bytes) -> bytes:
    """A patch of an events.k8s.io Event as a patch of the stored core Event."""
    if content_type == "application/apply-patch+yaml":
        return orjson.dumps(events.to_stored(decode_apply_body(raw)))
    if not content_type.endswith("patch+json"):
        return raw  # refused as an unknown patch type next
    patch = decode_patch_body(raw, content_type, current_write().field_validation)
    if isinstance(patch, dict):
        return orjson.dumps(events.to_stored(patch))
    operations = patch
    if isinstance(operations, list):
        for op in operations:
            for key in ("path", "from"):
                if isinstance(op, dict) and isinstance(op.get(key), str):
                    head, _, rest = op[key][1:].partition("/")
                    renamed = next(iter(events.to_stored({head: None})))
                    op[key] = f"/{renamed}/{rest}" if rest else f"/{renamed}"
    return orjson.dumps(operations)


def presenter(kind: ResourceKind) -> Callable[[Object], Object] | None:
    """How a stored object is shown under ``kind`` (None: as stored)."""
    return events.from_stored if kind in VIEWS else None


def present(kind: ResourceKind, obj: Object) -> Object:
    present = presenter(kind)
    if present is None or obj.get("kind") != kind.kind:
        return obj  # a Status, for example
    return present(obj)


def field_selector(kind: ResourceKind, selector: str | None) -> str | None:
    return events.selector_to_stored(selector) if kind in VIEWS else selector


def include_object(request: ApiRequest) -> str:
    """The ``includeObject`` of a Table read: Metadata (default), Object or None."""
    value = request.query_params.get("includeObject") or "Metadata"
    if value not in ("Metadata", "Object", "None"):
        raise ApiError.bad_request(
            f'includeObject: Unsupported value: "{value}": supported values: "Metadata", '
            '"None", "Object"'
        )
    return value


def event_writer(request: ApiRequest, kind: ResourceKind) -> Callable[[str, Object], bytes]:
    """How a watch writes one event: the object as shown, its metadata, or a one-row Table.

    A Table watch sends the column definitions with its first event only, as
    kube-apiserver does.
    """
    present = presenter(kind)
    wanted = negotiate(kind, request.headers.get("accept", ""), listing=False)
    if wanted.form == METADATA:

        def metadata_only(event_type: str, obj: Object) -> bytes:
            shown = present(obj) if present is not None else obj
            return orjson.dumps({"type": event_type, "object": partial_object(shown)}) + b"\n"

        return metadata_only
    if wanted.form != TABLE:

        def plain(event_type: str, obj: Object) -> bytes:
            shown = present(obj) if present is not None else obj
            return orjson.dumps({"type": event_type, "object": shown}) + b"\n"

        return plain
    include = include_object(request)
    first = [True]

    def as_table(event_type: str, obj: Object) -> bytes:
        metadata = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        shown = table.table(
            kind, [obj], metadata, include_object=include, present=present, headers=first[0]
        )
        first[0] = False
        return orjson.dumps({"type": event_type, "object": shown}) + b"\n"

    return as_table
