"""Load the controller configuration: YAML file, environment overrides, validation.

Environment overrides follow upstream (spec/objects.md section 2, which used
pydantic-settings): a top-level field may be set by an environment variable
named, case-insensitively, like its camelCase key or its snake_case name
(``LOGLEVEL``, ``PATH_PREFIX``; mappings and lists as JSON), plus
``EXTERNAL_INSTANCE_URL`` and ``NUBLADO_SLACK_WEBHOOK``. The file wins over the
environment. The controller image comes from ``NUBLADO_CONTROLLER_*``.

The same rules are implemented here directly rather than through
pydantic-settings: the loader must honour an explicit ``environ`` mapping
(tests, the sandbox), and it sits on the dry-run render path, whose cold start
pydantic-settings' imports would slow by about 0.1 s.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import types
import typing
from collections.abc import Mapping
from inspect import isclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import AliasChoices, ValidationError

from ._base import ConfigModel
from .controller import DEFAULT_CONTROLLER_REPOSITORY, DEFAULT_CONTROLLER_TAG, Config
from .errors import ConfigError, closest_key, format_location, problems_from_validation_error
from .scheduling import TaintEffect

__all__ = [
    "find_ignored_keys",
    "forget_warnings",
    "load_config",
    "load_tool_config",
    "read_config_file",
    "warn_on_stderr",
]

logger = logging.getLogger("nublado.config")

_warned: set[str] = set()
"""Warnings given already: a configuration loaded twice in a process warns once."""


def _warn(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def forget_warnings() -> None:
    """Warn again about what was warned already (tests that each load a configuration)."""
    _warned.clear()


class _StderrWarnings(logging.Handler):
    """Configuration warnings as a command prints its errors: ``nublado: warning: ...``.

    Writes to the ``sys.stderr`` of the moment, so a captured stderr sees them.
    """

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"nublado: warning: {record.getMessage()}\n")


def warn_on_stderr() -> None:
    """Print configuration warnings on stderr for a command-line tool.

    Only while logging is not configured (a server configures it, and then
    warnings are log lines); without this, Python prints them bare.
    """
    if logging.getLogger().handlers:
        return
    if not any(isinstance(handler, _StderrWarnings) for handler in logger.handlers):
        logger.addHandler(_StderrWarnings(logging.WARNING))


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_ENV_ONLY_ALIASES = {
    "base_url": ("EXTERNAL_INSTANCE_URL", "base_url"),
    "slack_webhook": ("NUBLADO_SLACK_WEBHOOK", "slack_webhook"),
    "repertoire_base_url": ("REPERTOIRE_BASE_URL", "repertoireBaseUrl"),
}
_JSON_FIELDS = frozenset(
    {"metrics", "template_dirs", "fileserver", "fsadmin", "images", "dropdown_menu", "lab"}
)
_NOT_FROM_GENERIC_ENV = frozenset({"controller_image"})
_PULL_POLICIES = {"always": "Always", "never": "Never"}

_ToolConfig = TypeVar("_ToolConfig", bound=ConfigModel)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the YAML file into a mapping, or say (on one line) why it cannot be."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found", path=path) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"{path}: cannot read configuration file: {reason}", path=path) from None
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # a safe loader (C if available)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{path}: invalid YAML{where}: {reason}", path=path) from None
    except yaml.reader.ReaderError as exc:
        # Its text spans two lines (the reason, then the position): one line here.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise ConfigError(
            f"{path}: invalid YAML at line {line}, column {column}: unacceptable character"
            f" {char}: {exc.reason}",
            path=path,
        ) from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: invalid YAML: {reason}", path=path) from None
    if not isinstance(data, dict):
        found = "nothing (the file is empty)" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
            f"{path}: the top level of the configuration must be a mapping, not {found}",
            path=path,
        )
    return data


def _field_keys(model: type[ConfigModel]) -> dict[str, str]:
    """Every key a model reads (alias, validation aliases, name) -> field name."""
    keys: dict[str, str] = {}
    for name, info in model.model_fields.items():
        keys[name] = name
        if info.alias:
            keys[info.alias] = name
        alias = info.validation_alias
        if isinstance(alias, str):
            keys[alias] = name
        elif isinstance(alias, AliasChoices):
            keys.update({choice: name for choice in alias.choices if isinstance(choice, str)})
    return keys


def _environment_overrides(
    raw: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Values for top-level fields the file does not set, from the environment.

    Returns the values (by key) and, for each, the variable it came from.
    """
    by_lower = {name.lower(): name for name in environ}
    keys_in_file = {_field_keys(Config).get(key) for key in raw}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, info in Config.model_fields.items():
        if name in keys_in_file or name in _NOT_FROM_GENERIC_ENV:
            continue
        candidates = _ENV_ONLY_ALIASES.get(name, (info.alias or name, name))
        for candidate in candidates:
            variable = by_lower.get(candidate.lower())
            if variable is None:
                continue
            value: Any = environ[variable]
            if name in _JSON_FIELDS:
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise ConfigError(
                        f"environment variable {variable}: not valid JSON: {exc}"
                    ) from None
            key = name if name in _ENV_ONLY_ALIASES else (info.alias or name)
            values[key] = value
            sources[key] = variable
            break
    if "controller_image" not in keys_in_file:
        values["controllerImage"] = _controller_image(environ)
    return values, sources


def _controller_image(environ: Mapping[str, str]) -> dict[str, str]:
    """The controller's own image, as its deployment describes it in the environment."""
    policy = environ.get("NUBLADO_CONTROLLER_PULL_POLICY", "").strip().lower()
    return {
        "repository": environ.get("NUBLADO_CONTROLLER_REPOSITORY") or DEFAULT_CONTROLLER_REPOSITORY,
        "tag": environ.get("NUBLADO_CONTROLLER_TAG") or DEFAULT_CONTROLLER_TAG,
        "pull_policy": _PULL_POLICIES.get(policy, "IfNotPresent"),
    }


def _walk_type(annotation: Any, value: Any, path: list[str | int]) -> list[str]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _walk_type(typing.get_args(annotation)[0], value, path)
    if origin is typing.Union or origin is types.UnionType:
        models = [
            arg
            for arg in typing.get_args(annotation)
            if isclass(arg) and issubclass(arg, ConfigModel)
        ]
        return _walk_model(models[0], value, path) if len(models) == 1 else []
    if origin is list and isinstance(value, list):
        (item_type,) = typing.get_args(annotation)
        found: list[str] = []
        for index, item in enumerate(value):
            found.extend(_walk_type(item_type, item, [*path, index]))
        return found
    if isclass(annotation) and issubclass(annotation, ConfigModel):
        return _walk_model(annotation, value, path)
    return []


def _walk_model(model: type[ConfigModel], raw: Any, path: list[str | int]) -> list[str]:
    if not isinstance(raw, Mapping):
        return []
    keys = _field_keys(model)
    accepted = model.accepted_keys(dict(raw))
    found: list[str] = []
    for key, value in raw.items():
        field = keys.get(key) if isinstance(key, str) else None
        where = format_location([*path, str(key)])
        if accepted is not None and field not in accepted:
            found.append(f"{where} (the file server is disabled)")
        elif field is None:
            if model.warn_unknown_keys:
                found.append(where + _did_you_mean(key, model))
        else:
            found.extend(_walk_type(model.model_fields[field].annotation, value, [*path, key]))
    return found


def _did_you_mean(key: Any, model: type[ConfigModel]) -> str:
    """`` (did you mean podName?)`` when a known key of ``model`` is close to ``key``."""
    close = closest_key(key, model) if isinstance(key, str) else None
    return f" (did you mean {close}?)" if close else ""


def find_ignored_keys(raw: Mapping[str, Any]) -> list[str]:
    """Keys of a configuration that upstream silently ignored, and so do we.

    Those are unknown keys under ``fsadmin`` and in ``resources`` blocks, and
    every key but ``enabled`` and ``pathPrefix`` of a disabled ``fileserver``.
    """
    return _walk_model(Config, raw, [])


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate the configuration file.

    Relative ``templateDirs`` (which must exist) and ``metadataPath`` are taken
    relative to the file's folder, so a configuration means the same from any
    working directory. Raises `ConfigError` listing every problem found, one per line.
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    raw = read_config_file(path)
    for where in find_ignored_keys(raw):
        _warn(f"Ignoring configuration key {where}")
    overrides, sources = _environment_overrides(raw, environ)
    data = {**overrides, **raw}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, data, sources=sources, model=Config)
        raise ConfigError(problems, path=path) from None
    for where in _ignored_toleration_seconds(config):
        _warn(
            f"Ignoring configuration key {where}: Kubernetes allows it only with effect NoExecute"
        )
    if config.template_dirs:
        config = _resolve_template_dirs(config, path.parent, raw)
    if not config.metadata_path.is_absolute():
        config = config.model_copy(update={"metadata_path": path.parent / config.metadata_path})
    return config


def _ignored_toleration_seconds(config: Config) -> list[str]:
    """Where a ``tolerationSeconds`` is left out of pods (upstream sent it, and was refused)."""
    sections = {
        "lab": config.lab.tolerations,
        "fileserver": config.fileserver.tolerations,
        "fsadmin": config.fsadmin.tolerations,
    }
    return [
        f"{section}.tolerations[{index}].tolerationSeconds"
        for section, tolerations in sections.items()
        for index, toleration in enumerate(tolerations)
        if toleration.toleration_seconds is not None and toleration.effect != TaintEffect.NO_EXECUTE
    ]


def _resolve_template_dirs(config: Config, base: Path, raw: Mapping[str, Any]) -> Config:
    resolved = [base / folder for folder in config.template_dirs]
    key = "templateDirs" if "templateDirs" in raw else "template_dirs"
    problems = [
        f"{key}[{index}]: not a directory: {folder}"
        for index, folder in enumerate(resolved)
        if not folder.is_dir()
    ]
    if problems:
        raise ConfigError(problems)
    return config.model_copy(update={"template_dirs": resolved})


def load_tool_config(
    path: Path | str,
    model: type[_ToolConfig],
    *,
    env_prefix: str = "NUBLADO_",
    environ: Mapping[str, str] | None = None,
) -> _ToolConfig:
    """Read and validate a command-line tool's configuration (e.g. ``nublado images``).

    Unlike the controller's, these files follow upstream's pydantic-settings
    rules for tools: a top-level field set by the variable ``{env_prefix}{NAME}``
    (snake name, any case) **wins** over the file, and the file may also spell
    a key as that variable's name. Values starting with ``{`` or ``[`` are read
    as JSON. Raises `ConfigError` with one line per problem.
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    raw = read_config_file(path)
    keys = _field_keys(model)
    env_names = {f"{env_prefix}{name}".upper(): name for name in model.model_fields}
    data: dict[str, Any] = {}
    for key, value in raw.items():
        field = env_names.get(key.upper()) if isinstance(key, str) else None
        data[model.model_fields[field].alias or field if field else key] = value
    by_upper = {name.upper(): name for name in environ}
    sources: dict[str, str] = {}
    for name, info in model.model_fields.items():
        variable = by_upper.get(f"{env_prefix}{name}".upper())
        if variable is None:
            continue
        setting: Any = environ[variable]
        if setting.lstrip().startswith(("{", "[")):
            try:
                setting = json.loads(setting)
            except ValueError as exc:
                raise ConfigError(
                    f"environment variable {variable}: not valid JSON: {exc}"
                ) from None
        for key in [key for key in data if keys.get(key) == name]:
            del data[key]
        key = info.alias or name
        data[key] = setting
        sources[key] = variable
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, data, sources=sources, model=model)
        raise ConfigError([f"{path}: {line}" for line in problems], path=path) from None
