"""Label and field selectors: parsing and matching, as the API server does them.

Used by the sandbox to answer LIST and WATCH, and by the client to reject a
malformed selector before sending it. The grammar is apimachinery's
``labels.Parse``: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``,
``k``, ``!k``, ``k>1``, ``k<1``, comma meaning AND.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
]

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_NAME_RE = re.compile(rf"^{_NAME}$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OPERATORS = ("in", "notin")


class SelectorError(ValueError):
    """A label or field selector that does not parse; the sandbox answers 400."""


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX_RE.match(prefix)):
        raise SelectorError(f"invalid label key {key!r}: prefix must be a DNS subdomain")
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        raise SelectorError(
            f"invalid label key {key!r}: name part must be 63 characters or less, made of "
            "alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
        )


def _check_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        raise SelectorError(
            f"invalid label value {value!r}: must be 63 characters or less, made of "
            "alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
        )


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this clause."""
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                if value is None:
                    return False
                try:
                    number = int(value)
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.operator == "gt" else number < bound
        return False  # pragma: no cover


_TOKEN_RE = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


_SPECIAL = frozenset({"(", ")", ",", "=", "==", "!=", ">", "<", "!"})


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if not match:  # pragma: no cover - the pattern accepts any non-space
            raise SelectorError(f"unable to parse selector {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse the string form, raising `SelectorError` with the reason."""
        if not text or not text.strip():
            return cls()
        tokens = _tokens(text)
        requirements: list[Requirement] = []
        position = 0

        def take() -> str:
            nonlocal position
            if position >= len(tokens):
                raise SelectorError(f"unable to parse requirement: unexpected end in {text!r}")
            token = tokens[position]
            position += 1
            return token

        def peek() -> str | None:
            return tokens[position] if position < len(tokens) else None

        def parse_values(operator: str) -> list[str]:
            # As upstream's parser: identifiers separated by single commas; an
            # empty value where commas meet ``(,`` ``,,`` ``,)``; ``()`` is the
            # empty value; two identifiers without a comma are an error.
            values: list[str] = []
            if peek() == ")":
                take()
                return [""]
            while True:
                item = take()
                if item == ",":
                    if not values:
                        values.append("")
                    following = peek()
                    if following == ")":
                        take()
                        values.append("")
                        break
                    if following == ",":
                        take()
                        values.append("")
                    continue
                if item in _SPECIAL:
                    raise SelectorError(
                        f"unable to parse requirement: found {item!r}, expected: ',', "
                        f"or identifier in the values of {operator}"
                    )
                _check_value(item)
                values.append(item)
                following = peek()
                if following == ")":
                    take()
                    break
                if following != ",":
                    raise SelectorError(
                        f"unable to parse requirement: found {following or 'end'!r}, "
                        "expected: ',' or ')'"
                    )
            return list(dict.fromkeys(values))

        while True:
            token = take()
            if token == "!":
                key = take()
                _check_key(key)
                requirements.append(Requirement(key, "!"))
            else:
                if token in ("(", ")", ",", "=", "==", "!=", ">", "<"):
                    raise SelectorError(
                        f"unable to parse requirement: found {token!r}, expected a key"
                    )
                key = token
                _check_key(key)
                following = peek()
                if following is None or following == ",":
                    requirements.append(Requirement(key, "exists"))
                elif following in ("=", "==", "!="):
                    take()
                    following_value = peek()
                    value = "" if following_value in (None, ",") else take()
                    _check_value(value)
                    operator = "!=" if following == "!=" else "="
                    requirements.append(Requirement(key, operator, (value,)))
                elif following in (">", "<"):
                    take()
                    value = take()
                    try:
                        int(value)
                    except ValueError:
                        raise SelectorError(
                            f"unable to parse requirement: for 'gt', 'lt' operators, the value "
                            f"must be an integer, not {value!r}"
                        ) from None
                    requirements.append(
                        Requirement(key, "gt" if following == ">" else "lt", (value,))
                    )
                elif following in _OPERATORS:
                    operator = take()
                    if take() != "(":
                        raise SelectorError(
                            f"unable to parse requirement: expected '(' after {operator}"
                        )
                    values = parse_values(operator)
                    requirements.append(Requirement(key, operator, tuple(values)))
                else:
                    raise SelectorError(
                        f"unable to parse requirement: found {following!r}, expected: "
                        "'=', '!=', '==', 'in', 'notin'"
                    )
            following = peek()
            if following is None:
                break
            if take() != ",":
                raise SelectorError(f"unable to parse selector {text!r}: expected ','")
        return cls(tuple(requirements))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        """An equality selector for a set of labels (what ``matchLabels`` means)."""
        return cls(tuple(Requirement(k, "=", (v,)) for k, v in sorted(labels.items())))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object's labels satisfy every clause."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def indexable(self) -> Requirement | None:
        """The first clause a label index can answer (``=``, ``==``, ``in``: the objects
        whose label has one of its values), for `nublado.sandbox.store.Store.labelled`."""
        return next((r for r in self.requirements if r.operator in ("=", "in")), None)

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            match r.operator:
                case "=" | "!=":
                    parts.append(f"{r.key}{r.operator}{r.values[0]}")
                case "in" | "notin":
                    parts.append(f"{r.key} {r.operator} ({','.join(r.values)})")
                case "exists":
                    parts.append(r.key)
                case "!":
                    parts.append(f"!{r.key}")
                case "gt" | "lt":
                    parts.append(f"{r.key}{'>' if r.operator == 'gt' else '<'}{r.values[0]}")
        return ",".join(parts)


def _path(*keys: str) -> Callable[[Mapping[str, Any]], str]:
    def get(obj: Mapping[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            if not isinstance(value, Mapping):
                return ""
            value = value.get(key)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


# Fields each kind supports in a field selector (the API server's field label conversions).
_COMMON_FIELDS = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
_KIND_FIELDS: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
    },
    "Event": {
        **{
            f"involvedObject.{f}": _path("involvedObject", f)
            for f in (
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            )
        },
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "Secret": {"type": _path("type")},
    "Namespace": {"status.phase": _path("status", "phase")},
    "Node": {"spec.unschedulable": _path("spec", "unschedulable")},
    "Job": {"status.successful": _path("status", "succeeded")},
}


@functools.cache
def _supported_fields(kind: str) -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """The fields a kind's field selectors may name, with their getters (made once per kind:
    a LIST of 5,000 pods by phase merged these dicts for every pod)."""
    return {**_COMMON_FIELDS, **_KIND_FIELDS.get(kind, {})}


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector: equality and inequality on a few supported fields."""

    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal, value)

    @classmethod
    def parse(cls, text: str | None, kind: str) -> FieldSelector:
        """Parse for one kind; a field the kind does not support is an error, as upstream."""
        if not text or not text.strip():
            return cls()
        supported = _supported_fields(kind)
        terms: list[tuple[str, bool, str]] = []
        for part in _split_unescaped(text, ","):
            match = re.match(r"^\s*([^!=\s]+)\s*(!=|==|=)\s*(.*?)\s*$", part)
            if not match:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
            field, operator, value = match.groups()
            if field not in supported:
                raise SelectorError(f"field label not supported: {field}")
            terms.append((field, operator != "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any], kind: str) -> bool:
        """Whether an object satisfies every term."""
        if not self.terms:
            return True
        supported = _supported_fields(kind)
        return all((supported[field](obj) == value) == equal for field, equal, value in self.terms)

    def equality(self, field: str) -> str | None:
        """The value a term requires a field to equal, for index lookups."""
        for term_field, equal, value in self.terms:
            if term_field == field and equal:
                return value
        return None
