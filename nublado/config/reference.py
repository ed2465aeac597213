"""The configuration reference (``docs/configuration.md``), written from the JSON Schema.

An operator reads the reference, not the models; generating it from the
same schema editors use keeps the two from disagreeing, and a test fails
when the committed file is stale (run ``nublado schema --markdown``).

The generator only lays out what the schema says: keys in the order the
models declare them, their types, defaults, constraints and descriptions.
It adds no words of its own about a key, so a key without a description in
the models has none here either. A schema keyword it does not know is an
error, so a new constraint cannot be left out of the reference unnoticed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NubladoError
from .schema import config_schema

__all__ = [
    "DEFAULT_REFERENCE_PATH",
    "ReferenceLayoutError",
    "config_reference",
    "config_reference_text",
]

DEFAULT_REFERENCE_PATH = "docs/configuration.md"
"""Where the reference is committed, relative to the repository root."""

# Keywords the generator understands; anything else in the schema is an error.
_PROPERTY_KEYWORDS = frozenset(
    {
        "$ref",
        "additionalProperties",
        "anyOf",
        "const",
        "default",
        "description",
        "discriminator",
        "enum",
        "format",
        "items",
        "maxLength",
        "maximum",
        "minimum",
        "oneOf",
        "pattern",
        "patternProperties",
        "title",
        "type",
        "writeOnly",
    }
)
_OBJECT_KEYWORDS = frozenset(
    {"additionalProperties", "description", "properties", "required", "title", "type"}
)

# JSON Schema formats, as a reader of a YAML file knows them.
_FORMATS = {"path": "path", "password": "secret"}

_SCALARS = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
    "object": "mapping",
    "array": "list",
}


class ReferenceLayoutError(NubladoError):
    """The schema uses something the reference generator cannot lay out."""


@dataclass
class _Section:
    """One object model of the schema, and the key paths where the file uses it."""

    name: str
    paths: list[str] = field(default_factory=list)
    """Where the model is used, as dotted key paths (``lab.sizes[]``), first one first."""


@dataclass
class _Described:
    """A schema rendered for one table row: its type and its constraints."""

    type: str
    constraints: list[str] = field(default_factory=list)


def _code(text: str) -> str:
    """A Markdown code span holding ``text`` verbatim (a table cell escapes ``|``)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _prose(text: str) -> str:
    """Schema text as Markdown prose: ``<`` outside code spans escaped, so ``<user>`` shows."""
    parts = re.split(r"(`+[^`]*`+)", text)
    return "".join(part if part.startswith("`") else part.replace("<", "&lt;") for part in parts)


def _cell(text: str) -> str:
    """Text fit for one table cell: one line, ``|`` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _shown_path(path: str) -> str:
    """``lab.sizes[]`` in code; a union branch as ``images.source`` (``type: docker``)."""
    path, _, variant = path.partition(" (")
    return f"{_code(path)} ({_code(variant[:-1])})" if variant else _code(path)


def _anchor(name: str) -> str:
    return name.lower()


class _Generator:
    """Walks the schema from the top level and writes one section per object model."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._defs: Mapping[str, Mapping[str, Any]] = schema.get("$defs", {})
        self._sections: dict[str, _Section] = {}
        self._walking: list[str] = []

    def _def_name(self, ref: str) -> str:
        prefix = "#/$defs/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in self._defs:
            raise ReferenceLayoutError(f"unsupported $ref {ref!r}")
        return ref[len(prefix) :]

    def _is_object(self, name: str) -> bool:
        return "properties" in self._defs[name]

    # Walking: which object models are used where, in declaration order.

    def _visit(self, path: str, schema: Mapping[str, Any], variant: str = "") -> None:
        """Record every object model reachable from ``schema``, found at ``path``.

        Every path is walked, so a model used in several places (tolerations,
        affinity) is known to be shared; ``variant`` names the branch of a
        union chosen by a key (``type: docker``).
        """
        if "$ref" in schema:
            name = self._def_name(schema["$ref"])
            if not self._is_object(name):
                return
            if name in self._walking:
                raise ReferenceLayoutError(f"recursive model {name}")
            section = self._sections.setdefault(name, _Section(name))
            shown = f"{path} ({variant})" if variant else path  # the heading splits it again
            if shown not in section.paths:
                section.paths.append(shown)
            self._walking.append(name)
            self._visit_properties(path, self._defs[name])
            self._walking.pop()
            return
        discriminator = schema.get("discriminator")
        for keyword in ("anyOf", "oneOf"):
            for branch in schema.get(keyword, []):
                self._visit(path, branch, self._variant(branch, discriminator))
        if isinstance(schema.get("items"), Mapping):
            self._visit(f"{path}[]", schema["items"])
        if isinstance(schema.get("additionalProperties"), Mapping):
            self._visit(f"{path}.*", schema["additionalProperties"])
        for value in schema.get("patternProperties", {}).values():
            self._visit(f"{path}.*", value)

    def _variant(self, branch: Mapping[str, Any], discriminator: Any) -> str:
        """``type: docker`` for a union branch chosen by its ``type`` key, else empty."""
        if not isinstance(discriminator, Mapping) or "$ref" not in branch:
            return ""
        key = discriminator["propertyName"]
        model = self._defs[self._def_name(branch["$ref"])]
        const = model.get("properties", {}).get(key, {}).get("const")
        return f"{key}: {const}" if const is not None else ""

    def _visit_properties(self, path: str, model: Mapping[str, Any]) -> None:
        for key, value in model.get("properties", {}).items():
            self._visit(f"{path}.{key}" if path else key, value)

    # Describing one property.

    def _describe(self, schema: Mapping[str, Any]) -> _Described:
        unknown = set(schema) - _PROPERTY_KEYWORDS
        if unknown:
            raise ReferenceLayoutError(f"unsupported schema keywords {sorted(unknown)}")
        if "$ref" in schema:
            name = self._def_name(schema["$ref"])
            if self._is_object(name):
                return _Described(f"[{name}](#{_anchor(name)})")
            return self._describe({k: v for k, v in self._defs[name].items() if k != "description"})
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self._describe_union(schema[keyword], schema.get("discriminator"))
        described = _Described(_SCALARS.get(schema.get("type", ""), "any"))
        if "format" in schema:
            described.type += f" ({_FORMATS.get(schema['format'], schema['format'])})"
        if "const" in schema:
            described.constraints.append(f"always {_code(_json(schema['const']))}")
        if "enum" in schema:
            values = ", ".join(_code(_json(value)) for value in schema["enum"])
            described.constraints.append(f"one of {values}")
        for keyword, words in (
            ("minimum", "at least"),
            ("maximum", "at most"),
            ("maxLength", "at most {} characters"),
        ):
            if keyword in schema:
                bound = _json(schema[keyword])
                text = words.format(bound) if "{}" in words else f"{words} {bound}"
                described.constraints.append(text)
        if "pattern" in schema:
            described.constraints.append(f"matches {_code(schema['pattern'])}")
        if schema.get("type") == "array" and isinstance(schema.get("items"), Mapping):
            self._nest(described, "list of", "each", self._describe(schema["items"]))
        elif isinstance(schema.get("additionalProperties"), Mapping):
            value = self._describe(schema["additionalProperties"])
            self._nest(described, "mapping of string to", "each value", value)
        elif "patternProperties" in schema:
            for pattern, value_schema in schema["patternProperties"].items():
                value = self._describe(value_schema)
                self._nest(described, "mapping of string to", "each value", value)
                described.constraints.insert(0, f"keys match {_code(pattern)}")
        return described

    @staticmethod
    def _nest(described: _Described, container: str, each: str, inner: _Described) -> None:
        described.type = f"{container} {inner.type}"
        described.constraints.extend(f"{each}: {text}" for text in inner.constraints)

    def _describe_union(
        self, branches: list[Mapping[str, Any]], discriminator: Mapping[str, Any] | None
    ) -> _Described:
        parts = [self._describe(branch) for branch in branches]
        described = _Described(" or ".join(part.type for part in parts))
        constrained = [part for part in parts if part.constraints]
        for part in constrained:
            prefix = f"{part.type}: " if len(constrained) > 1 else ""
            described.constraints.extend(prefix + text for text in part.constraints)
        if discriminator is not None:
            described.constraints.insert(
                0, f"chosen by its {_code(discriminator['propertyName'])} key"
            )
        return described

    # Writing.

    def _table(self, model: Mapping[str, Any]) -> Iterator[str]:
        unknown = set(model) - _OBJECT_KEYWORDS
        if unknown:
            raise ReferenceLayoutError(f"unsupported schema keywords {sorted(unknown)}")
        required = set(model.get("required", []))
        yield "| Key | Type | Default | Constraints | Description |"
        yield "|---|---|---|---|---|"
        for key, schema in model["properties"].items():
            described = self._describe(schema)
            if key in required:
                default = "required"
            elif "default" in schema:
                default = _code(_json(schema["default"]))
            else:
                default = ""
            constraints = "; ".join(described.constraints)
            description = _prose(schema.get("description", ""))
            row = [_code(key), described.type, default, constraints, description]
            yield "| " + " | ".join(_cell(text) for text in row) + " |"
        if model.get("additionalProperties") is not False:
            yield ""
            yield (
                "The schema allows keys not listed here (the description says what becomes"
                " of them)."
            )

    def _section_lines(self, section: _Section, heading: str) -> Iterator[str]:
        model = self._defs[section.name]
        yield ""
        yield f'<a id="{_anchor(section.name)}"></a>'
        yield ""
        yield heading
        yield ""
        used = ", ".join(_shown_path(path) for path in section.paths)
        yield f"Model `{section.name}`, at {used}."
        yield ""
        yield from self._description(model)
        yield from self._table(model)

    def lines(self) -> Iterator[str]:
        self._visit_properties("", self._schema)
        unused = [name for name in self._defs if name not in self._sections]
        unused = [name for name in unused if self._is_object(name)]
        if unused:
            raise ReferenceLayoutError(f"object models not reachable from the top level: {unused}")
        single = [section for section in self._sections.values() if len(section.paths) == 1]
        shared = [section for section in self._sections.values() if len(section.paths) > 1]
        yield "# Configuration reference"
        yield ""
        yield (
            "<!-- Generated by `nublado schema --markdown` from the configuration models;"
            " do not edit. -->"
        )
        yield ""
        yield (
            "Every key of the controller's configuration file, in the order the models"
            " declare them, written from its JSON Schema (`schema/config.schema.json`)."
            " Keys are camelCase as listed. Any key may instead be written as its"
            " snake_case field name, at every level (`log_level` for `logLevel`,"
            " `pull_secret` for `lab.pullSecret`), except that the field of"
            " `EXTERNAL_INSTANCE_URL` is `base_url`, that of `NUBLADO_SLACK_WEBHOOK` is"
            " `slack_webhook`, and those of the affinity keys"
            " `requiredDuringSchedulingIgnoredDuringExecution` and"
            " `preferredDuringSchedulingIgnoredDuringExecution` are `required` and"
            " `preferred`. One mapping may not spell a key both ways (an error names"
            " both spellings). Keys inside free-form mappings"
            " (labels, annotations, environment variables) are data, taken as written."
            " A type in a link is a section below; models used in several places are"
            " under [Shared models](#shared-models). An empty description means the"
            " model gives none."
        )
        yield ""
        yield '<a id="top-level"></a>'
        yield ""
        yield "## Top level"
        yield ""
        yield from self._description(self._schema)
        yield from self._table({k: v for k, v in self._schema.items() if k in _OBJECT_KEYWORDS})
        for section in single:
            path = section.paths[0].partition(" (")[0]
            level = "##" if "." not in path else "###"
            yield from self._section_lines(section, f"{level} {_shown_path(section.paths[0])}")
        if shared:
            yield ""
            yield '<a id="shared-models"></a>'
            yield ""
            yield "## Shared models"
            for section in shared:
                yield from self._section_lines(section, f"### {section.name}")

    @staticmethod
    def _description(model: Mapping[str, Any]) -> Iterator[str]:
        text = _prose(model.get("description", "").strip())
        if text:
            yield text
            yield ""


def config_reference(schema: Mapping[str, Any]) -> str:
    """The Markdown reference of a configuration schema (as `config_schema` returns it)."""
    return "\n".join(_Generator(schema).lines()) + "\n"


def config_reference_text() -> str:
    """The reference as ``docs/configuration.md`` holds it, for the current models."""
    return config_reference(config_schema())
