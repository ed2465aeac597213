"""The service-discovery file mounted into every lab (``/etc/nublado/discovery/v1.json``).

Labs get a reduced copy of Repertoire's discovery document: what a notebook
needs to find datasets, InfluxDB databases and internal services, without the
descriptions, documentation links and UI entries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["discovery_file", "reduce_discovery"]

_ESCAPED_BY_PYTHON = re.compile(r"[^\x00-\x7e]")
"""Characters json.dumps(ensure_ascii=True) escapes and orjson writes as they are."""


def _service(entry: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"url": entry["url"]}
    versions = entry.get("versions") or {}
    if versions:
        result["versions"] = {name: {"url": v["url"]} for name, v in versions.items()}
    return result


def reduce_discovery(discovery: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the parts of a discovery document that labs use."""
    datasets: dict[str, Any] = {}
    for name, dataset in (discovery.get("datasets") or {}).items():
        reduced: dict[str, Any] = {}
        if dataset.get("butler_config") is not None:
            reduced["butler_config"] = dataset["butler_config"]
        reduced["services"] = {
            service: _service(entry) for service, entry in (dataset.get("services") or {}).items()
        }
        datasets[name] = reduced
    influxdb = {
        name: {
            "url": entry["url"],
            "database": entry["database"],
            "schema_registry": entry["schema_registry"],
            "local": entry.get("local", False),
            "credentials_url": entry["credentials_url"],
        }
        for name, entry in (discovery.get("influxdb_databases") or {}).items()
    }
    internal = (discovery.get("services") or {}).get("internal") or {}
    return {
        "datasets": datasets,
        "influxdb_databases": influxdb,
        "services": {"internal": {name: _service(entry) for name, entry in internal.items()}},
    }


def discovery_file(discovery: Mapping[str, Any] | None) -> str:
    """The file's text: sorted keys, two-space indent, ASCII only, no final newline.

    This is Python's ``json.dumps(sort_keys=True, indent=2)``, byte for byte.
    orjson writes the same text about fifty times faster (the pure-Python
    indenting encoder was 40% of a lab's context build), except that it does
    not escape non-ASCII characters or DEL: those rare documents take the
    slow path.
    """
    reduced = reduce_discovery(discovery or {})
    text = orjson.dumps(reduced, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    if not _ESCAPED_BY_PYTHON.search(text):
        return text
    return json.dumps(reduced, sort_keys=True, indent=2, ensure_ascii=True)
