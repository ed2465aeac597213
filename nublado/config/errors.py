"""Configuration errors, reported one line per problem at the place in the file.

A place is written with the keys as the file spells them (camelCase or
snake_case), list indexes in brackets, and keys that are not plain words
quoted: ``lab.sizes[1].resources.limits.memory``, ``lab.files["/tmp"]``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from inspect import isclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import InputError
from ..suggest import closest_name
from ._base import FieldProblems

__all__ = [
    "ConfigError",
    "closest_key",
    "format_location",
    "problems_from_validation_error",
    "written_location",
]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(InputError):
    """The configuration cannot be used; the message has one line per problem."""

    def __init__(self, problems: str | Iterable[str], *, path: Path | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        super().__init__("\n".join(self.problems))


def format_location(parts: Sequence[str | int]) -> str:
    """Write a key path the way a reader finds it in the file."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _normalise(key: str) -> str:
    return key.replace("_", "").lower()


def _find_key(node: Mapping[Any, Any], name: str) -> str | None:
    """The key of ``node`` that pydantic's location ``name`` stands for, as written."""
    if name in node:
        return name
    wanted = _normalise(name)
    for key in node:
        if isinstance(key, str) and _normalise(key) == wanted:
            return key
    return None


def written_location(loc: Sequence[str | int], raw: Any) -> list[str | int]:
    """Map a pydantic error location onto the keys the file actually uses.

    Location parts that are not keys of the data (union tags such as ``nfs``,
    ``[key]`` markers) are dropped; the last part is kept even when absent,
    since that is how a missing key is reported.
    """
    parts: list[str | int] = []
    node = raw
    for index, item in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(item, int):
            parts.append(item)
            is_list = isinstance(node, list | tuple)
            node = node[item] if is_list and -len(node) <= item < len(node) else None
            continue
        if item == "[key]":
            continue
        if isinstance(node, Mapping):
            key = _find_key(node, item)
            if key is not None:
                parts.append(key)
                node = node[key]
                continue
        if last:
            parts.append(item)
        node = node if not last else None
    return parts


def _describe(value: Any) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


_EXPECTED = {
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "path_type": "must be a path (a string)",
    "url_type": "must be a URL (a string)",
    "string_unicode": "must be a valid Unicode string",
    "mapping_type": "must be a mapping",
    "set_type": "must be a list",
    "frozen_set_type": "must be a list",
    "tuple_type": "must be a list",
    "iterable_type": "must be a list",
    "bytes_type": "must be a string",
    "decimal_type": "must be a number",
    "decimal_parsing": "must be a number",
    "int_parsing_size": "must be a whole number of a size that fits",
    "none_required": "must be null (or left out)",
    "date_type": "must be a date (YYYY-MM-DD)",
    "datetime_type": "must be a date and time (ISO 8601, like 2026-12-06T19:00:00Z)",
    "time_type": "must be a time of day (HH:MM:SS)",
    "time_delta_type": "must be a duration (like 90s, 5m or 1h)",
    "date_from_datetime_inexact": "must be a date without a time of day",
    "json_type": "must be JSON text (a string)",
    "uuid_type": "must be a UUID",
}
_UNPARSED = {
    "url_parsing": "must be a URL",
    "url_syntax_violation": "must be a URL",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "datetime_parsing": "must be a date and time (ISO 8601, like 2026-12-06T19:00:00Z)",
    "datetime_from_date_parsing": "must be a date and time (ISO 8601, like 2026-12-06T19:00:00Z)",
    "time_parsing": "must be a time of day (HH:MM:SS)",
    "time_delta_parsing": "must be a duration (like 90s, 5m or 1h)",
    "json_invalid": "must be valid JSON",
    "uuid_parsing": "must be a UUID",
}
"""Error types whose context holds the parser's reason: ``<expected> (<reason>), got <value>``."""
_WITH_CONTEXT = {
    "url_scheme": "must be a URL with scheme {expected_schemes}",
    "url_too_long": "must be a URL of at most {max_length} characters",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "multiple_of": "must be a multiple of {multiple_of}",
    "date_past": "must be in the past",
    "date_future": "must be in the future",
    "datetime_past": "must be in the past",
    "datetime_future": "must be in the future",
    "timezone_naive": "must not give a time zone",
    "timezone_aware": "must give a time zone (like Z or +01:00)",
    "timezone_offset": "must have the time zone offset {expected}",
}
"""Error types whose wording takes values from the error's context."""
_PYDANTIC_CLASS = re.compile(r"(?: for)? <class '[\w.]+'>")
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _reason(error: Mapping[str, Any]) -> str:
    """A pydantic error in our words: what the value must be, and what it was.

    Pydantic's own phrasing ("Input should be a valid dictionary or instance
    of UserInfo", "Value error, ...") names its classes, not the file.
    """
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx", {})
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"])
    if kind == "missing":
        return "required but missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_invalid":
        expected = ctx["expected_tags"].replace("'", "")
        return f"unknown {ctx['tag']!r} (expected one of {expected})"
    if kind == "union_tag_not_found":
        return "required but missing"
    if kind == "string_type":
        return f"must be a string (quote it in YAML), got {_describe(value)}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_describe(value)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = ctx[key]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # a float field's bound: "at least 0", not "at least 0.0"
        return f"must be {words} {bound}, got {_describe(value)}"
    if kind in ("literal_error", "enum"):
        return f"must be {ctx['expected']}, got {_describe(value)}"
    if kind in _UNPARSED:
        detail = f" ({ctx['error']})" if ctx.get("error") else ""
        return f"{_UNPARSED[kind]}{detail}, got {_describe(value)}"
    if kind in _WITH_CONTEXT:
        try:
            return f"{_WITH_CONTEXT[kind].format(**ctx)}, got {_describe(value)}"
        except (KeyError, IndexError):
            pass
    return f"{_plain(str(error['msg']))}, got {_describe(value)}"


def _plain(message: str) -> str:
    """Pydantic's message for an error type not mapped above, without its own phrasing.

    "Input should be X" becomes "must be X", "Input is not X" "is not X", and
    class names (``<class 'pathlib.Path'>``) and "Value error, " go.
    """
    message = _PYDANTIC_CLASS.sub("", message.removeprefix("Value error, "))
    for prefix, ours in (
        ("Input should ", "must "),
        ("Input is ", "is "),
        ("Input ", "the value "),
    ):
        if message.startswith(prefix):
            return ours + message.removeprefix(prefix)
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message


def closest_key(key: str, model: type[BaseModel]) -> str | None:
    """The key ``model`` reads that ``key`` most likely meant to be (case aside), if any."""
    known = [
        info.validation_alias if isinstance(info.validation_alias, str) else info.alias or name
        for name, info in model.model_fields.items()
    ]
    return closest_name(key, known)


def _other_spelling(key: str, model: type[BaseModel]) -> str | None:
    """The documented key of the field ``key`` spells another way (its name), if any."""
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        if alias and key in (name, alias) and alias != name:
            return alias if key == name else name
    return None


def _strip(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union or origin is types.UnionType:
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _tagged(annotation: Any, tag: str) -> Any:
    """The member of a union of models whose ``type`` literal is ``tag``."""
    for arg in typing.get_args(annotation):
        if (
            isclass(arg)
            and issubclass(arg, BaseModel)
            and "type" in arg.model_fields
            and tag in typing.get_args(arg.model_fields["type"].annotation)
        ):
            return arg
    return None


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that validated the mapping at ``loc`` (a pydantic location), if found."""
    current: Any = root
    for part in loc:
        current = _strip(current)
        origin = typing.get_origin(current)
        if isinstance(part, int):
            current = typing.get_args(current)[0] if origin is list else None
        elif isclass(current) and issubclass(current, BaseModel):
            current = _field(current, part)
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif origin is typing.Union or origin is types.UnionType:
            current = _tagged(current, part)
        else:
            current = None
        if current is None:
            return None
    current = _strip(current)
    return current if isclass(current) and issubclass(current, BaseModel) else None


def problems_from_validation_error(
    exc: ValidationError,
    raw: Any,
    *,
    sources: Mapping[str, str] | None = None,
    model: type[BaseModel] | None = None,
) -> list[str]:
    """One line per problem: ``<place>: <reason>``.

    ``sources`` maps top-level keys that came from environment variables to the
    variable's name, so that a bad value there is not blamed on the file.
    Given the ``model`` validated, an unknown key close to a known one gets a
    "did you mean".
    """
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        problems: list[tuple[tuple[str | int, ...], str]]
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblems):
            problems = [(tuple(error["loc"]) + rel, message) for rel, message in cause.problems]
        else:
            loc = tuple(error["loc"])
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc += (error["ctx"]["discriminator"].strip("'"),)
            reason = _reason(error)
            if error["type"] == "extra_forbidden" and model is not None and loc:
                found = _model_at(model, loc[:-1])
                other = _other_spelling(str(loc[-1]), found) if found is not None else None
                close = closest_key(str(loc[-1]), found) if found is not None else None
                if other is not None:
                    # A known key refused: the same field is spelled the other way too.
                    reason = f"the same key as {other}, which is given too; keep one of them"
                elif close is not None:
                    reason += f" (did you mean {close}?)"
            problems = [(loc, reason)]
        for loc, message in problems:
            parts = written_location(loc, raw)
            where = format_location(parts)
            if sources and parts and isinstance(parts[0], str) and parts[0] in sources:
                where += f" (from environment variable {sources[parts[0]]})"
            lines.append(f"{where}: {message}" if where else message)
    return lines
