"""Drift: how a running lab's or file server's objects differ from their desired render.

DESIGN.md ("Applying and reconciling"): ``nublado diff`` shows what apply
would change, and the daemon's lab reconcile uses the same comparison. Both
come here.

The desired objects of a running lab are rebuilt from its live objects
(`desired_lab_manifests`): who the user is (name, uid, gid, groups) from the
pod, the options and the image it started with from the env ConfigMap, the
quota from the ResourceQuota, and the values that exist only in the cluster
(the user's token and the copied source-secret values in the lab Secret, the
discovery document in the files ConfigMap) from those objects. Everything
else comes from the configuration and the templates, so a lab just spawned
shows no drift and a changed configuration shows what it would change.

The comparison (`lab_drift`) is a server-side dry-run apply of each desired
manifest (field manager ``nublado``, force), compared with the live object:
the server merges and defaults both the same way, so what differs is what
apply would change. What the cluster manages (managedFields, resourceVersion,
uid, creationTimestamp, generation, status) is left out. An apply the server
refuses (a pod spec or an immutable ConfigMap changed) is compared locally:
the desired fields laid over the live object. Each drifted object carries a
`Remedy`: whether apply fixes it, or it is a pod-spec change to report only
(a running user's pod is never deleted to fix drift).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..config import Config, LabSize, LabSizeDefinition
from ..config.lab import LabResources, ResourceQuantity
from ..errors import NubladoError
from ..images.tag import RSPImageTag
from ..kube.client import KubernetesClient
from ..kube.errors import InvalidError, NotFoundError
from ..models.image import ResolvedImage
from ..models.lab import LabRequestOptions, LabSpecification
from ..models.user import NotebookQuota, UserGroup, UserInfo, UserQuota
from ..render.engine import Renderer
from ..render.fileserver import build_fileserver_context
from ..render.lab import DISCOVERY_KEY, LabContextBuilder, LabNames, SourceSecret
from ..units import cpu_to_cores, memory_to_bytes
from .labstate import (
    CATEGORY_LABEL,
    LEASE_CATEGORY,
    USER_LABEL,
    LabObjects,
    OperationRecord,
    rebuild_state,
)

__all__ = [
    "FILESERVER_KINDS",
    "LAB_KINDS",
    "DriftError",
    "FieldDrift",
    "LiveObjects",
    "NoLabError",
    "ObjectDrift",
    "Remedy",
    "comparable",
    "desired_fileserver_manifests",
    "desired_lab_manifests",
    "differences",
    "env_source",
    "fileserver_drift",
    "lab_drift",
    "object_drift",
    "overlay",
    "quick_differences",
    "read_fileserver",
    "read_fileservers",
    "read_lab",
    "read_lab_records",
    "read_labs",
    "read_sources",
    "withheld_env",
]

Object = dict[str, Any]

LAB_KINDS = (
    "PersistentVolumeClaim",
    "ConfigMap",
    "Secret",
    "ResourceQuota",
    "NetworkPolicy",
    "Service",
    "Pod",
)
"""The namespaced kinds of the standard lab set (the Namespace is read by name)."""

FILESERVER_KINDS = ("PersistentVolumeClaim", "GafaelfawrIngress", "Service", "Job")
"""The kinds of the standard file-server set."""

_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
)
"""Metadata the cluster manages: never drift."""

_CONTROLLER_ENV = frozenset(
    {
        "DEBUG",
        "RESET_USER_ENV",
        "JUPYTER_IMAGE",
        "JUPYTER_IMAGE_SPEC",
        "IMAGE_DESCRIPTION",
        "IMAGE_DIGEST",
        "CONTAINER_SIZE",
        "CPU_GUARANTEE",
        "CPU_LIMIT",
        "MEM_GUARANTEE",
        "MEM_LIMIT",
        "JUPYTERHUB_ACTIVITY_INTERVAL",
        "EXTERNAL_INSTANCE_URL",
        "JUPYTERLAB_CONFIG_DIR",
        "JUPYTERLAB_START_COMMAND",
        "NUBLADO_RUNTIME_MOUNTS_DIR",
        "REPERTOIRE_BASE_URL",
    }
)
"""Keys of the env ConfigMap the controller writes (render/lab.py ``_env``); the rest of
a live env ConfigMap, less the configuration's ``lab.env``, is what the spawner sent."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DriftError(NubladoError):
    """The desired objects cannot be rebuilt from what the cluster holds."""


class NoLabError(DriftError):
    """The user has no lab (or no file server) in the cluster."""


class Remedy(StrEnum):
    """What fixes an object's drift, as the reconcile may act on it."""

    CREATE = "create"
    """The object is missing; apply creates it."""

    APPLY = "apply"
    """Apply changes the live object in place to the desired one."""

    REPLACE = "replace"
    """The server refuses the change in place (an immutable ConfigMap or Secret); deleting
    and creating the object would fix it. Never a pod or a Job."""

    REPORT = "report"
    """Report only: a pod (or file-server Job) spec changed, the pod is gone, or the lab
    Secret is gone with the user's token. Never fixed by deleting a running user's pod."""


@dataclass(frozen=True, slots=True)
class FieldDrift:
    """One field where live differs from desired; None stands for absent."""

    path: str
    """A JSON path into the object: ``data.CPU_LIMIT``,
    ``metadata.labels["nublado.lsst.io/user"]``, ``spec.containers[name=notebook].image``."""

    live: Any
    desired: Any

    def to_json(self) -> dict[str, Any]:
        """The field as ``nublado diff -o json`` writes it (values unmasked)."""
        return {"path": self.path, "live": self.live, "desired": self.desired}


@dataclass(frozen=True, slots=True)
class ObjectDrift:
    """One object whose live state differs from its desired render."""

    kind: str
    namespace: str | None
    name: str
    missing: bool
    fields: list[FieldDrift]
    remedy: Remedy
    reason: str
    """Why this remedy, in words for a log line or the diff output."""
    live: Object | None
    """The live object without what the cluster manages; None when missing."""
    desired: Object
    """What apply would leave (the dry-run result, or the local overlay when refused)."""
    manifest: Object
    """The desired manifest as rendered: what the reconcile applies."""
    refused: str | None = None
    """The server's message when the dry-run apply was refused."""

    @property
    def fixable(self) -> bool:
        """Whether apply (create or in place) fixes it without touching the pod."""
        return self.remedy in (Remedy.CREATE, Remedy.APPLY)

    @property
    def title(self) -> str:
        """``Kind/namespace/name``, or ``Kind/name`` for a cluster-scoped object."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        """The object's drift for JSON, without the objects themselves (values unmasked)."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "missing": self.missing,
            "remedy": self.remedy.value,
            "reason": self.reason,
            "refused": self.refused,
            "fields": [f.to_json() for f in self.fields],
        }


@dataclass
class LiveObjects:
    """A lab's or file server's live objects: kind -> name -> object.

    A kind present (even with no objects) was read: a desired object of it
    that is absent is missing. A kind absent was not read: `object_drift`
    reads the desired objects of it by name.
    """

    objects: dict[str, dict[str, Object]] = field(default_factory=dict)
    record: OperationRecord | None = None
    """The lab's operation record, when read: its lab state stands in for a vanished pod."""

    @classmethod
    def of(
        cls,
        objects: Iterable[Object],
        *,
        kinds: Iterable[str] = (),
        record: OperationRecord | None = None,
    ) -> LiveObjects:
        """Objects grouped by kind; ``kinds`` are marked read even when none was found."""
        live = cls(objects={kind: {} for kind in kinds}, record=record)
        for obj in objects:
            live.add(obj)
        return live

    def add(self, obj: Object) -> None:
        """Add one object; it must carry its ``kind`` (items of a LIST do not: add it)."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        self.objects.setdefault(str(obj.get("kind", "")), {})[name] = obj

    def get(self, kind: str, name: str) -> Object | None:
        """The live object of that kind and name, or None."""
        return self.objects.get(kind, {}).get(name)

    def read(self, kind: str) -> bool:
        """Whether objects of that kind were read (so one absent is missing)."""
        return kind in self.objects

    def fingerprint(self) -> tuple[tuple[str, str, str], ...]:
        """Every object's kind, name and resourceVersion, sorted.

        While it (the configuration and the record) stays the same, so does
        the comparison's answer: a reconcile may keep the last one.
        """
        return tuple(
            sorted(
                (kind, name, str((obj.get("metadata") or {}).get("resourceVersion", "")))
                for kind, objects in self.objects.items()
                for name, obj in objects.items()
            )
        )


# The desired render of a lab


def _lab_names(config: Config, username: str) -> LabNames:
    return LabNames(username, f"{config.lab.namespace_prefix}-{username}")


def _notebook(pod: Object | None) -> Object:
    containers = ((pod or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == "notebook":
            return dict(container)
    return dict(containers[0]) if containers else {}


def _image(env: Mapping[str, str], pod: Object | None, record: OperationRecord | None) -> str:
    reference = env.get("JUPYTER_IMAGE_SPEC") or env.get("JUPYTER_IMAGE") or ""
    if not reference and record is not None and record.lab_state is not None:
        reference = record.lab_state.options.image
    return reference or str(_notebook(pod).get("image") or "")


def _resolved_image(reference: str, env: Mapping[str, str]) -> ResolvedImage:
    """The image a lab started with, from its ``registry/repository:tag@digest``."""
    name, _, digest = reference.partition("@")
    registry, _, path = name.partition("/")
    repository, tag = path, ""
    if ":" in path.rsplit("/", 1)[-1]:
        repository, _, tag = path.rpartition(":")
    if not digest or not repository:
        raise DriftError(f"cannot rebuild the lab's image from {reference!r}: no digest")
    return ResolvedImage(
        registry=registry,
        repository=repository,
        tag=tag,
        digest=env.get("IMAGE_DIGEST") or digest,
        # Without the env ConfigMap, the tag's own display name (as `nublado render` uses):
        # an alias such as "Recommended (...)" it had is lost with the ConfigMap.
        display_name=env.get("IMAGE_DESCRIPTION") or RSPImageTag.from_str(tag).display_name,
    )


def _size(
    config: Config, env: Mapping[str, str], pod: Object | None, record: OperationRecord | None
) -> LabSizeDefinition:
    """The size the lab was spawned with: its name in CONTAINER_SIZE, as configured now.

    Without the env ConfigMap the record's size is taken. A size no longer
    configured is matched by the notebook container's resources, and failing
    that kept as a custom size with those resources.
    """
    label = env.get("CONTAINER_SIZE", "")
    name = label.split(" ", 1)[0].lower()
    if not label and record is not None and record.lab_state is not None:
        name = record.lab_state.options.size.value
    for definition in config.lab.sizes:
        if definition.size.value == name:
            return definition
    resources = _notebook(pod).get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    try:
        amounts = LabResources(
            limits=ResourceQuantity(
                cpu=cpu_to_cores(limits["cpu"]), memory=memory_to_bytes(limits["memory"])
            ),
            requests=ResourceQuantity(
                cpu=cpu_to_cores(requests["cpu"]), memory=memory_to_bytes(requests["memory"])
            ),
        )
    except (KeyError, ValueError) as exc:
        raise DriftError(
            f"cannot rebuild the lab's size: {name or label!r} is not configured"
            " and the pod has no resources"
        ) from exc
    for definition in config.lab.sizes:
        if definition.resources == amounts:
            return definition
    return LabSizeDefinition(size=LabSize.CUSTOM, resources=amounts)


def _user(
    config: Config, username: str, live: LiveObjects, namespace: str, names: LabNames
) -> UserInfo:
    pod = live.get("Pod", names.pod)
    record = live.record
    if pod is None and record is not None and record.lab_state is not None:
        user = record.lab_state.user
    else:
        objects = LabObjects(
            namespace=live.get("Namespace", namespace) or {"metadata": {"name": namespace}},
            pod=pod,
            env=live.get("ConfigMap", names.env_config_map),
            quota=live.get("ResourceQuota", names.quota),
        )
        state = rebuild_state(config, username, objects)
        if state is None or pod is None:
            raise DriftError(f"cannot rebuild the lab of {username}: no pod and no lab record")
        user = state.user
    quota = None
    hard = ((live.get("ResourceQuota", names.quota) or {}).get("spec") or {}).get("hard") or {}
    if "limits.cpu" in hard and "limits.memory" in hard:
        try:
            quota = NotebookQuota(
                cpu=cpu_to_cores(hard["limits.cpu"]),
                memory=memory_to_bytes(hard["limits.memory"]) / 1024**3,
            )
        except ValueError:
            quota = None
    elif record is not None and record.lab_state is not None and record.lab_state.quota:
        amount = record.lab_state.quota
        quota = NotebookQuota(cpu=amount.cpu, memory=amount.memory / 1024**3)
    return user.model_copy(update={"quota": UserQuota(notebook=quota) if quota else None})


def _spawner_env(
    config: Config, env: Mapping[str, str], username: str, record: OperationRecord | None
) -> dict[str, str]:
    """What the spawner sent: the live env less the controller's and the configuration's keys.

    Without the env ConfigMap only the service prefix is known (from the
    record's internal URL, else JupyterHub's default): the rest of what the
    spawner sent was only there.
    """
    configured = set(config.lab.env)
    result = {k: v for k, v in env.items() if k not in _CONTROLLER_ENV and k not in configured}
    if "JUPYTERHUB_SERVICE_PREFIX" not in result:
        prefix = f"/nb/user/{username}/"
        url = record.internal_url if record is not None else None
        if url and ":8888" in url:
            prefix = url.split(":8888", 1)[1] or prefix
        result["JUPYTERHUB_SERVICE_PREFIX"] = prefix
    return result


def _secrets(
    config: Config,
    live: LiveObjects,
    names: LabNames,
    sources: Mapping[str, SourceSecret] | None,
) -> tuple[dict[str, SourceSecret], str]:
    """The source secrets the lab copied, and its token, from the lab's own Secrets.

    A value the lab Secret lacks comes from ``sources`` (the controller
    namespace's Secrets) when given, else is empty; a lab Secret that is gone
    took the token with it, which is then empty (`Remedy.REPORT`).
    """
    lab = config.lab
    data = dict((live.get("Secret", names.secret) or {}).get("data") or {})
    found: dict[str, dict[str, str]] = {}
    for entry in lab.secrets:
        value = data.get(entry.secret_key)
        if value is None and sources is not None and entry.secret_name in sources:
            value = sources[entry.secret_name].data.get(entry.secret_key)
        found.setdefault(entry.secret_name, {})[entry.secret_key] = value or ""
    result = {name: SourceSecret(data=values) for name, values in found.items()}
    if lab.pull_secret is not None:
        pull = live.get("Secret", names.pull_secret)
        if pull is not None:
            result[lab.pull_secret] = SourceSecret(
                data=dict(pull.get("data") or {}), type=pull.get("type")
            )
        elif sources is not None and lab.pull_secret in sources:
            result[lab.pull_secret] = sources[lab.pull_secret]
        else:
            result[lab.pull_secret] = SourceSecret(data={})
    token = ""
    if data.get("token"):
        try:
            token = base64.b64decode(data["token"]).decode()
        except ValueError:
            token = ""
    return result, token


def env_source(config: Config, username: str, live: LiveObjects) -> dict[str, str]:
    """The env a lab's desired render starts from (`nublado diff` and the reconcile alike).

    Its env ConfigMap's data; when that is deleted, the copy its spawn wrote in the
    record, the spawner's part of which is held nowhere else; that copy lacks the
    secrets (`withheld_env`).
    """
    env_map = live.get("ConfigMap", _lab_names(config, username).env_config_map)
    if env_map is not None:
        return dict(env_map.get("data") or {})
    return dict(live.record.spawn_env) if live.record is not None else {}


def withheld_env(config: Config, username: str, live: LiveObjects) -> list[str]:
    """Keys a deleted env ConfigMap had that its rebuild from the record lacks (secrets).

    Empty while the env ConfigMap exists: its desired render is then complete.
    """
    if live.get("ConfigMap", _lab_names(config, username).env_config_map) is not None:
        return []
    return list(live.record.withheld_env) if live.record is not None else []


def desired_lab_manifests(
    config: Config,
    renderer: Renderer,
    username: str,
    live: LiveObjects,
    *,
    sources: Mapping[str, SourceSecret] | None = None,
    discovery: Mapping[str, Any] | None = None,
) -> list[Object]:
    """The lab set of ``username`` as the controller would apply it now, in apply order.

    Rebuilt from ``live`` (module docstring); ``sources`` (the controller
    namespace's Secrets) and ``discovery`` (the discovery document) stand in
    for what a deleted lab Secret or files ConfigMap took with it. Raises
    `NoLabError` without a lab namespace, `DriftError` when the user cannot
    be recovered (no pod and no record).
    """
    names = _lab_names(config, username)
    namespace = names.namespace
    if live.read("Namespace") and live.get("Namespace", namespace) is None:
        raise NoLabError(f"no lab found for user {username}")
    user = _user(config, username, live, namespace, names)
    env_map = live.get("ConfigMap", names.env_config_map)
    env = env_source(config, username, live)
    pod = live.get("Pod", names.pod)
    image = _resolved_image(_image(env, pod, live.record), env)
    size = _size(config, env, pod, live.record)
    debug, reset = env.get("DEBUG") == "TRUE", env.get("RESET_USER_ENV") == "TRUE"
    state = live.record.lab_state if live.record is not None else None
    if env_map is None and state is not None:
        debug, reset = state.options.enable_debug, state.options.reset_user_env
    options = LabRequestOptions(
        size=size.size,
        enable_debug=debug,
        reset_user_env=reset,
        image_list=image.reference_with_digest,
    )
    spawner_env = _spawner_env(config, env, username, live.record)
    spec = LabSpecification(options=options, env=spawner_env)
    secrets, token = _secrets(config, live, names, sources)
    context = LabContextBuilder(config).build(
        user=user,
        spec=spec,
        image=image,
        size=size,
        secrets=secrets,
        token=token,
        discovery=discovery,
    )
    files = live.get("ConfigMap", names.files_config_map)
    live_discovery = ((files or {}).get("data") or {}).get(DISCOVERY_KEY)
    if live_discovery is not None:
        lab = context["lab"]
        files_data = {**lab.files_data, DISCOVERY_KEY: live_discovery}
        context = {"lab": dataclasses.replace(lab, files_data=files_data)}
    return renderer.render("lab", context)


# The desired render of a file server


def desired_fileserver_manifests(
    config: Config, renderer: Renderer, username: str, live: LiveObjects
) -> list[Object]:
    """The file-server set of ``username`` as the controller would apply it now.

    The user's uid, gid and groups come from the Job's pod template; the rest
    from the configuration. Raises `NoLabError` when the user has no Job.
    """
    job = live.get("Job", f"{username}-fs")
    if job is None:
        raise NoLabError(f"no file server found for user {username}")
    template = (((job.get("spec") or {}).get("template") or {}).get("spec")) or {}
    security = template.get("securityContext") or {}
    uid, gid = security.get("runAsUser"), security.get("runAsGroup")
    groups = [UserGroup(name=f"g{i}", id=i) for i in security.get("supplementalGroups") or []]
    user = UserInfo(username=username, uid=uid, gid=gid, groups=groups)
    return renderer.render("fileserver", build_fileserver_context(config, user))


# Reading what the cluster holds


async def read_lab(
    kube: KubernetesClient,
    config: Config,
    username: str,
    *,
    record: OperationRecord | None = None,
) -> LiveObjects | None:
    """Every object in the user's lab namespace (one LIST per kind); None without one."""
    names = _lab_names(config, username)
    namespace = await kube.find("Namespace", names.namespace)
    if namespace is None:
        return None
    live = LiveObjects.of([namespace], kinds=("Namespace", *LAB_KINDS), record=record)
    for kind in LAB_KINDS:
        for obj in await kube.list(kind, names.namespace):
            live.add({**obj, "kind": kind})
    return live


async def read_labs(kube: KubernetesClient, config: Config) -> dict[str, LiveObjects]:
    """Every lab in the cluster, by username: one labelled LIST per kind."""
    selector = {CATEGORY_LABEL: "lab"}
    prefix = f"{config.lab.namespace_prefix}-"
    labs: dict[str, LiveObjects] = {}
    by_namespace: dict[str, LiveObjects] = {}
    for namespace in await kube.list("Namespace", label_selector=selector):
        metadata = namespace.get("metadata") or {}
        name = str(metadata.get("name", ""))
        username = (metadata.get("labels") or {}).get(USER_LABEL) or name.removeprefix(prefix)
        if not name.startswith(prefix):
            continue
        live = LiveObjects.of([{**namespace, "kind": "Namespace"}], kinds=LAB_KINDS)
        labs[username] = by_namespace[name] = live
    for kind in LAB_KINDS:
        for obj in await kube.list(kind, label_selector=selector):
            where = by_namespace.get(str((obj.get("metadata") or {}).get("namespace", "")))
            if where is not None:
                where.add({**obj, "kind": kind})
    return dict(sorted(labs.items()))


async def read_lab_records(kube: KubernetesClient, namespace: str) -> dict[str, OperationRecord]:
    """The labs' operation records (Leases) in the controller's namespace, by username."""
    leases = await kube.list("Lease", namespace, label_selector={CATEGORY_LABEL: LEASE_CATEGORY})
    records = (OperationRecord.from_lease(lease) for lease in leases)
    return {record.username: record for record in records}


async def read_sources(
    kube: KubernetesClient, config: Config, namespace: str
) -> dict[str, SourceSecret]:
    """The Secrets of the controller's namespace that labs copy (those that exist)."""
    result: dict[str, SourceSecret] = {}
    for name in config.lab.source_secret_names:
        secret = await kube.find("Secret", name, namespace)
        if secret is not None:
            result[name] = SourceSecret(
                data=dict(secret.get("data") or {}), type=secret.get("type")
            )
    return result


def _fileserver_selector(username: str | None) -> dict[str, str]:
    selector = {CATEGORY_LABEL: "fileserver"}
    if username is not None:
        selector[USER_LABEL] = username
    return selector


async def read_fileservers(kube: KubernetesClient, config: Config) -> dict[str, LiveObjects]:
    """Every file server in the cluster (a user with a Job), by username."""
    return await _read_fileservers(kube, config, None)


async def read_fileserver(
    kube: KubernetesClient, config: Config, username: str
) -> LiveObjects | None:
    """The user's file-server objects; None when they have no file-server Job."""
    found = await _read_fileservers(kube, config, username)
    return found.get(username)


async def _read_fileservers(
    kube: KubernetesClient, config: Config, username: str | None
) -> dict[str, LiveObjects]:
    namespace = config.fileserver.namespace
    selector = _fileserver_selector(username)
    users: dict[str, LiveObjects] = {}
    for kind in FILESERVER_KINDS:
        for obj in await kube.list(kind, namespace, label_selector=selector):
            owner = ((obj.get("metadata") or {}).get("labels") or {}).get(USER_LABEL)
            if owner:
                users.setdefault(owner, LiveObjects.of([], kinds=FILESERVER_KINDS)).add(
                    {**obj, "kind": kind}
                )
    return {user: live for user, live in sorted(users.items()) if live.get("Job", f"{user}-fs")}


# The comparison


def comparable(obj: Object) -> Object:
    """An object without what the cluster manages (status, server metadata)."""
    result = copy.deepcopy(obj)
    result.pop("status", None)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        for key in _SERVER_METADATA:
            metadata.pop(key, None)
    return result


def _child(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


def _named(items: Sequence[Any]) -> list[str] | None:
    """The names of a list of named objects (containers, env, volumes), or None."""
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    names = [i["name"] for i in items]
    return names if len(set(names)) == len(names) else None


_QUANTITY_KEYS = ("memory", "storage", "ephemeral-storage", "sizeLimit")
"""Keys whose values are Kubernetes quantities the server rewrites (``1.0`` as ``1``, ...)."""


def _same_quantity(path: str, live: Any, desired: Any) -> bool:
    if not (isinstance(live, str) and isinstance(desired, str)):
        return False
    key = path.rsplit(".", 1)[-1].rsplit("[", 1)[-1].strip('"]')
    try:
        if key == "cpu" or key.endswith(".cpu"):
            return cpu_to_cores(live) == cpu_to_cores(desired)
        if key in _QUANTITY_KEYS or key.endswith(tuple(f".{k}" for k in _QUANTITY_KEYS)):
            return memory_to_bytes(live) == memory_to_bytes(desired)
    except ValueError:
        return False
    return False


def _holds(live: Any, desired: Any, key: str) -> bool:
    """Whether ``live`` holds everything ``desired`` sets (`quick_differences` finds nothing)."""
    if live == desired:
        return True
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(_holds(live.get(k), v, k) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        live_names, desired_names = _named(live), _named(desired)
        if (live_names is None) != (desired_names is None) or live_names != desired_names:
            return False
        return all(_holds(a, b, key) for a, b in zip(live, desired, strict=True))
    return _same_quantity(key, live, desired)


def quick_differences(live: Any, desired: Any, path: str = "") -> list[FieldDrift]:
    """The fields a manifest sets that the live object lacks or holds otherwise, locally.

    No request: fields only the server or another manager set are not
    looked at (maps are compared on the manifest's keys, named lists by
    name, other lists element by element). An empty answer means the live
    object holds everything the manifest says; it cannot see a field apply
    would remove (one this manager set before and no longer does), which
    only the dry-run apply of `object_drift` shows.
    """
    if _holds(live, desired, path):
        return []  # the common case, checked without building a path per field
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [FieldDrift(path, live, desired)]
        result: list[FieldDrift] = []
        for key, value in desired.items():
            result.extend(quick_differences(live.get(key), value, _child(path, key)))
        return result
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [FieldDrift(path, live, desired)]
        live_names, desired_names = _named(live), _named(desired)
        if live_names is not None and desired_names is not None:
            if live_names != desired_names:
                return [FieldDrift(path, live, desired)]
            pairs = [
                (f"{path}[name={n}]", a, b)
                for n, a, b in zip(desired_names, live, desired, strict=True)
            ]
        else:
            pairs = [
                (f"{path}[{i}]", a, b) for i, (a, b) in enumerate(zip(live, desired, strict=True))
            ]
        return [d for where, a, b in pairs for d in quick_differences(a, b, where)]
    if live == desired or _same_quantity(path, live, desired):
        return []
    return [FieldDrift(path, live, desired)]


def differences(live: Any, desired: Any, path: str = "") -> list[FieldDrift]:
    """The fields where ``live`` and ``desired`` differ, as JSON paths.

    Lists of named objects are matched by name (``[name=notebook]``) when
    both hold the same names in the same order; other lists by position
    when their lengths agree; otherwise the whole list differs.
    """
    if isinstance(live, dict) and isinstance(desired, dict):
        result: list[FieldDrift] = []
        for key in sorted(live.keys() | desired.keys()):
            result.extend(differences(live.get(key), desired.get(key), _child(path, key)))
        return result
    if isinstance(live, list) and isinstance(desired, list) and live != desired:
        live_names, desired_names = _named(live), _named(desired)
        if live_names is not None and live_names == desired_names:
            return [
                d
                for name, a, b in zip(live_names, live, desired, strict=True)
                for d in differences(a, b, f"{path}[name={name}]")
            ]
        if len(live) == len(desired):
            return [
                d
                for i, (a, b) in enumerate(zip(live, desired, strict=True))
                for d in differences(a, b, f"{path}[{i}]")
            ]
    if live == desired or _same_quantity(path, live, desired):
        return []
    return [FieldDrift(path, live, desired)]


def overlay(live: Any, desired: Any) -> Any:
    """``desired`` laid over ``live``, roughly as an apply merges it (for a refused apply).

    Maps merge key by key; lists of named objects merge by name in the
    desired order (live-only entries dropped, as a forced apply by their
    owner drops them); other values are replaced.
    """
    if isinstance(live, dict) and isinstance(desired, dict):
        result = dict(live)
        for key, value in desired.items():
            result[key] = overlay(live.get(key), value)
        return result
    if isinstance(live, list) and isinstance(desired, list):
        live_names, desired_names = _named(live), _named(desired)
        if live_names is not None and desired_names is not None:
            by_name = dict(zip(live_names, live, strict=True))
            return [overlay(by_name.get(n), d) for n, d in zip(desired_names, desired, strict=True)]
    return copy.deepcopy(desired)


def _remedy(
    kind: str, missing: bool, fields: list[FieldDrift], refused: str | None, manifest: Object
) -> tuple[Remedy, str]:
    if kind in ("Pod", "Job"):
        what = "pod" if kind == "Pod" else "file-server Job"
        if missing:
            return Remedy.REPORT, f"the {what} is gone: reported, not recreated"
        if refused is None and all(f.path.startswith("metadata.") for f in fields):
            return Remedy.APPLY, f"the {what}'s metadata: apply fixes it in place"
        return Remedy.REPORT, f"the {what}'s spec changed: reported, never fixed by deleting it"
    if missing:
        if kind == "Secret" and (manifest.get("data") or {}).get("token") == "":
            return Remedy.REPORT, "the lab Secret is gone with the user's token: reported"
        return Remedy.CREATE, "missing: apply creates it"
    if refused is not None:
        if "immutable" in refused and kind != "Namespace":
            return Remedy.REPLACE, "the server refuses the change in place (immutable)"
        return Remedy.REPORT, "the server refuses the desired object: reported"
    return Remedy.APPLY, "apply fixes it in place"


async def _dry_run(kube: KubernetesClient, manifest: Object) -> tuple[bool, Object | None, str]:
    """A dry-run apply: (created, result, refusal); result None when refused."""
    try:
        result = await kube.apply_one(manifest, dry_run=True)
    except InvalidError as exc:
        return False, None, str(exc)
    except NotFoundError:
        return True, None, ""  # its namespace is gone: it would be created with it
    return result.created, result.object, ""


async def object_drift(
    kube: KubernetesClient, desired: Sequence[Object], live: LiveObjects, *, quick: bool = False
) -> list[ObjectDrift]:
    """The objects of ``desired`` whose live state differs, in apply order.

    Each desired manifest is applied with ``dryRun=All`` and the result
    compared with the live object (both without what the cluster manages).
    Objects of a kind ``live`` did not read are read by name first; an
    object ``live`` lacks that the server has after all is compared too.

    With ``quick``, an object whose live copy already holds every field of
    its manifest (`quick_differences`) is taken as not drifted without a
    request: what a frequent reconcile of many labs can afford. It misses
    only fields apply would remove; ``nublado diff`` never uses it.
    """
    result: list[ObjectDrift] = []
    for manifest in desired:
        kind = str(manifest["kind"])
        metadata = manifest.get("metadata") or {}
        name = str(metadata["name"])
        namespace = metadata.get("namespace")
        current = live.get(kind, name)
        if current is None and not live.read(kind):
            current = await kube.find(kind, name, namespace)
        if quick and current is not None and not quick_differences(current, manifest):
            continue
        created, applied, refused = await _dry_run(kube, manifest)
        if current is None and not created and applied is not None:
            current = await kube.find(kind, name, namespace)  # there after all (labels edited)
        missing = current is None
        live_view = comparable(current) if current is not None else None
        if applied is not None:
            wanted = comparable(applied)
        elif live_view is not None:
            wanted = overlay(live_view, comparable(manifest))
        else:
            wanted = comparable(manifest)
        fields = [] if missing else differences(live_view, wanted)
        if not missing and not fields:
            continue
        remedy, reason = _remedy(kind, missing, fields, refused or None, manifest)
        result.append(
            ObjectDrift(
                kind=kind,
                namespace=namespace,
                name=name,
                missing=missing,
                fields=fields,
                remedy=remedy,
                reason=reason,
                live=live_view,
                desired=wanted,
                manifest=manifest,
                refused=refused or None,
            )
        )
    return result


async def lab_drift(
    kube: KubernetesClient, desired: Sequence[Object], live: LiveObjects, *, quick: bool = False
) -> list[ObjectDrift]:
    """The drifted objects of a lab (`object_drift` of its desired manifests)."""
    return await object_drift(kube, desired, live, quick=quick)


async def fileserver_drift(
    kube: KubernetesClient, desired: Sequence[Object], live: LiveObjects, *, quick: bool = False
) -> list[ObjectDrift]:
    """The drifted objects of a file server (`object_drift` of its desired manifests)."""
    return await object_drift(kube, desired, live, quick=quick)
