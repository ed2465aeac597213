"""The list and watch protocol: resourceVersion semantics, paging, bookmarks, initial events.

What kube-apiserver 1.32 does with a LIST or WATCH's ``resourceVersion``,
``resourceVersionMatch``, ``limit`` / ``continue``, ``sendInitialEvents`` and
``allowWatchBookmarks``, down to its answers: 422 for option combinations
`ValidateListOptions` forbids, 410 when the history no longer reaches back,
504 "Too large resource version" after a short wait for a version not reached
yet, the ``k8s.io/initial-events-end`` bookmark and periodic bookmarks. A
client that relies on something the real server does not promise (a BOOKMARK
without asking, paging a list "from any version") finds out here.

The real server serves a list from its watch cache or from etcd depending on
the options, and the two paths answer a few errors differently; where they
do, the comments name the path copied.
"""

from __future__ import annotations

import asyncio
import base64
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from .cluster import Cluster, parse_selectors
from .kinds import ResourceKind
from .params import parse_bool, parse_timeout_seconds
from .store import ApiError, Watcher, status_body

__all__ = [
    "INITIAL_EVENTS_END",
    "ListOptions",
    "WatchCut",
    "list_collection",
    "watch_response",
]

Object = dict[str, Any]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_EXACT = "Exact"
_NOT_OLDER_THAN = "NotOlderThan"
_LIST_TOO_OLD = "The resourceVersion for the provided list is too old."
# etcd's answer to a read at a revision it has not reached, passed through as a 500.
_FUTURE_REVISION = "etcdserver: mvcc: required revision is a future revision"
_PRE_TIMEOUT = 2.0  # the real server's last bookmark comes this long before a watch ends
_POLL = 0.01


class WatchCut(Exception):
    """Raised inside a watch stream to drop its connection without a clean end."""


class _UnknownError(ApiError):
    """An error the real server did not map to a Status reason: 500 with no ``reason``."""

    @property
    def body(self) -> dict[str, Any]:
        body = super().body
        del body["reason"]
        return body


@dataclass(frozen=True)
class _FieldError:
    """One entry of a field.ErrorList: ``field: detail`` in the message, a cause in details."""

    field: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


def _forbidden(field: str, text: str) -> _FieldError:
    return _FieldError(field, "FieldValueForbidden", f"Forbidden: {text}")


def _not_supported(field: str, value: str, supported: list[str]) -> _FieldError:
    quoted = ", ".join(f'"{v}"' for v in supported)
    return _FieldError(
        field, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {quoted}'
    )


def _invalid_options(errors: list[_FieldError]) -> ApiError:
    """422 Invalid for ListOptions, as the handler builds it from ValidateListOptions."""
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    details: Object = {
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": [{"reason": e.reason, "message": e.detail, "field": e.field} for e in errors],
    }
    return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {text}', details)


@dataclass(frozen=True)
class ListOptions:
    """The query parameters of a LIST or WATCH that decide what it serves and from when."""

    watch: bool
    resource_version: str
    match: str
    continue_token: str
    limit: int
    send_initial_events: bool | None
    allow_bookmarks: bool
    label_selector: str | None
    field_selector: str | None

    @classmethod
    def parse(cls, query: Mapping[str, str], *, watch: bool) -> ListOptions:
        """Read the options (400 for values that do not parse), then validate them (422)."""
        initial = query.get("sendInitialEvents")
        limit_text = query.get("limit")
        limit = 0
        if limit_text:
            try:
                limit = int(limit_text)
            except ValueError:
                raise ApiError.bad_request(f"invalid limit {limit_text!r}") from None
        options = cls(
            watch=watch,
            resource_version=query.get("resourceVersion") or "",
            match=query.get("resourceVersionMatch") or "",
            continue_token=query.get("continue") or "",
            limit=max(limit, 0),
            send_initial_events=(None if not initial else parse_bool(initial, "sendInitialEvents")),
            allow_bookmarks=parse_bool(query.get("allowWatchBookmarks"), "allowWatchBookmarks"),
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
        )
        errors = options._watch_errors() if watch else options._list_errors()
        if errors:
            raise _invalid_options(errors)
        return options

    def _list_errors(self) -> list[_FieldError]:
        """apimachinery's ValidateListOptions for a list."""
        errors: list[_FieldError] = []
        match = self.match
        if match:
            if not self.resource_version:
                errors.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    )
                )
            if self.continue_token:
                errors.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
            if match not in (_EXACT, _NOT_OLDER_THAN):
                errors.append(
                    _not_supported("resourceVersionMatch", match, [_EXACT, _NOT_OLDER_THAN, ""])
                )
            if match == _EXACT and self.resource_version == "0":
                errors.append(
                    _forbidden(
                        "resourceVersionMatch",
                        'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                    )
                )
        if self.send_initial_events is not None:
            errors.append(
                _forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")
            )
        return errors

    def _watch_errors(self) -> list[_FieldError]:
        """ValidateListOptions for a watch, with the WatchList feature on (1.32's default)."""
        errors: list[_FieldError] = []
        match = self.match
        if self.send_initial_events is not None and match != _NOT_OLDER_THAN:
            errors.append(
                _forbidden(
                    "resourceVersionMatch",
                    f"sendInitialEvents requires setting resourceVersionMatch to {_NOT_OLDER_THAN}",
                )
            )
        if match:
            if self.send_initial_events is None:
                errors.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents "
                        "is provided",
                    )
                )
            if match != _NOT_OLDER_THAN:
                errors.append(_not_supported("resourceVersionMatch", match, [_NOT_OLDER_THAN]))
            if self.continue_token:
                errors.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
        return errors


def _parse_revision(text: str) -> int:
    """The storage versioner's ParseResourceVersion: "" and "0" are 0, else an unsigned number.

    Raises ValueError with the field error's text when it is not one.
    """
    if text in ("", "0"):
        return 0
    if text.isascii() and text.isdigit():
        value = int(text)
        if value < 2**64:
            return value
        problem = "value out of range"
    else:
        problem = "invalid syntax"
    raise ValueError(
        f'resourceVersion: Invalid value: "{text}": strconv.ParseUint: parsing "{text}": {problem}'
    )


def _bad_revision(error: ValueError, from_etcd: bool) -> ApiError:
    """A resourceVersion that is not a number (``error`` from `_parse_revision`).

    The etcd path (paged or Exact lists) answers 400; the watch cache's path
    returns the storage error unmapped, which the handler writes as a 500.
    """
    if from_etcd:
        return ApiError.bad_request(f"invalid resource version: {error}")
    return _UnknownError(500, "", str(error))


def _too_large_resource_version(wanted: int, current: int, retry_after: int = 1) -> Object:
    """The 504 Status for a resourceVersion the server has not reached.

    The watch cache asks to retry after a second; etcd's path gives no retry
    time (zero, which the Status omits).
    """
    body = status_body(
        504, "Timeout", f"Timeout: Too large resource version: {wanted}, current: {current}"
    )
    details: Object = {
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    }
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    body["details"] = details
    return body


async def _reached(cluster: Cluster, wanted: int) -> bool:
    """Wait a short time (as the watch cache does) for the store to reach a revision."""
    deadline = time.monotonic() + cluster.settings.resource_version_wait
    while cluster.store.revision < wanted:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


def encode_continue(revision: int, after: tuple[str, str]) -> str:
    """A continue token: the list's revision and the last (namespace, name) served."""
    raw = orjson.dumps({"rv": revision, "start": list(after)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    """The revision and position of a continue token; 400 when it is not one."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start = data["start"]
        return int(data["rv"]), (str(start[0]), str(start[1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise ApiError.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None


async def _list_revision(cluster: Cluster, options: ListOptions) -> tuple[int | None, int]:
    """The revision a list is served at (None: the latest) and the page size to use.

    The API concepts' table for list: "" is the most recent; "0" is any (the
    watch cache, which in 1.32 ignores ``limit``); N without a match is "not
    older than", except with ``limit``, where it is exact; Exact serves the
    collection as it was at N.
    """
    limit = options.limit
    text = options.resource_version
    if text == "":
        return None, limit
    if text == "0":
        return None, 0
    exact = options.match == _EXACT or (not options.match and limit > 0)
    from_etcd = exact or limit > 0
    try:
        wanted = _parse_revision(text)
    except ValueError as exc:
        raise _bad_revision(exc, from_etcd) from None
    store = cluster.store
    if exact:
        if wanted > store.revision:
            raise _UnknownError(500, "", _FUTURE_REVISION)
        if not store.reaches_back(wanted):
            raise ApiError(410, "Expired", _LIST_TOO_OLD)
        return wanted, limit
    # Not older than N: etcd checks its answer's revision at once; the watch
    # cache first waits a little for N.
    if not from_etcd and await _reached(cluster, wanted):
        return None, limit
    current = store.revision
    if current < wanted:
        body = _too_large_resource_version(wanted, current, 0 if from_etcd else 1)
        raise ApiError(504, "Timeout", body["message"], body["details"])
    return None, limit


async def list_collection(
    cluster: Cluster, kind: ResourceKind, namespace: str | None, query: Mapping[str, str]
) -> Object:
    """A LIST's answer body: the collection at the revision its options ask for, paged."""
    options = ListOptions.parse(query, watch=False)
    token = options.continue_token
    at_revision: int | None
    after = ("", "")
    if token:
        # Later pages show the collection as it was at the first page's version.
        at_revision, after = decode_continue(token)
        limit = options.limit
        if options.resource_version not in ("", "0"):
            raise ApiError.bad_request(
                "specifying resource version is not allowed when using continue"
            )
    else:
        at_revision, limit = await _list_revision(cluster, options)
    selectors = (options.label_selector or "", options.field_selector or "")
    snapshot = None
    if token and at_revision is not None:
        snapshot = cluster.store.list_snapshot((kind.kind, namespace, *selectors, at_revision))
    if snapshot is not None and at_revision is not None:
        # A later page of a LIST: the collection as of its first page, kept then.
        revision = at_revision
        items = snapshot.items[bisect_right(snapshot.keys, after) :]
    else:
        items, revision = cluster.list(
            kind.kind,
            namespace,
            options.label_selector,
            options.field_selector,
            at_revision=at_revision,
        )
        if 0 < limit < len(items):
            cluster.store.remember_list((kind.kind, namespace, *selectors, revision), items)
        if token:
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
    metadata: Object = {"resourceVersion": str(revision)}
    if 0 < limit < len(items):
        last = items[limit - 1]["metadata"]
        metadata["continue"] = encode_continue(revision, (last.get("namespace", ""), last["name"]))
        metadata["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return {
        "kind": kind.list_kind,
        "apiVersion": kind.api_version,
        "metadata": metadata,
        "items": items,
    }


def _next_bookmark(now: float, interval: float, deadline: float) -> float | None:
    """When the watch cache sends a watch its next bookmark; None for no more.

    Every ``interval``, and once shortly before the watch's timeout so a
    client can resume from there; none once that moment has passed.
    """
    due = min(now + interval, deadline - _PRE_TIMEOUT)
    return due if due >= now else None


def _event_line(event_type: str, obj: Object) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


def _bookmark(kind: ResourceKind, revision: str, *, initial_events_end: bool = False) -> bytes:
    """A BOOKMARK event: an object of the kind carrying only its resourceVersion."""
    metadata: Object = {"resourceVersion": revision}
    if initial_events_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata}
    return _event_line("BOOKMARK", obj)


async def watch_response(
    cluster: Cluster,
    kind: ResourceKind,
    namespace: str | None,
    query: Mapping[str, str],
    *,
    write: Callable[[str, Object], bytes] = _event_line,
) -> Response:
    """A WATCH: a stream of newline-delimited events from the version its options ask for.

    Without ``sendInitialEvents``, "" and "0" start with ADDED for every
    current object and N with the changes after N (410 when too old). With
    ``sendInitialEvents=true`` the current objects come as ADDED whatever the
    version (once it is reached), then, when bookmarks are allowed, a
    BOOKMARK annotated ``k8s.io/initial-events-end``; with ``false``, "" and
    "0" start from now. Watches allowing bookmarks get one periodically.
    ``write`` turns a change into its line (the object as the client's view
    and format show it).
    """
    options = ListOptions.parse(query, watch=True)
    labels, fields = parse_selectors(kind.kind, options.label_selector, options.field_selector)
    try:
        since = _parse_revision(options.resource_version)
    except ValueError as exc:
        raise _bad_revision(exc, from_etcd=False) from None
    timeout = parse_timeout_seconds(query.get("timeoutSeconds"), 1800.0)
    store = cluster.store  # the stream stays with this store across a reset
    if since and not await _reached(cluster, since):
        # The watch cache waits a moment to catch up, then sends this as the only event.
        too_large = _too_large_resource_version(since, store.revision)
        return Response(_event_line("ERROR", too_large), media_type="application/json")
    initial = options.send_initial_events
    watcher = Watcher(
        kind=kind.kind,
        namespace=namespace if kind.namespaced else None,
        labels=labels,
        fields=fields,
        loop=asyncio.get_running_loop(),
        limit=cluster.settings.watch_queue_limit,
    )
    subscribed = store.subscribe(
        watcher, since or None, state=bool(initial) or (initial is None and not since)
    )
    if subscribed is None:
        store.unsubscribe(watcher)
        expired = status_body(410, "Expired", f"too old resource version: {since} ({store.floor})")
        return Response(_event_line("ERROR", expired), media_type="application/json")
    replay, revision = subscribed
    interval = cluster.settings.bookmark_interval

    async def stream() -> AsyncIterator[bytes]:
        try:
            for event_type, obj in replay:
                yield write(event_type, obj)
            if initial and options.allow_bookmarks:
                yield _bookmark(kind, str(revision), initial_events_end=True)
            deadline = time.monotonic() + timeout
            due = _next_bookmark(time.monotonic(), interval, deadline)
            while True:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    return
                wait = remaining
                if options.allow_bookmarks and due is not None:
                    wait = max(min(remaining, due - now), 0.0)
                try:
                    # An event already queued is taken without wait_for's task and timer
                    # (one each per event, 1% of the CPU per spawn); the same one comes out.
                    item = (
                        watcher.queue.get_nowait()
                        if not watcher.queue.empty()
                        else await asyncio.wait_for(watcher.queue.get(), wait)
                    )
                except TimeoutError:
                    if options.allow_bookmarks and due is not None:
                        now = time.monotonic()
                        if now >= due:
                            # Queued behind the changes it covers (see Store.bookmark).
                            store.bookmark(watcher)
                            due = _next_bookmark(now, interval, deadline)
                    continue
                if item is None:
                    if watcher.cut:
                        raise WatchCut("watch cut by the sandbox")
                    return
                event_type, obj = item
                if event_type == "BOOKMARK":
                    yield _bookmark(kind, obj["metadata"]["resourceVersion"])
                else:
                    yield write(event_type, obj)
        finally:
            store.unsubscribe(watcher)

    return StreamingResponse(stream(), media_type="application/json")
