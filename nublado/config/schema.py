"""The JSON Schema of the configuration file, for editors and for review.

It is generated from the models and committed as ``schema/config.schema.json``;
a test fails when the committed file is stale (run ``nublado schema``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from .controller import Config

__all__ = ["SCHEMA_ID", "config_schema", "config_schema_text"]

SCHEMA_ID = "urn:nublado:config-schema"
"""Identifier written into the schema (``$id``): this project's own name for it.

Not upstream's URL, whose schema differs (ours adds ``templateDirs``, static
image sources, ...); a URN because the project publishes no URL to put it under.
"""


class _ConfigSchemaGenerator(GenerateJsonSchema):
    """Writes duration defaults as seconds, the form the file accepts (not ISO 8601)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return dft.total_seconds()
        return super().encode_default(dft)


def config_schema() -> dict[str, Any]:
    """The schema of the YAML file: camelCase keys, quantities as strings or numbers."""
    schema = Config.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_ConfigSchemaGenerator
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Nublado controller configuration",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def config_schema_text() -> str:
    """The schema as the committed file holds it: sorted keys, 2-space indent, final newline."""
    return json.dumps(config_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
