"""Purger configuration and policy files.

Both are small YAML documents read once per run. They are parsed by hand
rather than with pydantic-settings because the purger runs as a CronJob over
very large trees and its whole-process time matters: these parsers import in
about a millisecond (pydantic-settings costs 0.4 s). The accepted forms are
those of the upstream purger (spec/images-tools.md 5.1, 5.2), so existing
files and environment overrides keep working.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..suggest import closest_name
from ..units import human_size_to_bytes, parse_duration

__all__ = [
    "CONFIG_FILE",
    "CONFIG_FILE_ENV_VAR",
    "POLICY_FILE",
    "ROOT_LOGGER",
    "DirectoryPolicy",
    "FileClass",
    "Intervals",
    "LogProfile",
    "Policy",
    "PurgerConfig",
    "PurgerConfigError",
    "SizeClassIntervals",
    "load_policy",
    "new_warnings",
]

CONFIG_FILE = Path("/etc/purger/config.yaml")
"""Configuration read when neither ``-c`` nor the environment names one."""

CONFIG_FILE_ENV_VAR = "RSP_SCRATCHPURGER_CONFIG_FILE"
"""Environment variable naming the configuration file; it wins over ``-c``."""

POLICY_FILE = Path("/etc/purger/policy.yaml")
"""Policy read when neither the configuration nor ``-p`` names one."""

ROOT_LOGGER = "rsp_scratchpurger"
"""Logger name, kept from upstream so existing log queries still match."""

_ENV_PREFIX = "NUBLADO_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


class PurgerConfigError(InputError):
    """The purger configuration or policy file is missing or invalid."""


class LogProfile(Enum):
    """Log format: JSON lines for log collectors, or plain text for people."""

    production = "production"
    development = "development"


class FileClass(Enum):
    """Which set of intervals applies to a file, decided by its size."""

    LARGE = "LARGE"
    SMALL = "SMALL"


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise PurgerConfigError(f"{where}: not a boolean: {value!r}")


def _parse_optional_duration(value: Any, where: str) -> timedelta | None:
    if value is None or value == "":
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PurgerConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class PurgerConfig:
    """How one purger run behaves; the policy says what it purges."""

    policy_file: Path = POLICY_FILE
    debug: bool = False
    dry_run: bool = False
    future_duration: timedelta | None = None
    log_profile: LogProfile = LogProfile.production
    log_level: str = "INFO"
    add_timestamp: bool = False
    alert_hook: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: Path, environ: Mapping[str, str] | None = None) -> PurgerConfig:
        """Read ``path``, then apply environment overrides (the environment wins)."""
        environ = os.environ if environ is None else environ
        document = _read_yaml(path, "configuration")
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise PurgerConfigError(f"{path}: the configuration must be a mapping")
        return cls.from_values(document, environ, source=str(path))

    @classmethod
    def from_values(
        cls, document: Mapping[str, Any], environ: Mapping[str, str], *, source: str = "config"
    ) -> PurgerConfig:
        """Validate a configuration mapping plus environment overrides."""
        names = {_snake(f): f for f in _CAMEL_NAMES}
        accepted: dict[str, str] = {}
        for camel in _CAMEL_NAMES:
            snake = _snake(camel)
            accepted[camel] = snake
            accepted[snake] = snake
            accepted[_ENV_PREFIX + snake.upper()] = snake
        values: dict[str, Any] = {}
        for key, value in document.items():
            if key not in accepted:
                raise PurgerConfigError(f"{source}: unknown key {key!r}")
            values[accepted[key]] = value
        # Environment: NUBLADO_<UPPER_SNAKE>, or the camelCase name in any case
        # (upstream accepts DEBUG=true and DRYRUN=true this way). Case-insensitive.
        lowered = {k.lower(): v for k, v in environ.items()}
        for snake, camel in names.items():
            for env_name in (f"{_ENV_PREFIX}{snake.upper()}", camel):
                # An empty value (DEBUG=) counts as unset, as a shell user expects.
                if lowered.get(env_name.lower()):
                    values[snake] = lowered[env_name.lower()]
                    break
        return cls._validate(values, source)

    @classmethod
    def _validate(cls, values: dict[str, Any], source: str) -> PurgerConfig:
        def where(name: str) -> str:
            return f"{source}: {name}"

        profile_text = values.get("log_profile", "production")
        try:
            profile = LogProfile(profile_text)
        except ValueError:
            raise PurgerConfigError(
                f"{where('logProfile')}: must be production or development, not {profile_text!r}"
            ) from None
        level = str(values.get("log_level", "INFO")).upper()
        if level not in _LOG_LEVELS:
            raise PurgerConfigError(f"{where('logLevel')}: unknown log level {level!r}")
        policy_file = values.get("policy_file", POLICY_FILE)
        if not isinstance(policy_file, str | Path) or not str(policy_file):
            raise PurgerConfigError(f"{where('policyFile')}: must be a path")
        if "\0" in str(policy_file):
            raise PurgerConfigError(f"{where('policyFile')}: must not contain a NUL character")
        hook = values.get("alert_hook")
        return cls(
            policy_file=Path(policy_file),
            debug=_parse_bool(values.get("debug", False), where("debug")),
            dry_run=_parse_bool(values.get("dry_run", False), where("dryRun")),
            future_duration=_parse_optional_duration(
                values.get("future_duration"), where("futureDuration")
            ),
            log_profile=profile,
            log_level=level,
            add_timestamp=_parse_bool(values.get("add_timestamp", False), where("addTimestamp")),
            alert_hook=str(hook) if hook else None,
        )


_CAMEL_NAMES = (
    "policyFile",
    "debug",
    "dryRun",
    "futureDuration",
    "logProfile",
    "logLevel",
    "addTimestamp",
    "alertHook",
)


@dataclass(frozen=True)
class SizeClassIntervals:
    """Ages after which a file of one size class is purged; None disables a test."""

    access_interval: timedelta | None = None
    creation_interval: timedelta | None = None
    modification_interval: timedelta | None = None

    def to_dict(self) -> dict[str, float]:
        """Serialize as seconds, with a disabled interval written as 0."""
        return {
            name: (value.total_seconds() if value else 0)
            for name, value in (
                ("access_interval", self.access_interval),
                ("creation_interval", self.creation_interval),
                ("modification_interval", self.modification_interval),
            )
        }


@dataclass(frozen=True)
class Intervals:
    """The intervals for large files and those for small files."""

    large: SizeClassIntervals = SizeClassIntervals()
    small: SizeClassIntervals = SizeClassIntervals()

    def for_class(self, file_class: FileClass) -> SizeClassIntervals:
        """Intervals that apply to files of ``file_class``."""
        return self.large if file_class is FileClass.LARGE else self.small


@dataclass(frozen=True)
class DirectoryPolicy:
    """One policy root: files under it are LARGE at ``threshold`` bytes or more."""

    path: Path
    threshold: int
    intervals: Intervals

    def to_dict(self) -> dict[str, Any]:
        """Serialize like upstream: sizes in bytes, intervals in seconds."""
        return {
            "path": str(self.path),
            "threshold": self.threshold,
            "intervals": {
                "large": self.intervals.large.to_dict(),
                "small": self.intervals.small.to_dict(),
            },
        }


@dataclass(frozen=True)
class Policy:
    """Every directory the purger looks after, with its rules."""

    directories: tuple[DirectoryPolicy, ...]
    ignored: tuple[str, ...] = ()
    """One warning per key the file has that the purger does not read (a misspelling)."""

    def get_directories(self) -> list[Path]:
        """Policy roots, shortest path first (a nested root comes after its parent)."""
        return sorted((d.path for d in self.directories), key=lambda p: len(str(p)))

    def for_path(self, path: Path) -> DirectoryPolicy:
        """The policy whose root is exactly ``path``."""
        for directory in self.directories:
            if directory.path == path:
                return directory
        raise KeyError(str(path))

    def to_dict(self) -> dict[str, Any]:
        """Serialize like upstream's ``to_dict``."""
        return {"directories": [d.to_dict() for d in self.directories]}


def _get(mapping: Mapping[str, Any], camel: str) -> Any:
    snake = _snake(camel)
    if snake in mapping:
        return mapping[snake]
    return mapping.get(camel)


def _parse_interval(value: Any, where: str) -> timedelta | None:
    interval = _parse_optional_duration(value, where)
    if interval is not None and interval < timedelta(0):
        raise PurgerConfigError(f"{where}: interval must not be negative: {value!r}")
    # Zero disables the test, exactly as null does.
    return interval or None


_CLASS_KEYS = ("access_interval", "creation_interval", "modification_interval")
_DIRECTORY_KEYS = ("path", "threshold", "intervals")
_INTERVALS_KEYS = ("large", "small")


def _unknown_keys(
    value: Mapping[Any, Any], known: tuple[str, ...], where: str, ignored: list[str]
) -> None:
    """Note each key of ``value`` the purger does not read, with the known key it is close to."""
    names = {*known, *(_camel(name) for name in known)}
    for key in value:
        if key in names:
            continue
        close = closest_name(str(key), known)
        hint = f" (did you mean {close}?)" if close else ""
        place = f"{where}{key}" if where.endswith(" ") else f"{where}.{key}"
        ignored.append(f"{place}: unknown policy key, ignored{hint}")


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(part.title() for part in rest)


def _parse_class(value: Any, where: str, ignored: list[str]) -> SizeClassIntervals:
    if value is None:
        return SizeClassIntervals()
    if not isinstance(value, Mapping):
        raise PurgerConfigError(f"{where}: must be a mapping")
    _unknown_keys(value, _CLASS_KEYS, where, ignored)
    return SizeClassIntervals(
        **{
            _snake(camel): _parse_interval(_get(value, camel), f"{where}.{_snake(camel)}")
            for camel in ("accessInterval", "creationInterval", "modificationInterval")
        }
    )


def _parse_directory(value: Any, where: str, ignored: list[str]) -> DirectoryPolicy:
    if not isinstance(value, Mapping):
        raise PurgerConfigError(f"{where}: must be a mapping")
    _unknown_keys(value, _DIRECTORY_KEYS, where, ignored)
    for required in ("path", "threshold", "intervals"):
        if _get(value, required) is None:
            raise PurgerConfigError(f"{where}: {required} is required")
    path = _get(value, "path")
    if not isinstance(path, str) or not path:
        raise PurgerConfigError(f"{where}.path: must be a non-empty string")
    if not path.startswith("/"):
        # Upstream did not check; a relative root would depend on the working directory.
        raise PurgerConfigError(f"{where}.path: must be an absolute path, not {path!r}")
    if "\0" in path:
        raise PurgerConfigError(f"{where}.path: must not contain a NUL character")
    if not path.strip("/"):
        # Purging the whole machine as root is never what was meant.
        raise PurgerConfigError(f"{where}.path: must not be the file system root /")
    try:
        threshold = human_size_to_bytes(_get(value, "threshold"))
    except ValueError as exc:
        raise PurgerConfigError(f"{where}.threshold: {exc}") from None
    intervals = _get(value, "intervals")
    if not isinstance(intervals, Mapping):
        raise PurgerConfigError(f"{where}.intervals: must be a mapping")
    _unknown_keys(intervals, _INTERVALS_KEYS, f"{where}.intervals", ignored)
    return DirectoryPolicy(
        path=Path(os.path.normpath(path)),
        threshold=threshold,
        intervals=Intervals(
            large=_parse_class(intervals.get("large"), f"{where}.intervals.large", ignored),
            small=_parse_class(intervals.get("small"), f"{where}.intervals.small", ignored),
        ),
    )


def _one_line(text: str) -> str:
    """``text`` with whitespace runs and control characters folded, for a one-line error."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _read_yaml(path: Path, what: str) -> Any:
    """Read a YAML file; every failure is one `PurgerConfigError` line naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PurgerConfigError(f"purger {what} file not found: {path}") from None
    except IsADirectoryError:
        raise PurgerConfigError(f"purger {what} file is a directory: {path}") from None
    except OSError as exc:
        raise PurgerConfigError(f"cannot read purger {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PurgerConfigError(
            f"{path}: not a text (UTF-8) file: byte {exc.start} is {exc.object[exc.start]:#04x}"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PurgerConfigError(f"{path}: not valid YAML: {_one_line(str(exc))}") from None


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file.

    Unknown keys are ignored, as upstream does, but each is listed in
    ``Policy.ignored`` (with the key it is close to): a misspelt
    ``acces_interval`` would otherwise silently disable a rule.
    """
    document = _read_yaml(path, "policy")
    if not isinstance(document, Mapping) or not isinstance(document.get("directories"), list):
        raise PurgerConfigError(f"{path}: directories (a list) is required")
    ignored: list[str] = []
    _unknown_keys(document, ("directories",), f"{path}: ", ignored)
    directories = tuple(
        _parse_directory(entry, f"{path}: directories[{index}]", ignored)
        for index, entry in enumerate(document["directories"])
    )
    return Policy(directories=directories, ignored=tuple(ignored))


_warned: set[str] = set()
"""Policy warnings given already: a daemon that reads the policy every run warns once."""


def new_warnings(messages: tuple[str, ...]) -> list[str]:
    """The ``messages`` not given before in this process (each is then marked given)."""
    fresh = [message for message in messages if message not in _warned]
    _warned.update(fresh)
    return fresh
