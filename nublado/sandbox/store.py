"""The sandbox's object store: objects, resourceVersions, watch history and watchers.

Thread-safe: the API server runs in its own thread (uvicorn) while tests read
and poke the store from theirs, so every read and write takes one lock and
never awaits while holding it. Stored objects are never mutated in place; a
write stores a new dict, so a reference handed out (to a watch event, for
example) is a stable snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar, cast

import orjson

from .kinds import ResourceKind
from .selectors import FieldSelector, LabelSelector

__all__ = [
    "ApiError",
    "ListKey",
    "ListSnapshot",
    "Store",
    "StoredEvent",
    "Watcher",
    "clone",
    "status_body",
]

Object = dict[str, Any]
_T = TypeVar("_T")

_LIST_SNAPSHOTS = 16
"""Paginated LISTs' collections kept at once (the least recently read goes first)."""

_ENCODED_FORMS = ("object", "metadata")
"""How a LIST shows an object, each encoding kept apart (`Store.encoded`): whole, or as a
PartialObjectMetadata."""

ListKey = tuple[str, str | None, str, str, int]
"""A paginated LIST: kind, namespace, label selector, field selector, revision of its first page."""


@dataclass
class ListSnapshot:
    """The collection a paginated LIST serves, in (namespace, name) order."""

    items: list[dict[str, Any]]
    _keys: list[tuple[str, str]] | None = None

    @property
    def keys(self) -> list[tuple[str, str]]:
        """Each object's (namespace, name), made when a second page first asks for them."""
        if self._keys is None:
            self._keys = [
                (o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in self.items
            ]
        return self._keys


def clone(value: _T) -> _T:
    """A deep copy of a JSON value; much faster than copy.deepcopy for API objects."""
    try:
        return cast(_T, orjson.loads(orjson.dumps(value)))
    except (orjson.JSONEncodeError, orjson.JSONDecodeError):
        # Nesting orjson refuses (the JSON decoder allows 10,000 levels).
        return cast(_T, _deep_copy(value))


def _deep_copy(value: Any) -> Any:
    """An iterative deep copy of dicts and lists, for values too deep to recurse into."""
    if not isinstance(value, dict | list):
        return value
    root: Any = {} if isinstance(value, dict) else []
    pending: list[tuple[Any, Any]] = [(value, root)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict | list):
                copied: Any = {} if isinstance(item, dict) else []
                pending.append((item, copied))
            else:
                copied = item
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Kubernetes ``Status`` failure body."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class ApiError(Exception):
    """An error answer of the sandbox API server, rendered as a ``Status`` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @property
    def body(self) -> dict[str, Any]:
        """The Status body of the answer."""
        return status_body(self.code, self.reason, self.message, self.details)

    @classmethod
    def not_found(cls, kind: ResourceKind, name: str) -> ApiError:
        """404 for a missing object, with the message kube-apiserver writes."""
        details: dict[str, Any] = {"name": name, "kind": kind.plural}
        if kind.group:
            details["group"] = kind.group
        return cls(404, "NotFound", f'{kind.group_resource} "{name}" not found', details)

    @classmethod
    def already_exists(cls, kind: ResourceKind, name: str) -> ApiError:
        """409 AlreadyExists for a create of an existing name."""
        details: dict[str, Any] = {"name": name, "kind": kind.plural}
        if kind.group:
            details["group"] = kind.group
        return cls(409, "AlreadyExists", f'{kind.group_resource} "{name}" already exists', details)

    @classmethod
    def invalid(
        cls, kind: ResourceKind, name: str, field_path: str, detail: str, cause: str
    ) -> ApiError:
        """422 Invalid for one field."""
        details: dict[str, Any] = {
            "name": name,
            "kind": kind.kind,
            "causes": [{"reason": cause, "message": detail, "field": field_path}],
        }
        if kind.group:
            details["group"] = kind.group
        qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
        message = f'{qualified} "{name}" is invalid: {field_path}: {detail}'
        return cls(422, "Invalid", message, details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        """400 BadRequest."""
        return cls(400, "BadRequest", message)


@dataclass(frozen=True)
class StoredEvent:
    """One change, kept in the watch history."""

    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    kind: str
    namespace: str
    object: Object
    previous: Object | None


def _revision(event: StoredEvent) -> int:
    return event.revision


@dataclass(eq=False)
class Watcher:
    """An open watch: what it selects and the queue (on the server's loop) it reads."""

    kind: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, Object] | None] = field(default_factory=asyncio.Queue)
    cut: bool = False
    limit: int = 1_000  # events waiting to be sent before the watch is closed
    overflowed: bool = False

    def selects(self, obj: Object | None) -> bool:
        """Whether an object is in this watch's view."""
        if obj is None:
            return False
        metadata = obj.get("metadata", {})
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        return self.labels.matches(metadata.get("labels")) and self.fields.matches(obj, self.kind)

    def offer(self, event: StoredEvent) -> tuple[str, Object] | None:
        """The event this watch sees for a change, if any.

        Selectors can turn a MODIFIED into ADDED (the object starts matching)
        or DELETED (it stops matching), as kube-apiserver does.
        """
        now = self.selects(event.object)
        before = self.selects(event.previous) if event.type == "MODIFIED" else now
        if event.type == "MODIFIED":
            if now and before:
                return ("MODIFIED", event.object)
            if now:
                return ("ADDED", event.object)
            if before:
                return ("DELETED", event.object)
            return None
        return (event.type, event.object) if now else None

    def push(self, item: tuple[str, Object] | None) -> None:
        """Hand an event to the watch from any thread.

        From the loop's own thread (a write made by a request) no wake-up of the
        loop is needed: it is running, and finds the call in its queue in order.
        """
        with contextlib.suppress(RuntimeError):  # a closed loop: the watch is gone
            if asyncio._get_running_loop() is self.loop:
                self.loop.call_soon(self._deliver, item)
            else:
                self.loop.call_soon_threadsafe(self._deliver, item)

    def _deliver(self, item: tuple[str, Object] | None) -> None:
        """Queue an event (on the server loop), closing a watch whose reader fell behind.

        Like kube-apiserver with an unresponsive watcher, the stream ends
        cleanly after the events already queued, and the client resumes from
        the last one it read; memory stays bounded.
        """
        if self.overflowed:
            return
        if item is not None and self.queue.qsize() >= self.limit:
            self.overflowed = True
            item = None
        self.queue.put_nowait(item)


class _LabelBucket:
    """The (namespace, name) keys of the objects of a kind with one label value, and the
    same keys sorted, made when first asked for after a change (sorting 15,000 keys for
    every LIST of a kind was a third of the sandbox's time in a reconcile pass)."""

    __slots__ = ("_ordered", "keys")

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()
        self._ordered: list[tuple[str, str]] | None = None

    def add(self, key: tuple[str, str]) -> None:
        if key not in self.keys:
            self.keys.add(key)
            self._ordered = None

    def discard(self, key: tuple[str, str]) -> None:
        if key in self.keys:
            self.keys.discard(key)
            self._ordered = None

    def ordered(self) -> list[tuple[str, str]]:
        """The keys in (namespace, name) order (the caller must not change the list)."""
        if self._ordered is None:
            self._ordered = sorted(self.keys)
        return self._ordered


class Store:
    """Objects by kind, namespace and name, with a global revision counter."""

    def __init__(self, history_limit: int = 10_000) -> None:
        self.lock = threading.RLock()
        self.revision = 0
        self._objects: dict[str, dict[str, dict[str, Object]]] = {}
        self._history: deque[StoredEvent] = deque(maxlen=history_limit)
        self._floor = 0  # events at or below this revision are forgotten
        # The collections paginated LISTs are serving, as of their first page (see list_snapshot).
        self._list_snapshots: OrderedDict[ListKey, ListSnapshot] = OrderedDict()
        # Each listed object's JSON, per form, with the stored version it encodes (see encoded).
        self._encoded: dict[tuple[str, str, str, str], tuple[Object, bytes]] = {}
        # Each kind's objects by label (key, value) -> {(namespace, name)}, kept by put and
        # remove (see labelled): a labelled LIST of a few objects among 65,000 need not look
        # at every one, nor one of them all test each object's labels.
        self._by_label: dict[str, dict[tuple[str, str], _LabelBucket]] = {}
        self._watchers: list[Watcher] = []
        # The same watchers by kind and namespace (None: every namespace), so a
        # write is offered only to the watches that can see it: with a hundred
        # labs starting, each watching its own pod and events, a pod's change
        # meets one namespace's watchers rather than all of them.
        self._watching: dict[str, dict[str | None, list[Watcher]]] = {}

    # Reading

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        """One object, or None."""
        return self._objects.get(kind, {}).get(namespace, {}).get(name)

    def iter_objects(self, kind: str, namespace: str | None = None) -> Iterator[Object]:
        """Objects of a kind, in one namespace or all, in (namespace, name) order."""
        by_namespace = self._objects.get(kind, {})
        namespaces = [namespace] if namespace is not None else sorted(by_namespace)
        for ns in namespaces:
            objects = by_namespace.get(ns, {})
            for name in sorted(objects):
                yield objects[name]

    def objects_at(self, kind: str, namespace: str | None, revision: int) -> list[Object] | None:
        """Objects of a kind as they were at ``revision``, in (namespace, name) order.

        Rebuilt by undoing the recorded changes made since; None when the
        history no longer reaches back that far (a continue token then expires).
        """
        with self.lock:
            if revision < self._floor:
                return None
            state = {
                (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                for o in self.iter_objects(kind, namespace)
            }
            for event in reversed(self._history):
                if event.revision <= revision:
                    break
                if event.kind != kind or (namespace is not None and event.namespace != namespace):
                    continue
                key = (event.namespace, event.object["metadata"]["name"])
                if event.type == "ADDED" or event.previous is None:
                    state.pop(key, None)
                else:
                    state[key] = event.previous
            return [state[key] for key in sorted(state)]

    def labelled(
        self, kind: str, namespace: str | None, key: str, values: Iterable[str]
    ) -> list[Object]:
        """Objects of a kind (in one namespace or all) whose label ``key`` has one of
        ``values``, in (namespace, name) order: exactly those of `iter_objects` that the
        clause ``key in (values)`` (or ``key=value``) selects."""
        index = self._by_label.get(kind)
        if not index:
            return []
        buckets = [b for b in (index.get((key, value)) for value in values) if b is not None]
        if len(buckets) == 1:
            keys = buckets[0].ordered()
        else:
            keys = sorted({k for bucket in buckets for k in bucket.keys})
        if namespace is not None:
            # (namespace,) sorts before its objects' keys, namespace + "\0" after them.
            keys = keys[bisect_left(keys, (namespace,)) : bisect_left(keys, (namespace + "\0",))]
        by_namespace = self._objects[kind]
        return [by_namespace[ns][name] for ns, name in keys]

    def _index(
        self, kind: str, namespace: str, name: str, old: Object | None, new: Object | None
    ) -> None:
        """Keep ``_by_label`` up to date as an object's version ``old`` becomes ``new``."""
        before = (old["metadata"].get("labels") or {}) if old is not None else {}
        after = (new["metadata"].get("labels") or {}) if new is not None else {}
        if before == after and old is not None and new is not None:
            return
        index = self._by_label.setdefault(kind, {})
        key = (namespace, name)
        for label, value in before.items():
            if isinstance(value, str) and after.get(label) != value:
                bucket = index.get((label, value))
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket.keys:
                        del index[(label, value)]
        for label, value in after.items():
            if isinstance(value, str):  # validation allows only strings; no other matches
                bucket = index.get((label, value))
                if bucket is None:
                    bucket = index[(label, value)] = _LabelBucket()
                bucket.add(key)

    def kinds(self) -> list[str]:
        """Kinds that have (or had) objects."""
        return list(self._objects)

    def count(self) -> int:
        """Number of stored objects."""
        return sum(len(o) for by_ns in self._objects.values() for o in by_ns.values())

    # Writing

    def put(
        self, kind: str, obj: Object, event_type: str, previous: Object | None = None
    ) -> Object:
        """Store a new version of an object, giving it the next resourceVersion."""
        with self.lock:
            self.revision += 1
            obj["metadata"]["resourceVersion"] = str(self.revision)
            metadata = obj["metadata"]
            namespace = metadata.get("namespace", "")
            objects = self._objects.setdefault(kind, {}).setdefault(namespace, {})
            self._index(kind, namespace, metadata["name"], objects.get(metadata["name"]), obj)
            objects[metadata["name"]] = obj
            self._forget_encoded(kind, namespace, metadata["name"])
            self._record(StoredEvent(self.revision, event_type, kind, namespace, obj, previous))
            return obj

    def remove(self, kind: str, namespace: str, name: str) -> Object | None:
        """Delete an object, recording a DELETED event with a new resourceVersion."""
        with self.lock:
            objects = self._objects.get(kind, {}).get(namespace, {})
            old = objects.pop(name, None)
            if old is None:
                return None
            self._index(kind, namespace, name, old, None)
            self._forget_encoded(kind, namespace, name)
            if not objects:
                self._objects[kind].pop(namespace, None)
            self.revision += 1
            final = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self.revision)}}
            self._record(StoredEvent(self.revision, "DELETED", kind, namespace, final, old))
            return final

    def encoded(
        self, kind: str, obj: Object, form: str, encode: Callable[[Object], bytes]
    ) -> bytes:
        """An object's JSON as a LIST shows it (``form``, one of ``_ENCODED_FORMS``), made
        once per stored version.

        A LIST of 5,000 labs' pods encoded every object at every request, though
        almost none changed in between. The encoding is kept with the very dict it
        was made from: stored objects are never mutated in place (a write stores a
        new dict, and forgets the encodings of that name), so while that dict is
        the one stored, its bytes are what ``encode`` would make again. An older
        version (a later page of a LIST, served as of its first page) is encoded
        and not kept.
        """
        metadata = obj["metadata"]
        namespace, name = metadata.get("namespace", ""), metadata["name"]
        key = (form, kind, namespace, name)
        with self.lock:
            kept = self._encoded.get(key)
            if kept is not None and kept[0] is obj:
                return kept[1]
            raw = encode(obj)
            if self.get(kind, namespace, name) is obj:
                self._encoded[key] = (obj, raw)
            return raw

    def encoded_all(
        self, kind: str, objects: list[Object], form: str, encode: Callable[[Object], bytes]
    ) -> list[bytes]:
        """`encoded` of each object, under one hold of the lock (a LIST's every item)."""
        kept_all = self._encoded
        stored = self._objects.get(kind, {})
        parts: list[bytes] = []
        with self.lock:
            for obj in objects:
                metadata = obj["metadata"]
                namespace, name = metadata.get("namespace", ""), metadata["name"]
                key = (form, kind, namespace, name)
                kept = kept_all.get(key)
                if kept is not None and kept[0] is obj:
                    parts.append(kept[1])
                    continue
                raw = encode(obj)
                if stored.get(namespace, {}).get(name) is obj:
                    kept_all[key] = (obj, raw)
                parts.append(raw)
        return parts

    def _forget_encoded(self, kind: str, namespace: str, name: str) -> None:
        for form in _ENCODED_FORMS:
            self._encoded.pop((form, kind, namespace, name), None)

    def _record(self, event: StoredEvent) -> None:
        if len(self._history) == self._history.maxlen and self._history:
            self._floor = self._history[0].revision
        self._history.append(event)
        by_namespace = self._watching.get(event.kind)
        if not by_namespace:
            return
        for bucket in (by_namespace.get(event.namespace), by_namespace.get(None)):
            for watcher in bucket or ():
                if not watcher.cut:
                    item = watcher.offer(event)
                    if item is not None:
                        watcher.push(item)

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: older resourceVersions get 410."""
        with self.lock:
            self._history.clear()
            self._floor = self.revision

    # Watching

    def subscribe(
        self, watcher: Watcher, since: int | None, *, state: bool = False
    ) -> tuple[list[tuple[str, Object]], int] | None:
        """Register a watch; return the events it must replay first and the revision now.

        With ``state`` the replay is an ADDED for every current object in the
        watch's view (a watch from "" or "0", or with sendInitialEvents);
        otherwise, with ``since``, the recorded changes after that revision,
        or None when the history no longer reaches back to it (410); with
        neither, nothing: the watch starts now. The revision is where the
        replay leaves the watch (an initial-events-end bookmark carries it).
        """
        with self.lock:
            if state:
                replay = [
                    ("ADDED", obj)
                    for obj in self.iter_objects(watcher.kind, watcher.namespace)
                    if watcher.selects(obj)
                ]
            elif since is not None:
                if since < self._floor:
                    return None
                # The history is in revision order: the changes after ``since`` start where
                # bisection finds it (a watch from a recent version looks at a few events,
                # not 10,000). Of those, only the watch's kind and namespace can be in its
                # view (an object's versions share its namespace): with a hundred labs
                # starting, a lab's resumed watch met each of the others' changes.
                history = self._history
                newer = list(
                    islice(
                        reversed(history),
                        len(history) - bisect_right(history, since, key=_revision),
                    )
                )
                newer.reverse()
                kind, namespace = watcher.kind, watcher.namespace
                replay = []
                for event in newer:
                    if event.kind == kind and (namespace is None or event.namespace == namespace):
                        item = watcher.offer(event)
                        if item is not None:
                            replay.append(item)
            else:
                replay = []
            self._watchers.append(watcher)
            self._watching.setdefault(watcher.kind, {}).setdefault(watcher.namespace, []).append(
                watcher
            )
            return replay, self.revision

    def bookmark(self, watcher: Watcher) -> None:
        """Queue a BOOKMARK at the current revision behind the events already queued.

        Pushed under the lock like every event, so it reaches the watch after
        all the changes up to its revision: a client resuming from it misses
        nothing.
        """
        with self.lock:
            if not watcher.cut:
                watcher.push(("BOOKMARK", {"metadata": {"resourceVersion": str(self.revision)}}))

    @property
    def floor(self) -> int:
        """The revision the history starts after (what a 410 names as the oldest)."""
        with self.lock:
            return self._floor

    def remember_list(self, key: ListKey, items: list[Object]) -> None:
        """Keep a paginated LIST's collection (as of ``key``'s revision) for its next pages.

        etcd serves every page of a LIST from the first page's revision; so
        does `objects_at`, by undoing the history, but over the whole kind for
        every page (fifty pages of 500 would rebuild 25,000 objects fifty
        times). The collection at a revision never changes, so it is kept once.
        """
        with self.lock:
            self._list_snapshots[key] = ListSnapshot(items)
            self._list_snapshots.move_to_end(key)
            while len(self._list_snapshots) > _LIST_SNAPSHOTS:
                self._list_snapshots.popitem(last=False)

    def list_snapshot(self, key: ListKey) -> ListSnapshot | None:
        """A remembered LIST's collection; None when unknown or its revision was compacted."""
        with self.lock:
            found = self._list_snapshots.get(key)
            if found is None or key[-1] < self._floor:
                return None
            self._list_snapshots.move_to_end(key)
            return found

    def reaches_back(self, revision: int) -> bool:
        """Whether the history still holds every change after ``revision``."""
        with self.lock:
            return revision >= self._floor

    def unsubscribe(self, watcher: Watcher) -> None:
        """Forget a watch."""
        with self.lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)
                by_namespace = self._watching[watcher.kind]
                bucket = by_namespace[watcher.namespace]
                bucket.remove(watcher)
                if not bucket:
                    del by_namespace[watcher.namespace]

    def cut_watches(self) -> int:
        """Drop every open watch connection abruptly; returns how many were cut."""
        with self.lock:
            watchers = list(self._watchers)
            for watcher in watchers:
                watcher.cut = True
                watcher.push(None)
            return len(watchers)

    def close_watches(self) -> None:
        """End every open watch cleanly, as a server shutting down does."""
        with self.lock:
            for watcher in list(self._watchers):
                watcher.push(None)

    def watcher_count(self) -> int:
        """Number of open watches (tests wait for a watch to be in place)."""
        with self.lock:
            return len(self._watchers)
