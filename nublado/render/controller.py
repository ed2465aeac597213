"""Context builder of the controller set (templates/controller/): the controller's own objects.

A site without Phalanx deploys the controller from these: its ServiceAccount
and RBAC, the configuration ConfigMap, the Deployment, the Service and the
GafaelfawrIngress routes of api.md section 1.2. Every value a template lays
out is worked out here, once: names, paths, the environment, the mounts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ..config import Config
from ..config.images import DockerSourceConfig
from ..errors import InputError
from .common import CATEGORY_LABEL

__all__ = [
    "CONFIG_DIR",
    "CONFIG_KEY",
    "CONTROLLER_NAME",
    "LABELS",
    "RBAC_TEMPLATE",
    "ControllerContext",
    "ControllerImage",
    "IngressPath",
    "RbacContext",
    "build_controller_context",
    "file_setting",
    "pod_metadata_path",
    "rbac_context",
]

CONTROLLER_NAME = "nublado-controller"
"""Name of the ServiceAccount, roles, Deployment and Service (Phalanx's)."""

CONFIG_DIR = "/etc/nublado"
"""Folder of the configuration file in the pod (upstream's ``CONFIGURATION_PATH``)."""

CONFIG_KEY = "config.yaml"
"""Key of the configuration in the ConfigMap, and its file name under `CONFIG_DIR`."""

CONTAINER_PORT = 8080
"""Port ``nublado serve`` listens on (upstream's, which the Service targets)."""

SERVICE_PORT = 80
"""Port of the Service, which the ingresses route to (Phalanx's)."""

RESOURCES = {
    "limits": {"cpu": "1", "memory": "1Gi"},
    "requests": {"cpu": "50m", "memory": "200Mi"},
}
"""The controller container's resources: Phalanx's defaults."""

_MAX_CONFIG_MAP_BYTES = 1024 * 1024
"""Kubernetes refuses a ConfigMap whose data exceed 1 MiB."""

LABELS = {
    "app.kubernetes.io/name": "nublado",
    "app.kubernetes.io/component": "controller",
    "app.kubernetes.io/managed-by": "nublado",
}
"""Labels of every object of the controller set."""

RBAC_TEMPLATE = "controller/rbac.yaml"
"""What the controller may do: rendered by ``nublado render controller`` and, alone, by the
start-up permission check (`nublado.permissions`) and ``--rbac-only``."""


@dataclass(frozen=True, slots=True)
class RbacContext:
    """What templates/controller/rbac.yaml needs, under the name ``controller``.

    ``name`` is the ServiceAccount the bindings name; ``role_name`` names the
    roles and bindings themselves (``name`` but for ``--rbac-only --name``,
    which adds roles beside a chart's own).
    """

    name: str
    namespace: str
    labels: dict[str, str]
    role_name: str


def rbac_context(namespace: str, role_name: str = CONTROLLER_NAME) -> dict[str, Any]:
    """The context rendering `RBAC_TEMPLATE` alone takes, for the controller in ``namespace``."""
    return {"controller": RbacContext(CONTROLLER_NAME, namespace, dict(LABELS), role_name)}


@dataclass(frozen=True, slots=True)
class ControllerImage:
    """The image the Deployment runs, which labs' init containers and file servers use too."""

    repository: str
    tag: str
    pull_policy: str

    @property
    def reference(self) -> str:
        """``repository:tag``, as the container's ``image``."""
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True, slots=True)
class IngressPath:
    """One path of a GafaelfawrIngress route, with its Ingress ``pathType``."""

    path: str
    type: str


@dataclass(frozen=True, slots=True)
class ControllerContext:
    """Everything templates/controller/ needs, under the name ``controller``.

    templates/controller/rbac.yaml uses only ``name``, ``namespace``,
    ``labels`` and ``role_name`` (`RbacContext`): the RBAC rules are the same
    for every site.
    """

    name: str
    namespace: str
    labels: dict[str, str]
    role_name: str
    selector: dict[str, str]
    prepull_selector: dict[str, str]
    config_map: str
    config_key: str
    config_text: str
    config_checksum: str
    config_path: str
    metadata_path: str
    image: str
    pull_policy: str
    args: list[str]
    env: list[dict[str, str]]
    port: int
    service_port: int
    resources: dict[str, dict[str, str]]
    docker_secret: str | None
    docker_credentials_dir: str
    docker_credentials_file: str
    base_url: str
    host: str
    user_paths: list[IngressPath]
    hub_paths: list[IngressPath]
    admin_paths: list[IngressPath]
    anonymous_paths: list[IngressPath]
    files_paths: list[IngressPath]


def pod_metadata_path(configured: str) -> str:
    """Where the controller in its pod reads the downward-API files: ``metadataPath`` there.

    The loader takes a relative ``metadataPath`` relative to the configuration
    file's folder, which in the pod is `CONFIG_DIR`.
    """
    return posixpath.normpath(posixpath.join(CONFIG_DIR, configured))


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""One label of a DNS-1123 subdomain, the form an Ingress rule's host must take."""


def _printable(text: str) -> str:
    """Escape control characters so that an error message stays on one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def _url_problem(base_url: str) -> str | None:
    """Why the base URL cannot be the ingresses' ``baseUrl`` and ``host``, or None.

    The host is checked as written (``urlsplit`` lower-cases ``hostname``):
    Kubernetes refuses an Ingress host that is not a lower-case DNS-1123
    subdomain, and a wildcard host would route other sites' names here.
    """
    if any(c.isspace() or not c.isprintable() for c in base_url):
        return "must not contain whitespace or control characters"
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return "must be an https URL (Gafaelfawr's ingresses take no other)"
    if "@" in parts.netloc:
        return "must not carry a user name or password"
    if "?" in base_url or "#" in base_url:
        return "must not have a query or fragment"
    host = parts.netloc
    if host.startswith("["):
        return "must name its host (an Ingress host may not be an IP address)"
    host = host.partition(":")[0]
    if not host:
        return "has no host"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "must name its host (an Ingress host may not be an IP address)"
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in host.split(".")):
        return (
            f"host {host} is not a DNS-1123 subdomain (an Ingress host: lower-case letters,"
            " digits, '-' and '.', no wildcard)"
        )
    return None


def _ingress_host(base_url: str, source: str) -> str:
    """The Ingress host of the base URL; an https URL with a DNS name, as Gafaelfawr requires.

    ``source`` names where the URL came from (a flag, a key of the file, the
    environment, the default), so the error says what to change.
    """
    problem = _url_problem(base_url)
    if problem is not None:
        fix = (
            "set it to https://HOST, the site's external URL"
            if source.startswith(("--config", "EXTERNAL_INSTANCE_URL"))
            else "give --base-url https://HOST, the site's external URL"
        )
        raise InputError(f"{source} {_printable(base_url)}: {problem}; {fix}")
    return urlsplit(base_url).netloc.partition(":")[0]


def _paths(prefix: str, *paths: tuple[str, str]) -> list[IngressPath]:
    return [IngressPath(f"{prefix}{path}", path_type) for path, path_type in paths]


def build_controller_context(
    config: Config,
    *,
    config_text: str,
    namespace: str,
    image: ControllerImage,
    base_url: str,
    base_url_source: str = "--base-url",
    metadata_path: str = "/etc/podinfo",
) -> dict[str, Any]:
    """The template context ``{"controller": ControllerContext}``.

    ``config_text`` is the configuration file as given: the ConfigMap holds
    it unchanged, and the pod's environment carries what the file leaves to
    the environment (the external URL, the controller image, Repertoire).
    ``metadata_path`` is the file's ``metadataPath`` as written (relative or
    absolute), where the pod's downward-API volume must be mounted.
    """
    size = len(config_text.encode())
    if size > _MAX_CONFIG_MAP_BYTES:
        raise InputError(
            f"--config: the file is {size} bytes; a ConfigMap holds at most {_MAX_CONFIG_MAP_BYTES}"
        )
    host = _ingress_host(base_url, base_url_source)
    prefix = config.path_prefix
    labels = dict(LABELS)
    selector = {"app.kubernetes.io/name": "nublado", "app.kubernetes.io/component": "controller"}
    env = {
        "EXTERNAL_INSTANCE_URL": base_url,
        "NUBLADO_CONTROLLER_REPOSITORY": image.repository,
        "NUBLADO_CONTROLLER_TAG": image.tag,
        "NUBLADO_CONTROLLER_PULL_POLICY": image.pull_policy,
    }
    if config.repertoire_base_url:
        env["REPERTOIRE_BASE_URL"] = config.repertoire_base_url
    if config.gafaelfawr_url:
        env["GAFAELFAWR_URL"] = config.gafaelfawr_url
    docker_secret = None
    credentials = PurePosixPath(str(config.images.docker_credentials_path))
    if isinstance(config.images.source, DockerSourceConfig) and config.lab.pull_secret:
        # The image service reads the registry credentials from the pull secret, mounted.
        docker_secret = config.lab.pull_secret
        if not credentials.is_absolute():
            raise InputError(
                f"--config: images.dockerCredentialsPath {credentials}: must be absolute to"
                " mount the pull secret there"
            )
    config_path = f"{CONFIG_DIR}/{CONFIG_KEY}"
    files = config.fileserver.path_prefix if config.fileserver.enabled else None
    context = ControllerContext(
        name=CONTROLLER_NAME,
        namespace=namespace,
        labels=labels,
        role_name=CONTROLLER_NAME,
        selector=selector,
        prepull_selector={CATEGORY_LABEL: "prepuller"},
        config_map=f"{CONTROLLER_NAME}-config",
        config_key=CONFIG_KEY,
        config_text=config_text,
        config_checksum=hashlib.sha256(config_text.encode()).hexdigest(),
        config_path=config_path,
        metadata_path=pod_metadata_path(metadata_path),
        image=image.reference,
        pull_policy=image.pull_policy,
        args=["serve", "--config", config_path, "--port", str(CONTAINER_PORT)],
        env=[{"name": name, "value": value} for name, value in env.items()],
        port=CONTAINER_PORT,
        service_port=SERVICE_PORT,
        resources={part: dict(values) for part, values in RESOURCES.items()},
        docker_secret=docker_secret,
        docker_credentials_dir=str(credentials.parent),
        docker_credentials_file=credentials.name,
        base_url=base_url,
        host=host,
        user_paths=_paths(
            prefix,
            ("/spawner/v1/labs/.*/create", "ImplementationSpecific"),
            ("/spawner/v1/labs/.*/events", "ImplementationSpecific"),
            ("/spawner/v1/lab-form", "Prefix"),
            ("/spawner/v1/user-status", "Exact"),
        ),
        hub_paths=_paths(prefix, ("/spawner/v1/labs", "Prefix")),
        admin_paths=_paths(prefix, ("", "Prefix")),
        anonymous_paths=_paths(
            prefix, ("/openapi.json", "Exact"), ("/docs", "Exact"), ("/redoc", "Exact")
        ),
        files_paths=_paths(files, ("", "Prefix")) if files is not None else [],
    )
    return {"controller": context}


def file_setting(raw: Mapping[str, Any], *keys: str) -> str | None:
    """The key among ``keys`` that the configuration file itself sets, if any.

    A value the file sets wins over the environment in the pod, so a flag
    that would put another value in the environment must be refused.
    """
    return next((key for key in keys if key in raw), None)
