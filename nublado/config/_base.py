"""Building blocks shared by every configuration model.

All configuration models accept the camelCase key (the upstream spelling) and
the snake_case field name, and forbid unknown keys unless the upstream
controller ignored them. Quantities are parsed once, here, into canonical
Python values: durations are `timedelta`, memory is `int` bytes, CPU is
`float` cores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from ..units import cpu_to_cores, memory_to_bytes, parse_duration

__all__ = [
    "CONFIG_KEY_RULE",
    "ENV_NAME_RULE",
    "KUBERNETES_NAME_PATTERN",
    "LABEL_VALUE_RULE",
    "MAX_ID",
    "AbsolutePath",
    "ConfigModel",
    "CpuCores",
    "Duration",
    "FieldProblems",
    "ImageRepository",
    "ImageTag",
    "KubernetesName",
    "KubernetesQuantity",
    "LenientConfigModel",
    "MemoryBytes",
    "Problem",
    "check_application_label",
    "check_image_reference",
    "check_kubernetes_name",
    "check_quantity",
    "config_key_problem",
    "env_name_problem",
    "id_problem",
    "image_reference_problem",
    "label_value_problem",
    "quantity_sign",
    "raise_problems",
]

KUBERNETES_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: what Kubernetes accepts as a volume or container name."""

_KUBERNETES_NAME = re.compile(KUBERNETES_NAME_PATTERN)


def check_kubernetes_name(name: str) -> str:
    """Refuse a name Kubernetes would refuse for a volume or container."""
    if len(name) > 63 or not _KUBERNETES_NAME.match(name):
        raise ValueError(
            f"not a valid Kubernetes name: {name!r} (at most 63 lower-case letters, digits"
            " and '-', starting and ending with a letter or digit)"
        )
    return name


# Kubernetes' rules for values that reach manifests (apimachinery's validation):
# checked when the configuration or a user file is read, so that the error
# names the key that sets the value, and again on every rendered manifest.

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIG_KEY_RULE = "a valid config key: at most 253 letters, digits, '-', '_' and '.'"
_ENV_NAME = re.compile(r"[\x20-\x3c\x3e-\x7e]+")
ENV_NAME_RULE = "a valid environment variable name: printable ASCII characters other than '='"
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
LABEL_VALUE_RULE = "letters, digits, '-', '_' and '.', starting and ending alphanumeric"
MAX_ID = 2147483647
"""The largest user or group id kube-apiserver accepts (runAsUser, fsGroup, ...)."""


def _short(text: str) -> str:
    return text if len(text) <= 70 else f"{text[:50]}...{text[-12:]}"


def _too_long(value: str, limit: int) -> str:
    return f"{_short(value)!r} is {len(value)} characters, Kubernetes allows at most {limit}"


def config_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a ConfigMap or Secret data key (IsConfigMapKey), or None."""
    if len(key) > 253:
        return _too_long(key, 253)
    if not _CONFIG_KEY.fullmatch(key):
        return f"{_short(key)!r} is not {CONFIG_KEY_RULE}"
    if key == "." or key.startswith(".."):
        return f"{key!r} is not a valid config key (it must not be '.' or start with '..')"
    return None


def env_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a container's environment variable, or None.

    Kubernetes' rule since 1.32 (RelaxedEnvironmentVariableValidation, on by
    default in 1.32 and GA in 1.34): printable ASCII, the space included, but
    not '='.
    """
    if not _ENV_NAME.fullmatch(name):
        return f"{_short(name)!r} is not {ENV_NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a label value, or None."""
    if len(value) > 63:
        return _too_long(value, 63)
    if not _LABEL_VALUE.fullmatch(value):
        return f"{_short(value)!r} is not a label value ({LABEL_VALUE_RULE})"
    return None


def check_application_label(application: str | None) -> str | None:
    """An Argo CD application name, which labels every object of a lab or file server."""
    if application:
        problem = label_value_problem(application)
        if problem is not None:
            raise ValueError(f"{problem}; it becomes the argocd.argoproj.io/instance label")
    return application


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a user or group id in a pod (kube-apiserver's bounds), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, got {value!r}"
    if not 0 <= value <= MAX_ID:
        return f"must be between 0 and {MAX_ID}, inclusive, got {value}"
    return None


# Docker's reference grammar (distribution/reference): an optional registry
# host (host name, IPv4 or bracketed IPv6, optional port), lower-case path
# components, an optional tag and an optional digest. The digest's hex part
# may be short: upstream's own test images use ``sha256:1234``.
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]+"
_IMAGE_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}")
_IMAGE_TAG = re.compile(_TAG)
_IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_MAX_IMAGE_NAME = 255


def _image_name_problem(name: str) -> str | None:
    if not _IMAGE_NAME.fullmatch(name):
        return (
            "not a Docker image name (an optional registry host, then lower-case letters and"
            " digits separated by '.', '_', '__' or '-', in components joined by '/')"
        )
    if len(name) > _MAX_IMAGE_NAME:
        return f"Docker image names are at most {_MAX_IMAGE_NAME} characters, this is {len(name)}"
    return None


def image_reference_problem(reference: str) -> str | None:
    """Why Docker (and so the kubelet) would refuse an image reference, or None if it would not.

    ``[registry/]repository[:tag][@digest]`` in Docker's grammar; the answer
    says which part is wrong.
    """
    match = _IMAGE_REFERENCE.fullmatch(reference)
    if match is not None:
        return _image_name_problem(match["name"])
    name, at, digest = reference.partition("@")
    head, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        name = head
    problem = _image_name_problem(name)
    if problem is None and colon and "/" not in tag and not _IMAGE_TAG.fullmatch(tag):
        problem = (
            "the tag is not a Docker tag (up to 128 letters, digits, '_', '.' and '-',"
            " not starting with '.' or '-')"
        )
    if problem is None and at and not re.fullmatch(_DIGEST, digest):
        problem = "the digest is not algorithm:hex (like sha256:0123abcd)"
    return problem or "not registry/repository[:tag][@digest]"


def check_image_reference(reference: str) -> str:
    """Refuse (`ValueError`) an image reference Docker would refuse."""
    problem = image_reference_problem(reference)
    if problem is not None:
        raise ValueError(f"invalid image reference {_shown(reference)}: {problem}")
    return reference


def _check_image_repository(repository: str) -> str:
    problem = _image_name_problem(repository)
    if problem is not None:
        raise ValueError(f"{problem}: {_shown(repository)}")
    return repository


def _check_image_tag(tag: str) -> str:
    if not _IMAGE_TAG.fullmatch(tag):
        raise ValueError(
            "not a Docker tag (up to 128 letters, digits, '_', '.' and '-', not starting"
            f" with '.' or '-'): {_shown(tag)}"
        )
    return tag


def _shown(text: str) -> str:
    """``repr`` of a value for a message, shortened so that the message stays readable."""
    return repr(text if len(text) <= 80 else f"{text[:60]}...{text[-12:]}")


# Kubernetes' quantity grammar (apimachinery resource.Quantity): a signed
# decimal number and one suffix, binary (Ki..Ei), decimal SI (m, k..E) or an
# exponent (e3, E-2).
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?[0-9]+)?"
)

_QUANTITY_SCHEMA_PATTERN = (
    r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def quantity_sign(value: object) -> int | None:
    """-1, 0 or 1 for a Kubernetes quantity (string or JSON number); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (value > 0) - (value < 0) if value == value and abs(value) != float("inf") else None
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    if not match["number"].strip("0."):
        return 0
    return -1 if match["sign"] == "-" else 1


def check_quantity(value: object) -> str:
    """A Kubernetes quantity (``1Gi``, ``500m``, ``2``) as a string; numbers become strings."""
    if quantity_sign(value) is None:
        raise ValueError(
            f"not a Kubernetes quantity: {value!r} (a number with an optional suffix such as"
            " Ki, Mi, Gi, k, M, G or m, like 1Gi or 500m)"
        )
    return value if isinstance(value, str) else str(value)


KubernetesQuantity = Annotated[
    str,
    BeforeValidator(check_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {
                    "type": "string",
                    "pattern": _QUANTITY_SCHEMA_PATTERN,
                },
            ],
            "description": "A Kubernetes quantity such as 1Gi, 500Mi or 2",
        }
    ),
]
"""A Kubernetes quantity (``1Gi``), kept as written so that manifests show it as the file does."""

ImageRepository = Annotated[
    str,
    AfterValidator(_check_image_repository),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_DOMAIN}/)?{_PATH}$"}),
]
"""A Docker image name: an optional registry host and a lower-case repository path."""

ImageTag = Annotated[
    str,
    AfterValidator(_check_image_tag),
    WithJsonSchema({"type": "string", "pattern": f"^{_TAG}$"}),
]
"""A Docker image tag."""


def _check_absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with /), got {path!r}")
    return path


KubernetesName = Annotated[
    str,
    AfterValidator(check_kubernetes_name),
    WithJsonSchema({"type": "string", "pattern": KUBERNETES_NAME_PATTERN, "maxLength": 63}),
]
"""A volume or container name (DNS-1123 label)."""

AbsolutePath = Annotated[
    str, AfterValidator(_check_absolute), WithJsonSchema({"type": "string", "pattern": "^/"})
]
"""A path starting with ``/``."""

Problem = tuple[tuple[str | int, ...], str]
"""A location relative to the model being validated (keys and list indexes), and a reason."""


class FieldProblems(ValueError):
    """Several problems found by one cross-field check, each at its own place.

    A model validator knows the fields it compares but not where the model sits in
    the file; raising this lets the loader report each problem at its full path
    (the location of the model followed by the relative location given here).
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(message for _, message in self.problems))


def raise_problems(problems: list[Problem]) -> None:
    """Raise `FieldProblems` if a check found anything."""
    if problems:
        raise FieldProblems(problems)


class ConfigModel(BaseModel):
    """A strict configuration model: camelCase or snake_case keys, unknown keys refused.

    Models are frozen: rendering a lab must never change the configuration
    another lab is rendered from.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    warn_unknown_keys: ClassVar[bool] = False
    """Whether unknown keys are accepted (and reported by the loader as ignored)."""

    @classmethod
    def accepted_keys(cls, raw: dict[str, Any]) -> set[str] | None:
        """Field names whose keys this model reads from ``raw``; None means all fields."""
        return None


class LenientConfigModel(ConfigModel):
    """A model where upstream silently ignored unknown keys: we accept them too.

    The loader logs a warning naming each ignored key (spec/DECISIONS.md).
    """

    model_config = ConfigDict(extra="ignore")

    warn_unknown_keys: ClassVar[bool] = True


def _seconds(duration: timedelta) -> float:
    return duration.total_seconds()


def _parse_non_negative_duration(value: Any) -> timedelta:
    """A duration that is not negative: no timeout or interval of Kubernetes or ours is."""
    duration = parse_duration(value)
    if duration < timedelta(0):
        raise ValueError(f"must not be negative, got {value!r}")
    return duration


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_non_negative_duration),
    PlainSerializer(_seconds, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+\s*[a-z]+\s*)+$|^\s*[0-9.]+\s*$"},
            ],
            "description": (
                "Seconds, or whole-number groups largest unit first: 1w 2d 3h 4m 5s"
                " (also week(s), day(s), hr, hour(s), min(s), minute(s), sec(s), second(s))"
            ),
        }
    ),
]
"""A human duration (``90``, ``1h30m``, ``2 days``): seconds or unit groups; JSON: float seconds."""

MemoryBytes = Annotated[
    int,
    BeforeValidator(memory_to_bytes),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "Bytes, or a quantity such as 3Gi (binary), 3G (decimal), 512Mi",
        }
    ),
]
"""A memory quantity (``3Gi``, ``250M``, ``1e9``) as whole bytes."""

CpuCores = Annotated[
    float,
    BeforeValidator(cpu_to_cores),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^[0-9]+m$"}],
            "description": "Cores (at most 3 decimals, like 0.25) or millicores (like 250m)",
        }
    ),
]
"""A CPU quantity (``500m``, ``1``, ``0.25``) as cores."""
