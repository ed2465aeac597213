"""``nublado render``: print an object set's manifests without touching a cluster.

Every input is a file or a value, so a render needs no network and is
reproducible once ``--token`` is given (by default the token is generated, as
a real spawn's would be). This module must not import the Kubernetes client or the web stack:
it is the dry-run path, and its cold start is measured.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as secrets_module
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson
import pydantic
import yaml

from ..config import Config, LabSizeDefinition, load_config
from ..config._base import MAX_ID, image_reference_problem
from ..config.loader import warn_on_stderr
from ..errors import InputError
from ..images.reference import DockerReference, InvalidDockerReferenceError
from ..images.tag import RSPImageTag
from ..models.image import ResolvedImage
from ..models.lab import LabSpecification
from ..models.metadata import ControllerMetadata
from ..models.user import UserInfo
from .discovery import reduce_discovery
from .engine import InvalidManifestError, Manifest, Renderer
from .lab import LabContextBuilder, SourceSecret

DEFAULT_NAMESPACE = "nublado"
"""The controller's namespace without ``--namespace`` (Phalanx's)."""

if TYPE_CHECKING:
    from .controller import ControllerImage

__all__ = ["render"]

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A Kubernetes object name (RFC 1123 subdomain), as role names must be."""

_SECRET_TYPES = {
    ".dockerconfigjson": "kubernetes.io/dockerconfigjson",
    ".dockercfg": "kubernetes.io/dockercfg",
}


def read_json(option: str, path: Path) -> Any:
    """Parse a JSON input file, naming the option and the place of any error."""
    try:
        return json.loads(path.read_text(), parse_constant=_no_constant)
    except OSError as exc:
        raise InputError(f"{option} {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{option} {path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except ValueError as exc:
        raise InputError(f"{option} {path}: invalid JSON: {exc}") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_model(option: str, path: Path, model: type[_Model]) -> _Model:
    """Parse and validate a JSON input file as ``model``, one line per problem, in our words."""
    from ..config.errors import problems_from_validation_error

    data = read_json(option, path)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = problems_from_validation_error(exc, data)
        raise InputError("\n".join(f"{option} {path}: {line}" for line in problems)) from exc


def read_secrets(path: Path) -> dict[str, SourceSecret]:
    """Source secrets as plain strings ``{name: {key: value}}``, encoded as a cluster holds them."""
    data = read_json("--secrets", path)
    if not isinstance(data, dict):
        raise InputError(f"--secrets {path}: must map secret names to {{key: value}} objects")
    result: dict[str, SourceSecret] = {}
    for name, values in data.items():
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise InputError(f"--secrets {path}: {name}: must map keys to strings")
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        secret_type = next((t for key, t in _SECRET_TYPES.items() if key in values), None)
        result[name] = SourceSecret(data=encoded, type=secret_type)
    return result


def check_secrets(config: Config, path: Path, secrets: Mapping[str, SourceSecret]) -> None:
    """Refuse a ``--secrets`` file lacking a secret or key the configuration copies, all at once."""
    problems: list[str] = []
    for index, entry in enumerate(config.lab.secrets):
        source = secrets.get(entry.secret_name)
        if source is None:
            problems.append(f"no secret {entry.secret_name} (lab.secrets[{index}] copies from it)")
        elif entry.secret_key not in source.data:
            problems.append(
                f"secret {entry.secret_name} has no key {entry.secret_key}"
                f" (lab.secrets[{index}].secretKey)"
            )
    pull_secret = config.lab.pull_secret
    if pull_secret is not None and pull_secret not in secrets:
        problems.append(f"no secret {pull_secret} (lab.pullSecret)")
    if problems:
        raise InputError(f"--secrets {path}: " + "; ".join(dict.fromkeys(problems)))


def read_discovery(path: Path) -> dict[str, Any]:
    """A Repertoire discovery document; checked now so that a bad one is one clear line."""
    data = read_json("--discovery", path)
    try:
        reduce_discovery(data)
    except (AttributeError, KeyError, TypeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else "wrong shape"
        raise InputError(f"--discovery {path}: not a discovery document ({detail})") from exc
    result: dict[str, Any] = data
    return result


def parse_image(reference: str) -> ResolvedImage:
    """A resolved image from ``registry/repository:tag@digest``, as Docker would accept it."""
    problem = image_reference_problem(reference)
    if problem is not None:
        raise InputError(f"--image {_printable(reference)}: {problem}")
    try:
        parsed = DockerReference.from_str(reference)
    except InvalidDockerReferenceError as exc:
        raise InputError(f"--image {reference}: {exc}") from exc
    if parsed.tag is None or parsed.digest is None:
        raise InputError(f"--image {reference}: needs both a tag and a digest (repo:tag@digest)")
    return ResolvedImage(
        registry=parsed.registry,
        repository=parsed.repository,
        tag=parsed.tag,
        digest=parsed.digest,
        display_name=RSPImageTag.from_str(parsed.tag).display_name,
    )


def find_size(config: Config, spec: LabSpecification) -> LabSizeDefinition:
    """The configured definition of the size the spawner asked for."""
    try:
        return config.lab.get_size_definition(spec.options.size)
    except KeyError:
        pass
    configured = ", ".join(str(d.size) for d in config.lab.sizes) or "none"
    raise InputError(
        f"--spec: options.size: {spec.options.size} is not a configured size"
        f" (configured: {configured})"
    )


def read_metadata(directory: Path | None, config: Config) -> ControllerMetadata:
    """The controller pod's metadata files; an error names the flag (or key) that chose them."""
    source = "--metadata-dir" if directory is not None else "metadataPath (or give --metadata-dir)"
    directory = directory if directory is not None else config.metadata_path
    missing = [name for name in ("name", "namespace", "uid") if not (directory / name).is_file()]
    if missing:
        files = ", ".join(missing)
        raise InputError(
            f"{source} {directory}: no {files} file{'s' if len(missing) > 1 else ''}"
            " (the controller pod's name, namespace and uid, one file each)"
        )
    try:
        return ControllerMetadata.from_directory(directory)
    except InputError as exc:
        raise InputError(f"{source} {directory}: {exc}") from exc


def check_user_ids(path: Path, user: UserInfo, set_name: str) -> None:
    """Refuse a user whose ids a pod could not run with (none, 0, negative, too large)."""
    problems = [
        f"--user {path}: {field}: {_id_problem(value, set_name)}"
        for field, value in (("uid", user.uid), ("gid", user.gid))
        if value is None or not 1 <= value <= MAX_ID
    ]
    problems.extend(
        f"--user {path}: groups[{index}].id: must be between 0 and {MAX_ID}, got {group.id}"
        for index, group in enumerate(user.groups)
        if not 0 <= group.id <= MAX_ID
    )
    if problems:
        raise InputError("\n".join(problems))


def _id_problem(value: int | None, set_name: str) -> str:
    if value is None:
        return f"required but missing (a {set_name} runs as the user)"
    if value > MAX_ID:
        return f"must be at most {MAX_ID} (the largest id Kubernetes accepts), got {value}"
    return f"must be a positive number (a {set_name} does not run as root), got {value}"


def _printable(text: str) -> str:
    """Escape control characters so that an error message stays on one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()


_NEEDS: dict[str, tuple[str, ...]] = {
    "lab": ("--user", "--spec", "--image"),
    "fileserver": ("--user",),
    "fsadmin": (),
    "prepuller": ("--image", "--node"),
    "controller": (),
}
"""The inputs each set cannot be rendered without."""


def check_needed(set_name: str, config: Config, given: Mapping[str, Any]) -> None:
    """Name every missing input of the command in one message, not one per run."""
    missing = [flag for flag in _NEEDS[set_name] if given.get(flag) in (None, "")]
    secrets_needed = bool(config.lab.secrets) or config.lab.pull_secret is not None
    if set_name == "lab" and secrets_needed and given.get("--secrets") is None:
        missing.append("--secrets (the configuration's lab.secrets or lab.pullSecret)")
    if missing:
        needs = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        raise InputError(f"render {set_name} needs {needs}")


def user_manifest_error(exc: InvalidManifestError, path: Path, user: UserInfo) -> InputError:
    """Blame the user file for a name or label its username makes too long or invalid."""
    if isinstance(exc.value, str) and user.username in exc.value:
        return InputError(
            f"--user {path}: username {user.username!r} ({len(user.username)} characters)"
            f" makes an object Kubernetes refuses: {exc}"
        )
    return exc


def manifest_error(
    exc: InvalidManifestError,
    inputs: Sequence[tuple[str, Path]],
    user: tuple[Path, UserInfo] | None,
) -> InputError:
    """Blame the input that holds the value a rendered object cannot have, by flag and key.

    The username is found inside the names it makes; any other string is
    looked for as a value or a key of each input file in turn (the
    configuration, ``--user``, ``--spec``), so that an operator's template
    that puts, say, the user's display name in a label names ``--user ...:
    name``. Only on this error path are the files read again.
    """
    if user is not None:
        blamed = user_manifest_error(exc, *user)
        if blamed is not exc:
            return blamed
    value = exc.value
    if not isinstance(value, str) or not value:
        return exc
    from ..config.errors import format_location
    from ..config.loader import read_config_file

    for flag, path in inputs:
        try:
            data = read_config_file(path) if flag == "--config" else json.loads(path.read_text())
        except (InputError, OSError, ValueError):
            continue
        place = next(_places(data, value, ()), None)
        if place is not None:
            shown = value if len(value) <= 70 else f"{value[:50]}...{value[-12:]}"
            where = format_location(place) or "(the whole file)"
            return InputError(
                f"{flag} {path}: {where}: {shown!r} makes an object Kubernetes refuses: {exc}"
            )
    return exc


def _places(
    data: Any, value: str, prefix: tuple[str | int, ...]
) -> Iterator[tuple[str | int, ...]]:
    """Where ``value`` is in ``data``, as a string value or as a mapping key."""
    if isinstance(data, Mapping):
        for key, item in data.items():
            here = (*prefix, str(key))
            if key == value:
                yield here
            yield from _places(item, value, here)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _places(item, value, (*prefix, index))
    elif data == value and isinstance(data, str):
        yield prefix


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """YAML output in which a multi-line string (a configuration file, /etc/passwd) reads as text.

    A subclass, so the literal style applies to this output only.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The emitter still quotes a string a literal block cannot hold (trailing spaces).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _emit(manifests: list[Manifest], output: str) -> None:
    if output == "json":
        # A v1 List, as kubectl prints several objects: `kubectl apply -f` takes it as is.
        listing = {"apiVersion": "v1", "kind": "List", "items": manifests}
        sys.stdout.write(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    sys.stdout.write(
        yaml.dump_all(
            manifests,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            explicit_start=True,
        )
    )


_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)


@click.command()
@click.argument(
    "set_name",
    metavar="SET",
    type=click.Choice(["lab", "fileserver", "fsadmin", "prepuller", "controller"]),
)
@click.option(
    "--config", "config_path", type=_FILE, required=True, help="Controller configuration (YAML)."
)
@click.option(
    "--user", "user_path", type=_FILE, help="Gafaelfawr user-info JSON (lab, fileserver)."
)
@click.option(
    "--spec", "spec_path", type=_FILE, help="Lab specification JSON as the spawner sends it (lab)."
)
@click.option(
    "--image",
    help=(
        "Resolved image registry/repository:tag@digest (lab, prepuller);"
        " the controller's repository:tag (controller; default: NUBLADO_CONTROLLER_*)."
    ),
)
@click.option(
    "--secrets",
    "secrets_path",
    type=_FILE,
    help="Source secrets as JSON {name: {key: plain value}} (lab).",
)
@click.option("--token", help="The user's token (lab; default: a generated one).")
@click.option(
    "--metadata-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Controller pod name, namespace and uid files (default: the metadataPath).",
)
@click.option("--discovery", "discovery_path", type=_FILE, help="Service discovery JSON (lab).")
@click.option("--node", help="Node to prepull onto (prepuller).")
@click.option(
    "--namespace",
    default=DEFAULT_NAMESPACE,
    show_default=True,
    help="The controller's namespace (controller).",
)
@click.option(
    "--base-url",
    help="The site's external https URL, for the ingresses (controller; default: base_url).",
)
@click.option(
    "--template-dir",
    "template_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Extra template folder searched first (repeatable; after the config's templateDirs).",
)
@click.option(
    "--rbac-only",
    is_flag=True,
    help=(
        "Only the ClusterRole, Role and their bindings for the controller's ServiceAccount"
        " (controller): to add them beside another chart's."
    ),
)
@click.option(
    "--name",
    "role_name",
    help="Name of the roles and bindings (controller --rbac-only; default nublado-controller).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Multi-document YAML, or JSON: one v1 List (both work with kubectl apply -f).",
)
def render(
    set_name: str,
    config_path: Path,
    user_path: Path | None,
    spec_path: Path | None,
    image: str | None,
    secrets_path: Path | None,
    token: str | None,
    metadata_dir: Path | None,
    discovery_path: Path | None,
    node: str | None,
    namespace: str,
    base_url: str | None,
    template_dirs: tuple[Path, ...],
    rbac_only: bool,
    role_name: str | None,
    output: str,
) -> None:
    """Print a set's manifests (lab, fileserver, fsadmin, prepuller, controller) in apply order.

    Nothing is sent anywhere: this is what the controller would apply for the
    given inputs. Each subcommand ignores the inputs it does not need.
    """
    warn_on_stderr()
    if rbac_only and set_name != "controller":
        raise InputError("--rbac-only: only with the controller set")
    if role_name is not None and not rbac_only:
        raise InputError("--name: only with --rbac-only")
    config = load_config(config_path)
    given = {"--user": user_path, "--spec": spec_path, "--image": image, "--node": node}
    check_needed(set_name, config, {**given, "--secrets": secrets_path})
    renderer = Renderer([*config.template_dirs, *template_dirs])
    loaded: list[tuple[Path, UserInfo]] = []

    def user() -> UserInfo:
        assert user_path is not None
        info = read_model("--user", user_path, UserInfo)
        check_user_ids(user_path, info, set_name)
        loaded.append((user_path, info))
        return info

    def fileserver() -> dict[str, Any]:
        from .fileserver import build_fileserver_context

        return build_fileserver_context(config, user())

    def fsadmin() -> dict[str, Any]:
        from .fsadmin import build_fsadmin_context

        return build_fsadmin_context(config, read_metadata(metadata_dir, config))

    def prepuller() -> dict[str, Any]:
        from .prepuller import build_prepull_context

        assert image is not None and node is not None
        reference = parse_image(image)
        return build_prepull_context(config, read_metadata(metadata_dir, config), reference, node)

    def lab() -> dict[str, Any]:
        assert spec_path is not None and image is not None
        return _lab_context(config, user(), spec_path, image, secrets_path, token, discovery_path)

    def controller() -> dict[str, Any]:
        return _controller_context(config, config_path, namespace, image, base_url)

    # Only the requested set's context builder is imported (cold start).
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "lab": lab,
        "fileserver": fileserver,
        "fsadmin": fsadmin,
        "prepuller": prepuller,
        "controller": controller,
    }
    if rbac_only:
        _emit(_rbac_only(renderer, namespace, role_name), output)
        return
    context = builders[set_name]()
    try:
        manifests = renderer.render(set_name, context)
    except InvalidManifestError as exc:
        inputs = [("--config", config_path)]
        inputs += [(flag, path) for flag, path in given.items() if isinstance(path, Path)]
        raise manifest_error(exc, inputs, loaded[0] if loaded else None) from exc
    _emit(manifests, output)


def _rbac_only(renderer: Renderer, namespace: str, role_name: str | None) -> list[Manifest]:
    """The controller's roles and bindings alone, named ``role_name``, for its ServiceAccount.

    Added beside a chart's own RBAC (Phalanx's) under another name, they add
    what it lacks without touching its objects; RBAC is a union of grants.
    """
    from .controller import CONTROLLER_NAME, RBAC_TEMPLATE, rbac_context

    if role_name is not None:
        problem = _dns_subdomain_problem(role_name)
        if problem:
            raise InputError(f"--name {role_name}: {problem}")
    context = rbac_context(namespace, role_name or CONTROLLER_NAME)
    return renderer.render_template(RBAC_TEMPLATE, context)


def _dns_subdomain_problem(name: str) -> str:
    """Why ``name`` cannot name a role (a DNS subdomain, as kube checks it), or ``""``."""
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not _DNS_SUBDOMAIN.fullmatch(name):
        return (
            "must consist of lower case alphanumeric characters, '-' or '.', and must start"
            " and end with an alphanumeric character"
        )
    return ""


def _lab_context(
    config: Config,
    user: UserInfo,
    spec_path: Path,
    image: str,
    secrets_path: Path | None,
    token: str | None,
    discovery_path: Path | None,
) -> dict[str, Any]:
    spec = read_model("--spec", spec_path, LabSpecification)
    resolved = parse_image(image)
    source_secrets = read_secrets(secrets_path) if secrets_path else {}
    if secrets_path is not None:
        check_secrets(config, secrets_path, source_secrets)
    discovery = read_discovery(discovery_path) if discovery_path else None
    return LabContextBuilder(config).build(
        user=user,
        spec=spec,
        image=resolved,
        size=find_size(config, spec),
        secrets=source_secrets,
        token=token if token is not None else secrets_module.token_urlsafe(32),
        discovery=discovery,
    )


def _parse_controller_image(reference: str, pull_policy: str) -> ControllerImage:
    """The controller image from ``--image repository:tag``; labs reuse it, so no digest."""
    from .controller import ControllerImage

    problem = image_reference_problem(reference)
    if problem is not None:
        raise InputError(f"--image {_printable(reference)}: {problem}")
    name, at, _ = reference.partition("@")
    repository, colon, tag = name.rpartition(":")
    if at or not colon or "/" in tag:
        raise InputError(
            f"--image {reference}: needs repository:tag without a digest (the deployed"
            " controller passes its image to labs as NUBLADO_CONTROLLER_REPOSITORY and _TAG)"
        )
    return ControllerImage(repository=repository, tag=tag, pull_policy=pull_policy)


def _controller_context(
    config: Config,
    config_path: Path,
    namespace: str,
    image: str | None,
    base_url: str | None,
) -> dict[str, Any]:
    """The controller set's context; a flag the file overrides in the pod is refused."""
    from ..config.loader import read_config_file
    from .checks import namespace_problem
    from .controller import CONFIG_DIR, ControllerImage, build_controller_context, file_setting

    problem = namespace_problem(namespace)
    if problem is not None:
        # The problem quotes the value already (shortened, escaped): print it once.
        raise InputError(f"--namespace: {problem}")
    raw = read_config_file(config_path)
    configured = config.controller_image
    chosen = ControllerImage(configured.repository, configured.tag, str(configured.pull_policy))
    if image is not None:
        chosen = _parse_controller_image(image, str(configured.pull_policy))
        _refuse_overridden(
            raw,
            config_path,
            "--image",
            image,
            configured.reference,
            "controllerImage",
            "controller_image",
        )
    if base_url is not None:
        _refuse_overridden(
            raw,
            config_path,
            "--base-url",
            base_url,
            config.base_url,
            "EXTERNAL_INSTANCE_URL",
            "base_url",
        )
    folders = file_setting(raw, "templateDirs", "template_dirs")
    if folders is not None and raw[folders]:
        click.echo(
            f"nublado: warning: {folders}: the deployed controller looks for these folders in its"
            f" pod (relative ones under {CONFIG_DIR}), where the rendered Deployment mounts"
            " nothing; mount them there (a controller/deployment.yaml of your own)",
            err=True,
        )
    metadata_key = file_setting(raw, "metadataPath", "metadata_path")
    url_key = file_setting(raw, "EXTERNAL_INSTANCE_URL", "base_url")
    url_source = f"--config {config_path}: {url_key}" if url_key else "base_url"
    if not url_key and os.environ.get("EXTERNAL_INSTANCE_URL") == config.base_url:
        url_source = "EXTERNAL_INSTANCE_URL"
    return build_controller_context(
        config,
        config_text=config_path.read_text(encoding="utf-8"),
        namespace=namespace,
        image=chosen,
        base_url=base_url if base_url is not None else config.base_url,
        base_url_source="--base-url" if base_url is not None else url_source,
        metadata_path=str(raw[metadata_key]) if metadata_key else "/etc/podinfo",
    )


def _refuse_overridden(
    raw: Mapping[str, Any], path: Path, flag: str, value: str, configured: str, *keys: str
) -> None:
    """Refuse a flag whose value the file sets otherwise: in the pod, the file would win."""
    from .controller import file_setting

    key = file_setting(raw, *keys)
    if key is not None and value != configured:
        raise InputError(
            f"{flag} {_printable(value)}: --config {path} sets {key} to {configured},"
            " which the deployed controller would use instead; change one of them"
        )
