"""Pydantic's errors in our words: every error type we map, and the fallback for the rest."""

from __future__ import annotations

import typing
from typing import Any

import pydantic
import pytest
from pydantic_core import InitErrorDetails, ValidationError, core_schema

from nublado.config import errors
from nublado.config.errors import problems_from_validation_error

Problems = typing.Callable[..., list[str]]

# Context values enough for every mapped error type's message.
CONTEXT: dict[str, Any] = {
    "error": "input is too short",
    "expected": "'a' or 'b'",
    "expected_schemes": "'http' or 'https'",
    "max_length": 3,
    "min_length": 2,
    "actual_length": 4,
    "field_type": "List",
    "pattern": "^a",
    "multiple_of": 2,
    "gt": 0,
    "ge": 0,
    "lt": 9,
    "le": 9,
    "tz_expected": 0,
    "tz_actual": 1,
    "class": "Path",
    "class_name": "UserInfo",
}
PYDANTIC_PHRASES = ("Input ", "input should", "Value error", "<class", "pydantic", "Field required")

MAPPED = sorted(
    {
        *errors._EXPECTED,
        *errors._UNPARSED,
        *errors._WITH_CONTEXT,
        *errors._BOUNDS,
        "literal_error",
        "enum",
        "missing",
        "extra_forbidden",
        "string_type",
    }
)


def _error(kind: str) -> ValidationError:
    """A real pydantic error of type ``kind`` (with its own message), at ``field``."""
    if kind == "path_type":  # raised by pydantic's Path validator, not a core error type
        model = pydantic.create_model("M", field=(pydantic.FilePath, ...))
        with pytest.raises(ValidationError) as caught:
            model.model_validate({"field": 5})
        return caught.value
    context = dict(CONTEXT)
    if kind == "timezone_offset":
        context = {"tz_expected": 0, "tz_actual": 3600}
    details = InitErrorDetails(type=kind, loc=("field",), input=5, ctx=context)  # type: ignore[typeddict-item]
    return ValidationError.from_exception_data("M", [details])


@pytest.mark.parametrize("kind", MAPPED)
def test_every_mapped_error_type_is_in_our_words(kind: str) -> None:
    assert kind == "path_type" or kind in typing.get_args(core_schema.ErrorType)
    (line,) = problems_from_validation_error(_error(kind), {"field": 5})

    assert line.startswith("field: ")
    assert not any(phrase in line for phrase in PYDANTIC_PHRASES), line


def _buildable(kind: str) -> bool:
    try:
        _error(kind)
    except (KeyError, TypeError, ValueError):
        return False  # needs a context of its own (union tags, decimal digits, ...)
    return True


@pytest.mark.parametrize(
    "kind", [k for k in typing.get_args(core_schema.ErrorType) if k not in MAPPED and _buildable(k)]
)
def test_unmapped_error_types_lose_pydantic_phrasing(kind: str) -> None:
    (line,) = problems_from_validation_error(_error(kind), {"field": 5})

    assert not any(phrase in line for phrase in ("Input should", "Value error", "<class")), line


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metadataPath": 5}, "metadataPath: must be a path (a string), got 5"),
        (
            {"lab": {"emptyDirSource": "ssd"}},
            "lab.emptyDirSource: must be 'memory' or 'disk', got 'ssd'",
        ),
    ],
    ids=["path", "literal"],
)
def test_config_errors_of_these_types_read_as_ours(
    standard: dict[str, Any], problems: Problems, changes: dict[str, Any], expected: str
) -> None:
    for key, value in changes.items():
        if isinstance(value, dict):
            standard[key].update(value)
        else:
            standard[key] = value

    assert problems(standard) == [expected]
