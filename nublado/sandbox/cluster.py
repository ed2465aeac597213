"""The sandbox's API semantics: what each verb does to the store, with Kubernetes' rules.

`Cluster` is the API server without HTTP: create, get, list, replace, patch,
server-side apply and delete, each raising `ApiError` exactly where
kube-apiserver answers an error. It also plays the controllers a real cluster
runs on its own: the ``default`` ServiceAccount, the Job controller, the
Gafaelfawr operator and an ingress controller. The simulated kubelet is in
`nublado.sandbox.kubelet`; deletion (finalizers, grace periods, garbage
collection, namespace termination) in `nublado.sandbox.garbage`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

import orjson

from .admission import Admission
from .body import (
    JsonSyntaxError,
    decode_apply_body,
    decode_apply_config,
    decode_json,
    decode_patch_body,
)
from .clock import now_timestamp
from .fields import (
    ManagedEntry,
    apply_config,
    check_applied_type,
    check_field_manager,
    conflict_message,
    decode_managed_fields,
    encode_managed_fields,
    record_update,
)
from .garbage import GarbageCollector, being_deleted_error
from .kinds import ResourceKind, kind_named
from .kubelet import Kubelet
from .patch import apply_patch
from .rbac import BOOTSTRAP_POLICY
from .request import current_write
from .rules import (
    GENERATION_KINDS,
    admission_defaults,
    apply_defaults,
    check_uid_precondition,
    initial_status,
    keep_admitted,
    validate_create,
    validate_update,
)
from .selectors import FieldSelector, LabelSelector, SelectorError
from .settings import SandboxSettings
from .storage import Storage
from .store import ApiError, Store, clone
from .validation import decode_object

__all__ = [
    "SYSTEM_NAMESPACES",
    "Cluster",
    "SandboxSettings",
    "now_timestamp",
    "parse_object",
    "parse_selectors",
]

Object = dict[str, Any]

# A 410 for a continue token older than the history, in upstream's words.
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter, or use the continue token "
    "in this response to retrieve the remainder of the results. Continuing with the "
    "provided token results in an inconsistent list - objects that were created, modified, "
    "or deleted between the time the first chunk was returned and now may show up in the list."
)
# The namespaces a new cluster has (kube-apiserver creates and keeps them).
SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
# The ones NamespaceLifecycle admission refuses to delete.
_IMMORTAL_NAMESPACES = frozenset({"default", "kube-public", "kube-system"})
# The characters apimachinery's generateName suffixes are drawn from (no vowels, no 0/1/3).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def parse_selectors(
    kind: str, label_selector: str | None, field_selector: str | None
) -> tuple[LabelSelector, FieldSelector]:
    """The labelSelector and fieldSelector of a list or watch; 400 BadRequest if malformed."""
    try:
        return LabelSelector.parse(label_selector), FieldSelector.parse(field_selector, kind)
    except SelectorError as exc:
        raise ApiError.bad_request(str(exc)) from None


def parse_object(raw: bytes) -> Object:
    """Decode a body that may be JSON or YAML (DeleteOptions) into an object."""
    try:
        body = decode_json(raw)
    except JsonSyntaxError:
        body = decode_apply_body(raw)
    if not isinstance(body, dict):
        raise ApiError.bad_request("the request body must be a JSON or YAML object")
    return body


def _set_managed_fields(metadata: Object, entries: builtins.list[Object]) -> None:
    """Set managedFields; none at all when no manager owns a field (Go's omitempty)."""
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


def _shape(value: Any) -> Any:
    """Which keys a JSON value sets, recursively, and the types of its leaves.

    Made for every kubelet Event: a list, not a generator, and the leaf's
    class itself (a dict of a subclass counts as another shape: only more
    shapes to learn, each checked against the full create path).
    """
    if type(value) is dict:
        return tuple([(key, _shape(item)) for key, item in value.items()])
    return type(value)


def _direct_event(
    event: Object, managed: bytes, uid: str, now: str, *, given: bool = False
) -> Object:
    """A new Event as the create path stores it: system metadata, managed fields at ``now``.

    ``managed`` is the shape's managedFields as JSON: read into fresh dicts for
    each Event (stored objects share nothing) without first copying a kept list.
    A ``given`` event (built for this call and handed over) becomes the object
    itself; another is copied.
    """
    obj = event if given else clone(event)
    obj["apiVersion"] = "v1"
    obj["kind"] = "Event"
    metadata = obj["metadata"]
    metadata["uid"] = uid
    metadata["creationTimestamp"] = now
    entries = orjson.loads(managed)
    for entry in entries:
        entry["time"] = now  # in its place: every entry has a time (see _learn_event_shape)
    metadata["managedFields"] = entries
    return obj


def new_uid() -> str:
    """A random (version 4) UUID's text, as ``str(uuid.uuid4())`` gives it, in half the time.

    Every object and Event gets one; uuid's class, built and printed for each,
    was a visible part of a spawn's creates.
    """
    data = bytearray(os.urandom(16))
    data[6] = (data[6] & 0x0F) | 0x40  # version 4
    data[8] = (data[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = data.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class Cluster:
    """The in-memory API server and the controllers of a one-machine cluster."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self.store = Store(self.settings.history_limit)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._deferred: builtins.list[tuple[float, Callable[..., None], tuple[Any, ...]]] = []
        self._ip_counter = 0
        self._lock = self.store.lock
        # Event shape (see `_shape`) -> the managed fields its creation records (as JSON),
        # or None for a shape the direct construction does not reproduce (the full path).
        self._event_shapes: dict[Any, bytes | None] = {}
        self.admission = Admission(self)
        self.storage = Storage(self)
        self.kubelet = Kubelet(self)
        self.garbage = GarbageCollector(self)
        for name in SYSTEM_NAMESPACES:
            self.create_internal("Namespace", {"metadata": {"name": name}}, "kube-apiserver")
        if self.settings.rbac:
            for policy in BOOTSTRAP_POLICY:
                self.create_internal(policy["kind"], clone(policy), "kube-apiserver")

    # Scheduling of background work on the server's loop

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run timers (kubelet steps, namespace termination) on this loop from now on."""
        # Under the lock, so a `later` in another thread cannot append to the
        # list being drained (its callback would never run).
        with self._lock:
            self.loop = loop
            deferred, self._deferred = self._deferred, []
            for delay, fn, args in deferred:
                self.later(delay, fn, *args)

    def later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` on the server loop after ``delay`` seconds, from any thread."""
        with self._lock:
            loop = self.loop
            if loop is None or loop.is_closed():
                self._deferred.append((delay, fn, args))
                return

        def run() -> None:
            # An ApiError means the object changed under the controller; a real one would retry.
            with contextlib.suppress(ApiError):
                fn(*args)

        if asyncio._get_running_loop() is loop:
            # From a request on the loop (most calls): no wake-up through the loop's
            # self-pipe (two system calls and a pass of the loop each); same order.
            if delay <= 0:
                loop.call_soon(run)
            else:
                loop.call_later(delay, run)
        elif delay <= 0:
            loop.call_soon_threadsafe(run)
        else:
            loop.call_soon_threadsafe(loop.call_later, delay, run)

    # Helpers

    def _kind(self, name: str) -> ResourceKind:
        return kind_named(name)

    def _check_namespace(self, kind: ResourceKind, namespace: str, name: str) -> None:
        """Namespace admission for a create: it must exist and not be terminating."""
        if not kind.namespaced:
            return
        ns = self.store.get("Namespace", "", namespace)
        if ns is None:
            raise ApiError.not_found(kind_named("Namespace"), namespace)
        if ns.get("status", {}).get("phase") == "Terminating":
            raise ApiError(
                403,
                "Forbidden",
                f'{kind.group_resource} "{name}" is forbidden: unable to create new content '
                f"in namespace {namespace} because it is being terminated",
                {
                    "name": name,
                    "kind": kind.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _incoming(
        self,
        kind: ResourceKind,
        namespace: str | None,
        body: Object,
        name: str | None = None,
        *,
        owned: bool = False,
    ) -> Object:
        """Check an incoming object against the URL it was sent to.

        ``owned``: the body was just decoded for this call and nothing else
        holds it, so it is completed in place rather than copied first.
        """
        api_version = body.get("apiVersion")
        body_kind = body.get("kind")
        if api_version is not None and api_version != kind.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version})"
            )
        if body_kind is not None and body_kind != kind.kind:
            raise ApiError.bad_request(
                f"the kind in the data ({body_kind}) does not match the expected kind ({kind.kind})"
            )
        obj = body if owned else clone(body)
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = obj["metadata"] = {}
        if not isinstance(metadata, dict):
            raise ApiError.bad_request("metadata must be an object")
        if name is not None:
            if metadata.get("name") and metadata["name"] != name:
                raise ApiError.bad_request(
                    f"the name of the object ({metadata['name']}) does not match the name on "
                    f"the URL ({name})"
                )
            metadata["name"] = name
        if kind.namespaced:
            if metadata.get("namespace") and metadata["namespace"] != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        return obj

    def _initialize(self, kind: ResourceKind, obj: Object) -> Object:
        """System metadata, defaults and initial status of a new object."""
        metadata = obj["metadata"]
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            metadata.pop(key, None)
        metadata["uid"] = new_uid()
        metadata["creationTimestamp"] = now_timestamp()
        if kind.kind in GENERATION_KINDS:
            metadata["generation"] = 1
        given_status = obj.pop("status", None)
        if kind.has_status or kind.kind == "Node":
            status = initial_status(kind, obj, given_status)
            if status is not None:
                obj["status"] = status
        elif given_status is not None:
            obj["status"] = given_status
        if kind.kind == "Service":
            spec = obj.setdefault("spec", {})
            if spec.get("clusterIP") != "None" and spec.get("type", "ClusterIP") != "ExternalName":
                self._ip_counter += 1
                ip = f"10.96.{self._ip_counter // 250}.{self._ip_counter % 250 + 1}"
                spec.setdefault("clusterIP", ip)
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
        decode_object(kind, obj)
        apply_defaults(kind, obj)
        validate_create(kind, obj)
        return obj

    def _manager(self, field_manager: str | None, user_agent: str | None) -> str:
        if field_manager:
            return field_manager
        if user_agent:
            return user_agent.split("/", 1)[0] or "unknown"
        return "unknown"

    # Reads

    def get(self, kind_name: str, namespace: str, name: str) -> Object:
        """GET one object."""
        kind = self._kind(kind_name)
        with self._lock:
            obj = self.store.get(kind.kind, namespace if kind.namespaced else "", name)
            if obj is None:
                raise ApiError.not_found(kind, name)
            return obj

    def list(
        self,
        kind_name: str,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        at_revision: int | None = None,
    ) -> tuple[builtins.list[Object], int]:
        """LIST objects matching selectors; returns the items and the list resourceVersion.

        With ``at_revision`` (a continue token's), the objects as they were
        then; a 410 Expired when the history no longer reaches back to it.
        """
        kind = self._kind(kind_name)
        labels, fields = parse_selectors(kind.kind, label_selector, field_selector)
        with self._lock:
            ns = namespace if kind.namespaced else None
            name = fields.equality("metadata.name")
            if at_revision is not None:
                snapshot = self.store.objects_at(kind.kind, ns, at_revision)
                if snapshot is None:
                    raise ApiError(410, "Expired", _CONTINUE_EXPIRED)
                items = [
                    o
                    for o in snapshot
                    if labels.matches(o["metadata"].get("labels")) and fields.matches(o, kind.kind)
                ]
                return items, at_revision
            indexed = labels.indexable()
            if name is not None and ns is not None:
                found = self.store.get(kind.kind, ns, name)
                candidates = [found] if found is not None else []
            elif indexed is not None:
                # The label index gives exactly the objects this clause selects, in order.
                candidates = self.store.labelled(kind.kind, ns, indexed.key, indexed.values)
                if len(labels.requirements) == 1:
                    if not fields.terms:
                        return candidates, self.store.revision
                    return [o for o in candidates if fields.matches(o, kind.kind)], (
                        self.store.revision
                    )
            else:
                candidates = list(self.store.iter_objects(kind.kind, ns))
            items = [
                o
                for o in candidates
                if labels.matches(o["metadata"].get("labels")) and fields.matches(o, kind.kind)
            ]
            return items, self.store.revision

    # Writes

    def create(
        self,
        kind_name: str,
        namespace: str | None,
        body: Object,
        *,
        field_manager: str | None = None,
        user_agent: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        """POST: create an object (409 if it exists, 403 in a terminating namespace)."""
        kind = self._kind(kind_name)
        with self._lock:
            obj = self._incoming(kind, namespace, body)
            metadata = obj["metadata"]
            body_name = metadata.get("name")
            if not metadata.get("name"):
                generate = metadata.get("generateName")
                if not generate:
                    raise ApiError.invalid(
                        kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                        "FieldValueRequired",
                    )
                suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
                metadata["name"] = f"{generate}{suffix}"
            name = metadata["name"]
            ns_key = (namespace or "") if kind.namespaced else ""
            self._check_namespace(kind, ns_key, name)
            obj = self._initialize(kind, obj)
            manager = self._manager(field_manager, user_agent)
            entries = record_update(
                None, obj, [], manager=manager, api_version=kind.api_version, now=now_timestamp()
            )
            _set_managed_fields(obj["metadata"], encode_managed_fields(entries))
            # After the field manager, as kube-apiserver runs admission: what a plugin fills
            # in (a PVC's default class, its protection finalizer) belongs to no manager.
            admission_defaults(kind, obj)
            self.garbage.admit_create(kind, obj)
            self.admission.admit_create(kind, obj, body_name or metadata.get("generateName", name))
            # Last, as storage's KeyExists: decoding, validation and admission answer first.
            existing = self.store.get(kind.kind, ns_key, name)
            if existing is not None:
                if existing["metadata"].get("deletionTimestamp"):
                    raise being_deleted_error(kind, name)
                raise ApiError.already_exists(kind, name)
            if dry_run:
                return obj
            return self._insert(kind, obj)

    def _insert(self, kind: ResourceKind, obj: Object) -> Object:
        stored = self.store.put(kind.kind, obj, "ADDED")
        self._after_write(kind, None, stored)
        self.garbage.written(kind, None, stored)
        return stored

    def create_internal(self, kind_name: str, obj: Object, manager: str) -> Object | None:
        """Create an object as a controller does (None if it exists or cannot be created)."""
        kind = self._kind(kind_name)
        with self._lock:
            ns = obj.get("metadata", {}).get("namespace") if kind.namespaced else None
            try:
                return self.create(kind.kind, ns, obj, field_manager=manager)
            except ApiError:
                return None

    def create_event_internal(
        self, event: Object, manager: str, *, given: bool = False
    ) -> Object | None:
        """A component's Event (the kubelet's), as `create_internal` creates it, for less CPU.

        The kubelet writes about a dozen Events per lab, each fully formed.
        The first Event of each shape (which fields it sets) takes the whole
        create path in a dry run, and the object built directly (system
        metadata, the managed fields of that dry run with a new time) is
        compared with it: a shape whose direct object is identical is built
        directly from then on, skipping decoding, defaulting, validation and
        the managed-fields computation, whose results depend on the shape
        only. Namespace, quota and garbage collector admission and the
        storage write are the same as ever. A ``given`` event is one its caller
        built for this call and keeps no reference to (the kubelet's): it is
        stored as it is rather than copied.
        """
        kind = self._kind("Event")
        metadata = event.get("metadata") or {}
        namespace, name = metadata.get("namespace"), metadata.get("name")
        if not isinstance(namespace, str) or not isinstance(name, str) or not name:
            return self.create_internal("Event", event, manager)
        shape = (manager, _shape(event))
        with self._lock:
            if shape not in self._event_shapes:
                self._event_shapes[shape] = self._learn_event_shape(kind, event, manager)
            managed = self._event_shapes[shape]
            if managed is None:
                return self.create_internal("Event", event, manager)
            try:
                self._check_namespace(kind, namespace, name)
                obj = _direct_event(event, managed, new_uid(), now_timestamp(), given=given)
                admission_defaults(kind, obj)
                self.garbage.admit_create(kind, obj)
                self.admission.admit_create(kind, obj, name)
                if self.store.get(kind.kind, namespace, name) is not None:
                    return None
                return self._insert(kind, obj)
            except ApiError:
                return None

    def _learn_event_shape(self, kind: ResourceKind, event: Object, manager: str) -> bytes | None:
        """The managed fields of an Event of this shape (as JSON), if building it directly
        is exact."""
        try:
            full = self.create(
                kind.kind,
                event["metadata"]["namespace"],
                event,
                field_manager=manager,
                dry_run=True,
            )
        except ApiError:
            return None
        meta = full["metadata"]
        managed = meta.get("managedFields")
        if not isinstance(managed, list) or any(
            entry.get("time") != meta["creationTimestamp"] for entry in managed
        ):
            return None
        raw = orjson.dumps(managed)
        direct = _direct_event(event, raw, meta["uid"], meta["creationTimestamp"])
        admission_defaults(kind, direct)
        # Compared as bytes: the order of keys, which a client sees, must match too.
        return raw if orjson.dumps(direct) == orjson.dumps(full) else None

    def update_internal(
        self,
        kind_name: str,
        namespace: str,
        name: str,
        mutate: Callable[[Object], None],
        manager: str | None,
        *,
        subresource: str = "status",
        uid: str | None = None,
    ) -> Object | None:
        """Change an object as a controller does (None if it is gone or was replaced).

        With no ``manager`` the write records no managed fields, as a write
        straight to storage (a pod's binding) does.
        """
        kind = self._kind(kind_name)
        with self._lock:
            old = self.store.get(kind.kind, namespace if kind.namespaced else "", name)
            if old is None or (uid is not None and old["metadata"].get("uid") != uid):
                return None
            # The managed fields are rebuilt from the entries below, never edited by a
            # controller: the copy shares the stored list rather than cloning the
            # largest part of a pod (the stored object is never changed in place).
            old_meta = old["metadata"]
            managed = old_meta.get("managedFields")
            if managed is None:
                new = clone(old)
            else:
                new = clone(
                    {**old, "metadata": {k: v for k, v in old_meta.items() if k != "managedFields"}}
                )
                new["metadata"]["managedFields"] = managed
            mutate(new)
            entries = decode_managed_fields(old)
            if manager is not None:
                entries = record_update(
                    old,
                    new,
                    entries,
                    manager=manager,
                    api_version=kind.api_version,
                    now=now_timestamp(),
                    subresource=subresource,
                )
            return self._finish_update(kind, old, new, entries, validate=False, internal=True)

    def _finish_update(
        self,
        kind: ResourceKind,
        old: Object,
        new: Object,
        entries: builtins.list[ManagedEntry],
        *,
        validate: bool = True,
        dry_run: bool = False,
        internal: bool = False,
    ) -> Object:
        """Common tail of every update: system fields, defaults, validation, no-op detection.

        ``internal`` writes (the simulated controllers) may set deletion metadata.
        """
        old_meta = old["metadata"]
        meta = new.setdefault("metadata", {})
        given_uid = meta.get("uid")
        system = ["uid", "creationTimestamp", "generation", "name", "namespace"]
        if not internal:
            system += ["deletionTimestamp", "deletionGracePeriodSeconds"]
        for key in system:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("resourceVersion", None)
        meta.pop("managedFields", None)
        if kind.kind == "Service":
            spec = new.setdefault("spec", {})
            old_spec = old.get("spec") or {}
            for key in ("clusterIP", "clusterIPs"):
                if key in old_spec and key not in spec:
                    spec[key] = old_spec[key]
        if not internal:
            decode_object(kind, new)
        apply_defaults(kind, new)
        keep_admitted(kind, old, new)
        if validate:
            validate_update(kind, old, new, given_uid)
            self.admission.admit_update(kind, old, new)
        if not internal:
            self.garbage.check_update(kind, old, new)
        new_entries = encode_managed_fields(entries)
        old_compare = {
            **old,
            "metadata": {
                k: v for k, v in old_meta.items() if k not in ("resourceVersion", "managedFields")
            },
        }
        if new == old_compare and _same_entries(old_meta.get("managedFields") or [], new_entries):
            return old
        if kind.kind in GENERATION_KINDS and _spec_part(old) != _spec_part(new):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        _set_managed_fields(meta, new_entries)
        if dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return new
        if self.garbage.deletes_on_update(kind, old, new):
            return self.garbage.remove(kind, old)
        stored = self.store.put(kind.kind, new, "MODIFIED", old)
        self._after_write(kind, old, stored)
        self.garbage.written(kind, old, stored)
        return stored

    def replace(
        self,
        kind_name: str,
        namespace: str | None,
        name: str,
        body: Object,
        *,
        subresource: str = "",
        field_manager: str | None = None,
        user_agent: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        """PUT: replace an object (or its status), honouring a resourceVersion precondition."""
        kind = self._kind(kind_name)
        with self._lock:
            incoming = self._incoming(kind, namespace, body, name)
            old = self._existing(kind, namespace, name)
            check_uid_precondition(kind, old, incoming)
            self._check_precondition(kind, old, incoming)
            new = _with_status_rules(kind, old, incoming, subresource)
            return self._write_update(
                kind, old, new, subresource, field_manager, user_agent, dry_run
            )

    def _existing(self, kind: ResourceKind, namespace: str | None, name: str) -> Object:
        obj = self.store.get(kind.kind, (namespace or "") if kind.namespaced else "", name)
        if obj is None:
            raise ApiError.not_found(kind, name)
        return obj

    def _check_precondition(self, kind: ResourceKind, old: Object, incoming: Object) -> None:
        wanted = incoming.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {kind.group_resource} "
                f'"{old["metadata"]["name"]}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                {"name": old["metadata"]["name"], "kind": kind.plural},
            )

    def _write_update(
        self,
        kind: ResourceKind,
        old: Object,
        new: Object,
        subresource: str,
        field_manager: str | None,
        user_agent: str | None,
        dry_run: bool = False,
    ) -> Object:
        manager = self._manager(field_manager, user_agent)
        # Decoded before the field manager sees it, as kube-apiserver does: a field the
        # decoder drops (unknown, or empty and omitempty) belongs to no manager.
        decode_object(kind, new)
        entries = record_update(
            old,
            new,
            decode_managed_fields(old),
            manager=manager,
            api_version=kind.api_version,
            now=now_timestamp(),
            subresource=subresource,
        )
        return self._finish_update(
            kind, old, new, entries, validate=subresource != "status", dry_run=dry_run
        )

    def patch(
        self,
        kind_name: str,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str = "",
        field_manager: str | None = None,
        user_agent: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        """PATCH with a JSON patch, a merge patch, or a strategic merge patch."""
        kind = self._kind(kind_name)
        body = decode_patch_body(raw, content_type, current_write().field_validation)
        with self._lock:
            old = self._existing(kind, namespace, name)
            try:
                patched = apply_patch(kind.api_version, kind.kind, content_type, old, body)
            except RecursionError:
                # The patch code recurses; Go's limit (10,000 levels) is beyond Python's.
                raise ApiError.bad_request("error decoding patch: exceeded max depth") from None
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "the patch did not produce an object")
            incoming = self._incoming(kind, namespace, patched, name)
            self._check_precondition(kind, old, body if isinstance(body, dict) else {})
            new = _with_status_rules(kind, old, incoming, subresource)
            return self._write_update(
                kind, old, new, subresource, field_manager, user_agent, dry_run
            )

    def apply(
        self,
        kind_name: str,
        namespace: str | None,
        name: str,
        raw: bytes,
        *,
        field_manager: str | None,
        force: bool,
        subresource: str = "",
        dry_run: bool = False,
    ) -> tuple[Object, bool]:
        """Server-side apply; returns the object and whether it was created."""
        kind = self._kind(kind_name)
        check_field_manager("PatchOptions", field_manager, apply=True)
        assert field_manager is not None
        config_raw, owned = decode_apply_config(raw)
        check_applied_type(config_raw, kind.api_version, kind.kind)
        with self._lock:
            config = self._incoming(kind, namespace, config_raw, name, owned=owned)
            if config["metadata"].get("managedFields") is not None:
                raise ApiError.bad_request("metadata.managedFields must be nil")
            live = self.store.get(kind.kind, (namespace or "") if kind.namespaced else "", name)
            now = now_timestamp()
            with_status = subresource == "status"
            if live is None:
                if subresource:
                    raise ApiError.not_found(kind, name)
                if config["metadata"].get("uid"):
                    raise ApiError(
                        409,
                        "Conflict",
                        f"uid mismatch: the provided object specified uid "
                        f"{config['metadata']['uid']}, and no existing object was found",
                    )
                self._check_namespace(kind, (namespace or "") if kind.namespaced else "", name)
                merged, entries, _ = apply_config(
                    None,
                    config,
                    [],
                    manager=field_manager,
                    api_version=kind.api_version,
                    now=now,
                    force=True,
                )
                obj = self._initialize(kind, merged)
                admission_defaults(kind, obj)
                self.admission.admit_create(kind, obj, name)
                _set_managed_fields(obj["metadata"], encode_managed_fields(entries))
                self.garbage.admit_create(kind, obj)
                if dry_run:
                    return obj, True
                return self._insert(kind, obj), True
            self._check_precondition(kind, live, config)
            entries = decode_managed_fields(live)
            merged, new_entries, conflicts = apply_config(
                live,
                config,
                entries,
                manager=field_manager,
                api_version=kind.api_version,
                now=now,
                force=force,
                with_status=with_status,
            )
            if conflicts and not force:
                message, causes = conflict_message(conflicts)
                raise ApiError(409, "Conflict", message, {"causes": causes})
            if kind.has_status and not with_status and "status" in live:
                merged["status"] = clone(live["status"])
            result = self._finish_update(
                kind, live, merged, new_entries, validate=not with_status, dry_run=dry_run
            )
            return result, False

    def delete(
        self,
        kind_name: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Object:
        """DELETE; returns the answer body (the object, or a Status for some kinds).

        The rules (grace periods, finalizers, propagation, namespaces) are in
        `nublado.sandbox.garbage`.
        """
        kind = self._kind(kind_name)
        if kind.kind == "Namespace" and name in _IMMORTAL_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        with self._lock:
            return self.garbage.delete(
                kind,
                namespace,
                name,
                propagation_policy=propagation_policy,
                grace_period_seconds=grace_period_seconds,
                preconditions=preconditions,
                dry_run=dry_run,
            )

    # Namespaces

    def finish_namespace(self, name: str) -> bool:
        """Run the namespace controller on a Terminating namespace now (see `garbage`).

        Returns False when the namespace is absent or not terminating.
        """
        return self.garbage.finish_namespace(name)

    def terminating_namespaces(self) -> builtins.list[str]:
        """Names of namespaces that are Terminating."""
        with self._lock:
            return [
                ns["metadata"]["name"]
                for ns in self.store.iter_objects("Namespace", None)
                if ns["metadata"].get("deletionTimestamp")
            ]

    # Controllers

    def _after_write(self, kind: ResourceKind, old: Object | None, new: Object) -> None:
        """Reactions of the simulated controllers to a stored write."""
        self.admission.after_write(kind, old, new)
        self.storage.after_write(kind.kind, old, new)
        match kind.kind:
            case "Namespace" if old is None:
                self.create_internal(
                    "ServiceAccount",
                    {"metadata": {"name": "default", "namespace": new["metadata"]["name"]}},
                    "kube-controller-manager",
                )
            case "Pod":
                self.kubelet.pod_written(old, new)
            case "ConfigMap" | "Secret":
                self.kubelet.config_written(new)
            case "Node":
                self.kubelet.node_written(old, new)
            case "Job" if old is None:
                self._start_job_pod(new)
            case "Ingress":
                address = ((new.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                delay = self.settings.ingress_address_delay
                if (
                    not address
                    and not new["metadata"].get("deletionTimestamp")
                    and delay is not None
                ):
                    meta = new["metadata"]
                    self.later(
                        delay,
                        self._set_ingress_address,
                        meta["namespace"],
                        meta["name"],
                        meta["uid"],
                    )
            case "GafaelfawrIngress" if not new["metadata"].get("deletionTimestamp"):
                self._sync_gafaelfawr_ingress(new)

    def _after_remove(self, kind: ResourceKind, obj: Object) -> None:
        self.admission.after_remove(kind, obj)
        if kind.kind == "Pod":
            self.kubelet.pod_removed(obj)

    def _set_ingress_address(self, namespace: str, name: str, uid: str) -> None:
        address = self.settings.ingress_address

        def mutate(o: Object) -> None:
            o["status"] = {"loadBalancer": {"ingress": [{"ip": address}]}}

        self.update_internal("Ingress", namespace, name, mutate, "ingress-nginx", uid=uid)

    def _sync_gafaelfawr_ingress(self, gi: Object) -> None:
        """What the Gafaelfawr operator does: keep an Ingress built from the template."""
        meta = gi["metadata"]
        template = gi.get("template") or {}
        template_meta = template.get("metadata") or {}
        name = template_meta.get("name") or meta["name"]
        ingress: Object = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": {
                    **(template_meta.get("annotations") or {}),
                    "nginx.ingress.kubernetes.io/auth-method": "GET",
                },
                "ownerReferences": [
                    {
                        "apiVersion": gi["apiVersion"],
                        "kind": "GafaelfawrIngress",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": clone(template.get("spec") or {}),
        }
        existing = self.store.get("Ingress", meta["namespace"], name)
        if existing is None:
            self.create_internal("Ingress", ingress, "gafaelfawr")
        else:

            def mutate(o: Object) -> None:
                o["metadata"]["labels"] = ingress["metadata"]["labels"]
                o["metadata"]["annotations"] = ingress["metadata"]["annotations"]
                o["spec"] = ingress["spec"]

            self.update_internal(
                "Ingress", meta["namespace"], name, mutate, "gafaelfawr", subresource=""
            )

    def _start_job_pod(self, job: Object) -> None:
        """The Job controller: one pod per Job, labelled ``job-name``, owned by the Job."""
        meta = job["metadata"]
        template = clone((job.get("spec") or {}).get("template") or {})
        template_meta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        if self.create_internal("Pod", pod, "kube-controller-manager") is None:
            return

        def mutate(o: Object) -> None:
            o["status"] = {
                "active": 1,
                "ready": 0,
                "terminating": 0,
                "startTime": now_timestamp(),
                "uncountedTerminatedPods": {},
            }

        self.update_internal(
            "Job", meta["namespace"], meta["name"], mutate, "kube-controller-manager"
        )

    def job_pod_finished(self, pod: Object, phase: str) -> None:
        """The Job controller's reaction to its pod ending."""
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") != "Job":
                continue
            namespace = pod["metadata"]["namespace"]
            now = now_timestamp()

            def mutate(o: Object, phase: str = phase, now: str = now) -> None:
                status = o.setdefault("status", {})
                status["active"] = 0
                if phase == "Succeeded":
                    status["succeeded"] = status.get("succeeded", 0) + 1
                    status["completionTime"] = now
                    condition_types = ["SuccessCriteriaMet", "Complete"]
                else:
                    status["failed"] = status.get("failed", 0) + 1
                    condition_types = ["FailureTarget", "Failed"]
                status["conditions"] = [
                    {
                        "type": t,
                        "status": "True",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    }
                    for t in condition_types
                ]

            self.update_internal(
                "Job", namespace, ref["name"], mutate, "kube-controller-manager", uid=ref.get("uid")
            )

    # Nodes

    def add_nodes(self, nodes: dict[str, Any]) -> builtins.list[Object]:
        """Create Nodes from the reference format: name -> {images, labels[, taints]}."""
        created = []
        for index, (name, spec) in enumerate(sorted(nodes.items()), start=1):
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **(spec.get("labels") or {}),
            }
            images = [
                {
                    "names": list(image.get("names") or []),
                    "sizeBytes": int(image.get("size_bytes", 0)),
                }
                for image in spec.get("images") or []
            ]
            node: Object = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "spec": {},
                "status": {
                    "images": images,
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "addresses": [
                        {"type": "InternalIP", "address": f"10.0.0.{index}"},
                        {"type": "Hostname", "address": name},
                    ],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                        }
                    ],
                    "nodeInfo": {
                        "architecture": "amd64",
                        "bootID": f"00000000-0000-0000-0000-{index:012d}",
                        "containerRuntimeVersion": "containerd://1.7.0",
                        "kernelVersion": "6.1.0",
                        "kubeProxyVersion": "v1.32.0",
                        "kubeletVersion": "v1.32.0",
                        "machineID": f"{index:032x}",
                        "operatingSystem": "linux",
                        "osImage": "Sandbox Linux",
                        "systemUUID": f"00000000-0000-0000-0000-{index:012d}",
                    },
                },
            }
            if spec.get("taints"):
                node["spec"]["taints"] = spec["taints"]
            if spec.get("unschedulable"):
                node["spec"]["unschedulable"] = True
            obj = self.create_internal("Node", node, "kubelet")
            if obj is not None:
                created.append(obj)
        return created


def _spec_part(obj: Object) -> Object:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _same_entries(old: builtins.list[Object], new: builtins.list[Object]) -> bool:
    def key(entries: builtins.list[Object]) -> builtins.list[tuple[Any, ...]]:
        return [
            (
                e.get("manager"),
                e.get("operation"),
                e.get("apiVersion"),
                e.get("subresource"),
                json.dumps(e.get("fieldsV1"), sort_keys=True),
            )
            for e in entries
        ]

    return key(old) == key(new)


def _with_status_rules(
    kind: ResourceKind, old: Object, incoming: Object, subresource: str
) -> Object:
    """The object a PUT or PATCH stores, by the status subresource's rules.

    A write to ``status`` changes only the status; a write to the object
    itself keeps the stored status of kinds that have a status subresource.
    """
    if subresource == "status":
        new = clone(old)
        if "status" in incoming:
            new["status"] = incoming["status"]
        return new
    if kind.has_status:
        incoming.pop("status", None)
        if "status" in old:
            incoming["status"] = clone(old["status"])
    return incoming
