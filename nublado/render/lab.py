"""Context builder of the lab set: every value templates/lab/ lays out.

``LabContextBuilder`` computes once per configuration what is the same for
every lab (mount lists, file keys, init container shapes), and ``build`` adds
the user, the request and the image. It is pure: no I/O, and building one lab
never changes another (upstream mutated shared mount objects, DECISIONS 3).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError

from ..config import Config, LabSizeDefinition, file_volume_name
from ..errors import InputError
from ..models.image import ResolvedImage
from ..models.lab import LabSpecification
from ..models.user import UserInfo
from ..units import format_cpu
from .common import (
    CATEGORY_LABEL,
    USER_LABEL,
    ClaimContext,
    VolumeContext,
    argo_annotations,
    argo_labels,
    claims_for,
    mount,
    tolerations,
    volumes_for,
)
from .discovery import discovery_file

__all__ = [
    "LabContext",
    "LabContextBuilder",
    "LabNames",
    "LabSecretError",
    "SourceSecret",
    "home_directory",
]

LAB_PORT = 8888
PULL_SECRET_NAME = "pull-secret"
TMP_SIZE_RATIO = 4.0
DISCOVERY_KEY = "discovery-v1-json"
DISCOVERY_MOUNT = "/etc/nublado/discovery/v1.json"
STARTUP_MOUNT = "/etc/nublado/startup"


class LabSecretError(InputError):
    """A configured lab secret is missing from the controller's namespace."""


@dataclass(frozen=True, slots=True)
class SourceSecret:
    """A Secret read from the controller namespace: base64 data and its type."""

    data: dict[str, str]
    type: str | None = None


@dataclass(frozen=True, slots=True)
class LabNames:
    """Names of a user's lab objects, derived once from the username."""

    username: str
    namespace: str

    @property
    def pod(self) -> str:
        return f"{self.username}-nb"

    @property
    def secret(self) -> str:
        return f"{self.username}-nb"

    @property
    def quota(self) -> str:
        return f"{self.username}-nb"

    @property
    def network_policy(self) -> str:
        return f"{self.username}-nb"

    @property
    def env_config_map(self) -> str:
        return f"{self.username}-nb-env"

    @property
    def nss_config_map(self) -> str:
        return f"{self.username}-nb-nss"

    @property
    def files_config_map(self) -> str:
        return f"{self.username}-nb-files"

    @property
    def pull_secret(self) -> str:
        return PULL_SECRET_NAME

    @property
    def service(self) -> str:
        return "lab"


@dataclass(frozen=True, slots=True)
class InitContainerContext:
    """One init container of the lab pod."""

    name: str
    command: list[str] | None
    env: list[dict[str, Any]]
    image: str
    pull_policy: str
    privileged: bool
    volume_mounts: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FileContext:
    """One configured file: its ConfigMap key and the name it is mounted under."""

    key: str
    basename: str


@dataclass(frozen=True, slots=True)
class PodContext:
    """Values of the lab pod."""

    annotations: dict[str, str]
    affinity: dict[str, Any] | None
    node_selector: dict[str, str]
    supplemental_groups: list[int]
    tolerations: list[dict[str, Any]]
    init_containers: list[InitContainerContext]
    args: list[str]
    env: list[dict[str, Any]]
    image: str
    resources: dict[str, dict[str, str]]
    volume_mounts: list[dict[str, Any]]
    home: str
    uid: int
    gid: int
    config_volumes: list[VolumeContext]
    files: list[FileContext]
    tmp_medium: str | None
    tmp_size_limit: str


@dataclass(frozen=True, slots=True)
class PullSecretContext:
    """The copy of the image pull secret placed in the lab namespace."""

    data: dict[str, str]
    type: str | None


@dataclass(frozen=True, slots=True)
class QuotaContext:
    """Namespace limits from the user's notebook quota, as Kubernetes strings."""

    cpu: str
    memory: str


@dataclass(frozen=True, slots=True)
class LabContext:
    """Everything templates/lab/ needs, under the name ``lab``."""

    names: LabNames
    namespace: str
    labels: dict[str, str]
    selector: dict[str, str]
    annotations: dict[str, str]
    namespace_annotations: dict[str, str]
    port: int
    env: dict[str, str]
    nss: dict[str, str]
    files_data: dict[str, str]
    secret_data: dict[str, str]
    pull_secret: PullSecretContext | None
    quota: QuotaContext | None
    claims: list[ClaimContext]
    pod: PodContext


def home_directory(config: Config, username: str) -> str:
    """The user's home directory under the configured prefix, schema and suffix."""
    lab = config.lab
    if lab.homedir_schema == "initialThenUsername":
        home = f"{lab.homedir_prefix}/{username[0]}/{username}"
    else:
        home = f"{lab.homedir_prefix}/{username}"
    if lab.homedir_suffix:
        home += f"/{lab.homedir_suffix}"
    return home


_GROUP_NAME = re.compile(r"([a-zA-Z]|[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z])[a-zA-Z0-9._-]*")
"""A group name /etc/group can hold (Gafaelfawr's rule); others stay out of the file."""

_NOT_GECOS = re.compile(r"[:\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _gecos(name: str | None) -> str:
    """The display name as a passwd GECOS field.

    Empty without a name (upstream wrote ``None``, DECISIONS 1). A ``:`` or a
    line break would start a new field or a new passwd entry (a user could
    make themselves another account), so they and other control characters
    become spaces.
    """
    return _NOT_GECOS.sub(" ", name) if name else ""


def _secret_ref(env: str, key: str, secret: str) -> dict[str, Any]:
    return {
        "name": env,
        "valueFrom": {"secretKeyRef": {"key": key, "name": secret, "optional": False}},
    }


class LabContextBuilder:
    """Builds lab contexts for one configuration."""

    def __init__(self, config: Config) -> None:
        self._config = config
        lab = config.lab
        mounts = lab.runtime_mounts_dir
        self._files = [FileContext(file_volume_name(p), PurePosixPath(p).name) for p in lab.files]
        config_mounts = [mount(m) for m in lab.volume_mounts]
        builtin_before: list[dict[str, Any]] = [
            {"name": "passwd", "mountPath": "/etc/passwd", "subPath": "passwd", "readOnly": True},
            {"name": "group", "mountPath": "/etc/group", "subPath": "group", "readOnly": True},
        ]
        builtin_before.extend(
            {"name": f.key, "mountPath": path, "subPath": f.basename, "readOnly": True}
            for f, path in zip(self._files, lab.files, strict=True)
        )
        builtin_before.extend(
            [
                {
                    "name": DISCOVERY_KEY,
                    "mountPath": DISCOVERY_MOUNT,
                    "subPath": "v1.json",
                    "readOnly": True,
                },
                {"name": "secrets", "mountPath": f"{mounts}/secrets", "readOnly": True},
                {"name": "env", "mountPath": f"{mounts}/environment", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp", "readOnly": False},
                {"name": "runtime", "mountPath": f"{mounts}/runtime", "readOnly": True},
            ]
        )
        secret_mounts = [
            {"name": "secrets", "mountPath": s.path, "subPath": s.secret_key, "readOnly": True}
            for s in lab.secrets
            if s.path
        ]

        def startup(read_only: bool) -> dict[str, Any]:
            return {"name": "lab-startup", "mountPath": STARTUP_MOUNT, "readOnly": read_only}

        self._lab_mounts = [*config_mounts, *builtin_before, startup(True), *secret_mounts]
        self._init_mounts = [*config_mounts, *builtin_before, startup(False), *secret_mounts]
        self._home_mounts = [m for m in self._init_mounts if m["name"] == lab.home_volume_name]

        used = {m.volume_name for m in lab.volume_mounts}
        for init in lab.init_containers:
            used.update(m.volume_name for m in init.volume_mounts)
        self._used_volumes = used
        self._science = lab.env.get("RSP_SITE_TYPE") == "science"
        self._start_command = shlex.join(lab.lab_start_command)
        self._affinity = lab.affinity.to_kubernetes() if lab.affinity is not None else None
        self._tolerations = tolerations(lab.tolerations)
        self._namespace_templates: dict[str, Template] = {}
        if lab.namespace_annotations:
            # Operator-written templates over {uid, gid}; sandboxed like any untrusted template.
            from jinja2.sandbox import SandboxedEnvironment

            environment = SandboxedEnvironment(undefined=StrictUndefined)
            for key, value in lab.namespace_annotations.items():
                try:
                    self._namespace_templates[key] = environment.from_string(value)
                except TemplateError as exc:
                    raise InputError(f"lab.namespaceAnnotations.{key}: {exc}") from exc

    def build(
        self,
        *,
        user: UserInfo,
        spec: LabSpecification,
        image: ResolvedImage,
        size: LabSizeDefinition,
        secrets: Mapping[str, SourceSecret],
        token: str,
        discovery: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The template context ``{"lab": LabContext}`` for one user's lab."""
        config = self._config
        lab = config.lab
        username = user.username
        if not user.uid or not user.gid or user.uid < 0 or user.gid < 0:
            raise InputError(
                f"user {username} has no uid or gid: labs need both, positive (not 0 or negative)"
            )
        uid, gid = user.uid, user.gid
        namespace = f"{lab.namespace_prefix}-{username}"
        names = LabNames(username, namespace)
        selector = {CATEGORY_LABEL: "lab", USER_LABEL: username}
        labels = argo_labels(selector, lab.application)
        home = home_directory(config, username)
        size_resources = size.resources.to_kubernetes()

        namespace_annotations = argo_annotations()
        for key, template in self._namespace_templates.items():
            try:
                namespace_annotations[key] = template.render(uid=uid, gid=gid)
            except TemplateError as exc:
                raise InputError(f"lab.namespaceAnnotations.{key}: {exc}") from exc

        pod_annotations = argo_annotations()
        pod_annotations["nublado.lsst.io/user-groups"] = json.dumps(
            [{"name": g.name, "id": g.id} for g in user.groups]
        )
        if user.name is not None:
            pod_annotations["nublado.lsst.io/user-name"] = user.name
        pod_annotations.update(lab.extra_annotations)

        secret_env = [
            _secret_ref("ACCESS_TOKEN", "token", names.secret),
            _secret_ref("NUBLADO_TOKEN", "token", names.secret),
        ]
        secret_env.extend(
            _secret_ref(s.env, s.secret_key, names.secret) for s in lab.secrets if s.env
        )
        base_env: list[dict[str, Any]] = [
            {"name": "NUBLADO_HOME", "value": home},
            {"name": "NUBLADO_UID", "value": str(uid)},
            {"name": "NUBLADO_GID", "value": str(gid)},
        ]
        controller = config.controller_image
        init_containers: list[InitContainerContext] = []
        if lab.standard_inithome:
            init_containers.append(
                InitContainerContext(
                    name="nublado-std-inithome",
                    command=["nublado", "inithome"],
                    env=base_env,
                    image=controller.reference,
                    pull_policy=str(controller.pull_policy),
                    privileged=True,
                    volume_mounts=self._home_mounts,
                )
            )
        for init in lab.init_containers:
            init_containers.append(
                InitContainerContext(
                    name=init.name,
                    command=init.command,
                    env=base_env,
                    image=init.image.reference,
                    pull_policy=str(init.image.pull_policy),
                    privileged=init.privileged,
                    volume_mounts=[mount(m) for m in init.volume_mounts],
                )
            )
        if self._science:
            init_containers.append(
                InitContainerContext(
                    name="nublado-std-landingpage",
                    command=["nublado", "landingpage"],
                    env=base_env,
                    image=controller.reference,
                    pull_policy=str(controller.pull_policy),
                    privileged=False,
                    volume_mounts=self._init_mounts,
                )
            )
        init_containers.append(
            InitContainerContext(
                name="nublado-std-startup",
                command=["nublado", "startup"],
                env=[*base_env, *secret_env],
                image=controller.reference,
                pull_policy=str(controller.pull_policy),
                privileged=False,
                volume_mounts=self._init_mounts,
            )
        )
        node_name = {"valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        pod = PodContext(
            annotations=pod_annotations,
            affinity=self._affinity,
            node_selector=dict(lab.node_selector),
            supplemental_groups=user.supplemental_groups,
            tolerations=self._tolerations,
            init_containers=init_containers,
            args=list(lab.lab_start_command),
            env=[
                *secret_env,
                {"name": "KUBERNETES_NODE_NAME", **node_name},
                {"name": "K8S_NODE_NAME", **node_name},
            ],
            image=image.reference_with_digest,
            resources=size_resources,
            volume_mounts=self._lab_mounts,
            home=home,
            uid=uid,
            gid=gid,
            config_volumes=volumes_for(lab.volumes, self._used_volumes, f"{username}-nb"),
            files=self._files,
            tmp_medium="Memory" if lab.empty_dir_source == "memory" else None,
            tmp_size_limit=str(int(size.resources.limits.memory / TMP_SIZE_RATIO)),
        )
        quota = None
        if user.quota is not None and user.quota.notebook is not None:
            notebook = user.quota.notebook
            quota = QuotaContext(format_cpu(notebook.cpu), str(notebook.memory_bytes))
        lab_context = LabContext(
            names=names,
            namespace=namespace,
            labels=labels,
            selector=selector,
            annotations=argo_annotations(),
            namespace_annotations=namespace_annotations,
            port=LAB_PORT,
            env=self._env(spec, image, size),
            nss=self._nss(user, home),
            files_data={DISCOVERY_KEY: discovery_file(discovery), **self._files_data()},
            secret_data=self._secret_data(secrets, token),
            pull_secret=self._pull_secret(secrets),
            quota=quota,
            claims=claims_for(lab.volumes, self._used_volumes, f"{username}-nb"),
            pod=pod,
        )
        return {"lab": lab_context}

    def _env(
        self, spec: LabSpecification, image: ResolvedImage, size: LabSizeDefinition
    ) -> dict[str, str]:
        """The env ConfigMap, layered: spawner, options, controller, then configuration."""
        config = self._config
        lab = config.lab
        env = dict(spec.env)
        if spec.options.enable_debug:
            env["DEBUG"] = "TRUE"
        if spec.options.reset_user_env:
            env["RESET_USER_ENV"] = "TRUE"
        limits, requests = size.resources.limits, size.resources.requests
        env.update(
            {
                "JUPYTER_IMAGE": image.reference_with_digest,
                "JUPYTER_IMAGE_SPEC": image.reference_with_digest,
                "IMAGE_DESCRIPTION": image.display_name,
                "IMAGE_DIGEST": image.digest,
                "CONTAINER_SIZE": size.label,
                "CPU_GUARANTEE": format_cpu(requests.cpu),
                "CPU_LIMIT": format_cpu(limits.cpu),
                "MEM_GUARANTEE": str(requests.memory),
                "MEM_LIMIT": str(limits.memory),
                "JUPYTERHUB_ACTIVITY_INTERVAL": str(int(lab.activity_interval.total_seconds())),
                "EXTERNAL_INSTANCE_URL": config.base_url,
                "JUPYTERLAB_CONFIG_DIR": lab.jupyterlab_config_dir,
                "JUPYTERLAB_START_COMMAND": self._start_command,
                "NUBLADO_RUNTIME_MOUNTS_DIR": lab.runtime_mounts_dir,
            }
        )
        if config.repertoire_base_url:
            env["REPERTOIRE_BASE_URL"] = config.repertoire_base_url
        env.update(lab.env)
        return env

    def _nss(self, user: UserInfo, home: str) -> dict[str, str]:
        """passwd and group: the configured base files plus the user and their groups."""
        nss = self._config.lab.nss
        username = user.username
        gecos = _gecos(user.name)
        passwd = f"{nss.base_passwd}{username}:x:{user.uid}:{user.gid}:{gecos}:{home}:/bin/bash\n"
        group_lines = [
            f"{g.name}:x:{g.id}:\n" if g.id == user.gid else f"{g.name}:x:{g.id}:{username}\n"
            for g in user.groups
            if _GROUP_NAME.fullmatch(g.name)
        ]
        return {"passwd": passwd, "group": nss.base_group + "".join(group_lines)}

    def _files_data(self) -> dict[str, str]:
        return {
            f.key: content
            for f, content in zip(self._files, self._config.lab.files.values(), strict=True)
        }

    def _secret_data(self, secrets: Mapping[str, SourceSecret], token: str) -> dict[str, str]:
        """The user Secret: configured keys copied verbatim (already base64), then the token."""
        data: dict[str, str] = {}
        for entry in self._config.lab.secrets:
            source = secrets.get(entry.secret_name)
            if source is None:
                raise LabSecretError(
                    f"lab.secrets: secret {entry.secret_name} not found in the controller namespace"
                )
            if entry.secret_key not in source.data:
                raise LabSecretError(
                    f"lab.secrets: secret {entry.secret_name} has no key {entry.secret_key}"
                )
            data[entry.secret_key] = source.data[entry.secret_key]
        data["token"] = base64.b64encode(token.encode()).decode()
        return data

    def _pull_secret(self, secrets: Mapping[str, SourceSecret]) -> PullSecretContext | None:
        name = self._config.lab.pull_secret
        if name is None:
            return None
        source = secrets.get(name)
        if source is None:
            raise LabSecretError(
                f"lab.pullSecret: secret {name} not found in the controller namespace"
            )
        return PullSecretContext(data=dict(source.data), type=source.type)
