"""A user's lab as the cluster holds it: the operation record (a Lease) and status derivation.

Nothing here talks to Kubernetes. `OperationRecord` reads and writes the
per-user Lease (PLAN-LABS.md "The operation record"); `derive_state` turns
a record and the lab's objects, as the watch caches hold them, into the
LabState the routes answer with; `rebuild_state` recovers a lab's state from
its objects alone, for labs this controller did not spawn (api.md 7.7).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ..config import Config, LabSize
from ..models.lab import LabOptions, LabResourceAmounts, LabState, LabStatus, ResourceAmount
from ..models.user import UserGroup, UserInfo
from ..units import cpu_to_cores, memory_to_bytes

__all__ = [
    "CANCEL_ANNOTATION",
    "CATEGORY_LABEL",
    "LEASE_CATEGORY",
    "OPERATION_ANNOTATION",
    "OPERATION_ID_ANNOTATION",
    "RESULT_ANNOTATION",
    "USER_LABEL",
    "LabObjects",
    "OperationRecord",
    "derive_state",
    "format_time",
    "is_secret_name",
    "parse_time",
    "rebuild_state",
]

CATEGORY_LABEL = "nublado.lsst.io/category"
USER_LABEL = "nublado.lsst.io/user"
LEASE_CATEGORY = "lab-operation"

_PREFIX = "nublado.lsst.io/"
_OPERATION = _PREFIX + "operation"
_OPERATION_ID = _PREFIX + "operation-id"
OPERATION_ID_ANNOTATION = _OPERATION_ID
"""The annotation naming the operation a record is of (read alone where that is all needed)."""
_RESULT = _PREFIX + "result"
OPERATION_ANNOTATION = _OPERATION
RESULT_ANNOTATION = _RESULT
"""The annotations naming a record's operation and its result (read alone where that is all
needed: the reconcile's common case)."""
_LAB_STATE = _PREFIX + "lab-state"
_INTERNAL_URL = _PREFIX + "internal-url"
_EVENTS = _PREFIX + "events"
_CANCEL = _PREFIX + "cancel"
_SPAWN_ENV = _PREFIX + "spawn-env"
CANCEL_ANNOTATION = _CANCEL
"""The annotation by which another replica asks the holder to stop (``requested``)."""

Object = dict[str, Any]
EventTuple = tuple[str, str, int | None]

_SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "KEY"})


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether an env variable's (or ConfigMap key's) name says its value is a secret.

    The rule, one for the record and for ``nublado diff``: the name, cut into words
    at every character that is not a letter or digit, has a word TOKEN, SECRET,
    PASSWORD or KEY (any case, or its plural): ``JUPYTERHUB_API_TOKEN``,
    ``AWS_SECRET_ACCESS_KEY``, ``db-password``; not ``KEYCLOAK_URL`` nor ``TOKENIZER``.

    Cached (bounded): every Lease write of a spawn asks it again of each env key.
    """
    words = re.split(r"[^A-Z0-9]+", name.upper())
    return any(w in _SECRET_WORDS or w.removesuffix("S") in _SECRET_WORDS for w in words)


def _dumps(value: Any) -> str:
    """JSON for an annotation: orjson's, or the standard library's for what orjson refuses.

    A spawn writes its record three or more times and the events and env were
    the slower part of each write; orjson refuses a lone surrogate, which a
    Kubernetes Event's message may hold, where ``json`` escapes it.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _loads(text: str) -> Any:
    """`_dumps`'s reverse: the standard library's for what orjson refuses (a lone surrogate)."""
    try:
        return orjson.loads(text)
    except ValueError:
        return json.loads(text)


def format_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (``renewTime``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    """A MicroTime or Time, or None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def resource_version(obj: Mapping[str, Any] | None) -> int:
    """An object's resourceVersion as a number, to tell which of two copies is newer."""
    if not obj:
        return -1
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or -1)
    except ValueError:
        return -1


@dataclass
class OperationRecord:
    """The per-user operation record, decoded from (and encoded to) its Lease.

    ``lease`` is the Lease it came from (None for a record not written yet);
    `to_lease` keeps that Lease's metadata, resourceVersion included, so a
    replace is refused if someone wrote in between.
    """

    username: str
    operation: str = ""
    operation_id: str = ""
    result: str = ""
    holder: str = ""
    duration: int = 15
    renew_time: datetime | None = None
    lab_state: LabState | None = None
    internal_url: str | None = None
    events: list[EventTuple] = field(default_factory=list)
    cancel: bool = False
    lease: Object | None = None
    spawn_env: dict[str, str] = field(default_factory=dict)
    """The data of the lab's env ConfigMap, written once its objects exist: the reconcile
    rebuilds a deleted env ConfigMap from it (the spawner's part is held nowhere else).
    Values whose key `is_secret_name` (the hub's API token) are never written to the
    Lease: only their keys are (``withheld_env``)."""
    withheld_env: list[str] = field(default_factory=list)
    """Keys of the env whose values the record does not hold (secrets): an env ConfigMap
    rebuilt from the record lacks them."""
    _state_json: tuple[LabState, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """``lab_state`` as the Lease holds it, kept for the next write: a spawn writes its
    record three or more times with the same (frozen) state, and pydantic's encoding of
    it was the largest part of each write."""

    @classmethod
    def from_lease(cls, lease: Object) -> OperationRecord:
        metadata = lease.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        spec = lease.get("spec") or {}
        username = (metadata.get("labels") or {}).get(USER_LABEL) or str(
            metadata.get("name", "")
        ).removeprefix("lab-")
        state = None
        if annotations.get(_LAB_STATE):
            try:
                state = LabState.model_validate_json(annotations[_LAB_STATE])
            except ValueError:
                state = None
        events: list[EventTuple] = []
        try:
            for entry in _loads(annotations.get(_EVENTS) or "[]"):
                events.append((str(entry[0]), str(entry[1]), entry[2]))
        except (ValueError, TypeError, IndexError):
            events = []
        spawn_env: dict[str, str] = {}
        withheld: list[str] = []
        try:
            decoded = _loads(annotations.get(_SPAWN_ENV) or "{}")
        except ValueError:
            decoded = {}
        for key, value in (decoded if isinstance(decoded, dict) else {}).items():
            if value is None or is_secret_name(str(key)):
                withheld.append(str(key))  # null: withheld when written
            else:
                spawn_env[str(key)] = str(value)
        return cls(
            username=username,
            operation=annotations.get(_OPERATION, ""),
            operation_id=annotations.get(_OPERATION_ID, ""),
            result=annotations.get(_RESULT, ""),
            holder=spec.get("holderIdentity") or "",
            duration=int(spec.get("leaseDurationSeconds") or 15),
            renew_time=parse_time(spec.get("renewTime")),
            lab_state=state,
            internal_url=annotations.get(_INTERNAL_URL) or None,
            events=events,
            cancel=annotations.get(_CANCEL) == "requested",
            lease=lease,
            spawn_env=spawn_env,
            withheld_env=sorted(withheld),
        )

    def clone(self) -> OperationRecord:
        """A shallow copy (what ``copy.copy`` makes, without its generic machinery)."""
        clone = object.__new__(OperationRecord)
        clone.__dict__.update(self.__dict__)
        return clone

    def _spawn_env_json(self) -> str:
        """The env for the Lease: a secret's value (`is_secret_name`) written as null."""
        if not self.spawn_env and not self.withheld_env:
            return ""
        data: dict[str, str | None] = {key: None for key in self.withheld_env}
        for key, value in self.spawn_env.items():
            data[key] = None if is_secret_name(key) else value
        return _dumps(data)

    def _lab_state_json(self) -> str:
        if self.lab_state is None:
            return ""
        cached = self._state_json
        if cached is None or cached[0] is not self.lab_state:
            cached = self._state_json = (self.lab_state, self.lab_state.model_dump_json())
        return cached[1]

    def to_lease(self, namespace: str) -> Object:
        """The Lease to create or replace (resourceVersion kept from the one read)."""
        metadata: Object = {}
        if self.lease is not None:
            old = self.lease.get("metadata") or {}
            metadata = {
                k: v
                for k, v in old.items()
                if k in ("name", "namespace", "labels", "annotations", "resourceVersion", "uid")
            }
        metadata["name"] = f"lab-{self.username}"
        metadata["namespace"] = namespace
        metadata["labels"] = {
            **(metadata.get("labels") or {}),
            CATEGORY_LABEL: LEASE_CATEGORY,
            USER_LABEL: self.username,
        }
        state = self._lab_state_json()
        metadata["annotations"] = {
            **(metadata.get("annotations") or {}),
            _OPERATION: self.operation,
            _OPERATION_ID: self.operation_id,
            _RESULT: self.result,
            _LAB_STATE: state,
            _INTERNAL_URL: self.internal_url or "",
            _EVENTS: _dumps(self.events),
            _CANCEL: "requested" if self.cancel else "",
            _SPAWN_ENV: self._spawn_env_json(),
        }
        spec: Object = {"leaseDurationSeconds": self.duration}
        if self.holder:
            spec["holderIdentity"] = self.holder
        if self.renew_time is not None:
            spec["renewTime"] = format_time(self.renew_time)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the holder stopped renewing for a whole lease duration (or there is none)."""
        if not self.holder or self.renew_time is None:
            return True
        now = now or datetime.now(UTC)
        return (now - self.renew_time).total_seconds() > self.duration

    @property
    def in_progress(self) -> bool:
        """An operation was started and has no result yet (its holder may be gone)."""
        return bool(self.operation) and not self.result

    def live(self, now: datetime | None = None) -> bool:
        """An operation is running under a holder that still renews."""
        return self.in_progress and not self.expired(now)


@dataclass
class LabObjects:
    """A user's lab objects as the watch caches hold them (any may be absent)."""

    namespace: Object | None = None
    pod: Object | None = None
    env: Object | None = None
    quota: Object | None = None


def _pod_status(pod: Object | None) -> LabStatus:
    """api.md 7.2's mapping of a pod phase to a lab status; no pod is failed."""
    if pod is None:
        return LabStatus.FAILED
    phase = (pod.get("status") or {}).get("phase")
    return {
        "Pending": LabStatus.PENDING,
        "Running": LabStatus.RUNNING,
        "Succeeded": LabStatus.TERMINATED,
        "Failed": LabStatus.TERMINATED,
    }.get(str(phase), LabStatus.FAILED)


def derive_state(
    config: Config, record: OperationRecord | None, objects: LabObjects
) -> LabState | None:
    """The LabState of a user from their record and objects (PLAN-LABS.md status derivation)."""
    base = record.lab_state if record is not None else None
    if record is not None and record.in_progress:
        if base is None:
            base = rebuild_state(config, record.username, objects)
        if base is None:
            return None
        if record.operation == "delete":
            return base.model_copy(update={"status": LabStatus.TERMINATING, "internal_url": None})
        return base.model_copy(
            update={"status": LabStatus.PENDING, "internal_url": record.internal_url}
        )
    if record is not None and record.result == "failed":
        if base is None:
            base = rebuild_state(config, record.username, objects)
        if base is None:
            return None
        url = record.internal_url if record.operation != "delete" else None
        return base.model_copy(update={"status": LabStatus.FAILED, "internal_url": url})
    if objects.namespace is None:
        return None
    spawned = record is not None and record.operation in ("spawn", "monitor") and base is not None
    state = base if spawned else rebuild_state(config, _username(record, objects), objects)
    if state is None:
        return None
    if (objects.namespace.get("metadata") or {}).get("deletionTimestamp"):
        status = LabStatus.TERMINATING
    else:
        status = _pod_status(objects.pod)
    url = state.internal_url
    if spawned and record is not None:
        url = record.internal_url
    if status is LabStatus.TERMINATING:
        url = None
    return state.model_copy(update={"status": status, "internal_url": url})


def _username(record: OperationRecord | None, objects: LabObjects) -> str:
    if record is not None:
        return record.username
    labels = ((objects.namespace or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(USER_LABEL, ""))


def _notebook(pod: Object) -> Object:
    containers = (pod.get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == "notebook":
            return dict(container)
    return dict(containers[0]) if containers else {}


def rebuild_state(config: Config, username: str, objects: LabObjects) -> LabState | None:
    """A lab's state from its objects alone (api.md 7.7); None without a namespace.

    The user's name and groups come from the pod's annotations, uid and gid
    from the notebook container's securityContext, options and resources
    from the env ConfigMap, the quota from the ResourceQuota. Missing pieces
    leave defaults rather than hiding the lab: a DELETE must still find it.
    """
    if objects.namespace is None:
        return None
    pod = objects.pod or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    groups: list[UserGroup] = []
    try:
        groups = [
            UserGroup.model_validate(g)
            for g in json.loads(annotations.get("nublado.lsst.io/user-groups", "[]"))
        ]
    except (ValueError, TypeError):
        groups = []
    security = _notebook(pod).get("securityContext") or {}
    user = UserInfo(
        username=username,
        name=annotations.get("nublado.lsst.io/user-name"),
        uid=security.get("runAsUser"),
        gid=security.get("runAsGroup"),
        groups=groups,
    )
    env = dict((objects.env or {}).get("data") or {})

    def cpu(key: str) -> float:
        try:
            return cpu_to_cores(env.get(key, "0") or "0")
        except ValueError:
            return 0.0

    def memory(key: str) -> int:
        try:
            return memory_to_bytes(env.get(key, "0") or "0")
        except ValueError:
            return 0

    resources = LabResourceAmounts(
        limits=ResourceAmount(cpu=cpu("CPU_LIMIT"), memory=memory("MEM_LIMIT")),
        requests=ResourceAmount(cpu=cpu("CPU_GUARANTEE"), memory=memory("MEM_GUARANTEE")),
    )
    size = LabSize.CUSTOM
    for definition in config.lab.sizes:
        limits, requests = definition.resources.limits, definition.resources.requests
        if (
            limits.cpu == resources.limits.cpu
            and limits.memory == resources.limits.memory
            and requests.cpu == resources.requests.cpu
            and requests.memory == resources.requests.memory
        ):
            size = definition.size
            break
    options = LabOptions(
        size=size,
        enable_debug=env.get("DEBUG") == "TRUE",
        reset_user_env=env.get("RESET_USER_ENV") == "TRUE",
        image=env.get("JUPYTER_IMAGE_SPEC", ""),
    )
    quota = None
    hard = ((objects.quota or {}).get("spec") or {}).get("hard") or {}
    if "limits.cpu" in hard and "limits.memory" in hard:
        try:
            quota = ResourceAmount(
                cpu=cpu_to_cores(hard["limits.cpu"]), memory=memory_to_bytes(hard["limits.memory"])
            )
        except ValueError:
            quota = None
    namespace = str((objects.namespace.get("metadata") or {}).get("name", ""))
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    url = f"http://lab.{namespace}:8888{prefix}" if prefix is not None else None
    return LabState(
        user=user,
        options=options,
        status=_pod_status(objects.pod),
        internal_url=url,
        resources=resources,
        quota=quota,
    )
