"""``nublado render``: print an object set's manifests without touching a cluster.

Every input is a file or a value, so a render needs no network and is
reproducible once ``--token`` is given (by default the token is generated, as
a real spawn's would be). This module must not import the Kubernetes client or the web stack:
it is the dry-run path, and its cold start is measured.
"""

from __future__ import annotations

import base64
import json
import secrets as secrets_module
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import pydantic
import yaml

from ..config import Config, LabSizeDefinition, load_config
from ..errors import InputError
from ..images.reference import DockerReference, InvalidDockerReferenceError
from ..images.tag import RSPImageTag
from ..models.image import ResolvedImage
from ..models.lab import LabSpecification
from ..models.metadata import ControllerMetadata
from ..models.user import UserInfo
from .discovery import reduce_discovery
from .engine import Manifest, Renderer
from .lab import LabContextBuilder, SourceSecret

__all__ = ["render"]

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

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
    """Parse and validate a JSON input file as ``model``, one line per problem."""
    data = read_json(option, path)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"{option} {path}: {where}: {error['msg']}")
        raise InputError("\n".join(lines)) from exc


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
    """A resolved image from ``registry/repository:tag@digest``."""
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


def _required(value: Any, option: str, set_name: str) -> Any:
    if value is None or value == "":
        raise InputError(f"render {set_name} needs {option}")
    return value


def _emit(manifests: list[Manifest], output: str) -> None:
    if output == "json":
        sys.stdout.write(orjson.dumps(manifests, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    sys.stdout.write(
        yaml.dump_all(
            manifests,
            Dumper=dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            explicit_start=True,
        )
    )


_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)


@click.command()
@click.argument(
    "set_name", metavar="SET", type=click.Choice(["lab", "fileserver", "fsadmin", "prepuller"])
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
@click.option("--image", help="Resolved image registry/repository:tag@digest (lab, prepuller).")
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
    "--template-dir",
    "template_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Extra template folder searched first (repeatable; after the config's templateDirs).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Multi-document YAML or a JSON list.",
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
    template_dirs: tuple[Path, ...],
    output: str,
) -> None:
    """Print the manifests of an object set (lab, fileserver, fsadmin, prepuller) in apply order.

    Nothing is sent anywhere: this is what the controller would apply for the
    given inputs. Each subcommand ignores the inputs it does not need.
    """
    config = load_config(config_path)
    renderer = Renderer([*config.template_dirs, *template_dirs])

    def metadata() -> ControllerMetadata:
        return ControllerMetadata.from_directory(metadata_dir or config.metadata_path)

    def user() -> UserInfo:
        return read_model("--user", _required(user_path, "--user", set_name), UserInfo)

    def fileserver() -> dict[str, Any]:
        from .fileserver import build_fileserver_context

        return build_fileserver_context(config, user())

    def fsadmin() -> dict[str, Any]:
        from .fsadmin import build_fsadmin_context

        return build_fsadmin_context(config, metadata())

    def prepuller() -> dict[str, Any]:
        from .prepuller import build_prepull_context

        reference = parse_image(_required(image, "--image", set_name))
        return build_prepull_context(
            config, metadata(), reference, _required(node, "--node", set_name)
        )

    def lab() -> dict[str, Any]:
        return _lab_context(config, user(), spec_path, image, secrets_path, token, discovery_path)

    # Only the requested set's context builder is imported (cold start).
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "lab": lab,
        "fileserver": fileserver,
        "fsadmin": fsadmin,
        "prepuller": prepuller,
    }
    _emit(renderer.render(set_name, builders[set_name]()), output)


def _lab_context(
    config: Config,
    user: UserInfo,
    spec_path: Path | None,
    image: str | None,
    secrets_path: Path | None,
    token: str | None,
    discovery_path: Path | None,
) -> dict[str, Any]:
    spec = read_model("--spec", _required(spec_path, "--spec", "lab"), LabSpecification)
    resolved = parse_image(_required(image, "--image", "lab"))
    source_secrets = read_secrets(secrets_path) if secrets_path else {}
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
