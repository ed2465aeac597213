"""The discovery file labs get: upstream's reduced document, as Python's json writes it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from reference_cases import EXPECTED, reference_discovery

from nublado.render.discovery import discovery_file, reduce_discovery


def _expected_file() -> str:
    objects = json.loads((EXPECTED / "objects" / "lab.json").read_text())
    files = next(o for o in objects if o["metadata"]["name"] == "rachel-nb-files")
    text: str = files["data"]["discovery-v1-json"]
    return text


def test_reference_discovery_reduces_to_upstream_file() -> None:
    assert discovery_file(reference_discovery()) == _expected_file()


def test_no_discovery_gives_an_empty_document() -> None:
    assert json.loads(discovery_file(None)) == {
        "datasets": {},
        "influxdb_databases": {},
        "services": {"internal": {}},
    }


urls = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@given(st.dictionaries(st.text(max_size=10), urls, max_size=4), urls)
@example({"\x7f": "é"}, "\x7f\u2028\x1f")
def test_text_is_python_json_byte_for_byte(services: dict[str, str], butler: str) -> None:
    discovery: dict[str, Any] = {
        "datasets": {"dp1": {"butler_config": butler, "services": {}}},
        "services": {"internal": {name: {"url": url} for name, url in services.items()}},
    }

    expected = json.dumps(reduce_discovery(discovery), sort_keys=True, indent=2, ensure_ascii=True)
    assert discovery_file(discovery) == expected
