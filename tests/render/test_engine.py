"""The render engine: quoting, strictness, shape caching and template folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from nublado.render.engine import Renderer, RenderError, quote


def _templates(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_quoted_values_come_out_verbatim_with_their_types(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path,
        {
            "t/set.yaml": "- cm.yaml\n",
            "t/cm.yaml": (
                # Not a ConfigMap: a key like "a: b" is no config key, but the
                # quoting of keys is what this shows.
                "apiVersion: example.com/v1\nkind: Example\nmetadata:\n  name: cm\n"
                "  annotations: {note: {{ name | q }}}\ndata: {{ data | q }}\n"
                "immutable: {{ flag | q }}\nnumber: {{ n | q }}\n"
            ),
        },
    )
    data = {"a: b": "- x\n---\n{{ y }}", "k": "'\"\\\u2028\x01"}
    manifests = Renderer([folder]).render("t", {"name": "n: 1", "data": data, "flag": True, "n": 7})

    assert manifests == [
        {
            "apiVersion": "example.com/v1",
            "kind": "Example",
            "metadata": {"name": "cm", "annotations": {"note": "n: 1"}},
            "data": data,
            "immutable": True,
            "number": 7,
        }
    ]


def test_unquoted_expression_is_refused(tmp_path: Path) -> None:
    folder = _templates(tmp_path, {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "name: {{ name }}\n"})

    with pytest.raises(RenderError, match="unquoted str value"):
        Renderer([folder]).render("t", {"name": "rachel"})


def test_undefined_value_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path, {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "a: {{ missing | q }}\n"}
    )

    with pytest.raises(RenderError, match="'missing' is undefined"):
        Renderer([folder]).render("t", {})


def test_none_value_is_refused(tmp_path: Path) -> None:
    folder = _templates(tmp_path, {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "a: {{ v | q }}\n"})

    with pytest.raises(RenderError, match="guard optional fields"):
        Renderer([folder]).render("t", {"v": None})


def test_non_string_mapping_key_is_refused(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path, {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "a:\n  {{ k | q }}: 1\n"}
    )

    assert Renderer([folder]).render("t", {"k": "key"}) == [{"a": {"key": 1}}]
    with pytest.raises(RenderError, match="non-string mapping key"):
        Renderer([folder]).render("t", {"k": ["x"]})


def test_same_shape_is_parsed_once(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path,
        {
            "t/set.yaml": "- a.yaml\n",
            "t/a.yaml": "{% for x in xs %}\n---\nv: {{ x | q }}\n{% endfor %}\n",
        },
    )
    renderer = Renderer([folder])

    first = renderer.render("t", {"xs": ["a", "b"]})
    second = renderer.render("t", {"xs": ["c", "d"]})
    third = renderer.render("t", {"xs": ["e"]})

    assert (first, second, third) == (
        [{"v": "a"}, {"v": "b"}],
        [{"v": "c"}, {"v": "d"}],
        [{"v": "e"}],
    )
    assert len(renderer._shapes) == 2


def test_template_that_renders_nothing_gives_no_manifest(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path,
        {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "{% if on %}\na: {{ on | q }}\n{% endif %}\n"},
    )

    assert Renderer([folder]).render("t", {"on": False}) == []


def test_invalid_yaml_names_the_template(tmp_path: Path) -> None:
    folder = _templates(tmp_path, {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "a: [\n"})

    with pytest.raises(RenderError, match="template t/a.yaml renders invalid YAML"):
        Renderer([folder]).render("t", {})


def test_unknown_set_and_missing_template(tmp_path: Path) -> None:
    folder = _templates(tmp_path, {"t/set.yaml": "- gone.yaml\n"})

    with pytest.raises(RenderError, match="unknown object set 'nope'"):
        Renderer([folder]).render("nope", {})
    with pytest.raises(RenderError, match="template t/gone.yaml not found"):
        Renderer([folder]).render("t", {})


def test_q_outside_a_render_is_an_error() -> None:
    with pytest.raises(RenderError, match="outside a render"):
        quote("x")


def test_q_value_must_be_a_whole_yaml_value(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path, {"t/set.yaml": "- a.yaml\n", "t/a.yaml": "name: prefix-{{ user | q }}\n"}
    )

    with pytest.raises(RenderError, match="inside a larger scalar"):
        Renderer([folder]).render("t", {"user": "rachel"})


def test_set_index_must_be_a_yaml_list(tmp_path: Path) -> None:
    folder = _templates(tmp_path, {"t/set.yaml": "- a.yaml\n  b: [\n", "u/set.yaml": "a: 1\n"})

    with pytest.raises(RenderError, match="t/set.yaml is not valid YAML"):
        Renderer([folder]).render("t", {})
    with pytest.raises(RenderError, match="u/set.yaml must be a list"):
        Renderer([folder]).render("u", {})


def test_errors_name_the_file_and_line_within_a_set(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path,
        {
            "t/set.yaml": "- a.yaml\n- b.yaml\n",
            "t/a.yaml": "a: {{ x | q }}\nb: 1\n",
            "t/b.yaml": "{# comment #}\nc: 1\nd: {{ missing | q }}\n",
            "u/set.yaml": "- a.yaml\n",
            "u/a.yaml": "a: 1\nb: {% if %}\n",
        },
    )
    renderer = Renderer([folder])

    with pytest.raises(RenderError, match=r"^template t/b.yaml line 3: 'missing' is undefined$"):
        renderer.render("t", {"x": 1})
    with pytest.raises(RenderError, match=r"^template u/a.yaml line 2: "):
        renderer.render("u", {})


def test_a_template_cannot_change_another_templates_variables(tmp_path: Path) -> None:
    folder = _templates(
        tmp_path,
        {
            "t/set.yaml": "- a.yaml\n- b.yaml\n",
            "t/a.yaml": "{% set x = 'changed' %}\na: {{ x | q }}\n",
            "t/b.yaml": "b: {{ x | q }}\n",
        },
    )

    assert Renderer([folder]).render("t", {"x": "given"}) == [{"a": "changed"}, {"b": "given"}]
