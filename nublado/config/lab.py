"""The ``lab`` section: how user labs are built (spec/objects.md sections 2.2 to 2.4)."""

from __future__ import annotations

import posixpath
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from ..units import bytes_to_si, format_cpu
from ._base import (
    ConfigModel,
    CpuCores,
    Duration,
    KubernetesName,
    LenientConfigModel,
    MemoryBytes,
    Problem,
    check_application_label,
    check_kubernetes_name,
    config_key_problem,
    env_name_problem,
    raise_problems,
)
from .scheduling import Affinity, Toleration
from .volumes import (
    ContainerImage,
    VolumeConfig,
    VolumeMountConfig,
    reject_reserved_path,
)

__all__ = [
    "BUILTIN_VOLUME_NAMES",
    "RESERVED_ENV",
    "LabConfig",
    "LabInitContainer",
    "LabNSSFiles",
    "LabResources",
    "LabSecret",
    "LabSize",
    "LabSizeDefinition",
    "ResourceQuantity",
    "file_volume_name",
    "is_reserved_env",
]

RESERVED_ENV = frozenset(
    {
        "ACCESS_TOKEN",
        "DEBUG",
        "CONTAINER_SIZE",
        "CPU_GUARANTEE",
        "CPU_LIMIT",
        "EXTERNAL_INSTANCE_URL",
        "IMAGE_DIGEST",
        "IMAGE_DESCRIPTION",
        "JPY_API_TOKEN",
        "JUPYTER_IMAGE",
        "JUPYTER_IMAGE_SPEC",
        "KUBERNETES_NODE_NAME",
        "MEM_GUARANTEE",
        "MEM_LIMIT",
        "RESET_USER_ENV",
    }
)
"""Lab environment variables the controller sets; ``JUPYTERHUB_*`` is reserved too."""

BUILTIN_VOLUME_NAMES = (
    "passwd",
    "group",
    "discovery-v1-json",
    "secrets",
    "env",
    "tmp",
    "runtime",
    "lab-startup",
)
"""Names of the volumes every lab pod has besides the configured ones (objects.md 3.11.1)."""

_RESERVED_CONTAINER_NAMES = frozenset(
    {"notebook", "nublado-std-inithome", "nublado-std-landingpage", "nublado-std-startup"}
)


def is_reserved_env(name: str) -> bool:
    """Whether a lab environment variable is one the controller owns."""
    return name in RESERVED_ENV or name.startswith("JUPYTERHUB_")


def _describe_place(where: tuple[str | int, ...]) -> str:
    """``("volumeMounts", 1, "containerPath")`` as ``volumeMounts[1].containerPath``."""
    text = str(where[0])
    for part in where[1:]:
        text += (
            f"[{part}]" if isinstance(part, int) else f"[{part!r}]" if "/" in part else f".{part}"
        )
    return text


def file_volume_name(path: str) -> str:
    """The volume (and files ConfigMap key) name of a ``lab.files`` entry.

    The basename with every ``.`` and ``_`` replaced by ``-``, as upstream names
    it: ``/opt/lsst/software/jupyterlab/lsst_dask.yml`` gives ``lsst-dask-yml``.
    """
    return posixpath.basename(path).replace(".", "-").replace("_", "-")


class LabSize(StrEnum):
    """The names a lab size may have, smallest first."""

    FINE = "fine"
    DIMINUTIVE = "diminutive"
    TINY = "tiny"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    HUGE = "huge"
    GARGANTUAN = "gargantuan"
    COLOSSAL = "colossal"
    CUSTOM = "custom"


class ResourceQuantity(LenientConfigModel):
    """An amount of CPU (cores) and memory (bytes)."""

    cpu: CpuCores
    memory: MemoryBytes

    @field_validator("cpu", "memory")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be more than 0, not {value}")
        return value

    def to_kubernetes(self) -> dict[str, str]:
        """The container form: ``str(float)`` cores and decimal bytes, both strings."""
        return {"cpu": format_cpu(self.cpu), "memory": str(self.memory)}


class LabResources(LenientConfigModel):
    """Resource limits and requests of a container; requests may not exceed limits."""

    limits: Annotated[ResourceQuantity, Field(description="Resource limits")]
    requests: Annotated[
        ResourceQuantity, Field(description="Resource requests, at most the limits")
    ]

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        problems: list[Problem] = []
        if self.requests.cpu > self.limits.cpu:
            problems.append(
                (
                    ("requests", "cpu"),
                    f"CPU request {format_cpu(self.requests.cpu)} is more than the limit"
                    f" {format_cpu(self.limits.cpu)}",
                )
            )
        if self.requests.memory > self.limits.memory:
            problems.append(
                (
                    ("requests", "memory"),
                    f"memory request {self.requests.memory} is more than the limit"
                    f" {self.limits.memory}",
                )
            )
        raise_problems(problems)
        return self

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        """The container ``resources`` form."""
        return {"limits": self.limits.to_kubernetes(), "requests": self.requests.to_kubernetes()}


class LabSizeDefinition(ConfigModel):
    """A size a user may pick for a lab, with the resources it gets."""

    size: Annotated[LabSize, Field(description="The size's name")]
    resources: Annotated[
        LabResources, Field(description="Limits and requests of the lab container")
    ]

    @property
    def label(self) -> str:
        """The text users see and ``CONTAINER_SIZE`` carries: ``Small (1.0 CPU, 3Gi RAM)``."""
        limits = self.resources.limits
        return (
            f"{self.size.value.title()} ({format_cpu(limits.cpu)} CPU,"
            f" {bytes_to_si(limits.memory)} RAM)"
        )

    def __str__(self) -> str:
        return self.label


class LabSecret(ConfigModel):
    """A key of a Secret in the controller's namespace, copied into every lab."""

    secret_name: Annotated[str, Field(description="Secret in the controller's namespace")]
    secret_key: Annotated[str, Field(description="Its key; also the key in the lab's Secret")]
    env: Annotated[
        str | None, Field(description="Also set this environment variable of the lab to the value")
    ] = None
    path: Annotated[
        str | None, Field(description="Also mount the value as a file at this path")
    ] = None

    @field_validator("secret_key")
    @classmethod
    def _check_key(cls, key: str) -> str:
        problem = config_key_problem(key)
        if problem is not None:
            raise ValueError(f"{problem} (it becomes a key of the lab's Secret)")
        return key

    @field_validator("env")
    @classmethod
    def _check_env(cls, name: str | None) -> str | None:
        problem = env_name_problem(name) if name is not None else None
        if problem is not None:
            raise ValueError(problem)
        return name


class LabNSSFiles(ConfigModel):
    """Base contents of the lab's ``/etc/passwd`` and ``/etc/group``; user lines are appended."""

    base_passwd: Annotated[
        str, Field(description="Lines of the lab's /etc/passwd before the user's")
    ] = "root:x:0:0:root:/root:/bin/bash\n"
    base_group: Annotated[
        str, Field(description="Lines of the lab's /etc/group before the user's groups")
    ] = "root:x:0\n"


class LabInitContainer(ConfigModel):
    """A site's container run before the lab starts (for example to set up networking)."""

    name: Annotated[KubernetesName, Field(description="Container name")]
    image: Annotated[ContainerImage, Field(description="The container's image")]
    command: Annotated[
        list[str] | None,
        Field(description="The container's command; unset: the image's entry point"),
    ] = None
    privileged: Annotated[bool, Field(description="Run the container privileged")] = False
    volume_mounts: Annotated[
        list[VolumeMountConfig], Field(description="Where the container mounts lab volumes")
    ] = []


class LabConfig(ConfigModel):
    """How user labs are built: sizes, volumes, environment, init containers, scheduling."""

    activity_interval: Duration = timedelta(hours=1)
    application: Annotated[
        str | None,
        Field(description="Argo CD application: label argocd.argoproj.io/instance on lab objects"),
    ] = None
    affinity: Annotated[Affinity | None, Field(description="Affinity of lab pods")] = None
    default_size: Annotated[
        LabSize | None, Field(description="Size preselected in the spawner form; one of sizes")
    ] = None
    delete_timeout: Duration = timedelta(minutes=1)
    empty_dir_source: Annotated[
        Literal["memory", "disk"], Field(description="Medium of the lab's /tmp emptyDir")
    ] = "memory"
    env: Annotated[
        dict[str, str],
        Field(
            description="Environment of every lab; names the controller sets and JUPYTERHUB_*"
            " are refused"
        ),
    ] = {}
    extra_annotations: Annotated[
        dict[str, str], Field(description="Annotations added to lab pods")
    ] = {}
    files: Annotated[
        dict[str, str], Field(description="Files of every lab, path to content (a ConfigMap)")
    ] = {}
    jupyterlab_config_dir: Annotated[
        str, Field(description="JupyterLab's configuration folder (env JUPYTERLAB_CONFIG_DIR)")
    ] = "/opt/lsst/software/jupyterlab"
    homedir_prefix: Annotated[str, Field(description="Folder of the home directories")] = "/home"
    homedir_schema: Annotated[
        Literal["username", "initialThenUsername"],
        Field(
            description="Home directory under homedirPrefix: <user>, or initialThenUsername"
            " <first letter>/<user>"
        ),
    ] = "username"
    homedir_suffix: Annotated[str, Field(description="Path appended to the home directory")] = ""
    home_volume_name: Annotated[
        str, Field(description="The entry of volumes that holds home directories")
    ] = "home"
    init_containers: Annotated[
        list[LabInitContainer], Field(description="Site containers run before the lab starts")
    ] = []
    lab_start_command: Annotated[
        list[str],
        Field(description="The lab container's arguments (env JUPYTERLAB_START_COMMAND)"),
    ] = ["/opt/lsst/software/jupyterlab/runlab.sh"]
    namespace_annotations: Annotated[
        dict[str, str],
        Field(
            description="Annotations of lab namespaces; values are Jinja templates over uid, gid"
        ),
    ] = {}
    namespace_prefix: Annotated[
        KubernetesName, Field(description="Lab namespaces are <namespacePrefix>-<user>")
    ]
    orphan_grace_period: Duration = timedelta(minutes=10)
    """How long the reconcile must have seen a lab namespace without pod or operation before
    removing it (a namespace a spawn is still filling must not be mistaken for one)."""
    node_selector: Annotated[
        dict[str, str],
        Field(description="Node labels lab pods need; images are prepulled to these nodes only"),
    ] = {}
    nss: LabNSSFiles = Field(
        default_factory=LabNSSFiles, description="Base /etc/passwd and /etc/group of labs"
    )
    pull_secret: Annotated[
        str | None,
        Field(
            description="Secret of the controller's namespace copied into each lab as"
            " pull-secret, to pull the lab image"
        ),
    ] = None
    reconcile_interval: Duration = timedelta(minutes=5)
    runtime_mounts_dir: Annotated[
        str, Field(description="Folder of the lab's secrets, environment and runtime files")
    ] = "/etc/nublado"
    secrets: Annotated[
        list[LabSecret],
        Field(description="Keys of Secrets in the controller's namespace copied into each lab"),
    ] = []
    sizes: Annotated[
        list[LabSizeDefinition], Field(description="Sizes users may pick; at least one")
    ] = []
    spawn_timeout: Duration = timedelta(minutes=10)
    standard_inithome: Annotated[
        bool,
        Field(description="Add the standard init container that provisions home directories"),
    ] = False
    tolerations: Annotated[
        list[Toleration],
        Field(description="Tolerations of lab pods; prepull pods get them too"),
    ] = []
    volumes: Annotated[
        list[VolumeConfig],
        Field(
            description="Volumes labs, their init containers, file servers and fsadmin may"
            " mount; one is homeVolumeName"
        ),
    ] = []
    volume_mounts: Annotated[
        list[VolumeMountConfig], Field(description="Where the lab container mounts volumes")
    ] = []

    @property
    def source_secret_names(self) -> list[str]:
        """The controller namespace's Secrets a lab copies: ``secrets``' then the pull secret.

        Each once, in that order (several ``secrets`` entries may name one Secret).
        """
        names = [s.secret_name for s in self.secrets]
        if self.pull_secret is not None:
            names.append(self.pull_secret)
        return list(dict.fromkeys(names))

    @field_validator("env")
    @classmethod
    def _reject_reserved_env(cls, env: dict[str, str]) -> dict[str, str]:
        problems: list[Problem] = []
        for name in env:
            if is_reserved_env(name):
                problems.append(((name,), f"Lab environment variable {name} reserved for Nublado"))
            elif (problem := config_key_problem(name)) is not None:
                # Each name becomes a key of the lab's env ConfigMap.
                problems.append(((name,), f"{problem} (it becomes a key of the env ConfigMap)"))
        raise_problems(problems)
        return env

    @field_validator("application")
    @classmethod
    def _check_application(cls, application: str | None) -> str | None:
        return check_application_label(application)

    @field_validator("files")
    @classmethod
    def _check_files(cls, files: dict[str, str]) -> dict[str, str]:
        problems: list[Problem] = []
        for path in files:
            try:
                reject_reserved_path(path)
            except ValueError as exc:
                problems.append(((path,), str(exc)))
                continue
            try:
                check_kubernetes_name(file_volume_name(path))
            except ValueError as exc:
                problems.append(((path,), f"file volume name (from the file name) is {exc}"))
        raise_problems(problems)
        return files

    @field_validator("homedir_prefix")
    @classmethod
    def _check_homedir_prefix(cls, prefix: str) -> str:
        stripped = prefix.rstrip("/")
        if not stripped.startswith("/") or len(stripped) < 2:
            raise ValueError(
                f"Invalid home directory prefix {prefix!r}: must be an absolute path other than /"
            )
        return stripped

    @field_validator("homedir_suffix")
    @classmethod
    def _strip_homedir_suffix(cls, suffix: str) -> str:
        return suffix.strip("/")

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, secrets: list[LabSecret]) -> list[LabSecret]:
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for index, secret in enumerate(secrets):
            where = (index, "secretKey")
            if secret.secret_key == "token":
                problems.append((where, 'secretKey "token" is reserved and may not be used'))
            elif secret.secret_key in seen:
                problems.append(
                    (
                        where,
                        f"Duplicate secretKey {secret.secret_key}"
                        f" (also lab.secrets[{seen[secret.secret_key]}])",
                    )
                )
            seen.setdefault(secret.secret_key, index)
        raise_problems(problems)
        return secrets

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, sizes: list[LabSizeDefinition]) -> list[LabSizeDefinition]:
        if not sizes:
            raise ValueError("At least one lab size must be defined")
        problems: list[Problem] = []
        seen: set[LabSize] = set()
        for index, definition in enumerate(sizes):
            if definition.size in seen:
                problems.append(((index, "size"), f"Duplicate lab size {definition.size.value}"))
            seen.add(definition.size)
        raise_problems(problems)
        return sizes

    @model_validator(mode="after")
    def _check_cross_references(self) -> Self:
        problems: list[Problem] = []
        if self.default_size is not None and self.default_size not in {d.size for d in self.sizes}:
            problems.append(
                (
                    ("defaultSize",),
                    f"Default size {self.default_size.value} not defined in lab.sizes",
                )
            )
        problems.extend(self._volume_name_problems())
        volumes = {v.name for v in self.volumes}
        for index, mount in enumerate(self.volume_mounts):
            if mount.volume_name not in volumes:
                problems.append(
                    (
                        ("volumeMounts", index, "volumeName"),
                        f"Unknown mounted volume {mount.volume_name}",
                    )
                )
        container_names: dict[str, int] = {}
        for index, container in enumerate(self.init_containers):
            if container.name in container_names:
                problems.append(
                    (
                        ("initContainers", index, "name"),
                        f"Duplicate init container name {container.name}"
                        f" (also lab.initContainers[{container_names[container.name]}])",
                    )
                )
            elif container.name in _RESERVED_CONTAINER_NAMES:
                problems.append(
                    (
                        ("initContainers", index, "name"),
                        f"Init container name {container.name} is reserved for Nublado",
                    )
                )
            container_names.setdefault(container.name, index)
            for mount_index, mount in enumerate(container.volume_mounts):
                if mount.volume_name not in volumes:
                    problems.append(
                        (
                            ("initContainers", index, "volumeMounts", mount_index, "volumeName"),
                            f"Unknown mounted volume {mount.volume_name}",
                        )
                    )
        if self.home_volume_name not in volumes:
            problems.append(
                (
                    ("homeVolumeName",),
                    f"A home volume is required: no volume named {self.home_volume_name}"
                    " in lab.volumes",
                )
            )
        problems.extend(self._mount_path_problems())
        raise_problems(problems)
        return self

    def _mount_path_problems(self) -> list[Problem]:
        """Each path of the lab container is mounted once: Kubernetes refuses duplicates."""
        problems: list[Problem] = []
        owners: dict[str, str] = {}
        places: list[tuple[tuple[str | int, ...], str]] = [
            (("volumeMounts", i, "containerPath"), m.container_path)
            for i, m in enumerate(self.volume_mounts)
        ]
        places.extend((("files", path), path) for path in self.files)
        places.extend(
            (("secrets", i, "path"), s.path) for i, s in enumerate(self.secrets) if s.path
        )
        for where, path in places:
            key = path.rstrip("/") or "/"
            if key in owners:
                problems.append((where, f"{path} is already mounted by lab.{owners[key]}"))
            else:
                owners[key] = _describe_place(where)
        return problems

    @field_validator("namespace_annotations")
    @classmethod
    def _check_namespace_annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        """Each value is a Jinja template over uid and gid: it must render now, not at spawn."""
        if not annotations:
            return annotations
        from jinja2 import StrictUndefined, TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        environment = SandboxedEnvironment(undefined=StrictUndefined)
        problems: list[Problem] = []
        for key, value in annotations.items():
            try:
                environment.from_string(value).render(uid=1000, gid=1000)
            except TemplateError as exc:
                problems.append(((key,), f"not a template over uid and gid: {exc}"))
        raise_problems(problems)
        return annotations

    def _volume_name_problems(self) -> list[Problem]:
        """Pod volume names must be unique: configured, file and built-in volumes."""
        problems: list[Problem] = []
        owners: dict[str, str] = {name: "a built-in volume" for name in BUILTIN_VOLUME_NAMES}
        for index, volume in enumerate(self.volumes):
            owner = owners.get(volume.name)
            if owner is not None:
                problems.append(
                    (("volumes", index, "name"), f"volume name {volume.name} is already {owner}")
                )
            else:
                owners[volume.name] = f"used by lab.volumes[{index}]"
        for path in self.files:
            name = file_volume_name(path)
            owner = owners.get(name)
            if owner is not None:
                problems.append(
                    (
                        ("files", path),
                        f"file volume name {name} (from the file name) is already {owner}",
                    )
                )
            else:
                owners[name] = f"used by lab.files[{path!r}]"
        return problems

    def get_size_definition(self, size: LabSize | str) -> LabSizeDefinition:
        """The definition of a configured size; `KeyError` if the size is not configured."""
        for definition in self.sizes:
            if definition.size == size:
                return definition
        raise KeyError(f"Lab size {size} not defined")
