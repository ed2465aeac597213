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
    "KUBERNETES_NAME_PATTERN",
    "AbsolutePath",
    "ConfigModel",
    "CpuCores",
    "Duration",
    "FieldProblems",
    "KubernetesName",
    "LenientConfigModel",
    "MemoryBytes",
    "Problem",
    "check_kubernetes_name",
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


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_seconds, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
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
